package kv

import (
	"context"
	"fmt"
	"testing"

	"github.com/gokai-kv/gokai/coordinator"
)

// BenchmarkGetFSMStep measures the pure read FSM over KV objects: three replicas answer the same object.
func BenchmarkGetFSMStep(b *testing.B) {
	o, _ := Update(nil, "a/1/x", nil, true, make([]byte, 100), Meta{}, 1, UpdateOptions{})
	ts := []coordinator.Target{{Partition: 1, Node: "a", Primary: true}, {Partition: 2, Node: "a", Primary: true}, {Partition: 3, Node: "a", Primary: true}}
	var vals coordinator.Values[*Object] = &protocol{}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		f := coordinator.NewGetFSM(vals, coordinator.GetParams{R: 2, Timeout: 1, Linger: 1}, ts)
		f.Start()
		f.Reply(0, o, nil)
		f.Reply(1, o, nil)
		f.Reply(2, o, nil)
	}
}

// BenchmarkPutFSMStep measures the pure write FSM: the coordinating vnode answers, then the two replicas.
func BenchmarkPutFSMStep(b *testing.B) {
	o, _ := Update(nil, "a/1/x", nil, true, make([]byte, 100), Meta{}, 1, UpdateOptions{})
	ts := []coordinator.Target{{Partition: 1, Node: "a", Primary: true}, {Partition: 2, Node: "a", Primary: true}, {Partition: 3, Node: "a", Primary: true}}
	var vals coordinator.Values[*Object] = &protocol{}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		f := coordinator.NewPutFSM(vals, coordinator.PutParams{W: 2, Timeout: 1, Linger: 1}, ts, 0)
		f.Start()
		f.Reply(0, o, nil)
		f.Reply(1, o, nil)
		f.Reply(2, o, nil)
	}
}

// BenchmarkServiceGet measures a whole read through coordinator actors, vnode actors and goleveldb:
// N=3, R=2, 100-byte values, one key space of 1000 keys, parallel callers.
func BenchmarkServiceGet(b *testing.B) {
	n := startBenchNode(b)
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		if _, err := n.kv.Put(ctx, []byte(fmt.Sprintf("key%d", i)), make([]byte, 100), Meta{}, nil, true, coordinator.WriteOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := n.kv.Get(ctx, []byte(fmt.Sprintf("key%d", i%1000)), coordinator.ReadOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkServicePut measures a whole blind write (coordinating vnode, then 2 replicas; W=2).
func BenchmarkServicePut(b *testing.B) {
	n := startBenchNode(b)
	ctx := context.Background()
	val := make([]byte, 100)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := n.kv.Put(ctx, []byte(fmt.Sprintf("key%d", i%1000)), val, Meta{}, nil, true, coordinator.WriteOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
