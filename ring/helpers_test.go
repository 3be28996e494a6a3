package ring

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// names returns k node ids n00, n01, ...
func names(k int) []NodeID {
	out := make([]NodeID, k)
	for i := range out {
		out[i] = NodeID(fmt.Sprintf("n%02d", i))
	}
	return out
}

// ringSizes are the powers of two the property tests cover.
var ringSizes = []int{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

// randomQ returns a ring size from ringSizes.
func randomQ(rng *rand.Rand) int { return ringSizes[rng.IntN(len(ringSizes))] }

// tally counts the partitions of each owner.
func tally(owners []NodeID) map[NodeID]int {
	c := make(map[NodeID]int)
	for _, o := range owners {
		c[o]++
	}
	return c
}

// checkBalanced fails t unless owners spreads q partitions over exactly
// nodes, each holding floor(q/m) or ceil(q/m).
func checkBalanced(t *testing.T, owners []NodeID, nodes []NodeID) {
	t.Helper()
	q, m := len(owners), len(nodes)
	c := tally(owners)
	extra := 0
	for _, n := range nodes {
		switch c[n] {
		case q / m:
		case q/m + 1:
			extra++
		default:
			t.Fatalf("node %s owns %d of %d partitions over %d nodes (want %d or %d)", n, c[n], q, m, q/m, q/m+1)
		}
		delete(c, n)
	}
	if len(c) != 0 {
		t.Fatalf("owners include nodes outside the node list: %v", c)
	}
	if extra != q%m {
		t.Fatalf("%d nodes hold an extra partition, want q%%m = %d", extra, q%m)
	}
}

// distinctWindows reports whether every v consecutive partitions (wrapping)
// have distinct owners: the naive check, independent of Ring.Violations.
func distinctWindows(owners []NodeID, v int) bool {
	q := len(owners)
	for p := range q {
		seen := map[NodeID]bool{}
		for i := range min(v, q) {
			o := owners[(p+i)%q]
			if seen[o] {
				return false
			}
			seen[o] = true
		}
	}
	return true
}

// moved counts partitions whose owner differs.
func moved(a, b []NodeID) int {
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}

// minMoved is the plain lower bound on moves from prev to a balanced
// layout over nodes: partitions of nodes not in the list, plus what the
// remaining nodes hold above their target (the fullest keep the extras).
func minMoved(prev []NodeID, nodes []NodeID) int {
	q, m := len(prev), len(nodes)
	c := tally(prev)
	lb := 0
	var counts []int
	for o, k := range c {
		if !slices.Contains(nodes, o) {
			lb += k
		}
	}
	for _, n := range nodes {
		counts = append(counts, c[n])
	}
	slices.SortFunc(counts, func(a, b int) int { return b - a })
	for i, k := range counts {
		target := q / m
		if i < q%m {
			target++
		}
		lb += max(0, k-target)
	}
	return lb
}

// mustRing builds a ring from owners or fails t.
func mustRing(t testing.TB, owners []NodeID, version uint64) *Ring {
	t.Helper()
	r, err := NewFromOwners(owners, version)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
