package client

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/gokai-kv/gokai/ring"
)

func testRing(t *testing.T, q, n int, names ...string) *ring.Ring {
	t.Helper()
	ids := make([]ring.NodeID, len(names))
	for i, s := range names {
		ids[i] = ring.NodeID(s)
	}
	r, err := ring.New(q, n, ids)
	if err != nil && !errors.Is(err, ring.ErrTargetN) {
		t.Fatal(err)
	}
	return r
}

// routeRef is the preference list the simple way: walking the partitions p, p+1, ... from the key's
// partition, the first n distinct owners (the skip rule), those with an address.
func routeRef(r *ring.Ring, n int, addrs map[ring.NodeID]string, key []byte) []string {
	var nodes []ring.NodeID
	p := r.PartitionForKey(key)
	for i := 0; i < r.Q() && len(nodes) < max(n, 1); i++ {
		if o := r.Owner((p + i) % r.Q()); !slices.Contains(nodes, o) {
			nodes = append(nodes, o)
		}
	}
	out := []string{}
	for _, o := range nodes {
		if a := addrs[o]; a != "" {
			out = append(out, a)
		}
	}
	return out
}

func TestRouteMultiNode(t *testing.T) {
	for _, names := range [][]string{{"n1", "n2", "n3", "n4", "n5"}, {"n1", "n2", "n3"}} {
		t.Run(fmt.Sprint(len(names)), func(t *testing.T) { testRouteMultiNode(t, names) })
	}
}

// testRouteMultiNode routes keys on a Q=64 ring of names: with 3 nodes the ring misses target_n, and the
// routes of keys in its skipping lists still name 3 distinct nodes.
func testRouteMultiNode(t *testing.T, names []string) {
	rg := testRing(t, 64, 3, names...)
	addrs := map[ring.NodeID]string{}
	for i, n := range names {
		addrs[ring.NodeID(n)] = fmt.Sprintf("10.0.0.%d:11011", i+1)
	}
	owners := map[string]int{}
	for i := range 2000 {
		key := fmt.Appendf(nil, "key-%d", i)
		got := route(rg, 3, addrs, key)
		if want := routeRef(rg, 3, addrs, key); !slices.Equal(got, want) {
			t.Fatalf("route(%s) = %v, want %v", key, got, want)
		}
		if len(got) != 3 {
			t.Fatalf("route(%s) = %v: want 3 distinct nodes on a %d-node ring", key, got, len(names))
		}
		// The first address is the owner of the key's own partition: the coordinator.
		if want := addrs[rg.Owner(rg.PartitionForKey(key))]; got[0] != want {
			t.Fatalf("route(%s)[0] = %s, want the partition owner %s", key, got[0], want)
		}
		owners[got[0]]++
	}
	// Coordination spreads over every node (Dynamo's point of routing in the client).
	if len(owners) != len(names) {
		t.Fatalf("coordinators %v: want all %d nodes", owners, len(names))
	}
}

func TestRouteTable(t *testing.T) {
	two := testRing(t, 8, 3, "a", "b") // fewer nodes than n: replicas share nodes
	one := testRing(t, 4, 3, "solo")
	five := testRing(t, 16, 3, "a", "b", "c", "d", "e")
	all := map[ring.NodeID]string{"a": "A", "b": "B", "c": "C", "d": "D", "e": "E", "solo": "S"}
	key := []byte("k")
	p5 := five.PartitionForKey(key)
	firstOf5 := five.Owner(p5)
	missingFirst := map[ring.NodeID]string{}
	for k, v := range all {
		if k != firstOf5 {
			missingFirst[k] = v
		}
	}
	tests := []struct {
		name  string
		ring  *ring.Ring
		n     int
		addrs map[ring.NodeID]string
		want  []string
	}{
		{"two nodes n3 dedup", two, 3, all, routeRef(two, 3, all, key)},
		{"single node", one, 3, all, []string{"S"}},
		{"n larger than q", one, 9, all, []string{"S"}},
		{"n zero acts as 1", five, 0, all, []string{all[firstOf5]}},
		{"unknown address skipped", five, 3, missingFirst, routeRef(five, 3, missingFirst, key)},
		{"no addresses", five, 3, nil, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := route(tc.ring, tc.n, tc.addrs, key)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("route = %v, want %v", got, tc.want)
			}
		})
	}
	if got := route(two, 3, all, key); len(got) != 2 {
		t.Fatalf("two-node ring: %v, want both nodes once", got)
	}
}

func TestBuildTable(t *testing.T) {
	ri := &RingInfo{Q: 4, Version: 7, N: 2, Owners: []string{"a", "b", "a", "b"}}
	ms := []Member{
		{Name: "a", Status: "up", RPCAddr: "0.0.0.0:11011"},
		{Name: "b", Status: "up", RPCAddr: "10.1.1.2:11011"},
		{Name: "c", Status: "down", RPCAddr: "10.1.1.3:11011"},
		{Name: "d", Status: "up"},
		{Name: "e", RPCAddr: "[::]:12000"},
	}
	tb, err := buildTable(ri, ms, "10.1.1.1:9999")
	if err != nil {
		t.Fatal(err)
	}
	want := map[ring.NodeID]string{"a": "10.1.1.1:11011", "b": "10.1.1.2:11011", "e": "10.1.1.1:12000"}
	if len(tb.addrs) != len(want) {
		t.Fatalf("addrs %v, want %v", tb.addrs, want)
	}
	for k, v := range want {
		if tb.addrs[k] != v {
			t.Fatalf("addrs %v, want %v", tb.addrs, want)
		}
	}
	if tb.ring.Version() != 7 || tb.n != 2 || tb.ring.Q() != 4 {
		t.Fatalf("table: version %d n %d q %d", tb.ring.Version(), tb.n, tb.ring.Q())
	}

	for _, bad := range []*RingInfo{
		{Q: 8, Owners: []string{"a", "b", "a", "b"}}, // q mismatch
		{Q: 3, Owners: []string{"a", "b", "c"}},      // not a power of two
		{Q: 2, Owners: []string{"a", ""}},            // empty owner
		{},                                           // no owners
	} {
		if _, err := buildTable(bad, nil, "x:1"); err == nil {
			t.Errorf("buildTable(%+v): want an error", bad)
		}
	}
}

func TestReachableAddr(t *testing.T) {
	for _, tc := range []struct{ addr, from, want string }{
		{"127.0.0.1:1", "10.0.0.1:2", "127.0.0.1:1"},
		{"0.0.0.0:1", "10.0.0.1:2", "10.0.0.1:1"},
		{"[::]:1", "[fe80::1]:2", "[fe80::1]:1"},
		{":1", "h:2", "h:1"},
		{"node7:1", "h:2", "node7:1"},
		{"garbage", "h:2", "garbage"},
	} {
		if got := reachableAddr(tc.addr, tc.from); got != tc.want {
			t.Errorf("reachableAddr(%q, %q) = %q, want %q", tc.addr, tc.from, got, tc.want)
		}
	}
}

func TestCandidates(t *testing.T) {
	down := func(a string) bool { return a == "B" || a == "S2" }
	for _, tc := range []struct {
		routed, seeds []string
		isDown        func(string) bool
		want          []string
	}{
		{[]string{"A", "B", "C"}, []string{"S1", "A"}, nil, []string{"A", "B", "C", "S1"}},
		{[]string{"A", "B", "C"}, []string{"S1", "S2"}, down, []string{"A", "C", "S1", "B", "S2"}},
		{nil, []string{"S1", "S2"}, down, []string{"S1", "S2"}},
		{nil, []string{"S2", "S1"}, down, []string{"S1", "S2"}},
	} {
		if got := candidates(tc.routed, tc.seeds, tc.isDown); !slices.Equal(got, tc.want) {
			t.Errorf("candidates(%v, %v) = %v, want %v", tc.routed, tc.seeds, got, tc.want)
		}
	}
}
