package kv

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// countingBackend counts the entries its folds hand out.
type countingBackend struct {
	storage.Backend
	read int
}

func (c *countingBackend) FoldFrom(p uint32, start []byte, fn func(k, v []byte) error) error {
	return c.Backend.FoldFrom(p, start, func(k, v []byte) error { c.read++; return fn(k, v) })
}

func (c *countingBackend) Fold(p uint32, fn func(k, v []byte) error) error {
	return c.FoldFrom(p, nil, fn)
}

// TestHandoffFoldReadsObjectsOnly: a handoff folds the partition twice (a count, then the items), and the
// partition holds an anti-entropy index entry beside every object and the vnode's metadata. The fold
// reads the objects' key range alone, not the whole partition.
func TestHandoffFoldReadsObjectsOnly(t *testing.T) {
	const part, n = 7, 300
	mem := storage.NewMemory()
	db := &countingBackend{Backend: mem}
	vn := NewVnode(DefaultConfig())().(*Vnode)
	if err := vn.Init(vnode.Env{Node: "n0", Partition: part, Store: storage.Partition{Backend: db, ID: part},
		Logger: slog.Default(), Now: func() time.Time { return time.Unix(1700000000, 0) }}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		raw := fmt.Appendf(nil, "object %d", i) // NB: the fold hands stored bytes on as they are
		key := fmt.Appendf(nil, "key-%04d", i)
		if err := mem.Put(part, append([]byte{nsObject}, key...), raw); err != nil {
			t.Fatal(err)
		}
		// What the anti-entropy index and other namespaces keep after the objects.
		if err := mem.Put(part, append([]byte{0xff, 'A', 'i'}, key...), []byte("index")); err != nil {
			t.Fatal(err)
		}
	}
	if err := mem.Put(part, []byte{nsMeta, 'x'}, []byte("meta")); err != nil {
		t.Fatal(err)
	}
	if err := mem.Put(part, []byte{nsObject - 1, 'x'}, []byte("before")); err != nil {
		t.Fatal(err)
	}
	db.read = 0
	items := 0
	if err := vn.HandoffFold(func(k, _ []byte) error { items++; return nil }); err != nil {
		t.Fatal(err)
	}
	if items != n {
		t.Fatalf("HandoffFold handed %d items, want %d", items, n)
	}
	if db.read > n+1 {
		t.Fatalf("HandoffFold read %d stored entries for %d objects", db.read, n)
	}
}
