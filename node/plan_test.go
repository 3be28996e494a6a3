package node

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/gokai-kv/gokai/handoff"
	"github.com/gokai-kv/gokai/membership"
	"github.com/gokai-kv/gokai/ring"
)

// planState is a cluster state for the plan's tables: partitions 0..7 owned a b c a b c a b (a, the node
// planning, owns 0, 3 and 6), members as given, transfers as given (waiting unless marked done), version 5.
func planState(t *testing.T, members []ring.NodeID, transfers ...membership.PendingTransfer) *membership.ClusterState {
	t.Helper()
	rg, err := ring.NewFromOwners([]ring.NodeID{"a", "b", "c", "a", "b", "c", "a", "b"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	s := &membership.ClusterState{Version: 5, Ring: rg, Transfers: transfers}
	for _, m := range members {
		s.Members = append(s.Members, membership.Member{Name: m, Status: membership.StatusValid})
	}
	return s
}

func waiting(p int, from, to ring.NodeID) membership.PendingTransfer {
	return membership.PendingTransfer{Partition: p, From: from, To: to, State: membership.TransferWaiting}
}

func kvSlot(p int) slot  { return slot{Service: "kv", Partition: p} }
func ctrSlot(p int) slot { return slot{Service: "ctr", Partition: p} }

func allParts() []int { return []int{0, 1, 2, 3, 4, 5, 6, 7} }

// TestPlanCluster is the table of what a node does with a cluster state: which vnodes it starts, which
// ownership moves it sends (one per service), how it settles completed moves, which vnodes the hint scan
// asks for data.
func TestPlanCluster(t *testing.T) {
	abc := []ring.NodeID{"a", "b", "c"}
	both := map[string][]int{"kv": allParts(), "ctr": allParts()}
	for _, tc := range []struct {
		name      string
		state     *membership.ClusterState
		running   map[string][]int
		completed map[slot]uint64
		dropping  map[slot]bool
		want      clusterPlan
	}{
		{
			name: "a new member starts a vnode of every partition for every service", state: planState(t, abc),
			running: map[string][]int{"kv": {0, 1, 2, 3}},
			want: clusterPlan{member: true, start: map[string][]int{"kv": {4, 5, 6, 7}, "ctr": allParts()},
				probe: []slot{kvSlot(1), kvSlot(2)}},
		},
		{
			name: "everything running: the scan probes the partitions others own", state: planState(t, abc), running: both,
			want: clusterPlan{member: true, probe: []slot{ctrSlot(1), kvSlot(1), ctrSlot(2), kvSlot(2), ctrSlot(4), kvSlot(4),
				ctrSlot(5), kvSlot(5), ctrSlot(7), kvSlot(7)}},
		},
		{
			name: "an outgoing transfer is one move per service; neither end is probed",
			state: planState(t, abc, waiting(3, "a", "b"), waiting(1, "b", "a"), waiting(2, "b", "c"),
				membership.PendingTransfer{Partition: 6, From: "a", To: "c", State: membership.TransferDone}),
			running: both,
			want: clusterPlan{member: true,
				moves: []handoff.Move{{Service: "kv", Partition: 3, From: "a", To: "b"}, {Service: "ctr", Partition: 3, From: "a", To: "b"}},
				probe: []slot{ctrSlot(2), kvSlot(2), ctrSlot(4), kvSlot(4), ctrSlot(5), kvSlot(5), ctrSlot(7), kvSlot(7)}},
		},
		{
			name: "a node that is not a member starts only what it receives", state: planState(t, []ring.NodeID{"b", "c"}, waiting(5, "c", "a"), waiting(2, "c", "a")),
			running: map[string][]int{"kv": {2}},
			want:    clusterPlan{start: map[string][]int{"kv": {5}, "ctr": {2, 5}}},
		},
		{
			name: "a leaving member keeps its vnodes and sends what it owns", state: planState(t, abc, waiting(0, "a", "c")),
			running: map[string][]int{"kv": allParts(), "ctr": allParts()},
			want: clusterPlan{member: true,
				moves: []handoff.Move{{Service: "kv", Partition: 0, From: "a", To: "c"}, {Service: "ctr", Partition: 0, From: "a", To: "c"}},
				probe: []slot{ctrSlot(1), kvSlot(1), ctrSlot(2), kvSlot(2), ctrSlot(4), kvSlot(4), ctrSlot(5), kvSlot(5), ctrSlot(7), kvSlot(7)}},
		},
		{
			name:  "completed moves: wait while still listed, drop once owned elsewhere, cancel when back",
			state: planState(t, abc, waiting(6, "a", "b"), waiting(5, "c", "a")),
			// 6: a sends it and the transfer is still waiting (other services, or the claimant's answer);
			// 1: sent and applied (b owns it): drop; 3: owned by a again: cancel; 5: coming back: cancel;
			// 7: applied, but its drop is running already.
			running:   both,
			completed: map[slot]uint64{kvSlot(6): 60, ctrSlot(1): 10, kvSlot(1): 11, kvSlot(3): 30, ctrSlot(5): 50, kvSlot(7): 70},
			dropping:  map[slot]bool{kvSlot(7): true, ctrSlot(2): true},
			want: clusterPlan{member: true,
				moves:  []handoff.Move{{Service: "kv", Partition: 6, From: "a", To: "b"}, {Service: "ctr", Partition: 6, From: "a", To: "b"}},
				cancel: []sessionEnd{{kvSlot(3), 30}, {ctrSlot(5), 50}},
				drop:   []sessionEnd{{ctrSlot(1), 10}, {kvSlot(1), 11}},
				probe:  []slot{kvSlot(2), ctrSlot(4), kvSlot(4), ctrSlot(7)}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := planInput{self: "a", state: tc.state, services: []string{"kv", "ctr"}, running: tc.running,
				completed: tc.completed, dropping: tc.dropping}
			got := planCluster(in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("plan\n got %s\nwant %s", planString(got), planString(tc.want))
			}
		})
	}
}

func planString(p clusterPlan) string {
	return fmt.Sprintf("member=%v start=%v moves=%v cancel=%v drop=%v probe=%v", p.member, p.start, p.moves, p.cancel, p.drop, p.probe)
}

// TestPlanHints is the table of what the hint scan makes of its probes: data goes to an owner that is up,
// a node that left retires its empty vnodes, data taken under a newer state than ours waits, and a vnode
// whose probe failed is left alone.
func TestPlanHints(t *testing.T) {
	upAll := func(ring.NodeID) bool { return true }
	cDown := func(n ring.NodeID) bool { return n != "c" }
	for _, tc := range []struct {
		name   string
		member bool
		probes map[slot]probeResult
		up     func(ring.NodeID) bool
		want   hintPlan
	}{
		{"data goes to its owner, per service", true,
			map[slot]probeResult{kvSlot(1): {}, ctrSlot(1): {empty: true}, kvSlot(2): {empty: true}, ctrSlot(2): {ring: 5}}, upAll,
			hintPlan{hinted: []handoff.Move{{Service: "ctr", Partition: 2, From: "a", To: "c", Hinted: true},
				{Service: "kv", Partition: 1, From: "a", To: "b", Hinted: true}}}},
		{"an owner that is down waits", true, map[slot]probeResult{kvSlot(2): {}, kvSlot(1): {}}, cDown,
			hintPlan{hinted: []handoff.Move{{Service: "kv", Partition: 1, From: "a", To: "b", Hinted: true}}}},
		{"data from a newer state waits", true, map[slot]probeResult{kvSlot(1): {ring: 6}}, upAll,
			hintPlan{newer: []slot{kvSlot(1)}}},
		{"a failed probe is no finding", true, map[slot]probeResult{}, upAll, hintPlan{}},
		{"a node that left retires its empty vnodes", false,
			map[slot]probeResult{kvSlot(1): {empty: true}, ctrSlot(1): {}, kvSlot(2): {empty: true}}, upAll,
			hintPlan{hinted: []handoff.Move{{Service: "ctr", Partition: 1, From: "a", To: "b", Hinted: true}},
				retire: []slot{kvSlot(1), kvSlot(2)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := planInput{self: "a", state: planState(t, []ring.NodeID{"a", "b", "c"}), services: []string{"kv", "ctr"}}
			pl := clusterPlan{member: tc.member, probe: []slot{ctrSlot(1), ctrSlot(2), kvSlot(1), kvSlot(2)}}
			got := planHints(in, pl, tc.probes, tc.up)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("hints\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
