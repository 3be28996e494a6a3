package node

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/internal/cputime"
	"github.com/gokai-kv/gokai/kv"
)

// BenchmarkLocalGetMetrics measures a whole read on one node (KV coordinator, 3 vnodes, goleveldb; 100-byte
// values, 1000 keys, parallel callers) with the HTTP listener and its request metrics off and on: the cost
// of the metrics on the request path is the difference (docs/benchmarks.md). Run the two alternately with
// -count to see through a busy machine's noise.
func BenchmarkLocalGetMetrics(b *testing.B) {
	for _, tc := range []struct {
		name string
		http string
	}{{"off", ""}, {"on", "127.0.0.1:0"}} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := Default()
			cfg.DataDir = b.TempDir()
			cfg.MemcacheListen, cfg.RPCListen, cfg.GossipListen, cfg.TransportListen = "", "", "127.0.0.1:0", "127.0.0.1:0"
			cfg.HTTPListen, cfg.Q, cfg.Linger = tc.http, 16, 100*time.Millisecond
			n, err := New(cfg, slog.New(slog.DiscardHandler), nil, WithService(kv.Service(kv.DefaultOptions())))
			if err != nil {
				b.Fatal(err)
			}
			if err := n.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = n.Stop(ctx)
			})
			c := kvCoord(b, n)
			ctx := context.Background()
			for i := range 1000 {
				if _, err := c.Put(ctx, []byte(fmt.Sprintf("key%d", i)), make([]byte, 100), kv.Meta{}, nil, true, coordinator.WriteOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			// NB: CPU time per read (the process's user+system time) is steadier than wall time on a busy
			// machine: other work slows this one down but does not make it spend more CPU.
			cpu0 := cputime.Process()
			defer func() { b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N), "cpu-ns/op") }()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					if _, err := c.Get(ctx, []byte(fmt.Sprintf("key%d", i%1000)), coordinator.ReadOptions{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkObservers measures the request metrics' observers alone: the coordinator's per request, a
// vnode's per command (allocations must stay 0).
func BenchmarkObservers(b *testing.B) {
	m := newNodeMetrics(&Node{})
	b.Run("coordinator", func(b *testing.B) {
		o := m.coordinatorObserver("kv")
		b.ReportAllocs()
		for b.Loop() {
			o.Done("get", time.Millisecond, nil)
		}
	})
	b.Run("vnode-timed", func(b *testing.B) {
		f := m.vnodeObserve("kv")
		cmd := &kv.GetRequest{}
		b.ReportAllocs()
		for b.Loop() {
			f(cmd, time.Millisecond)
		}
	})
	b.Run("vnode-counted", func(b *testing.B) {
		f := m.vnodeObserve("kv")
		cmd := &kv.GetRequest{}
		b.ReportAllocs()
		for b.Loop() {
			f(cmd, -1)
		}
	})
}
