package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/ring"
)

// fdHarness drives a failureDetector with a fake clock and scripted probes, memberlist views and
// memberships. The probers' tickers run on real time (a few milliseconds); every decision that depends on
// time reads the fake clock.
type fdHarness struct {
	d      *failureDetector
	mu     sync.Mutex
	now    time.Time
	answer map[ring.NodeID]bool // probe succeeds
	dead   map[ring.NodeID]bool // memberlist sees the node dead
	gone   map[ring.NodeID]bool // no longer a member
	probes atomic.Int64
	reads  atomic.Int64 // reads of the fake clock: each prober round reads it once before it decides
}

func newFDHarness(t *testing.T) *fdHarness {
	h := &fdHarness{now: time.Unix(1000, 0), answer: map[ring.NodeID]bool{}, dead: map[ring.NodeID]bool{},
		gone: map[ring.NodeID]bool{}}
	probe := func(ctx context.Context, n ring.NodeID) error {
		h.probes.Add(1)
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.answer[n] {
			return nil
		}
		return errors.New("no answer")
	}
	alive := func(n ring.NodeID) bool { h.mu.Lock(); defer h.mu.Unlock(); return !h.dead[n] }
	member := func(n ring.NodeID) bool { h.mu.Lock(); defer h.mu.Unlock(); return !h.gone[n] }
	clock := func() time.Time { h.reads.Add(1); h.mu.Lock(); defer h.mu.Unlock(); return h.now }
	h.d = newFailureDetector(time.Second, 2*time.Millisecond, probe, alive, member, clock, slog.New(slog.DiscardHandler))
	t.Cleanup(h.d.Close)
	return h
}

func (h *fdHarness) set(f func()) { h.mu.Lock(); defer h.mu.Unlock(); f() }

// rounds waits until one running prober has gone through n more rounds (read the fake clock n more times),
// so a negative check after it has seen n chances to go wrong.
func (h *fdHarness) rounds(t *testing.T, n int64) {
	t.Helper()
	from := h.reads.Load()
	eventually.True(t, 5*time.Second, fmt.Sprintf("%d prober rounds", n), func() bool { return h.reads.Load() >= from+n })
}

func TestFailureDetectorSuspectsUntilAPingIsAnswered(t *testing.T) {
	h := newFDHarness(t)
	d := h.d
	if !d.Up("b") {
		t.Fatal("a node nobody reported is down")
	}
	d.Suspect("b")
	if d.Up("b") {
		t.Fatal("a reported node is still up")
	}
	if !d.Up("c") {
		t.Fatal("another node went down with it")
	}
	// Before minDown (fake clock frozen) nothing is probed, even though the node would answer.
	h.set(func() { h.answer["b"] = true })
	h.rounds(t, 10)
	if h.probes.Load() != 0 || d.Up("b") {
		t.Fatalf("probed %d times and up=%v before minDown", h.probes.Load(), d.Up("b"))
	}
	// After minDown, a node that does not answer stays down.
	h.set(func() { h.answer["b"] = false; h.now = h.now.Add(2 * time.Second) })
	eventually.True(t, 5*time.Second, "probes start", func() bool { return h.probes.Load() >= 3 })
	if d.Up("b") {
		t.Fatal("up without an answered ping")
	}
	// It answers: up again.
	h.set(func() { h.answer["b"] = true })
	eventually.True(t, 5*time.Second, "up after an answered ping", func() bool { return d.Up("b") })
	if got := d.suspicions.Load(); got != 1 {
		t.Fatalf("suspicions = %d, want 1", got)
	}
}

func TestFailureDetectorWaitsForMemberlistAndForgetsFormerMembers(t *testing.T) {
	h := newFDHarness(t)
	d := h.d
	// memberlist sees the node dead: an answered ping does not end the suspicion.
	h.set(func() { h.dead["b"], h.answer["b"] = true, true; h.now = h.now.Add(time.Hour) })
	d.Suspect("b")
	h.set(func() { h.now = h.now.Add(2 * time.Second) })
	h.rounds(t, 10)
	if d.Up("b") || h.probes.Load() != 0 {
		t.Fatalf("up=%v probes=%d while memberlist sees the node dead", d.Up("b"), h.probes.Load())
	}
	h.set(func() { h.dead["b"] = false })
	eventually.True(t, 5*time.Second, "up once memberlist sees it and it answers", func() bool { return d.Up("b") })

	// A dead node that left the cluster is forgotten (its prober ends).
	h.set(func() { h.dead["c"], h.gone["c"] = true, true })
	d.Suspect("c")
	h.set(func() { h.now = h.now.Add(2 * time.Second) })
	eventually.True(t, 5*time.Second, "a former member is forgotten", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.Up("c") && !d.probing["c"]
	})
}

func TestFailureDetectorFreshFailureRestartsMinDown(t *testing.T) {
	h := newFDHarness(t)
	d := h.d
	d.Suspect("b")
	h.set(func() { h.now = h.now.Add(2 * time.Second) })
	d.Suspect("b") // fails again: another minDown from now
	h.set(func() { h.answer["b"] = true })
	h.rounds(t, 10)
	if d.Up("b") {
		t.Fatal("a fresh failure did not restart minDown")
	}
	h.set(func() { h.now = h.now.Add(2 * time.Second) })
	eventually.True(t, 5*time.Second, "up after the second minDown", func() bool { return d.Up("b") })
	// Close stops every prober.
	d.Suspect("c")
	d.Close()
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		t.Fatal("not closed")
	}
}
