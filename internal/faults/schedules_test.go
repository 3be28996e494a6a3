package faults

import (
	"fmt"
	"testing"
	"time"
)

// The schedules. Each forms a fresh cluster in fresh namespaces, runs the load, injects its faults, then
// verdict ends every fault, waits, reads and checks. Short forms by default; -faults.long (or
// GOKAI_FAULTS_LONG=1) runs the long ones.

// timing is one schedule length set.
type timing struct {
	partition  time.Duration // the partition schedule's cut (> the 20 s that used to split a cluster for good)
	cut        time.Duration // the join and leave schedules' cut
	down       time.Duration // kill -9 until the restart
	pause      time.Duration // SIGSTOP until SIGCONT
	flapCycles int           // partition/heal cycles
	flapOn     time.Duration
	flapOff    time.Duration
	raceKeys   int
}

func timings() timing {
	if *longFlag {
		return timing{partition: 60 * time.Second, cut: 45 * time.Second, down: 30 * time.Second, pause: 30 * time.Second,
			flapCycles: 10, flapOn: 5 * time.Second, flapOff: 3 * time.Second, raceKeys: 2000}
	}
	return timing{partition: 25 * time.Second, cut: 15 * time.Second, down: 10 * time.Second, pause: 10 * time.Second,
		flapCycles: 5, flapOn: 3 * time.Second, flapOff: 3 * time.Second, raceKeys: 300}
}

const (
	warmup   = 4 * time.Second // load before the first fault
	loadTail = 5 * time.Second // load after the last fault ended
	sampling = 250 * time.Millisecond
)

// Targets of the schedules that heal.
const (
	healTarget     = 30 * time.Second // one cluster again after the heal
	convergeTarget = 30 * time.Second // replicas identical after the heal
)

func schedule(t *testing.T) *harness {
	t.Helper()
	if testing.Short() {
		t.Skip("the fault schedules run real clusters for a minute each; skipped with -short")
	}
	return newHarness(t)
}

// TestPartition isolates n3 from n1 and n2 under load, then heals. Sloppy quorum (N=3, R=2, W=2) must
// keep both sides answering once the partition is detected (n3 serves from its own fallback vnodes);
// after the heal the cluster must be one again and the replicas identical within 30 s, with nothing lost.
func TestPartition(t *testing.T) {
	h := schedule(t)
	tm := timings()
	h.form(3)
	s := h.startSampler(sampling)
	w := h.startLoad(defaultLoad(1, 2, 3))
	time.Sleep(warmup) // schedule: load on the healthy cluster first
	from := h.partition([]int{1, 2}, []int{3})
	time.Sleep(tm.partition) // schedule: how long the cut lasts
	healAt := h.heal()
	hw := h.watchHeal(healAt, []int{1, 2, 3})
	time.Sleep(loadTail) // schedule: load after the fault ended
	h.verdict(w, hw, s, verdictSpec{
		schedule: fmt.Sprintf("partition-%v", tm.partition), desc: fmt.Sprintf("n3 cut from n1,n2 for %v under load, then healed", tm.partition),
		members: []int{1, 2, 3}, faultFrom: from, faultTo: healAt, grace: detectGrace,
		sides:  []sideSpec{{"n1+n2", []int{1, 2}, true}, {"n3", []int{3}, true}},
		healAt: healAt, healTarget: healTarget, convergeTarget: convergeTarget,
		cut: [2][]int{{1, 2}, {3}},
	})
}

// TestKill9Restart kills n3 with SIGKILL under load and restarts it on the same data dir and addresses.
// n1 and n2 must keep answering once the death is detected; nothing acknowledged may be lost.
func TestKill9Restart(t *testing.T) {
	h := schedule(t)
	tm := timings()
	h.form(3)
	s := h.startSampler(sampling)
	w := h.startLoad(defaultLoad(1, 2, 3))
	time.Sleep(warmup) // schedule: load on the healthy cluster first
	from := h.kill9(3)
	time.Sleep(tm.down) // schedule: how long n3 stays dead
	back := h.restart(3)
	hw := h.watchHeal(back, []int{1, 2, 3})
	time.Sleep(loadTail) // schedule: load after the fault ended
	h.verdict(w, hw, s, verdictSpec{
		schedule: fmt.Sprintf("kill9-%v", tm.down), desc: fmt.Sprintf("kill -9 n3 under load, restart it %v later", tm.down),
		members: []int{1, 2, 3}, faultFrom: from, faultTo: back, grace: detectGrace,
		sides:  []sideSpec{{"n1+n2", []int{1, 2}, true}, {"n3 (killed)", []int{3}, false}},
		healAt: back, healTarget: healTarget,
		cut: [2][]int{{1, 2}, {3}},
	})
}

// TestPauseResume stops n3 with SIGSTOP under load and continues it later: to its peers a paused node is
// one whose connections hang, not one that refuses them.
func TestPauseResume(t *testing.T) {
	h := schedule(t)
	tm := timings()
	h.form(3)
	s := h.startSampler(sampling)
	w := h.startLoad(defaultLoad(1, 2, 3))
	time.Sleep(warmup) // schedule: load on the healthy cluster first
	from := h.pause(3)
	time.Sleep(tm.pause) // schedule: how long n3 stays stopped
	back := h.resume(3)
	hw := h.watchHeal(back, []int{1, 2, 3})
	time.Sleep(loadTail) // schedule: load after the fault ended
	h.verdict(w, hw, s, verdictSpec{
		schedule: fmt.Sprintf("pause-%v", tm.pause), desc: fmt.Sprintf("SIGSTOP n3 under load, SIGCONT %v later", tm.pause),
		members: []int{1, 2, 3}, faultFrom: from, faultTo: back, grace: detectGrace,
		sides:  []sideSpec{{"n1+n2", []int{1, 2}, true}, {"n3 (paused)", []int{3}, false}},
		healAt: back, healTarget: healTarget,
		cut: [2][]int{{1, 2}, {3}},
	})
}

// TestFlappingPartition cuts n3 from n1,n2 and heals it again on a fixed schedule. Availability is
// reported over the whole flapping window (no grace: each phase is shorter than detection).
func TestFlappingPartition(t *testing.T) {
	h := schedule(t)
	tm := timings()
	h.form(3)
	s := h.startSampler(sampling)
	w := h.startLoad(defaultLoad(1, 2, 3))
	time.Sleep(warmup) // schedule: load on the healthy cluster first
	var from, healAt time.Time
	for c := 0; c < tm.flapCycles; c++ {
		at := h.partition([]int{1, 2}, []int{3})
		if c == 0 {
			from = at
		}
		time.Sleep(tm.flapOn) // schedule: one cut of the flapping
		healAt = h.heal()
		if c < tm.flapCycles-1 {
			time.Sleep(tm.flapOff) // schedule: one healed spell between cuts
		}
	}
	hw := h.watchHeal(healAt, []int{1, 2, 3})
	time.Sleep(loadTail) // schedule: load after the fault ended
	h.verdict(w, hw, s, verdictSpec{
		schedule: fmt.Sprintf("flapping-%dx%v/%v", tm.flapCycles, tm.flapOn, tm.flapOff),
		desc:     fmt.Sprintf("n3 cut from n1,n2 for %v then healed for %v, %d times, under load", tm.flapOn, tm.flapOff, tm.flapCycles),
		members:  []int{1, 2, 3}, faultFrom: from, faultTo: healAt,
		sides:  []sideSpec{{"n1+n2", []int{1, 2}, false}, {"n3", []int{3}, false}},
		healAt: healAt, healTarget: healTarget,
		cut: [2][]int{{1, 2}, {3}},
	})
}

// TestJoinDuringPartition cuts n3 from n1,n2, then, once both sides see the cut, starts n4 on the n1,n2
// side and joins it (plan and commit through n1, the claimant) while the cut lasts; after the heal the four
// nodes must settle (every transfer done, n3's to n4 included) with nothing lost.
func TestJoinDuringPartition(t *testing.T) {
	h := schedule(t)
	tm := timings()
	h.form(3)
	s := h.startSampler(sampling)
	w := h.startLoad(defaultLoad(1, 2, 3))
	time.Sleep(warmup) // schedule: load on the healthy cluster first
	from := h.partition([]int{1, 2}, []int{3})
	h.waitCut([]int{1, 2}, []int{3}) // n4 joins a side that knows n3 is gone
	h.addNode(4)
	h.partition([]int{1, 2, 4}, []int{3})
	h.join(4, 1)
	h.waitStaged(h.node(1), 1)
	h.commit(1)
	time.Sleep(max(0, tm.cut-time.Since(from))) // schedule: the cut lasts tm.cut in all
	healAt := h.heal()
	hw := h.watchHeal(healAt, []int{1, 2, 3, 4})
	time.Sleep(loadTail) // schedule: load after the fault ended
	h.verdict(w, hw, s, verdictSpec{
		schedule: fmt.Sprintf("join-during-partition-%v", tm.cut),
		desc:     fmt.Sprintf("n3 cut from n1,n2 for %v; n4 joins on the n1,n2 side meanwhile; heal", tm.cut),
		members:  []int{1, 2, 3, 4}, faultFrom: from, faultTo: healAt, grace: detectGrace,
		sides:  []sideSpec{{"n1+n2", []int{1, 2}, true}, {"n3", []int{3}, true}},
		healAt: healAt, healTarget: healTarget,
		cut: [2][]int{{1, 2}, {3}},
	})
}

// TestLeaveDuringPartition: four nodes; n3 is cut from the others, and once both sides see the cut n2
// leaves (cluster_leave, plan and commit through n1, the claimant). The transfers to n3 can only finish
// after the heal; then n2 must be gone, the three others settled, nothing lost.
func TestLeaveDuringPartition(t *testing.T) {
	h := schedule(t)
	tm := timings()
	h.form(4)
	s := h.startSampler(sampling)
	w := h.startLoad(defaultLoad(1, 3, 4))
	time.Sleep(warmup) // schedule: load on the healthy cluster first
	from := h.partition([]int{1, 2, 4}, []int{3})
	h.waitCut([]int{1, 2, 4}, []int{3}) // n2 leaves from a side that knows n3 is gone
	h.leave(2, 1)
	h.commit(1)
	time.Sleep(max(0, tm.cut-time.Since(from))) // schedule: the cut lasts tm.cut in all
	healAt := h.heal()
	hw := h.watchHeal(healAt, []int{1, 3, 4})
	time.Sleep(loadTail) // schedule: load after the fault ended
	h.verdict(w, hw, s, verdictSpec{
		schedule: fmt.Sprintf("leave-during-partition-%v", tm.cut),
		desc:     fmt.Sprintf("4 nodes; n3 cut from n1,n2,n4 for %v; n2 leaves meanwhile; heal", tm.cut),
		members:  []int{1, 3, 4}, faultFrom: from, faultTo: healAt, grace: detectGrace,
		sides:  []sideSpec{{"n1+n4", []int{1, 4}, true}, {"n3", []int{3}, true}},
		healAt: healAt, healTarget: healTarget,
		cut: [2][]int{{1, 4}, {3}},
	})
}

// TestAddRace: no fault. For each of many fresh keys, two clients add it at the same moment through two
// different nodes. memcache add is not atomic across replicas (documented): both may answer STORED, and
// then both values must survive as siblings.
func TestAddRace(t *testing.T) {
	h := schedule(t)
	tm := timings()
	h.form(3)
	half := tm.raceKeys / 2
	h1, k1 := h.addRace("race12", half, h.node(1), h.node(2))
	h2, k2 := h.addRace("race23", tm.raceKeys-half, h.node(2), h.node(3))
	both := 0
	stored := map[string]int{}
	for _, x := range []*History{h1, h2} {
		for _, op := range x.Ops() {
			if op.Outcome == OK {
				stored[op.Key]++
			}
		}
	}
	for _, n := range stored {
		if n == 2 {
			both++
		}
	}
	h.event("add race: %d keys, both adds STORED on %d, one on %d", tm.raceKeys, both, len(stored)-both)
	h.verdict(nil, nil, nil, verdictSpec{
		schedule: fmt.Sprintf("add-race-%d", tm.raceKeys),
		desc:     fmt.Sprintf("%d fresh keys, each added at once by two clients through two nodes (n1/n2, n2/n3); no fault", tm.raceKeys),
		members:  []int{1, 2, 3}, extraKeys: append(k1, k2...),
	}, h1, h2)
}
