package kv

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/internal/cputime"
	"github.com/gokai-kv/gokai/vnode"
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

// BenchmarkServicePutParallel measures whole blind writes (as BenchmarkServicePut) from 50 callers at once,
// the memcache face's connections under scripts/bench.sh, anti-entropy's hash trees on as in a node. It
// reports the process's CPU time per put (cpu-ns/op), which the machine's other load moves less than ns/op.
func BenchmarkServicePutParallel(b *testing.B) {
	n := startNodeWith(b, slog.New(slog.DiscardHandler), nil, nil, false, nil, vnode.AAEConfig{Q: 8})
	ctx := context.Background()
	val := make([]byte, 100)
	b.ReportAllocs()
	b.SetParallelism(25) // NB: times GOMAXPROCS (2 here): 50 callers
	b.ResetTimer()
	cpu0 := cputime.Process()
	b.RunParallel(func(pb *testing.PB) {
		var key []byte
		i := 0
		for pb.Next() {
			i++
			key = fmt.Appendf(key[:0], "key%d", i%10000)
			if _, err := n.kv.Put(ctx, key, val, Meta{}, nil, true, coordinator.WriteOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkServicePutAAE compares whole blind writes (as BenchmarkServicePut) with anti-entropy's hash
// trees off and on, in one run: the trees' cost on the write path is the index entry written in the same
// goleveldb batch and two version hashes. It reports the p99.9 latency of one put besides ns/op.
func BenchmarkServicePutAAE(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		var aae vnode.AAEConfig
		if on {
			name, aae = "on", vnode.AAEConfig{Q: 8}
		}
		b.Run(name, func(b *testing.B) {
			n := startNodeWith(b, slog.New(slog.DiscardHandler), nil, nil, false, nil, aae)
			ctx := context.Background()
			val := make([]byte, 100)
			var mu sync.Mutex
			var lat []time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				var mine []time.Duration
				for pb.Next() {
					i++
					t0 := time.Now()
					if _, err := n.kv.Put(ctx, fmt.Appendf(nil, "key%d", i%100000), val, Meta{}, nil, true, coordinator.WriteOptions{}); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)*999/1000].Microseconds()), "p99.9-µs")
			}
		})
	}
}
