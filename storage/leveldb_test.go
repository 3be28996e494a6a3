package storage

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func openLevelDB(t *testing.T, cfg LevelDBConfig) *LevelDB {
	t.Helper()
	l, err := OpenLevelDB(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func TestLevelDBConfigValidate(t *testing.T) {
	def := DefaultLevelDBConfig("d")
	tests := []struct {
		name    string
		mod     func(c *LevelDBConfig)
		wantErr string // substring; "" means valid
	}{
		{"defaults", func(c *LevelDBConfig) {}, ""},
		{"zero means default", func(c *LevelDBConfig) { *c = LevelDBConfig{Dir: "d"} }, ""},
		{"sync", func(c *LevelDBConfig) { c.Sync = true }, ""},
		{"bloom disabled", func(c *LevelDBConfig) { c.BloomFilterBits = 0 }, ""},
		{"max values", func(c *LevelDBConfig) {
			c.WriteBufferMiB, c.BlockCacheMiB, c.OpenFilesCacheCapacity, c.BloomFilterBits = 1024, 65536, 1_000_000, 64
		}, ""},
		{"no dir", func(c *LevelDBConfig) { c.Dir = "" }, "LevelDBConfig.Dir"},
		{"negative write buffer", func(c *LevelDBConfig) { c.WriteBufferMiB = -1 }, "LevelDBConfig.WriteBufferMiB = -1"},
		{"huge write buffer", func(c *LevelDBConfig) { c.WriteBufferMiB = 1025 }, "LevelDBConfig.WriteBufferMiB = 1025"},
		{"negative cache", func(c *LevelDBConfig) { c.BlockCacheMiB = -8 }, "LevelDBConfig.BlockCacheMiB = -8"},
		{"negative open files", func(c *LevelDBConfig) { c.OpenFilesCacheCapacity = -1 }, "LevelDBConfig.OpenFilesCacheCapacity = -1"},
		{"negative bloom", func(c *LevelDBConfig) { c.BloomFilterBits = -1 }, "LevelDBConfig.BloomFilterBits = -1"},
		{"huge bloom", func(c *LevelDBConfig) { c.BloomFilterBits = 65 }, "LevelDBConfig.BloomFilterBits = 65"},
		{"drop compaction knobs", func(c *LevelDBConfig) { c.DropCompactQuiet, c.DropCompactMaxDelay = time.Millisecond, time.Millisecond }, ""},
		{"negative quiet", func(c *LevelDBConfig) { c.DropCompactQuiet = -time.Second }, "LevelDBConfig.DropCompactQuiet = -1s"},
		{"huge quiet", func(c *LevelDBConfig) { c.DropCompactQuiet = 2 * time.Hour }, "LevelDBConfig.DropCompactQuiet = 2h0m0s"},
		{"max delay under quiet", func(c *LevelDBConfig) { c.DropCompactMaxDelay = time.Second }, "LevelDBConfig.DropCompactMaxDelay = 1s"},
		{"huge max delay", func(c *LevelDBConfig) { c.DropCompactMaxDelay = 25 * time.Hour }, "LevelDBConfig.DropCompactMaxDelay = 25h0m0s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := def
			tc.mod(&c)
			err := c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
	if _, err := OpenLevelDB(LevelDBConfig{Dir: t.TempDir(), WriteBufferMiB: -1}); err == nil {
		t.Fatal("OpenLevelDB accepted an invalid config")
	}
}

func TestLevelDBReopenPersists(t *testing.T) {
	for _, sync := range []bool{false, true} {
		t.Run(fmt.Sprintf("sync=%v", sync), func(t *testing.T) {
			cfg := DefaultLevelDBConfig(t.TempDir())
			cfg.Sync = sync
			l, err := OpenLevelDB(cfg)
			if err != nil {
				t.Fatal(err)
			}
			mustPut(t, l, 0, "a", "0a")
			mustPut(t, l, maxP, "", "max-empty-key")
			mustPut(t, l, 5, "del", "x")
			if err := l.Write(5, []Op{{Key: []byte("b"), Value: []byte("5b")}, {Key: []byte("del"), Delete: true}}); err != nil {
				t.Fatal(err)
			}
			mustPut(t, l, 6, "dropped", "x")
			if err := l.DropPartition(6); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}

			l = openLevelDB(t, cfg)
			wantPartitions(t, l, 0, 5, maxP)
			wantGet(t, l, 0, "a", "0a")
			wantGet(t, l, maxP, "", "max-empty-key")
			if got, want := foldAll(t, l, 5), []kv{{"b", "5b"}}; !slices.Equal(got, want) {
				t.Fatalf("partition 5 after reopen: %v, want %v", got, want)
			}
			wantMissing(t, l, 6, "dropped")
		})
	}
}

func TestLevelDBDirLocked(t *testing.T) {
	cfg := DefaultLevelDBConfig(t.TempDir())
	openLevelDB(t, cfg)
	if l, err := OpenLevelDB(cfg); err == nil {
		_ = l.Close()
		t.Fatal("a second OpenLevelDB of the same directory succeeded")
	}
}

// TestLevelDBCloseDuringFold closes the DB from inside a fold over data that
// lives in table files (a 1 MiB write buffer forces flushes): the fold must end
// with nil or ErrClosed, never panic.
func TestLevelDBCloseDuringFold(t *testing.T) {
	cfg := DefaultLevelDBConfig(t.TempDir())
	cfg.WriteBufferMiB = 1
	l := openLevelDB(t, cfg)
	val := make([]byte, 1000)
	var ops []Op
	for i := range 3000 {
		ops = append(ops, Op{Key: fmt.Appendf(nil, "k%05d", i), Value: val})
		if len(ops) == 500 {
			if err := l.Write(1, ops); err != nil {
				t.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	n := 0
	err := l.Fold(1, func(_, _ []byte) error {
		n++
		if n == 10 {
			if err := l.Close(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrClosed) {
		t.Fatalf("fold across Close = %v after %d entries, want nil or ErrClosed", err, n)
	}
	t.Logf("fold across Close: %d entries, err=%v", n, err)
}
