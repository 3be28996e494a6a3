package coverage

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gokai-kv/gokai/ring"
)

func nodeNames(k int) []ring.NodeID {
	out := make([]ring.NodeID, k)
	for i := range out {
		out[i] = ring.NodeID(fmt.Sprintf("n%d", i))
	}
	return out
}

// checkPlan fails t unless plan covers exactly want (every hash partition once), uses only primaries on up
// nodes, and gives each vnode only hash partitions it holds.
func checkPlan(t *testing.T, r *ring.Ring, n int, up func(ring.NodeID) bool, want []int, plan Plan) {
	t.Helper()
	sources := r.Sources(n)
	seen := map[int]int{}
	vnodes := map[int]bool{}
	for _, v := range plan.Vnodes {
		if vnodes[v.Partition] {
			t.Fatalf("vnode %d planned twice: %+v", v.Partition, plan)
		}
		vnodes[v.Partition] = true
		if v.Node != r.Owner(v.Partition) {
			t.Fatalf("vnode %d on %s, not its owner %s", v.Partition, v.Node, r.Owner(v.Partition))
		}
		if up != nil && !up(v.Node) {
			t.Fatalf("vnode %d on %s, which is down", v.Partition, v.Node)
		}
		if len(v.Covers) == 0 || !slices.IsSorted(v.Covers) {
			t.Fatalf("vnode %d covers %v: want a non-empty ascending list", v.Partition, v.Covers)
		}
		for _, h := range v.Covers {
			if !slices.Contains(sources[v.Partition], h) {
				t.Fatalf("vnode %d covers hash partition %d, which it does not hold (its sources: %v)", v.Partition, h, sources[v.Partition])
			}
			seen[h]++
		}
	}
	for _, h := range want {
		if seen[h] != 1 {
			t.Fatalf("hash partition %d covered %d times", h, seen[h])
		}
		delete(seen, h)
	}
	if len(seen) > 0 {
		t.Fatalf("hash partitions covered that were not asked for: %v", seen)
	}
	if got := plan.Partitions(); !slices.Equal(got, sortedCopy(want)) {
		t.Fatalf("Partitions() = %v", got)
	}
}

func sortedCopy(s []int) []int {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

func allParts(q int) []int {
	out := make([]int, q)
	for i := range out {
		out[i] = i
	}
	return out
}

// TestPlanQ64 is the plan's property test on the rings gokai runs: Q=64, N=3 on 3, 4 and 5 nodes, all up and
// with any one node down, at every offset. Every hash partition is covered exactly once, by primaries on up
// nodes, and the plan is as small as the exhaustive search finds (optimum): all up, 22 = ceil(64/3) on 4 and
// 5 nodes, 21 on 3 nodes (where preference lists skip, some vnodes hold 4 hash partitions); one node down,
// 21 on 3 nodes, 24 on 4 nodes and 25 on 5 nodes.
func TestPlanQ64(t *testing.T) {
	const q, n = 64, 3
	for _, nodes := range []int{3, 4, 5} {
		r, err := ring.New(q, n, nodeNames(nodes))
		if err != nil && !errors.Is(err, ring.ErrTargetN) {
			t.Fatal(err)
		}
		downs := append([]ring.NodeID{""}, nodeNames(nodes)...)
		for _, down := range downs {
			up := func(x ring.NodeID) bool { return x != down }
			opt := optimum(r, n, up, allParts(q))
			for offset := range q {
				plan, err := NewPlan(r, n, up, nil, offset)
				if err != nil {
					t.Fatalf("%d nodes, %q down: %v", nodes, down, err)
				}
				checkPlan(t, r, n, up, allParts(q), plan)
				if len(plan.Vnodes) != opt {
					t.Fatalf("%d nodes, %q down, offset %d: %d vnodes, the optimum is %d", nodes, down, offset, len(plan.Vnodes), opt)
				}
			}
			t.Logf("Q=%d N=%d %d nodes, down %q: %d vnodes (optimum)", q, n, nodes, down, opt)
		}
	}
}

// TestPlanRandom: rings with random owners (lists skip anywhere), random nodes down, random subsets of the
// hash partitions. Every plan covers exactly what was asked, once, on up primaries, or fails with the exact
// partitions no up node holds; its size is within 1 of the optimum (the walk is optimal where every vnode's
// hash partitions are consecutive; skips can cost one).
func TestPlanRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 12))
	worse := 0
	for i := range 3000 {
		q := []int{1, 2, 4, 8, 16, 32, 64}[rng.IntN(7)]
		n := 1 + rng.IntN(4)
		names := nodeNames(1 + rng.IntN(6))
		owners := make([]ring.NodeID, q)
		for p := range owners {
			owners[p] = names[rng.IntN(len(names))]
		}
		r, err := ring.NewFromOwners(owners, 1)
		if err != nil {
			t.Fatal(err)
		}
		downSet := map[ring.NodeID]bool{}
		for _, x := range names {
			if rng.IntN(4) == 0 {
				downSet[x] = true
			}
		}
		up := func(x ring.NodeID) bool { return !downSet[x] }
		var want []int
		if rng.IntN(3) == 0 {
			for _, h := range rng.Perm(q)[:rng.IntN(q)+1] {
				want = append(want, h)
			}
		}
		wantAll := want
		if wantAll == nil {
			wantAll = allParts(q)
		}
		plan, err := NewPlan(r, n, up, want, rng.IntN(2*q)-q)
		var unc []int
		for _, h := range wantAll {
			held := false
			for _, e := range r.PreflistForPartition(h, n, nil) {
				held = held || up(e.Node)
			}
			if !held {
				unc = append(unc, h)
			}
		}
		if len(unc) > 0 {
			var ue *UncoveredError
			slices.Sort(unc)
			if !errors.As(err, &ue) || !errors.Is(err, ErrUncovered) || !slices.Equal(ue.Partitions, unc) {
				t.Fatalf("case %d: err %v, want the uncovered partitions %v", i, err, unc)
			}
			continue
		}
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		checkPlan(t, r, n, up, wantAll, plan)
		opt := optimum(r, n, up, wantAll)
		switch d := len(plan.Vnodes) - opt; {
		case d > 1:
			t.Fatalf("case %d: %d vnodes, the optimum is %d (owners %v, down %v, want %v)", i, len(plan.Vnodes), opt, owners, downSet, want)
		case d == 1:
			worse++
		}
	}
	t.Logf("plans one above the optimum: %d of 3000", worse)
}

// TestPlanBadInput: a partition out of range or asked twice is an error, not a plan.
func TestPlanBadInput(t *testing.T) {
	r, err := ring.New(8, 3, nodeNames(3))
	if err != nil && !errors.Is(err, ring.ErrTargetN) {
		t.Fatal(err)
	}
	for _, want := range [][]int{{8}, {-1}, {2, 2}} {
		if _, err := NewPlan(r, 3, nil, want, 0); err == nil {
			t.Errorf("want %v: no error", want)
		}
	}
	if p, err := NewPlan(r, 3, nil, []int{}, 0); err != nil || len(p.Vnodes) != 0 {
		t.Errorf("nothing wanted: %+v, %v", p, err)
	}
}

// optimum is the size of the smallest plan for all q ≤ 64 hash partitions, by exhaustive search: the
// lowest uncovered hash partition must be answered by one of its holders; try each, memoised on the set
// covered so far.
func optimum(r *ring.Ring, n int, up func(ring.NodeID) bool, want []int) int {
	q := r.Q()
	all := ^uint64(0)
	var start uint64 = all
	for _, h := range want {
		start &^= 1 << h
	}
	hold := make([]uint64, q)
	holders := make([][]int, q)
	for h := range q {
		for _, e := range r.PreflistForPartition(h, n, nil) {
			if up == nil || up(e.Node) {
				hold[e.Partition] |= 1 << h
				holders[h] = append(holders[h], e.Partition)
			}
		}
	}
	memo := map[uint64]int{}
	var f func(cov uint64) int
	f = func(cov uint64) int {
		if cov == all {
			return 0
		}
		if v, ok := memo[cov]; ok {
			return v
		}
		h := 0
		for cov&(1<<h) != 0 { // NB: bits q..63 are set from the start
			h++
		}
		best := q + 1
		for _, x := range holders[h] {
			best = min(best, 1+f(cov|hold[x]))
		}
		memo[cov] = best
		return best
	}
	return f(start)
}

func BenchmarkPlan(b *testing.B) {
	for _, q := range []int{64, 1024, 65536} {
		r, err := ring.New(q, 3, nodeNames(5))
		if err != nil && !errors.Is(err, ring.ErrTargetN) {
			b.Fatal(err)
		}
		up := func(x ring.NodeID) bool { return x != "n2" }
		b.Run(fmt.Sprintf("Q=%d/one-down", q), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, err := NewPlan(r, 3, up, nil, i); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
