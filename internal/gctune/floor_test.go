package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	const mib = int64(1) << 20
	for _, tc := range []struct {
		name                string
		live                int64
		percent             int
		floor, limit, wantT int64 // wantT: the least next heap target the answer must give (0: not checked)
		want                int
	}{
		{name: "no floor", live: 10 * mib, percent: 100, want: 100},
		{name: "collector off", live: 10 * mib, percent: -1, floor: 256 * mib, want: -1},
		{name: "small live heap: raised to the floor", live: 16 * mib, percent: 100, floor: 256 * mib, want: 1500, wantT: 256 * mib},
		{name: "rounds up", live: 24 * mib, percent: 100, floor: 256 * mib, want: 967, wantT: 256 * mib},
		{name: "live heap of half the floor: the percent alone", live: 128 * mib, percent: 100, floor: 256 * mib, want: 100},
		{name: "just under half the floor", live: 127 * mib, percent: 100, floor: 256 * mib, want: 102, wantT: 256 * mib},
		{name: "large live heap: the percent alone", live: 700 * mib, percent: 100, floor: 256 * mib, want: 100},
		{name: "live heap over the floor with a small percent", live: 300 * mib, percent: 10, floor: 256 * mib, want: 10},
		{name: "a larger percent already reaches the floor", live: 64 * mib, percent: 400, floor: 256 * mib, want: 400},
		{name: "unknown live heap: the runtime's minimum heap reaches the floor", live: 0, percent: 100, floor: 256 * mib, want: 6400, wantT: 256 * mib},
		{name: "tiny live heap", live: 1, percent: 100, floor: 8 * mib, want: 200, wantT: 8 * mib},
		{name: "live heap of the runtime's minimum", live: 4 * mib, percent: 100, floor: 256 * mib, want: 6300, wantT: 256 * mib},
		{name: "capped at half the memory limit", live: 16 * mib, percent: 100, floor: 256 * mib, limit: 128 * mib, want: 300, wantT: 64 * mib},
		{name: "limit far above the floor changes nothing", live: 16 * mib, percent: 100, floor: 256 * mib, limit: 16 << 30, want: 1500},
		{name: "limit under twice the live heap: the percent alone", live: 100 * mib, percent: 100, floor: 256 * mib, limit: 128 * mib, want: 100},
		{name: "capped at the runtime's largest percent", live: 4 * mib, percent: 100, floor: 1 << 40, want: maxPercent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := PercentFor(tc.live, tc.percent, tc.floor, tc.limit)
			if got != tc.want {
				t.Fatalf("PercentFor(%d, %d, %d, %d) = %d, want %d", tc.live, tc.percent, tc.floor, tc.limit, got, tc.want)
			}
			if tc.wantT > 0 {
				if target := heapTarget(tc.live, got); target < tc.wantT || target > tc.wantT+max(tc.live, minHeap)/50 {
					t.Fatalf("percent %d gives a heap target of %d, want %d (within 2%% of the live heap above)", got, target, tc.wantT)
				}
			}
		})
	}
}

// TestPercentForProperties: over a grid, the answer never goes below the configured percent, gives a heap
// target at least the capped floor, and is the least percent that does so when it raises.
func TestPercentForProperties(t *testing.T) {
	for live := int64(0); live <= 1<<30; live = live*3 + 1<<20 {
		for _, pct := range []int{1, 50, 100, 400} {
			for _, floor := range []int64{0, 4 << 20, 100 << 20, 256 << 20, 1 << 30} {
				for _, limit := range []int64{0, 64 << 20, 512 << 20, 1 << 40} {
					got := PercentFor(live, pct, floor, limit)
					f := capFloor(floor, limit)
					if got < pct {
						t.Fatalf("PercentFor(%d, %d, %d, %d) = %d: below the percent", live, pct, floor, limit, got)
					}
					if heapTarget(live, got)+1 < f { // +1: integer division of the check itself
						t.Fatalf("PercentFor(%d, %d, %d, %d) = %d: target %d under the floor %d", live, pct, floor, limit, got, heapTarget(live, got), f)
					}
					if got > pct && heapTarget(live, got-1) >= f {
						t.Fatalf("PercentFor(%d, %d, %d, %d) = %d: %d reaches the floor already", live, pct, floor, limit, got, got-1)
					}
				}
			}
		}
	}
}

// heapGoal reads the runtime's present heap target.
func heapGoal() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// waitGC runs collections until cond holds, for at most ten seconds (the hook runs on the finalizer
// goroutine, after the collection that found the sentinel unreachable).
func waitGC(cond func() bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		runtime.GC()
		runtime.Gosched()
	}
	return true
}

// TestTuner: the hook runs once per collection and keeps the runtime's heap target at the floor while the
// live heap is small; a memory limit caps it; Stop sets the percent back, and after the next collection no
// finalizer is left armed and the hook runs no more.
func TestTuner(t *testing.T) {
	oldPct := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(oldPct); debug.SetMemoryLimit(oldLimit) })
	debug.SetMemoryLimit(1 << 40)
	runtime.GC()
	if g := heapGoal(); g >= 64<<20 {
		t.Skipf("this test binary's heap target is %d MiB already at percent 100: too large to see a floor of 128 MiB", g>>20)
	}

	if (Plan{SetPercent: true, Percent: 100}).Start() != nil || (Plan{PercentBy: "GOGC", MinHeap: 1 << 30}).Start() != nil ||
		(Plan{SetPercent: true, Percent: -1, MinHeap: 1 << 30}).Start() != nil {
		t.Fatal("a plan without a floor, or without a percent of its own, started a tuner")
	}
	tu := Plan{SetPercent: true, Percent: 100, MinHeap: 128 << 20}.Start()
	if pct, _ := tu.Percent(); pct <= 100 || debug.SetGCPercent(pct) != pct {
		t.Fatalf("percent %d at Start, want it raised and in force", pct)
	}
	if !waitGC(func() bool { _, c := tu.Percent(); return c >= 3 }) {
		t.Fatal("the hook did not run after three collections")
	}
	// NB: a collection's target comes from the percent the hook set after the one before, for that one's
	// live heap (this test binary's is under the runtime's minimum, so the target is that minimum's).
	if g := heapGoal(); g < 120<<20 || g > 140<<20 {
		t.Fatalf("heap target %d MiB with a floor of 128 MiB", g>>20)
	}

	// A memory limit lowers it: the floor is capped at half the limit.
	debug.SetMemoryLimit(128 << 20)
	_, c0 := tu.Percent()
	if !waitGC(func() bool { _, c := tu.Percent(); return c >= c0+2 }) {
		t.Fatal("the hook stopped running")
	}
	if g := heapGoal(); g < 60<<20 || g > 72<<20 {
		t.Fatalf("heap target %d MiB with a floor of 128 MiB capped by a limit of 128 MiB", g>>20)
	}
	debug.SetMemoryLimit(1 << 40)

	tu.Stop()
	tu.Stop() // idempotent
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("percent %d after Stop, want the configured 100 back", got)
	}
	_, stopped := tu.Percent()
	if !waitGC(func() bool {
		select {
		case <-tu.Done():
			return true
		default:
			return false
		}
	}) {
		t.Fatal("the sentinel's finalizer still armed after collections since Stop")
	}
	for range 3 {
		runtime.GC()
	}
	if pct, c := tu.Percent(); c != stopped || pct != 100 || debug.SetGCPercent(100) != 100 {
		t.Fatalf("after Stop: hook runs %d (were %d), percent %d", c, stopped, pct)
	}
	(*Tuner)(nil).Stop() // no tuner, nothing to stop
}

// TestPercentForDocExamples: the examples of the package doc.
func TestPercentForDocExamples(t *testing.T) {
	if got := PercentFor(48<<20, 100, 256<<20, 0); got != 434 {
		t.Errorf("48 MiB live: percent %d, want 434", got)
	}
	if got := PercentFor(300<<20, 100, 256<<20, 0); got != 100 {
		t.Errorf("300 MiB live: percent %d, want 100", got)
	}
}

// heapTarget is the runtime's next heap target for a live heap and a percent (stacks and globals aside):
// live x (1 + percent/100), and at least minHeap x percent/100.
func heapTarget(live int64, percent int) int64 {
	return max(live+live*int64(percent)/100, minHeap*int64(percent)/100)
}
