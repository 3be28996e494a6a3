package actors

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

func TestDispatcherRunsEverythingAndNeverBlocks(t *testing.T) {
	d := NewDispatcher(2, 10)
	var ran atomic.Int64
	var wg sync.WaitGroup
	release := make(chan struct{})
	// Occupy both workers, then schedule far more runs than the queue holds: Schedule must not block.
	for i := 0; i < 2; i++ {
		wg.Add(1)
		d.Schedule(func() { defer wg.Done(); <-release; ran.Add(1) })
	}
	const extra = 1000
	for i := 0; i < extra; i++ {
		wg.Add(1)
		d.Schedule(func() {
			defer wg.Done()
			ran.Add(1)
			// A run that schedules another run (an actor sending to an actor) must not deadlock either.
			wg.Add(1)
			d.Schedule(func() { defer wg.Done(); ran.Add(1) })
		})
	}
	close(release)
	wg.Wait()
	if got := ran.Load(); got != 2+2*extra {
		t.Fatalf("ran %d, want %d", got, 2+2*extra)
	}
	if d.Throughput() != 10 {
		t.Fatalf("throughput %d", d.Throughput())
	}
	d.Close()
	// After Close, runs still happen (on goroutines of their own).
	done := make(chan struct{})
	d.Schedule(func() { close(done) })
	<-done
	d.Close() // idempotent
}

func TestInlineFirstRunsTheFirstRunInlineAndTheRestOnThePool(t *testing.T) {
	pool := NewDispatcher(2, 10)
	defer pool.Close()
	d := &InlineFirst{Pool: pool}
	ran := false
	d.Schedule(func() { ran = true })
	if !ran {
		t.Fatal("the first run did not run before Schedule returned")
	}
	// A later run must not run on the caller: it blocks until the caller lets it go, which would
	// deadlock an inline run.
	release, done := make(chan struct{}), make(chan struct{})
	d.Schedule(func() {
		<-release
		close(done)
	})
	close(release)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the second run never ran")
	}
	if d.Throughput() != 10 {
		t.Fatalf("throughput %d, want the pool's 10", d.Throughput())
	}
}

// countingPool is a dispatcher that counts the runs it is given and runs each on a goroutine of its own.
type countingPool struct{ n atomic.Int64 }

func (p *countingPool) Schedule(fn func()) { p.n.Add(1); go fn() }
func (p *countingPool) Throughput() int    { return 300 }

// peerInlineActor spawns an actor on an InlineFirst whose Mailbox runs peer messages inline, and whose runs
// report the messages they see; idle reports whether no run of it is in progress (a message posted during
// a run is taken by that run, wherever it runs).
func peerInlineActor(t *testing.T, sys *actor.ActorSystem, pool *countingPool, seen chan<- any) (pid *actor.PID, idle func() bool) {
	t.Helper()
	d := &InlineFirst{Pool: pool}
	a := &mailboxActor{recv: func(ctx actor.Context) {
		if _, ok := ctx.Message().(actor.SystemMessage); !ok {
			seen <- ctx.Message()
		}
	}}
	a.mailbox.RunPeerMessagesInline(d)
	pid = sys.Root.Spawn(WireProps(a.props()).Configure(actor.WithDispatcher(d)))
	return pid, func() bool { return a.mailbox.status.Load() == mailboxIdle }
}

// TestPeerMailboxRunsPeerMessagesInline: with Mailbox.RunPeerMessagesInline, a message that carries the transport's stamp runs
// the actor on the goroutine that posted it; any other message after the first run goes to the pool.
func TestPeerMailboxRunsPeerMessagesInline(t *testing.T) {
	sys := NewSystem(slog.New(slog.DiscardHandler))
	pool := &countingPool{}
	seen := make(chan any, 4)
	pid, _ := peerInlineActor(t, sys, pool, seen)

	stamped := &actor.MessageEnvelope{Header: map[string]string{RemoteHeader: "1"}, Message: "from a peer", Sender: pid}
	sys.Root.Send(pid, stamped)
	select {
	case m := <-seen: // NB: buffered; an inline run delivered it before Send returned
		if m != "from a peer" {
			t.Fatalf("saw %v", m)
		}
	default:
		t.Fatal("a message with the transport's stamp did not run inline")
	}
	if n := pool.n.Load(); n != 0 {
		t.Fatalf("%d runs went to the pool, want 0", n)
	}

	sys.Root.Send(pid, "local")
	if m := <-seen; m != "local" {
		t.Fatalf("saw %v", m)
	}
	if n := pool.n.Load(); n != 1 {
		t.Fatalf("a local message after the first run: %d pool runs, want 1", n)
	}
}
