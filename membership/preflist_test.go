package membership

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestPreflistTable(t *testing.T) {
	eight := mustRing(t, []NodeID{"a", "b", "c", "d", "a", "b", "c", "d"}, 1)
	solo := mustRing(t, []NodeID{"x", "x", "x", "x"}, 1)
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
	r, err := NewRing(64, 3, names(5))
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

// refPreflist follows the documented rules literally, with maps.
func refPreflist(owners []NodeID, p, n int, up func(NodeID) bool) []PrefEntry {
	q := len(owners)
	if n <= 0 {
		return nil
	}
	n = min(n, q)
	isUp := func(x NodeID) bool { return up == nil || up(x) }
	var primaries, fallbacks []PrefEntry
	used := map[NodeID]bool{}
	var downParts []int
	for i := range n {
		part := (p + i) % q
		if isUp(owners[part]) {
			primaries = append(primaries, PrefEntry{Partition: part, Node: owners[part], Primary: true})
			used[owners[part]] = true
		} else {
			downParts = append(downParts, part)
		}
	}
	var walk []NodeID // nodes of partitions p+n, p+n+1, ... that are up, each once, not used
	for i := n; i < q; i++ {
		x := owners[(p+i)%q]
		if isUp(x) && !used[x] && !slices.Contains(walk, x) {
			walk = append(walk, x)
		}
	}
	off := n // reuse walk for the rest: every up node from p+n on, cycling
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
	slices.SortStableFunc(fallbacks, func(a, b PrefEntry) int { return ((a.Partition - p + q) % q) - ((b.Partition - p + q) % q) })
	return append(append([]PrefEntry{}, primaries...), fallbacks...)
}

// TestPreflistProperty compares Preflist with refPreflist on random rings
// and liveness, and checks the properties callers rely on.
func TestPreflistProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for it := range 3000 {
		q, m, n := randomQ(rng), 1+rng.IntN(12), 1+rng.IntN(5)
		owners, _ := Claim(q, n, names(m), nil)
		if rng.IntN(4) == 0 { // sometimes an arbitrary, unclaimed ring
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
		if want := refPreflist(owners, p, reqN, up); !slices.Equal(got, want) {
			t.Fatalf("iter %d: q=%d p=%d n=%d\ngot  %v\nwant %v", it, q, p, reqN, got, want)
		}

		nn := min(reqN, q)
		if len(got) > max(nn, 0) {
			t.Fatalf("iter %d: %d entries for n=%d", it, len(got), reqN)
		}
		parts := map[int]bool{}
		nodes := map[NodeID]bool{}
		seenFallback := false
		for i, e := range got {
			if parts[e.Partition] {
				t.Fatalf("iter %d: partition %d twice in %v", it, e.Partition, got)
			}
			parts[e.Partition] = true
			if off := (e.Partition - p + q) % q; off >= nn {
				t.Fatalf("iter %d: entry %d partition %d outside the primaries' span", it, i, e.Partition)
			}
			if up != nil && !up(e.Node) {
				t.Fatalf("iter %d: down node %s in the list", it, e.Node)
			}
			if e.Primary {
				if seenFallback || e.HintFor != "" || e.Node != owners[e.Partition] {
					t.Fatalf("iter %d: bad primary %d in %v", it, i, got)
				}
				continue
			}
			seenFallback = true
			if up == nil || up(e.HintFor) || e.HintFor != owners[e.Partition] {
				t.Fatalf("iter %d: fallback %v does not stand in for a down primary", it, e)
			}
			if listed(got[:i], e.Node) {
				// A fallback reuses a node only when every up node is already in the list.
				for _, o := range owners {
					if (up == nil || up(o)) && !listed(got, o) {
						t.Fatalf("iter %d: fallback reuses %s while %s is up and unused: %v", it, e.Node, o, got)
					}
				}
			}
			nodes[e.Node] = true
		}
		for _, e := range got {
			if e.Primary {
				nodes[e.Node] = true
			}
		}
		// With the spread met and everything up: n distinct nodes.
		if up == nil && m >= nn && TargetNFeasible(q, n, m) && reqN == n && distinctWindows(owners, n) {
			if len(nodes) != nn {
				t.Fatalf("iter %d: all up, %d distinct nodes for n=%d: %v", it, len(nodes), nn, got)
			}
		}
	}
}

func TestPreflistAllocs(t *testing.T) {
	r, err := NewRing(1024, 3, names(8))
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("some-key")
	downN := r.Preflist(key, 3, nil)[1].Node
	up := func(x NodeID) bool { return x != downN }
	for name, f := range map[string]func(){
		"all up":   func() { r.Preflist(key, 3, nil) },
		"one down": func() { r.Preflist(key, 3, up) },
	} {
		if a := testing.AllocsPerRun(100, f); a > 1 {
			t.Errorf("%s: %.0f allocations per Preflist, want at most the result slice", name, a)
		}
	}
}
