package netserve

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
)

// Tracker is a server's connection bookkeeping: the listeners it serves, the connections it has admitted
// (up to a maximum), and the goroutines Shutdown waits for. C is the server's connection type.
//
// Use: Serve runs the accept loop on a listener; the server's accept function turns a client away when
// Full, else creates its connection, Adds it and starts its goroutine, which calls Done as it ends.
// Shutdown is Close (stop accepting, ask each connection to stop), Wait (with a deadline), and, if the
// deadline passes, Each to force the rest closed.
type Tracker[C comparable] struct {
	max      int
	closing  atomic.Bool
	open     Gauge         // connections added and not done
	stopping chan struct{} // closed by Close

	// wg counts the tracked connections and tasks (AddTask).
	wg sync.WaitGroup

	mu        sync.Mutex
	listeners map[net.Listener]struct{} // REQUIRES: mu held
	conns     map[C]struct{}            // REQUIRES: mu held
}

// NewTracker returns a Tracker that admits up to maxConns connections at once (see Full).
func NewTracker[C comparable](maxConns int) *Tracker[C] {
	return &Tracker[C]{
		max:       maxConns,
		stopping:  make(chan struct{}),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[C]struct{}),
	}
}

// Closing reports whether Close has been called.
func (t *Tracker[C]) Closing() bool { return t.closing.Load() }

// Stopping returns a channel that Close closes.
func (t *Tracker[C]) Stopping() <-chan struct{} { return t.stopping }

// Open returns the gauge of connections added and not yet done; servers report it (curr_connections).
func (t *Tracker[C]) Open() *Gauge { return &t.open }

// Full reports whether the maximum number of connections is open: the server turns the next one away.
// NB: admission is checked, then added, as two steps; connections accepted at once on several listeners
// may go over the maximum by one each.
func (t *Tracker[C]) Full() bool { return t.open.n.Load() >= int64(t.max) }

// Serve runs AcceptLoop on ln until ln fails or Close is called, tracking ln meanwhile so that Close
// closes it. It closes ln before returning. It returns nil once Close has been called (also when Close came
// before Serve), else the accept error. wake cuts an accept backoff short (see AcceptLoop).
func (t *Tracker[C]) Serve(ln net.Listener, name string, log *slog.Logger, wake <-chan struct{}, accept func(net.Conn)) error {
	t.mu.Lock()
	if t.closing.Load() {
		t.mu.Unlock()
		ln.Close()
		return nil
	}
	t.listeners[ln] = struct{}{}
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.listeners, ln)
		t.mu.Unlock()
		ln.Close()
	}()
	return AcceptLoop(ln, name, log, t.closing.Load, wake, accept)
}

// Add tracks c until Done(c): Wait waits for it, and Close and Each see it. It reports false, tracking
// nothing, once Close has been called; the caller then discards c.
func (t *Tracker[C]) Add(c C) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing.Load() {
		return false
	}
	t.conns[c] = struct{}{}
	t.wg.Add(1)
	t.open.n.Add(1)
	return true
}

// Done stops tracking c, added before. The connection's goroutine calls it as it ends.
func (t *Tracker[C]) Done(c C) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	t.open.n.Add(-1)
	t.wg.Done()
}

// AddTask counts a task other than a connection (a delayed job) that Wait waits for, until TaskDone. It
// reports false, counting nothing, once Close has been called; the task must then not run.
func (t *Tracker[C]) AddTask() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing.Load() {
		return false
	}
	t.wg.Add(1)
	return true
}

// TaskDone ends a task counted by AddTask.
func (t *Tracker[C]) TaskDone() { t.wg.Done() }

// Close begins the shutdown: from now on Closing reports true, Add and AddTask refuse, and Serve returns.
// It closes the listeners and the Stopping channel, then calls stop on each connection, with the lock held
// (no connection is added or done meanwhile). Calls after the first do only the stop calls.
func (t *Tracker[C]) Close(stop func(C)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closing.Swap(true) {
		close(t.stopping)
	}
	for ln := range t.listeners {
		ln.Close()
	}
	for c := range t.conns {
		stop(c)
	}
}

// Wait waits until every connection and task is done and returns nil, or returns ctx's error when ctx ends
// first (the goroutine waiting on their behalf ends with the last of them). Call it after Close.
func (t *Tracker[C]) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Each calls f on every connection still tracked, with the lock held.
func (t *Tracker[C]) Each(f func(C)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.conns {
		f(c)
	}
}

// Gauge is a count kept by a Tracker and read from any goroutine.
type Gauge struct{ n atomic.Int64 }

// Load returns the count.
func (g *Gauge) Load() int64 { return g.n.Load() }
