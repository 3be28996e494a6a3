package gctune

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// minHeap is the runtime's smallest heap target at percent 100: at percent p the target is at least
// minHeap x p/100, whatever the live heap.
const minHeap = 4 << 20

// maxPercent is the largest percent the runtime takes (GOGC's range).
const maxPercent = 1000000

// PercentFor decides the GC percent to set after a collection that left live bytes of live heap: the
// configured percent, raised to the least percent whose next heap target (the runtime's: live x (1 +
// percent/100), and at least minHeap x percent/100) is at least floor; the floor is capped at half the soft
// memory limit (limit 0: none), so the heap it allows leaves the limit room for everything else a process
// holds. A live heap whose target at the configured percent reaches the
// floor (at 100: a live heap of half the floor or more) gets the configured percent alone, and so does a
// percent of -1 (off) or a floor of 0. Pure.
func PercentFor(live int64, percent int, floor, limit int64) int {
	floor = capFloor(floor, limit)
	if percent < 0 || floor <= 0 || live >= floor {
		return percent
	}
	live = max(live, 0)
	// NB: floor <= 1 TiB (parseMinHeap), so no product here overflows.
	need := (floor*100 + minHeap - 1) / minHeap // the runtime's minimum alone reaches the floor
	if live > 0 {
		need = min(need, ((floor-live)*100+live-1)/live) // live x (1 + need/100) reaches it
	}
	if need <= int64(percent) {
		return percent
	}
	return int(min(need, maxPercent))
}

// capFloor returns floor capped at half the soft memory limit (limit 0: no limit).
func capFloor(floor, limit int64) int64 {
	if limit > 0 && floor > limit/2 {
		return limit / 2
	}
	return floor
}

// runtimeLimit turns the runtime's memory limit (math.MaxInt64 when none) into PercentFor's (0 when none).
func runtimeLimit(l int64) int64 {
	if l == math.MaxInt64 {
		return 0
	}
	return l
}

// Tuner keeps the heap floor: a hook the Go runtime runs once per collection (the finalizer of a sentinel
// object, re-armed each time, the gctuner pattern) reads the live heap and the memory limit from
// runtime/metrics and sets the percent PercentFor decides. It owns no goroutine: the hook runs on the
// runtime's finalizer goroutine. The percent is process-wide: run at most one Tuner per process, in the
// process's shell.
type Tuner struct {
	percent int
	floor   int64
	done    chan struct{} // closed when the hook has seen the stop and dropped the sentinel

	mu      sync.Mutex
	stopped bool              // REQUIRES: mu held
	set     int               // the percent in force, the last one set; REQUIRES: mu held
	cycles  int               // hook runs; REQUIRES: mu held
	samples [2]metrics.Sample // live heap, memory limit; REQUIRES: mu held
}

// sentinel is the object whose finalizer is the hook. NB: it holds a pointer, so the runtime's tiny
// allocator (which batches small pointer-free objects, and with them their finalizers) leaves it alone.
type sentinel struct{ t *Tuner }

// Start starts keeping p's heap floor, with p's percent as the one to fall back on; nil when p has no
// floor. It sets the percent for the present live heap at once. Stop it with Stop.
func (p Plan) Start() *Tuner {
	if p.MinHeap <= 0 || !p.SetPercent || p.Percent <= 0 {
		return nil
	}
	return startTuner(p.Percent, p.MinHeap)
}

func startTuner(percent int, floor int64) *Tuner {
	t := &Tuner{percent: percent, floor: floor, set: percent, done: make(chan struct{})}
	t.samples[0].Name = "/gc/heap/live:bytes"
	t.samples[1].Name = "/gc/gomemlimit:bytes"
	t.mu.Lock()
	t.tuneLocked()
	t.mu.Unlock()
	runtime.SetFinalizer(&sentinel{t: t}, onCollection)
	return t
}

// onCollection is the hook: the runtime runs it on its finalizer goroutine after a collection found the
// sentinel unreachable. It re-arms itself on the same sentinel unless the tuner has stopped.
func onCollection(s *sentinel) {
	t := s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		close(t.done) // NB: not re-armed: the sentinel is garbage now
		return
	}
	t.cycles++
	t.tuneLocked()
	runtime.SetFinalizer(s, onCollection)
}

// tuneLocked sets the percent for the live heap the last collection left. REQUIRES: mu held.
func (t *Tuner) tuneLocked() {
	metrics.Read(t.samples[:])
	var live, limit int64
	if v := t.samples[0].Value; v.Kind() == metrics.KindUint64 {
		live = int64(min(v.Uint64(), math.MaxInt64))
	}
	if v := t.samples[1].Value; v.Kind() == metrics.KindUint64 {
		limit = runtimeLimit(int64(min(v.Uint64(), math.MaxInt64)))
	}
	if pct := PercentFor(live, t.percent, t.floor, limit); pct != t.set {
		debug.SetGCPercent(pct)
		t.set = pct
	}
}

// Stop stops the hook and sets the configured percent back. Once it returns the hook changes nothing; the
// sentinel is dropped at the next collection (Done is closed then). Safe to call more than once and on nil.
func (t *Tuner) Stop() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.stopped = true
	if t.set != t.percent {
		debug.SetGCPercent(t.percent)
		t.set = t.percent
	}
}

// Done is closed once the hook has run after Stop and left no finalizer armed.
func (t *Tuner) Done() <-chan struct{} { return t.done }

// Percent returns the percent the tuner last set, and how many collections the hook has run after.
func (t *Tuner) Percent() (percent, cycles int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.set, t.cycles
}
