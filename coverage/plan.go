package coverage

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gokai-kv/gokai/ring"
)

// Vnode is one vnode of a coverage plan: the vnode of Partition on Node, its owner, and the hash partitions
// whose keys it answers for (the request's vnode.Filter).
type Vnode struct {
	Partition int
	Node      ring.NodeID
	Covers    []int // hash partitions, ascending; each in ring.Ring.Sources(n)[Partition]
}

// Plan is a coverage plan: vnodes whose Covers partition the hash partitions asked for, each hash
// partition in exactly one vnode's Covers.
type Plan struct {
	Q      int
	Vnodes []Vnode // in the order they were chosen
}

// ErrUncovered: errors.Is matches every *UncoveredError.
var ErrUncovered = errors.New("coverage: some key ranges have no replica up")

// UncoveredError reports the hash partitions no up node holds a primary replica of: a coverage request
// would miss their keys, so none is made.
type UncoveredError struct {
	Partitions []int // ascending
}

func (e *UncoveredError) Error() string {
	ps := e.Partitions
	more := ""
	if len(ps) > 8 {
		ps, more = ps[:8], fmt.Sprintf(" and %d more", len(e.Partitions)-8)
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = fmt.Sprint(p)
	}
	return fmt.Sprintf("coverage: no replica up for partitions %s%s", strings.Join(s, ","), more)
}

// Is makes errors.Is(err, ErrUncovered) true.
func (e *UncoveredError) Is(target error) bool { return target == ErrUncovered }

// NewPlan plans coverage of the hash partitions want (nil: all of them) on ring r for n replicas: a small
// set of vnodes, each on its owner (a primary: a fallback holds only the hints it took, not the range),
// whose nodes are up, that together hold every key of want once (riak_core_coverage_plan).
//
// The vnode of partition X holds, as a primary, the keys of the hash partitions r.Sources(n)[X]: those whose
// preference list names X. A hash partition can be answered by any of its n primaries; the plan takes one
// whose node is up. When no primary of some hash partition is up the plan fails with *UncoveredError: a
// request on a partial plan would look complete and miss keys.
//
// The choice walks the ring (walk): from a starting hash partition, each hash partition not yet covered goes
// to the vnode that holds the longest run of uncovered ones from there, and that vnode takes every uncovered
// one it holds. Where each vnode's hash partitions are consecutive (rings whose every n consecutive
// partitions sit on distinct nodes) this is the optimal cover of a circle by arcs, given a start within one
// span of any point, so NewPlan tries span consecutive starts and keeps the smallest plan: all up, that is
// ceil(len(want)/n) vnodes. The tests compare it with an exhaustive search: the optimum for Q=64, N=3 on 3,
// 4 and 5 nodes with any one down, and within one of it (in practice equal) on random rings. offset rotates
// the starts, so requests given different offsets spread over different vnodes. up reports whether a node
// is up; nil means all are. want must hold distinct partitions in [0, Q).
func NewPlan(r *ring.Ring, n int, up func(ring.NodeID) bool, want []int, offset int) (Plan, error) {
	q := r.Q()
	n = min(max(n, 1), q)
	if want == nil {
		want = make([]int, q)
		for p := range want {
			want[p] = p
		}
	}
	wanted := make([]bool, q)
	for _, h := range want {
		if h < 0 || h >= q || wanted[h] {
			return Plan{}, fmt.Errorf("coverage: plan: partition %d out of range [0, %d) or given twice", h, q)
		}
		wanted[h] = true
	}
	// holds[x] lists the wanted hash partitions vnode x may answer for, x's owner being up.
	holds := make([][]int, q)
	var uncovered []int
	for _, h := range want {
		held := false
		for _, e := range r.PreflistForPartition(h, n, nil) {
			if up == nil || up(e.Node) {
				holds[e.Partition] = append(holds[e.Partition], h)
				held = true
			}
		}
		if !held {
			uncovered = append(uncovered, h)
		}
	}
	if len(uncovered) > 0 {
		slices.Sort(uncovered)
		return Plan{}, &UncoveredError{Partitions: uncovered}
	}
	offset = ((offset % q) + q) % q
	// span: the longest stretch of ring one vnode's hash partitions spread over (n on a ring without skips).
	span := 1
	for x, hs := range holds {
		for _, h := range hs {
			span = max(span, (x-h+q)%q+1)
		}
	}
	// holders[h]: the vnodes that may answer for h.
	holders := make([][]int, q)
	for x, hs := range holds {
		for _, h := range hs {
			holders[h] = append(holders[h], x)
		}
	}
	var best Plan
	for s := range min(span, q) {
		plan := walk(r, holds, holders, wanted, len(want), (offset+s)%q)
		if best.Vnodes == nil || len(plan.Vnodes) < len(best.Vnodes) {
			best = plan
		}
	}
	return best, nil
}

// walk plans by walking the ring from hash partition start: at each wanted hash partition not yet covered it
// takes, among the vnodes that hold it, the one holding the longest run of uncovered wanted partitions from
// there on (the furthest reach), and gives it every uncovered wanted partition it holds. On a line of
// intervals this is the optimal cover; on the ring it is optimal for some start within one span of any
// point, which is why NewPlan tries span consecutive starts.
func walk(r *ring.Ring, holds, holders [][]int, wanted []bool, nwant, start int) Plan {
	q := r.Q()
	covered := make([]bool, q)
	// member[g] == stamp marks the hash partitions of the candidate looked at (scratch, never cleared).
	member := make([]int, q)
	stamp := 0
	plan := Plan{Q: q}
	left := nwant
	for i := 0; i < q && left > 0; i++ {
		h := (start + i) % q
		if !wanted[h] || covered[h] {
			continue
		}
		bestX, bestReach := -1, 0
		for _, x := range holders[h] {
			stamp++
			for _, g := range holds[x] {
				member[g] = stamp
			}
			reach := 0
			for j := i; j < q; j++ {
				g := (start + j) % q
				if !wanted[g] || covered[g] {
					continue
				}
				if member[g] != stamp {
					break
				}
				reach++
			}
			if reach > bestReach {
				bestX, bestReach = x, reach
			}
		}
		var fresh []int
		for _, g := range holds[bestX] {
			if !covered[g] {
				covered[g] = true
				fresh = append(fresh, g)
			}
		}
		left -= len(fresh)
		slices.Sort(fresh)
		plan.Vnodes = append(plan.Vnodes, Vnode{Partition: bestX, Node: r.Owner(bestX), Covers: fresh})
	}
	return plan
}

// Partitions returns the hash partitions the plan covers, ascending.
func (p Plan) Partitions() []int {
	var out []int
	for _, v := range p.Vnodes {
		out = append(out, v.Covers...)
	}
	slices.Sort(out)
	return out
}
