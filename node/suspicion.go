package node

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gokai-kv/gokai/ring"
)

// failureDetector is this node's own view of which peers answer it, beside memberlist's (Dynamo §4.8.3:
// "if node B does not respond to node A's messages, A considers B failed... A periodically retries B to
// check for the latter's recovery").
//
// Every failed or silent replica request (coordinator.Router.ReportFailure) makes its node suspected at
// once, and requests are routed around it (sloppy quorum). A suspicion lasts at least minDown; after that it
// ends when a ping over the transport is answered (and memberlist sees the node alive). So the two sides of
// a partition each switch to fallbacks after their first silent requests, however long memberlist's own
// failure detector takes to agree (on the isolated side, with no one to confirm its suspicions, memberlist
// can take tens of seconds), and switch back within a probe interval of the heal.
//
// Up is on every request's path: it reads an immutable map through an atomic pointer. Suspect and the
// probers take mu.
type failureDetector struct {
	minDown    time.Duration
	probeEvery time.Duration
	// probe pings node over the transport and returns nil when it answered.
	probe func(ctx context.Context, node ring.NodeID) error
	// alive reports memberlist's view; member whether node is still in the cluster state.
	alive, member func(node ring.NodeID) bool
	now           func() time.Time
	log           *slog.Logger

	down atomic.Pointer[map[ring.NodeID]time.Time] // suspected node -> since; never modified in place

	mu      sync.Mutex // serialises changes of down; REQUIRES for probing and closed
	probing map[ring.NodeID]bool
	closed  bool
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	suspicions atomic.Int64 // nodes that became suspected, since start
}

func newFailureDetector(minDown, probeEvery time.Duration, probe func(context.Context, ring.NodeID) error,
	alive, member func(ring.NodeID) bool, now func() time.Time, log *slog.Logger) *failureDetector {
	d := &failureDetector{minDown: minDown, probeEvery: probeEvery, probe: probe, alive: alive, member: member,
		now: now, log: log, probing: map[ring.NodeID]bool{}}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	empty := map[ring.NodeID]time.Time{}
	d.down.Store(&empty)
	return d
}

// Up reports whether node is not suspected.
func (d *failureDetector) Up(node ring.NodeID) bool {
	down := *d.down.Load()
	if len(down) == 0 {
		return true
	}
	_, suspected := down[node]
	return !suspected
}

// Suspected lists the suspected nodes.
func (d *failureDetector) Suspected() []ring.NodeID {
	var out []ring.NodeID
	for n := range *d.down.Load() {
		out = append(out, n)
	}
	return out
}

// Suspect marks node down (again: a repeated failure restarts minDown) and makes sure a prober runs for it.
func (d *failureDetector) Suspect(node ring.NodeID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	_, already := (*d.down.Load())[node]
	d.setLocked(node, d.now(), true)
	if !already {
		d.suspicions.Add(1)
		d.log.Info("cluster: peer suspected: it failed or did not answer a request", "peer", string(node))
	}
	if !d.probing[node] {
		d.probing[node] = true
		d.wg.Add(1)
		go d.prober(node)
	}
}

// setLocked publishes a copy of down with node added (at since) or removed. REQUIRES: mu held.
func (d *failureDetector) setLocked(node ring.NodeID, since time.Time, add bool) {
	next := maps.Clone(*d.down.Load())
	if add {
		next[node] = since
	} else {
		delete(next, node)
	}
	d.down.Store(&next)
}

// prober pings a suspected node every probeEvery, once minDown has passed since its last failure, until it
// answers while memberlist sees it alive (the suspicion ends), it leaves the cluster, or Close.
func (d *failureDetector) prober(node ring.NodeID) {
	defer d.wg.Done()
	t := time.NewTicker(d.probeEvery)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		}
		since, ok := (*d.down.Load())[node]
		if !ok {
			d.endProbe(node, false)
			return
		}
		if d.now().Sub(since) < d.minDown {
			continue
		}
		if !d.member(node) && !d.alive(node) {
			d.endProbe(node, true) // gone from the cluster: nothing to wait for
			return
		}
		if !d.alive(node) {
			continue // memberlist's verdict stands until it sees the node again
		}
		ctx, cancel := context.WithTimeout(d.ctx, d.probeEvery)
		err := d.probe(ctx, node)
		cancel()
		if err != nil {
			continue
		}
		if d.endProbe(node, true) {
			d.log.Info("cluster: peer answers again", "peer", string(node), "suspected_for", d.now().Sub(since).Round(time.Millisecond))
		}
		return
	}
}

// endProbe stops node's prober; with clear, it also ends the suspicion unless a failure came after the
// probe started (the node then stays suspected and a new prober starts). It reports whether the suspicion
// ended.
func (d *failureDetector) endProbe(node ring.NodeID, clear bool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.probing, node)
	since, ok := (*d.down.Load())[node]
	if !ok || d.closed {
		return false
	}
	if clear && d.now().Sub(since) >= d.minDown {
		d.setLocked(node, time.Time{}, false)
		return true
	}
	// Still suspected (a fresh failure arrived meanwhile): keep probing.
	d.probing[node] = true
	d.wg.Add(1)
	go d.prober(node)
	return false
}

// Close stops the probers and waits for them.
func (d *failureDetector) Close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
}
