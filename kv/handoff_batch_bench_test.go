package kv

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// BenchmarkHandoffReceive measures a receiving vnode taking one handoff batch of 256 new keys (100-byte values,
// as the bench's handoff scenario) on goleveldb: item by item (one MergeHandoffData, one storage write each,
// the path of behaviours without HandoffBatchMerger) and as one batch (MergeHandoffBatch, one write). Each
// iteration is one batch of keys the vnode does not hold yet; ns/op and allocs/op are per batch.
func BenchmarkHandoffReceive(b *testing.B) {
	const items = 256
	for _, mode := range []string{"item-by-item", "batch"} {
		b.Run(mode, func(b *testing.B) {
			db, err := storage.OpenLevelDB(storage.DefaultLevelDBConfig(b.TempDir()))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			vn := NewVnode(DefaultConfig())().(*Vnode)
			if err := vn.Init(vnode.Env{Node: "n", Partition: 1, Store: storage.Partition{Backend: db, ID: 1},
				Logger: slog.Default(), Now: time.Now}); err != nil {
				b.Fatal(err)
			}
			o, err := Update(nil, "a/1/x", nil, true, make([]byte, 100), Meta{}, 1, UpdateOptions{})
			if err != nil {
				b.Fatal(err)
			}
			raw, err := o.MarshalBinary()
			if err != nil {
				b.Fatal(err)
			}
			batches := make([][][]byte, b.N)
			for i := range batches {
				batches[i] = make([][]byte, items)
				for j := range items {
					if batches[i][j], err = vn.EncodeHandoffItem(fmt.Appendf(nil, "key-%08d-%03d", i, j), raw); err != nil {
						b.Fatal(err)
					}
				}
			}
			changed := make([]bool, items)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if mode == "batch" {
					clear(changed)
					if _, err := vn.MergeHandoffBatch(batches[i], changed); err != nil {
						b.Fatal(err)
					}
					continue
				}
				for _, it := range batches[i] {
					if _, err := vn.MergeHandoffData(it); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
