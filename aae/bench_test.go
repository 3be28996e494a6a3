package aae

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/gokai-kv/gokai/ring"
)

// BenchmarkTreeUpdate is the write path's cost in the tree: one XOR update.
func BenchmarkTreeUpdate(b *testing.B) {
	t := &Tree{}
	for i := 0; i < b.N; i++ {
		t.Update(uint64(i)*0x9e3779b97f4a7c15, uint64(i), uint64(i)+1)
	}
}

// BenchmarkTreeMemoryQ64 builds the trees of one node of a 3-node cluster at Q=64, N=3 holding 1M keys
// (every key on every node: a vnode per partition, three sources each) and reports their heap.
func BenchmarkTreeMemoryQ64(b *testing.B) {
	const q, n, keys = 64, 3, 1_000_000
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		vnodes := make([]map[int]*Tree, q)
		for p := range vnodes {
			vnodes[p] = map[int]*Tree{}
		}
		for i := range keys {
			kh := ring.KeyHash(fmt.Appendf(nil, "key-%d", i))
			src := int(kh >> (64 - 6))
			for r := range n {
				p := (src + r) % q
				t := vnodes[p][src]
				if t == nil {
					t = &Tree{}
					vnodes[p][src] = t
				}
				t.Insert(kh, uint64(i)+1)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		trees := 0
		for _, m := range vnodes {
			trees += len(m)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB/node")
		b.ReportMetric(float64(trees), "trees")
		runtime.KeepAlive(vnodes)
	}
}
