package node

import (
	"cmp"
	"slices"

	"github.com/gokai-kv/gokai/handoff"
	"github.com/gokai-kv/gokai/membership"
	"github.com/gokai-kv/gokai/ring"
)

// The node's plan: what it must start, transfer, settle, scan and retire for a cluster state, decided by
// pure functions (planCluster, planHints) and carried out by reconcile (cluster.go), which only makes the
// actor calls. Every service runs a vnode of a partition wherever any runs one, and a partition moves with
// every service's vnode, so each decision about a partition is made for each service (a slot).
//
//	cluster state ─┐
//	running vnodes ├─► planCluster ─► start vnodes, ownership moves (per service), settle completed moves
//	completed moves│                  (cancel: the partition came back; drop: it is owned elsewhere),
//	drops running ─┘                  the vnodes the hint scan probes
//	probe replies ────► planHints ───► hinted moves (data for an owner that is up), retirements (a node that
//	                                   left retires its empty vnodes)

// slot is one service's vnode of one partition.
type slot = handoff.Slot

// planInput is what the plan is decided from: the cluster state and this node's view of its own vnodes and
// transfers. Read-only.
type planInput struct {
	self     ring.NodeID
	state    *membership.ClusterState
	services []string         // in registration order
	running  map[string][]int // per service: the partitions with a vnode here
	// completed holds the services' completed parts of ownership moves (handoff.Manager.Completed): the
	// vnode stays in handoff mode, in that session, until it is settled.
	completed map[slot]uint64
	dropping  map[slot]bool // vnodes whose leftover data is being dropped now
}

// sessionEnd ends the handoff session of a slot's completed move.
type sessionEnd struct {
	slot
	session uint64
}

// clusterPlan is what planCluster decides.
type clusterPlan struct {
	member bool
	// start lists, per service, the vnodes to start (ascending): every partition on a member, the incoming
	// ones on a node that is not (yet) one.
	start map[string][]int
	// moves are the ownership moves this node sends: one per waiting transfer from this node and service.
	moves []handoff.Move
	// cancel ends handoff mode and keeps the data: the partition is ours again, or coming back, before its
	// leftover was dropped (a vnode left in handoff mode towards the node sending it back would pass that
	// transfer's items on to it again).
	cancel []sessionEnd
	// drop deletes the leftover of a move completed and applied (the partition is owned elsewhere); the
	// vnode refuses if its session ended meanwhile, and the leftover then goes as hints.
	drop []sessionEnd
	// probe lists the vnodes the hint scan asks whether they hold data: those of partitions this node
	// neither owns nor sends nor receives, with no completed move or drop pending.
	probe []slot
}

// planCluster decides what a node does with state in.state. Pure.
func planCluster(in planInput) clusterPlan {
	s := in.state
	var pl clusterPlan
	_, pl.member = s.Member(in.self)
	incoming, outgoing := map[int]bool{}, map[int]bool{}
	for _, t := range s.Transfers {
		if t.State != membership.TransferWaiting {
			continue
		}
		if t.To == in.self {
			incoming[t.Partition] = true
		}
		if t.From == in.self {
			outgoing[t.Partition] = true
			for _, svc := range in.services {
				pl.moves = append(pl.moves, handoff.Move{Service: svc, Partition: t.Partition, From: t.From, To: t.To})
			}
		}
	}

	var want []int
	if pl.member {
		want = make([]int, s.Ring.Q())
		for p := range want {
			want[p] = p
		}
	} else {
		for p := range incoming {
			want = append(want, p)
		}
		slices.Sort(want)
	}
	for _, svc := range in.services {
		have := make(map[int]bool, len(in.running[svc]))
		for _, p := range in.running[svc] {
			have[p] = true
		}
		var missing []int
		for _, p := range want {
			if !have[p] {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			if pl.start == nil {
				pl.start = map[string][]int{}
			}
			pl.start[svc] = missing
		}
	}

	done := make([]slot, 0, len(in.completed))
	for sl := range in.completed {
		done = append(done, sl)
	}
	slices.SortFunc(done, compareSlots)
	for _, sl := range done {
		end := sessionEnd{slot: sl, session: in.completed[sl]}
		switch {
		case outgoing[sl.Partition]:
			// NB: while our state still lists the move as waiting, the claimant's completion has not reached
			// us yet (or other services are still moving theirs): wait. (A new move of the partition
			// supersedes the session when its transfer begins.)
		case s.Ring.Owner(sl.Partition) == in.self || incoming[sl.Partition]:
			pl.cancel = append(pl.cancel, end)
		case !in.dropping[sl]:
			pl.drop = append(pl.drop, end)
		}
	}

	for _, svc := range in.services {
		parts := slices.Clone(in.running[svc])
		slices.Sort(parts)
		for _, p := range parts {
			sl := slot{Service: svc, Partition: p}
			if _, c := in.completed[sl]; c || s.Ring.Owner(p) == in.self || incoming[p] || outgoing[p] || in.dropping[sl] {
				continue
			}
			pl.probe = append(pl.probe, sl)
		}
	}
	slices.SortFunc(pl.probe, compareSlots)
	return pl
}

// probeResult is a vnode's answer to the hint scan: whether it holds data, and the newest cluster-state
// version under which data was transferred to it.
type probeResult struct {
	empty bool
	ring  uint64
}

// hintPlan is what planHints decides.
type hintPlan struct {
	hinted []handoff.Move // data of a partition this node does not own, to its owner, which is up
	retire []slot         // empty vnodes of a node that is no longer a member
	// newer are vnodes that took data under a newer cluster state than ours: this node may own the
	// partition there, and handing the data on as hints would send it back where it came from; they wait.
	newer []slot
}

// planHints decides, from the hint scan's probes (a vnode whose probe failed is absent), which data goes to
// its owner and which vnodes retire. up says whether a node can take data now. Pure.
func planHints(in planInput, pl clusterPlan, probes map[slot]probeResult, up func(ring.NodeID) bool) hintPlan {
	var hp hintPlan
	for _, sl := range pl.probe {
		r, ok := probes[sl]
		if !ok {
			continue
		}
		if r.ring > in.state.Version {
			hp.newer = append(hp.newer, sl)
			continue
		}
		owner := in.state.Ring.Owner(sl.Partition)
		switch {
		case !r.empty && up(owner):
			hp.hinted = append(hp.hinted, handoff.Move{Service: sl.Service, Partition: sl.Partition, From: in.self, To: owner, Hinted: true})
		case r.empty && !pl.member:
			hp.retire = append(hp.retire, sl)
		}
	}
	return hp
}

func compareSlots(a, b slot) int {
	if c := cmp.Compare(a.Partition, b.Partition); c != 0 {
		return c
	}
	return cmp.Compare(a.Service, b.Service)
}
