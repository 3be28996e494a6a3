package aae

import (
	"fmt"
	"testing"

	"github.com/gokai-kv/gokai/ring"
)

// TestPlanCoversEveryPreflistInBothDirections: across the nodes' plans, every pair of primaries of every
// source is compared, from each end when they are on two nodes, once when on one; nothing else is planned.
func TestPlanCoversEveryPreflistInBothDirections(t *testing.T) {
	for _, tc := range []struct{ q, n, nodes int }{{64, 3, 3}, {64, 3, 5}, {16, 3, 1}, {32, 3, 2}, {8, 1, 3}} {
		t.Run(fmt.Sprintf("q%d-n%d-%dnodes", tc.q, tc.n, tc.nodes), func(t *testing.T) {
			var nodes []ring.NodeID
			for i := range tc.nodes {
				nodes = append(nodes, ring.NodeID(fmt.Sprintf("n%d", i)))
			}
			r, err := ring.New(tc.q, tc.n, nodes)
			if r == nil {
				t.Fatal(err) // NB: a ring whose lists must skip (ErrTargetN) is still a valid ring
			}
			type key struct {
				src, a, b int
				from      ring.NodeID
			}
			got := map[key]int{}
			for _, self := range nodes {
				for _, p := range Plan(r, self, tc.n) {
					if r.Owner(p.Local) != self || r.Owner(p.Remote) != p.Peer {
						t.Fatalf("%s: pair %+v names a vnode its node does not own", self, p)
					}
					got[key{p.Source, p.Local, p.Remote, self}]++
				}
			}
			want := 0
			for s := range tc.q {
				pl := r.PreflistForPartition(s, tc.n, nil)
				for i, e := range pl {
					for _, f := range pl[i+1:] {
						a, b := e, f
						if a.Partition > b.Partition {
							a, b = b, a
						}
						if a.Node == b.Node {
							want++
							if got[key{s, a.Partition, b.Partition, a.Node}] != 1 {
								t.Fatalf("source %d: local pair %d-%d planned %d times", s, a.Partition, b.Partition, got[key{s, a.Partition, b.Partition, a.Node}])
							}
							continue
						}
						want += 2
						if got[key{s, a.Partition, b.Partition, a.Node}] != 1 || got[key{s, b.Partition, a.Partition, b.Node}] != 1 {
							t.Fatalf("source %d: pair %d-%d not planned once from each end", s, a.Partition, b.Partition)
						}
					}
				}
			}
			if len(got) != want {
				t.Fatalf("%d exchanges planned, %d pairs to cover", len(got), want)
			}
		})
	}
}
