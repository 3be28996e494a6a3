package membership

import (
	"fmt"
	"testing"

	"github.com/gokai-kv/gokai/ring"
)

// names returns k node ids n00, n01, ...
func names(k int) []ring.NodeID {
	out := make([]ring.NodeID, k)
	for i := range out {
		out[i] = ring.NodeID(fmt.Sprintf("n%02d", i))
	}
	return out
}

// tally counts the partitions of each owner.
func tally(owners []ring.NodeID) map[ring.NodeID]int {
	c := make(map[ring.NodeID]int)
	for _, o := range owners {
		c[o]++
	}
	return c
}

// checkBalanced fails t unless owners spreads q partitions over exactly
// nodes, each holding floor(q/m) or ceil(q/m).
func checkBalanced(t *testing.T, owners []ring.NodeID, nodes []ring.NodeID) {
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
func distinctWindows(owners []ring.NodeID, v int) bool {
	q := len(owners)
	for p := range q {
		seen := map[ring.NodeID]bool{}
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
