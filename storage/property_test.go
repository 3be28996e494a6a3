package storage

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestMetamorphicLevelDBVsMemory applies one random operation sequence to a
// LevelDB and to a Memory backend and requires identical answers throughout.
// The LevelDB is closed and reopened now and then, so the comparison also
// covers recovery from the journal and from table files (a 1 MiB write buffer
// makes flushes and compactions happen within the run).
func TestMetamorphicLevelDBVsMemory(t *testing.T) {
	const seeds, steps = 6, 600
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			runMetamorphic(t, seed, steps)
		})
	}
}

func runMetamorphic(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, 0x9E3779B97F4A7C15))
	cfg := DefaultLevelDBConfig(t.TempDir())
	cfg.WriteBufferMiB = 1
	ldb := openLevelDB(t, cfg)
	mem := NewMemory()

	// Few partitions and keys so that ops collide; boundary values included.
	parts := []uint32{0, 1, 2, 0xFFFFFFFE, maxP}
	keys := []string{"", "\x00", "a", "a\x00", "ab", "b", "\xff", "\xff\xff\xff\xff", "zz"}
	randPart := func() uint32 { return parts[rng.IntN(len(parts))] }
	randKey := func() []byte { return []byte(keys[rng.IntN(len(keys))]) }
	randVal := func() []byte {
		// Mostly short; sometimes large, to fill the write buffer.
		n := rng.IntN(16)
		if rng.IntN(20) == 0 {
			n = 8 << 10
		}
		v := make([]byte, n)
		for i := range v {
			v[i] = byte(rng.Uint32())
		}
		return v
	}
	// sameErr requires both backends to succeed or both to miss; any other
	// error is unexpected in this test.
	sameErr := func(step int, what string, a, b error) {
		t.Helper()
		unexpected := func(err error) bool { return err != nil && !errors.Is(err, ErrNotFound) }
		if unexpected(a) || unexpected(b) || errors.Is(a, ErrNotFound) != errors.Is(b, ErrNotFound) {
			t.Fatalf("seed %d step %d %s: leveldb err %v, memory err %v", seed, step, what, a, b)
		}
	}
	compareAll := func(step int) {
		t.Helper()
		lp, err1 := ldb.Partitions()
		mp, err2 := mem.Partitions()
		sameErr(step, "partitions", err1, err2)
		if !slices.Equal(lp, mp) {
			t.Fatalf("seed %d step %d: partitions leveldb %v, memory %v", seed, step, lp, mp)
		}
		for _, p := range parts {
			if l, m := foldAll(t, ldb, p), foldAll(t, mem, p); !slices.Equal(l, m) {
				t.Fatalf("seed %d step %d: partition %#x differs:\nleveldb %s\nmemory  %s", seed, step, p, brief(l), brief(m))
			}
		}
	}

	for step := range steps {
		p := randPart()
		switch r := rng.IntN(100); {
		case r < 30:
			k, v := randKey(), randVal()
			sameErr(step, "put", ldb.Put(p, k, v), mem.Put(p, k, v))
		case r < 45:
			k := randKey()
			sameErr(step, "delete", ldb.Delete(p, k), mem.Delete(p, k))
		case r < 60:
			ops := make([]Op, rng.IntN(6))
			for i := range ops {
				ops[i] = Op{Key: randKey(), Value: randVal(), Delete: rng.IntN(3) == 0}
			}
			sameErr(step, "write", ldb.Write(p, ops), mem.Write(p, ops))
		case r < 75:
			k := randKey()
			lv, lerr := ldb.Get(p, k)
			mv, merr := mem.Get(p, k)
			sameErr(step, "get", lerr, merr)
			if string(lv) != string(mv) {
				t.Fatalf("seed %d step %d: get %#x/%q: leveldb %s, memory %s", seed, step, p, k, briefValue(string(lv)), briefValue(string(mv)))
			}
		case r < 82:
			le, lerr := ldb.IsEmpty(p)
			me, merr := mem.IsEmpty(p)
			sameErr(step, "isempty", lerr, merr)
			if le != me {
				t.Fatalf("seed %d step %d: IsEmpty(%#x): leveldb %v, memory %v", seed, step, p, le, me)
			}
		case r < 88:
			// A fold from a random key (or the first), stopped after a random number of entries.
			stopAt := rng.IntN(len(keys) + 1)
			var start []byte
			if rng.IntN(2) == 0 {
				start = randKey()
			}
			visit := func(b Backend) ([]kv, error) {
				var seen []kv
				err := b.FoldFrom(p, start, func(k, v []byte) error {
					if len(seen) == stopAt {
						return ErrStopFold
					}
					seen = append(seen, kv{string(k), string(v)})
					return nil
				})
				return seen, err
			}
			l, lerr := visit(ldb)
			m, merr := visit(mem)
			sameErr(step, "fold", lerr, merr)
			if !slices.Equal(l, m) {
				t.Fatalf("seed %d step %d: fold %#x from %q stop at %d:\nleveldb %s\nmemory  %s", seed, step, p, start, stopAt, brief(l), brief(m))
			}
		case r < 92:
			sameErr(step, "drop", ldb.DropPartition(p), mem.DropPartition(p))
		case r < 94:
			if err := ldb.Close(); err != nil {
				t.Fatalf("seed %d step %d: close: %v", seed, step, err)
			}
			ldb = openLevelDB(t, cfg)
		default:
			compareAll(step)
		}
	}
	compareAll(steps)
}

// brief formats entries for a failure message, eliding long values.
func brief(entries []kv) string {
	var sb strings.Builder
	sb.WriteByte('[')
	for i, e := range entries {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%q=%s", e.k, briefValue(e.v))
	}
	sb.WriteByte(']')
	return sb.String()
}

func briefValue(v string) string {
	if len(v) <= 16 {
		return fmt.Sprintf("%q", v)
	}
	return fmt.Sprintf("%q...(%d bytes)", v[:16], len(v))
}
