package ring

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestPreflistTable(t *testing.T) {
	eight := mustRing(t, []NodeID{"a", "b", "c", "d", "a", "b", "c", "d"}, 1)
	solo := mustRing(t, []NodeID{"x", "x", "x", "x"}, 1)
	pairs := mustRing(t, []NodeID{"a", "a", "b", "b", "c", "c", "d", "d"}, 1)
	aabc := mustRing(t, []NodeID{"a", "a", "b", "c"}, 1)
	aaab := mustRing(t, []NodeID{"a", "a", "a", "b"}, 1)
	down := func(nodes ...NodeID) func(NodeID) bool {
		return func(n NodeID) bool { return !slices.Contains(nodes, n) }
	}
	P := func(p int, n NodeID) PrefEntry { return PrefEntry{Partition: p, Node: n, Primary: true} }
	F := func(p int, n, hint NodeID) PrefEntry { return PrefEntry{Partition: p, Node: n, HintFor: hint} }
	for _, tc := range []struct {
		name string
		r    *Ring
		p, n int
		up   func(NodeID) bool
		want []PrefEntry
	}{
		{"all up", eight, 0, 3, nil, []PrefEntry{P(0, "a"), P(1, "b"), P(2, "c")}},
		{"all up via predicate", eight, 0, 3, down(), []PrefEntry{P(0, "a"), P(1, "b"), P(2, "c")}},
		{"wraps", eight, 6, 3, nil, []PrefEntry{P(6, "c"), P(7, "d"), P(0, "a")}},
		{"one down: next node after the span", eight, 0, 3, down("b"),
			[]PrefEntry{P(0, "a"), P(2, "c"), F(1, "d", "b")}},
		{"first down", eight, 0, 3, down("a"),
			[]PrefEntry{P(1, "b"), P(2, "c"), F(0, "d", "a")}},
		{"two down, one distinct node left: the other fallback reuses an up node", eight, 0, 3, down("a", "b"),
			[]PrefEntry{P(2, "c"), F(0, "d", "a"), F(1, "d", "b")}},
		{"fallbacks skip down and listed nodes", eight, 1, 2, down("b"),
			[]PrefEntry{P(2, "c"), F(1, "d", "b")}},
		{"all down", eight, 0, 3, down("a", "b", "c", "d"), []PrefEntry{}},
		{"n zero", eight, 0, 0, nil, nil},
		{"n negative", eight, 0, -1, nil, nil},
		{"n capped at Q", eight, 5, 20, nil,
			[]PrefEntry{P(5, "b"), P(6, "c"), P(7, "d"), P(0, "a"), P(1, "b"), P(2, "c"), P(3, "d"), P(4, "a")}},
		{"one node: n vnodes of it", solo, 3, 3, nil, []PrefEntry{P(3, "x"), P(0, "x"), P(1, "x")}},
		{"skip rule: a partition whose owner is listed is skipped", pairs, 0, 3, nil,
			[]PrefEntry{P(0, "a"), P(2, "b"), P(4, "c")}},
		{"skip rule from the middle of a run", pairs, 1, 3, nil, []PrefEntry{P(1, "a"), P(2, "b"), P(4, "c")}},
		{"skip rule wraps", pairs, 6, 3, nil, []PrefEntry{P(6, "d"), P(0, "a"), P(2, "b")}},
		{"skip rule: the fallback comes from after the span", pairs, 0, 3, down("b"),
			[]PrefEntry{P(0, "a"), P(4, "c"), F(2, "d", "b")}},
		{"skip rule: no distinct node after the span, reuse from after it", aabc, 0, 3, down("b"),
			[]PrefEntry{P(0, "a"), P(3, "c"), F(2, "a", "b")}},
		{"two nodes: the earliest skipped partition fills the list", aaab, 0, 3, nil,
			[]PrefEntry{P(0, "a"), P(1, "a"), P(3, "b")}},
		{"two nodes, wrapping", aaab, 3, 3, nil, []PrefEntry{P(3, "b"), P(0, "a"), P(1, "a")}},
		{"one node down", solo, 0, 3, down("x"), []PrefEntry{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.r.PreflistForPartition(tc.p, tc.n, tc.up)
			if !slices.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Fatalf("PreflistForPartition(%d, %d) =\n%v\nwant\n%v", tc.p, tc.n, got, tc.want)
			}
		})
	}
}

func TestPreflistForKey(t *testing.T) {
	r, err := New(64, 3, names(5))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"", "a", "user:42", "\x00\xff"} {
		key := []byte(k)
		p := r.PartitionForKey(key)
		if got, want := r.Preflist(key, 3, nil), r.PreflistForPartition(p, 3, nil); !slices.Equal(got, want) {
			t.Errorf("Preflist(%q) = %v, want %v", k, got, want)
		}
	}
}

func TestPreflistOutOfRange(t *testing.T) {
	r := mustRing(t, []NodeID{"a", "b"}, 1)
	for _, p := range []int{-1, 2} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("PreflistForPartition(%d) did not panic", p)
				}
			}()
			r.PreflistForPartition(p, 1, nil)
		}()
	}
}

// refPreflist follows the documented rules literally, with maps: the skip rule for the primaries, then
// the fallbacks from after the span.
func refPreflist(owners []NodeID, p, n int, up func(NodeID) bool) []PrefEntry {
	q := len(owners)
	if n <= 0 {
		return nil
	}
	n = min(n, q)
	isUp := func(x NodeID) bool { return up == nil || up(x) }
	// The primaries: the first partition of every node met walking from p, until n nodes; with fewer
	// nodes than n, then the earliest partitions skipped, until n.
	taken := map[int]bool{} // offsets from p
	seen := map[NodeID]bool{}
	for off := 0; off < q && len(taken) < n; off++ {
		if x := owners[(p+off)%q]; !seen[x] {
			seen[x] = true
			taken[off] = true
		}
	}
	for off := 0; off < q && len(taken) < n; off++ {
		taken[off] = true
	}
	var offs []int
	for off := range taken {
		offs = append(offs, off)
	}
	slices.Sort(offs)
	after := offs[len(offs)-1] + 1 // the first offset after the span
	var primaries, fallbacks []PrefEntry
	used := map[NodeID]bool{}
	var downParts []int
	for _, off := range offs {
		part := (p + off) % q
		if isUp(owners[part]) {
			primaries = append(primaries, PrefEntry{Partition: part, Node: owners[part], Primary: true})
			used[owners[part]] = true
		} else {
			downParts = append(downParts, part)
		}
	}
	var walk []NodeID // nodes of the partitions after the span that are up, each once, not used
	for off := after; off < q; off++ {
		x := owners[(p+off)%q]
		if isUp(x) && !used[x] && !slices.Contains(walk, x) {
			walk = append(walk, x)
		}
	}
	off := after % q // reuse for the rest: every up node from after the span on, cycling
	for i, part := range downParts {
		if i < len(walk) {
			fallbacks = append(fallbacks, PrefEntry{Partition: part, Node: walk[i], HintFor: owners[part]})
			continue
		}
		for tries := 0; tries < q; tries++ {
			x := owners[(p+off)%q]
			off = (off + 1) % q
			if isUp(x) {
				fallbacks = append(fallbacks, PrefEntry{Partition: part, Node: x, HintFor: owners[part]})
				break
			}
		}
	}
	return append(append([]PrefEntry{}, primaries...), fallbacks...)
}

// consecutivePreflist is the rule before the skip rule: the primaries are p, p+1, ..., p+n-1, whoever
// owns them, and the fallbacks come from p+n on. On a ring where every n consecutive partitions are on
// distinct nodes the skip rule must give exactly this.
func consecutivePreflist(owners []NodeID, p, n int, up func(NodeID) bool) []PrefEntry {
	q := len(owners)
	n = min(n, q)
	isUp := func(x NodeID) bool { return up == nil || up(x) }
	var primaries, fallbacks []PrefEntry
	var downParts []int
	for i := range n {
		part := (p + i) % q
		if isUp(owners[part]) {
			primaries = append(primaries, PrefEntry{Partition: part, Node: owners[part], Primary: true})
		} else {
			downParts = append(downParts, part)
		}
	}
	next, off := n, n
	for _, part := range downParts {
		found := false
		for ; next < q; next++ {
			x := owners[(p+next)%q]
			if isUp(x) && !listed(primaries, x) && !listed(fallbacks, x) {
				fallbacks = append(fallbacks, PrefEntry{Partition: part, Node: x, HintFor: owners[part]})
				next++
				found = true
				break
			}
		}
		if found {
			continue
		}
		for tries := 0; tries < q; tries++ {
			x := owners[(p+off)%q]
			off = (off + 1) % q
			if isUp(x) {
				fallbacks = append(fallbacks, PrefEntry{Partition: part, Node: x, HintFor: owners[part]})
				break
			}
		}
	}
	slices.SortStableFunc(fallbacks, func(a, b PrefEntry) int { return ((a.Partition - p + q) % q) - ((b.Partition - p + q) % q) })
	return append(append([]PrefEntry{}, primaries...), fallbacks...)
}

// checkPreflist checks the properties callers rely on, whatever the ring: entries on distinct partitions
// inside the span, primaries before fallbacks, each fallback standing in for a down primary, n distinct
// nodes when the ring has them, and no node twice while enough distinct up nodes exist.
func checkPreflist(t *testing.T, what string, owners []NodeID, p, n int, up func(NodeID) bool, got []PrefEntry) {
	t.Helper()
	q := len(owners)
	nn := min(n, q)
	if n <= 0 {
		if got != nil {
			t.Fatalf("%s: n=%d gave %v", what, n, got)
		}
		return
	}
	isUp := func(x NodeID) bool { return up == nil || up(x) }
	distinct, distinctUp := map[NodeID]bool{}, map[NodeID]bool{}
	for _, o := range owners {
		distinct[o] = true
		if isUp(o) {
			distinctUp[o] = true
		}
	}
	// The span: the walk of the all-up list, which liveness does not change.
	all := mustRing(t, owners, 1).PreflistForPartition(p, n, nil)
	if len(all) != nn || all[0].Partition != p {
		t.Fatalf("%s: all-up list %v for n=%d does not start at %d", what, all, nn, p)
	}
	span := 0
	primaryNodes := map[NodeID]bool{}
	for _, e := range all {
		span = max(span, (e.Partition-p+q)%q)
		primaryNodes[e.Node] = true
	}
	if want := min(nn, len(distinct)); len(primaryNodes) != want {
		t.Fatalf("%s: %d distinct primary nodes, want %d: %v", what, len(primaryNodes), want, all)
	}
	wantLen := nn
	if len(distinctUp) == 0 {
		wantLen = 0
	}
	if len(got) != wantLen {
		t.Fatalf("%s: %d entries, want %d: %v", what, len(got), wantLen, got)
	}
	parts := map[int]bool{}
	nodes := map[NodeID]bool{}
	seenFallback := false
	for i, e := range got {
		if parts[e.Partition] {
			t.Fatalf("%s: partition %d twice in %v", what, e.Partition, got)
		}
		parts[e.Partition] = true
		if (e.Partition-p+q)%q > span || !slices.ContainsFunc(all, func(a PrefEntry) bool { return a.Partition == e.Partition }) {
			t.Fatalf("%s: entry %d partition %d is not a primary partition %v", what, i, e.Partition, all)
		}
		if !isUp(e.Node) {
			t.Fatalf("%s: down node %s in the list", what, e.Node)
		}
		nodes[e.Node] = true
		if e.Primary {
			if seenFallback || e.HintFor != "" || e.Node != owners[e.Partition] {
				t.Fatalf("%s: bad primary %d in %v", what, i, got)
			}
			continue
		}
		seenFallback = true
		if isUp(e.HintFor) || e.HintFor != owners[e.Partition] {
			t.Fatalf("%s: fallback %v does not stand in for a down primary", what, e)
		}
	}
	if want := min(wantLen, len(distinctUp)); len(nodes) != want {
		t.Fatalf("%s: %d distinct nodes in %v, want %d (%d up)", what, len(nodes), got, want, len(distinctUp))
	}
}

// TestPreflistProperty compares Preflist with refPreflist on random rings (claimed or arbitrary) and
// liveness, with consecutivePreflist where the ring keeps every n consecutive partitions distinct, and
// checks the properties callers rely on.
func TestPreflistProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	consecutive := 0
	for it := range 5000 {
		q, m, n := randomQ(rng), 1+rng.IntN(12), 1+rng.IntN(5)
		owners, _ := Claim(q, n, names(m), nil)
		if rng.IntN(3) == 0 { // sometimes an arbitrary, unclaimed ring
			for i := range owners {
				owners[i] = names(m)[rng.IntN(m)]
			}
		}
		r := mustRing(t, owners, 1)
		downSet := map[NodeID]bool{}
		for _, x := range names(m) {
			if rng.IntN(3) == 0 {
				downSet[x] = true
			}
		}
		up := func(x NodeID) bool { return !downSet[x] }
		if rng.IntN(5) == 0 {
			up = nil
		}
		p, reqN := rng.IntN(q), rng.IntN(7)
		got := r.PreflistForPartition(p, reqN, up)
		what := fmt.Sprintf("iter %d: q=%d p=%d n=%d owners %v down %v", it, q, p, reqN, owners, downSet)
		if want := refPreflist(owners, p, reqN, up); !slices.Equal(got, want) {
			t.Fatalf("%s\ngot  %v\nwant %v", what, got, want)
		}
		checkPreflist(t, what, owners, p, reqN, up, got)
		if reqN > 0 && distinctWindows(owners, reqN) {
			consecutive++
			if want := consecutivePreflist(owners, p, reqN, up); !slices.Equal(got, want) {
				t.Fatalf("%s: a ring that meets target_n\ngot  %v\nwant %v (consecutive)", what, got, want)
			}
		}
	}
	if consecutive < 1000 {
		t.Fatalf("only %d cases on rings that meet target_n", consecutive)
	}
}

// TestPreflistClaimedRings: on Q=64 rings claimed for 3, 4 and 5 nodes (and rings with adversarial owner
// lists), every preference list names N distinct nodes, for every partition and every set of down nodes;
// where the ring meets target_n the lists are the consecutive ones.
func TestPreflistClaimedRings(t *testing.T) {
	const q, n = 64, 3
	rings := map[string][]NodeID{}
	for _, m := range []int{3, 4, 5} {
		owners, err := Claim(q, n, names(m), nil)
		if err != nil && (m != 3 || !errors.Is(err, ErrTargetN)) {
			t.Fatal(err)
		}
		rings[fmt.Sprintf("claimed-%d", m)] = owners
		// A join and a leave from there, as the claimant computes them.
		if next, err := Claim(q, n, names(m+1), owners); err == nil || errors.Is(err, ErrTargetN) {
			rings[fmt.Sprintf("claimed-%d-join", m)] = next
		}
		if m > 3 {
			if next, err := Claim(q, n, names(m)[1:], owners); err == nil || errors.Is(err, ErrTargetN) {
				rings[fmt.Sprintf("claimed-%d-leave", m)] = next
			}
		}
	}
	rng := rand.New(rand.NewPCG(9, 10))
	for _, m := range []int{3, 4, 5} {
		runs := make([]NodeID, q) // long runs of one node: the walk skips far
		for i := range runs {
			runs[i] = names(m)[(i/7)%m]
		}
		rings[fmt.Sprintf("runs-%d", m)] = runs
		heavy := make([]NodeID, q) // one node owns nearly everything
		for i := range heavy {
			heavy[i] = names(m)[0]
		}
		for i := 1; i < m; i++ {
			heavy[rng.IntN(q)] = names(m)[i]
		}
		rings[fmt.Sprintf("heavy-%d", m)] = heavy
		random := make([]NodeID, q)
		for i := range random {
			random[i] = names(m)[rng.IntN(m)]
		}
		rings[fmt.Sprintf("random-%d", m)] = random
	}
	for name, owners := range rings {
		r := mustRing(t, owners, 1)
		nodes := r.Nodes()
		met := distinctWindows(owners, n)
		for p := range q {
			all := r.PreflistForPartition(p, n, nil)
			if want := refPreflist(owners, p, n, nil); !slices.Equal(all, want) {
				t.Fatalf("%s p=%d: got %v, want %v", name, p, all, want)
			}
			if met && !slices.Equal(all, consecutivePreflist(owners, p, n, nil)) {
				t.Fatalf("%s meets target_n but p=%d gives %v", name, p, all)
			}
			// Every subset of down nodes.
			for mask := 0; mask < 1<<len(nodes); mask++ {
				up := func(x NodeID) bool { return mask&(1<<slices.Index(nodes, x)) == 0 }
				got := r.PreflistForPartition(p, n, up)
				what := fmt.Sprintf("%s p=%d down-mask %b", name, p, mask)
				if want := refPreflist(owners, p, n, up); !slices.Equal(got, want) {
					t.Fatalf("%s: got %v, want %v", what, got, want)
				}
				checkPreflist(t, what, owners, p, n, up, got)
			}
		}
		if name == "claimed-4" || name == "claimed-5" {
			if !met {
				t.Errorf("%s does not meet target_n", name)
			}
		}
	}
	if distinctWindows(rings["claimed-3"], n) {
		t.Error("the 3-node ring meets target_n: this test no longer covers the skip rule on a claimed ring")
	}
}

func TestPreflistAllocs(t *testing.T) {
	r, err := New(1024, 3, names(8))
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("some-key")
	downN := r.Preflist(key, 3, nil)[1].Node
	up := func(x NodeID) bool { return x != downN }
	// A ring that misses target_n (Q=64, 3 nodes) and a partition whose list skips.
	skip, _ := New(64, 3, names(3))
	bad := skip.Violations(3)
	if len(bad) == 0 {
		t.Fatal("the 3-node ring meets target_n")
	}
	skipDown := skip.PreflistForPartition(bad[0], 3, nil)[2].Node
	for name, f := range map[string]func(){
		"all up":        func() { r.Preflist(key, 3, nil) },
		"one down":      func() { r.Preflist(key, 3, up) },
		"skip":          func() { skip.PreflistForPartition(bad[0], 3, nil) },
		"skip one down": func() { skip.PreflistForPartition(bad[0], 3, func(x NodeID) bool { return x != skipDown }) },
	} {
		if a := testing.AllocsPerRun(100, f); a > 1 {
			t.Errorf("%s: %.0f allocations per Preflist, want at most the result slice", name, a)
		}
	}
}

// TestSources checks Ring.Sources against the preference lists it inverts, and against x-n+1..x where the
// ring meets target_n.
func TestSources(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for it := range 300 {
		// NB: the reference inverts every list by brute force, O(Q²) lists: rings up to Q=128.
		q, m, n := ringSizes[rng.IntN(8)], 1+rng.IntN(8), rng.IntN(5)
		owners, _ := Claim(q, max(n, 1), names(m), nil)
		if rng.IntN(2) == 0 {
			for i := range owners {
				owners[i] = names(m)[rng.IntN(m)]
			}
		}
		r := mustRing(t, owners, 1)
		src := r.Sources(n)
		if len(src) != q {
			t.Fatalf("iter %d: %d lists for q=%d", it, len(src), q)
		}
		for x := range q {
			var want []int
			for p := range q {
				if slices.ContainsFunc(r.PreflistForPartition(p, n, nil), func(e PrefEntry) bool { return e.Partition == x }) {
					want = append(want, p)
				}
			}
			if !slices.Equal(src[x], want) {
				t.Fatalf("iter %d: q=%d n=%d owners %v: Sources[%d] = %v, want %v", it, q, n, owners, x, src[x], want)
			}
			if n > 0 && distinctWindows(owners, n) {
				var cons []int
				for i := range min(n, q) {
					cons = append(cons, (x-i+q)%q)
				}
				slices.Sort(cons)
				if !slices.Equal(src[x], cons) {
					t.Fatalf("iter %d: ring meets target_n but Sources[%d] = %v, want %v", it, x, src[x], cons)
				}
			}
		}
	}
}

// TestPreflistManyNodes covers rings of more than 64 nodes, where "already listed" compares node ids
// instead of testing bits.
func TestPreflistManyNodes(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for it := range 100 {
		q, m := 256, 65+rng.IntN(60)
		owners := make([]NodeID, q)
		for i := range owners {
			owners[i] = names(m)[rng.IntN(m)]
			if rng.IntN(3) == 0 && i > 0 { // runs of one node make the walk skip
				owners[i] = owners[i-1]
			}
		}
		r := mustRing(t, owners, 1)
		if len(r.Nodes()) <= 64 {
			continue
		}
		downSet := map[NodeID]bool{}
		for _, x := range names(m) {
			if rng.IntN(2) == 0 {
				downSet[x] = true
			}
		}
		up := func(x NodeID) bool { return !downSet[x] }
		p, n := rng.IntN(q), 1+rng.IntN(6)
		got := r.PreflistForPartition(p, n, up)
		what := fmt.Sprintf("iter %d: p=%d n=%d", it, p, n)
		if want := refPreflist(owners, p, n, up); !slices.Equal(got, want) {
			t.Fatalf("%s\ngot  %v\nwant %v", what, got, want)
		}
		checkPreflist(t, what, owners, p, n, up, got)
	}
}
