package storage

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

// TestKeySpacesDoNotMix runs two key spaces over one backend: the same partition and key in each hold their
// own values; folds, emptiness, partition lists and drops see only their own space.
func TestKeySpacesDoNotMix(t *testing.T) {
	for _, f := range factories() {
		t.Run(f.name, func(t *testing.T) {
			b := f.open(t)
			kv0, other := KeySpace{Backend: b, Space: 0}, KeySpace{Backend: b, Space: 3}
			mustPut(t, kv0, 7, "k", "zero")
			mustPut(t, other, 7, "k", "three")
			mustPut(t, other, MaxSpacePartition, "last", "x")
			wantGet(t, kv0, 7, "k", "zero")
			wantGet(t, other, 7, "k", "three")
			wantMissing(t, other, 7, "last")
			if got := foldAll(t, kv0, 7); !slices.Equal(got, []kv{{"k", "zero"}}) {
				t.Fatalf("space 0 fold = %v", got)
			}
			// A fold from a key stays in its space's partition, also from past its last key.
			for _, c := range []struct {
				ks    KeySpace
				p     uint32
				start string
				want  []string
			}{
				{kv0, 7, "a", []string{"k"}}, {kv0, 7, "l", nil}, {other, 7, "k", []string{"k"}},
				{other, 7, "kk", nil}, {other, MaxSpacePartition, "", []string{"last"}},
			} {
				var got []string
				if err := c.ks.FoldFrom(c.p, []byte(c.start), func(k, _ []byte) error {
					got = append(got, string(k))
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, c.want) {
					t.Errorf("space %d partition %d from %q: %q, want %q", c.ks.Space, c.p, c.start, got, c.want)
				}
			}
			if err := other.FoldFrom(MaxSpacePartition+1, nil, func(_, _ []byte) error { return nil }); !errors.Is(err, ErrSpacePartition) {
				t.Fatalf("fold from past the range: %v", err)
			}
			wantPartitions(t, kv0, 7)
			wantPartitions(t, other, 7, MaxSpacePartition)
			wantPartitions(t, b, 7, 3<<16|7, 3<<16|MaxSpacePartition)

			if err := other.DropPartition(7); err != nil {
				t.Fatal(err)
			}
			wantGet(t, kv0, 7, "k", "zero")
			if empty, err := other.IsEmpty(7); err != nil || !empty {
				t.Fatalf("space 3 partition 7 after its drop: empty=%v %v", empty, err)
			}
			if empty, err := kv0.IsEmpty(7); err != nil || empty {
				t.Fatalf("space 0 partition 7 after space 3's drop: empty=%v %v", empty, err)
			}
		})
	}
}

// TestKeySpaceZeroIsTheOldLayout: space 0 reads what was written to the backend directly, partition number
// for partition number (a data dir from before key spaces), and writes where the old layout did.
func TestKeySpaceZeroIsTheOldLayout(t *testing.T) {
	l, err := OpenLevelDB(DefaultLevelDBConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	mustPut(t, l, 12, "kuser:1", "before")
	wantGet(t, KeySpace{Backend: l, Space: 0}, 12, "kuser:1", "before")
	mustPut(t, KeySpace{Backend: l, Space: 0}, 12, "kuser:2", "after")
	wantGet(t, l, 12, "kuser:2", "after")
	// The stored key is BE32(partition) ‖ user key, as storage/doc.go describes.
	var stored [][]byte
	it := l.db.NewIterator(nil, nil)
	for it.Next() {
		stored = append(stored, append([]byte{}, it.Key()...))
	}
	it.Release()
	want := binary.BigEndian.AppendUint32(nil, 12)
	for _, k := range stored {
		if len(k) < 4 || !slices.Equal(k[:4], want) {
			t.Fatalf("stored key %x does not start with partition 12's prefix", k)
		}
	}
	if len(stored) != 2 {
		t.Fatalf("%d stored keys, want 2", len(stored))
	}
}

func TestKeySpaceRefusesPartitionsPastItsRange(t *testing.T) {
	ks := KeySpace{Backend: NewMemory(), Space: 1}
	if err := ks.Put(MaxSpacePartition+1, []byte("k"), []byte("v")); !errors.Is(err, ErrSpacePartition) {
		t.Fatalf("put past the range: %v", err)
	}
	if _, err := ks.Get(1<<20, []byte("k")); !errors.Is(err, ErrSpacePartition) {
		t.Fatalf("get past the range: %v", err)
	}
	if s, p := SplitPartition(SpacePartition(9, 77)); s != 9 || p != 77 {
		t.Fatalf("SplitPartition(SpacePartition(9, 77)) = %d, %d", s, p)
	}
}

// TestKeySpaceCloseLeavesTheBackendOpen: a view owns nothing.
func TestKeySpaceCloseLeavesTheBackendOpen(t *testing.T) {
	m := NewMemory()
	ks := KeySpace{Backend: m, Space: 2}
	if err := ks.Close(); err != nil {
		t.Fatal(err)
	}
	mustPut(t, ks, 1, "k", "v")
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Get(1, []byte("k")); !errors.Is(err, ErrClosed) {
		t.Fatalf("get after the backend closed: %v", err)
	}
}
