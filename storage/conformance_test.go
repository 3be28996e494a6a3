package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// backendFactory opens a fresh, empty backend for one test. The backend is
// closed by the test's cleanup unless the test closed it.
type backendFactory struct {
	name string
	open func(t *testing.T) Backend
}

func factories() []backendFactory {
	return []backendFactory{
		{"leveldb", func(t *testing.T) Backend {
			t.Helper()
			l, err := OpenLevelDB(DefaultLevelDBConfig(t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = l.Close() })
			return l
		}},
		{"memory", func(t *testing.T) Backend {
			m := NewMemory()
			t.Cleanup(func() { _ = m.Close() })
			return m
		}},
	}
}

// kv is one visited entry.
type kv struct{ k, v string }

// foldAll returns the partition's entries in visit order.
func foldAll(t *testing.T, b Backend, p uint32) []kv {
	t.Helper()
	var out []kv
	if err := b.Fold(p, func(k, v []byte) error {
		out = append(out, kv{string(k), string(v)})
		return nil
	}); err != nil {
		t.Fatalf("fold partition %d: %v", p, err)
	}
	return out
}

func mustPut(t *testing.T, b Backend, p uint32, k, v string) {
	t.Helper()
	if err := b.Put(p, []byte(k), []byte(v)); err != nil {
		t.Fatalf("put %d/%q: %v", p, k, err)
	}
}

func wantGet(t *testing.T, b Backend, p uint32, k, want string) {
	t.Helper()
	got, err := b.Get(p, []byte(k))
	if err != nil {
		t.Fatalf("get %d/%q: %v, want %q", p, k, err, want)
	}
	if string(got) != want {
		t.Fatalf("get %d/%q = %q, want %q", p, k, got, want)
	}
}

func wantMissing(t *testing.T, b Backend, p uint32, k string) {
	t.Helper()
	v, err := b.Get(p, []byte(k))
	if err != ErrNotFound {
		t.Fatalf("get %d/%q = %q, %v; want ErrNotFound", p, k, v, err)
	}
}

func wantPartitions(t *testing.T, b Backend, want ...uint32) {
	t.Helper()
	got, err := b.Partitions()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("partitions = %v, want %v", got, want)
	}
}

const maxP = ^uint32(0)

// conformance is the suite every Backend must pass.
var conformance = []struct {
	name string
	run  func(t *testing.T, b Backend)
}{
	{"get missing", func(t *testing.T, b Backend) {
		wantMissing(t, b, 1, "nope")
		wantMissing(t, b, 1, "")
	}},
	{"put get overwrite", func(t *testing.T, b Backend) {
		mustPut(t, b, 1, "k", "v1")
		wantGet(t, b, 1, "k", "v1")
		mustPut(t, b, 1, "k", "v2")
		wantGet(t, b, 1, "k", "v2")
		wantMissing(t, b, 2, "k") // same key, other partition
	}},
	{"empty key and empty value", func(t *testing.T, b Backend) {
		mustPut(t, b, 3, "", "")
		got, err := b.Get(3, nil)
		if err != nil || got == nil || len(got) != 0 {
			t.Fatalf("get empty = %#v, %v; want non-nil empty slice", got, err)
		}
		if empty, _ := b.IsEmpty(3); empty {
			t.Fatal("partition with an empty key/value reported empty")
		}
	}},
	{"slices are copies", func(t *testing.T, b Backend) {
		k, v := []byte("key"), []byte("value")
		if err := b.Put(1, k, v); err != nil {
			t.Fatal(err)
		}
		k[0], v[0] = 'X', 'X' // caller reuses its buffers
		wantGet(t, b, 1, "key", "value")
		got, _ := b.Get(1, []byte("key"))
		got[0] = 'Y' // caller owns the returned slice
		wantGet(t, b, 1, "key", "value")
	}},
	{"key size limit", func(t *testing.T, b Backend) {
		big := bytes.Repeat([]byte{'k'}, MaxKeySize)
		if err := b.Put(1, big, []byte("v")); err != nil {
			t.Fatalf("put of a MaxKeySize key: %v", err)
		}
		over := append(big, 'k')
		for name, err := range map[string]error{
			"put":    b.Put(1, over, nil),
			"delete": b.Delete(1, over),
			"write":  b.Write(1, []Op{{Key: []byte("ok")}, {Key: over}}),
		} {
			if !errors.Is(err, ErrKeyTooLarge) {
				t.Errorf("%s of an oversized key: %v, want ErrKeyTooLarge", name, err)
			}
		}
		if _, err := b.Get(1, over); !errors.Is(err, ErrKeyTooLarge) {
			t.Errorf("get of an oversized key: %v, want ErrKeyTooLarge", err)
		}
		wantMissing(t, b, 1, "ok") // the rejected batch applied nothing
	}},
	{"delete", func(t *testing.T, b Backend) {
		mustPut(t, b, 1, "k", "v")
		if err := b.Delete(1, []byte("k")); err != nil {
			t.Fatal(err)
		}
		wantMissing(t, b, 1, "k")
		if err := b.Delete(1, []byte("k")); err != nil {
			t.Fatalf("delete of a missing key: %v", err)
		}
		if err := b.Delete(9, []byte("never")); err != nil {
			t.Fatalf("delete in an unused partition: %v", err)
		}
		wantPartitions(t, b)
	}},
	{"write batch", func(t *testing.T, b Backend) {
		mustPut(t, b, 5, "gone", "x")
		mustPut(t, b, 6, "gone", "other partition")
		err := b.Write(5, []Op{
			{Key: []byte("a"), Value: []byte("1")},
			{Key: []byte("b"), Value: []byte("2")},
			{Key: []byte("gone"), Delete: true},
			{Key: []byte("b"), Value: []byte("3")}, // later op wins
			{Key: []byte("c"), Value: []byte("4")},
			{Key: []byte("c"), Delete: true, Value: []byte("ignored")},
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []kv{{"a", "1"}, {"b", "3"}}
		if got := foldAll(t, b, 5); !slices.Equal(got, want) {
			t.Fatalf("after batch: %v, want %v", got, want)
		}
		wantGet(t, b, 6, "gone", "other partition")
		if err := b.Write(5, nil); err != nil {
			t.Fatalf("empty batch: %v", err)
		}
	}},
	{"fold order", func(t *testing.T, b Backend) {
		keys := []string{"", "\x00", "\x00\x00", "a", "a\x00", "ab", "b", "\x7f", "\x80", "\xff", "\xff\xff", "\xff\xff\xff\xff\xff"}
		for _, i := range rand.New(rand.NewPCG(1, 2)).Perm(len(keys)) {
			mustPut(t, b, 42, keys[i], "v"+keys[i])
		}
		got := foldAll(t, b, 42)
		var gotKeys []string
		for _, e := range got {
			gotKeys = append(gotKeys, e.k)
			if e.v != "v"+e.k {
				t.Errorf("value of %q = %q", e.k, e.v)
			}
		}
		want := slices.Clone(keys)
		slices.Sort(want)
		if !slices.Equal(gotKeys, want) {
			t.Fatalf("fold keys = %q, want %q", gotKeys, want)
		}
	}},
	{"fold stop", func(t *testing.T, b Backend) {
		for _, k := range []string{"a", "b", "c", "d"} {
			mustPut(t, b, 1, k, k)
		}
		for name, stop := range map[string]error{
			"bare":    ErrStopFold,
			"wrapped": fmt.Errorf("enough: %w", ErrStopFold),
		} {
			var seen []string
			err := b.Fold(1, func(k, _ []byte) error {
				seen = append(seen, string(k))
				if len(seen) == 2 {
					return stop
				}
				return nil
			})
			if err != nil || !slices.Equal(seen, []string{"a", "b"}) {
				t.Errorf("%s: fold = %v after %q, want nil after [a b]", name, err, seen)
			}
		}
	}},
	{"fold error is wrapped", func(t *testing.T, b Backend) {
		mustPut(t, b, 7, "a", "a")
		mustPut(t, b, 7, "b", "b")
		boom := errors.New("boom")
		calls := 0
		err := b.Fold(7, func(_, _ []byte) error { calls++; return boom })
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "partition 7") || calls != 1 {
			t.Fatalf("fold = %v after %d calls; want boom wrapped with the partition after 1 call", err, calls)
		}
	}},
	{"fold isolation between partitions", func(t *testing.T, b Backend) {
		// Keys chosen so that a sloppy prefix bound would leak: 0xFFFFFFFE's
		// keys start with 0xFF bytes, and 0xFFFFFFFF has no upper bound.
		parts := []uint32{0, 1, 0xFF, 0x100, 0xFFFFFFFE, maxP}
		keys := []string{"", "\x00", "\xff\xff\xff\xff", "k"}
		for _, p := range parts {
			for _, k := range keys {
				mustPut(t, b, p, k, fmt.Sprint(p))
			}
		}
		for _, p := range parts {
			got := foldAll(t, b, p)
			if len(got) != len(keys) {
				t.Errorf("partition %#x: %d entries, want %d: %q", p, len(got), len(keys), got)
			}
			for _, e := range got {
				if e.v != fmt.Sprint(p) {
					t.Errorf("partition %#x: visited %q from partition %s", p, e.k, e.v)
				}
			}
		}
		if got := foldAll(t, b, 2); len(got) != 0 {
			t.Errorf("unused partition 2: %q", got)
		}
		wantPartitions(t, b, parts...)
	}},
	{"fold snapshot", func(t *testing.T, b Backend) {
		for _, k := range []string{"a", "b", "c"} {
			mustPut(t, b, 1, k, "old")
		}
		var seen []kv
		err := b.Fold(1, func(k, v []byte) error {
			seen = append(seen, kv{string(k), string(v)})
			if string(k) == "a" { // writes during the fold are not visited
				mustPut(t, b, 1, "b", "new")
				mustPut(t, b, 1, "bb", "new")
				if err := b.Delete(1, []byte("c")); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := []kv{{"a", "old"}, {"b", "old"}, {"c", "old"}}; !slices.Equal(seen, want) {
			t.Fatalf("fold saw %v, want the snapshot %v", seen, want)
		}
		if got, want := foldAll(t, b, 1), []kv{{"a", "old"}, {"b", "new"}, {"bb", "new"}}; !slices.Equal(got, want) {
			t.Fatalf("after fold: %v, want %v", got, want)
		}
	}},
	{"is empty", func(t *testing.T, b Backend) {
		check := func(p uint32, want bool) {
			t.Helper()
			got, err := b.IsEmpty(p)
			if err != nil || got != want {
				t.Fatalf("IsEmpty(%#x) = %v, %v; want %v", p, got, err, want)
			}
		}
		check(maxP, true)
		mustPut(t, b, maxP, "k", "v")
		check(maxP, false)
		check(maxP-1, true)
		check(0, true)
		if err := b.Delete(maxP, []byte("k")); err != nil {
			t.Fatal(err)
		}
		check(maxP, true)
	}},
	{"drop partition", func(t *testing.T, b Backend) {
		// More entries than one delete batch.
		p := Partition{Backend: b, ID: 9}
		var ops []Op
		for i := range 2*dropBatchSize + 17 {
			ops = append(ops, Op{Key: fmt.Appendf(nil, "key-%05d", i), Value: []byte("v")})
		}
		if err := p.Write(ops); err != nil {
			t.Fatal(err)
		}
		for _, q := range []uint32{8, 10, maxP} {
			mustPut(t, b, q, "key-00000", "keep")
		}
		if err := p.Drop(); err != nil {
			t.Fatal(err)
		}
		if empty, err := p.IsEmpty(); err != nil || !empty {
			t.Fatalf("after drop: IsEmpty = %v, %v", empty, err)
		}
		wantPartitions(t, b, 8, 10, maxP)
		for _, q := range []uint32{8, 10, maxP} {
			wantGet(t, b, q, "key-00000", "keep")
		}
		if err := b.DropPartition(9); err != nil {
			t.Fatalf("drop of an empty partition: %v", err)
		}
		if err := b.DropPartition(maxP); err != nil {
			t.Fatal(err)
		}
		wantPartitions(t, b, 8, 10)
		mustPut(t, b, 9, "again", "v") // a dropped partition can be reused
		wantGet(t, b, 9, "again", "v")
	}},
	{"partitions", func(t *testing.T, b Backend) {
		wantPartitions(t, b)
		for _, p := range []uint32{maxP, 1 << 24, 7, 0, 256} {
			mustPut(t, b, p, "x", "y")
			mustPut(t, b, p, "z", "y")
		}
		wantPartitions(t, b, 0, 7, 256, 1<<24, maxP)
		if err := b.Write(7, []Op{{Key: []byte("x"), Delete: true}, {Key: []byte("z"), Delete: true}}); err != nil {
			t.Fatal(err)
		}
		wantPartitions(t, b, 0, 256, 1<<24, maxP)
	}},
	{"partition view", func(t *testing.T, b Backend) {
		p := Partition{Backend: b, ID: 77}
		if err := p.Put([]byte("a"), []byte("1")); err != nil {
			t.Fatal(err)
		}
		if err := p.Write([]Op{{Key: []byte("b"), Value: []byte("2")}}); err != nil {
			t.Fatal(err)
		}
		if err := p.Delete([]byte("a")); err != nil {
			t.Fatal(err)
		}
		if v, err := p.Get([]byte("b")); err != nil || string(v) != "2" {
			t.Fatalf("view get = %q, %v", v, err)
		}
		n := 0
		if err := p.Fold(func(_, _ []byte) error { n++; return nil }); err != nil || n != 1 {
			t.Fatalf("view fold: %d entries, %v", n, err)
		}
		wantGet(t, b, 77, "b", "2")
	}},
	{"closed", func(t *testing.T, b Backend) {
		mustPut(t, b, 1, "k", "v")
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		_, getErr := b.Get(1, []byte("k"))
		_, emptyErr := b.IsEmpty(1)
		_, partsErr := b.Partitions()
		for name, err := range map[string]error{
			"get":       getErr,
			"put":       b.Put(1, []byte("k"), []byte("v")),
			"delete":    b.Delete(1, []byte("k")),
			"write":     b.Write(1, []Op{{Key: []byte("k")}}),
			"fold":      b.Fold(1, func(_, _ []byte) error { return nil }),
			"isempty":   emptyErr,
			"drop":      b.DropPartition(1),
			"parts":     partsErr,
			"close (2)": b.Close(),
		} {
			if !errors.Is(err, ErrClosed) {
				t.Errorf("%s after close: %v, want ErrClosed", name, err)
			}
		}
	}},
}

// TestFoldFrom: a fold from a key visits exactly the partition's keys at or after it, in order, never a key
// of the next partition (also from a start past the partition's last key, and in the last partition).
func TestFoldFrom(t *testing.T) {
	for _, f := range factories() {
		t.Run(f.name, func(t *testing.T) {
			b := f.open(t)
			keys := []string{"", "\x00", "a", "a\x00", "ab", "b", "\xff", "\xff\xff"}
			for _, p := range []uint32{6, 7, 8, maxP} {
				for _, k := range keys {
					mustPut(t, b, p, k, fmt.Sprintf("%d/%s", p, k))
				}
			}
			for _, p := range []uint32{7, maxP} {
				for _, start := range append(keys, "aa", "\xff\xff\xff", "c") {
					var got []string
					if err := b.FoldFrom(p, []byte(start), func(k, v []byte) error {
						if string(v) != fmt.Sprintf("%d/%s", p, k) {
							t.Fatalf("partition %d key %q: value %q", p, k, v)
						}
						got = append(got, string(k))
						return nil
					}); err != nil {
						t.Fatal(err)
					}
					var want []string
					for _, k := range keys {
						if k >= start {
							want = append(want, k)
						}
					}
					slices.Sort(want)
					if !slices.Equal(got, want) {
						t.Errorf("partition %d from %q: %q, want %q", p, start, got, want)
					}
				}
			}
		})
	}
}

func TestConformance(t *testing.T) {
	for _, f := range factories() {
		t.Run(f.name, func(t *testing.T) {
			for _, tc := range conformance {
				t.Run(tc.name, func(t *testing.T) {
					tc.run(t, f.open(t))
				})
			}
		})
	}
}
