package actors

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// TestFifo: messages come out in the order they went in, across the buffer in the struct and growth, and a
// queue that never quite empties keeps its size (pushes shift the queue instead of growing it).
func TestFifo(t *testing.T) {
	var q fifo
	next, want := 0, 0
	for round := range 50 {
		for range round % 7 {
			q.push(next)
			next++
		}
		for range round % 5 {
			if m := q.pop(); m != nil {
				if m != want {
					t.Fatalf("popped %v, want %d", m, want)
				}
				want++
			}
		}
	}
	for m := q.pop(); m != nil; m = q.pop() {
		if m != want {
			t.Fatalf("popped %v, want %d", m, want)
		}
		want++
	}
	if want != next {
		t.Fatalf("%d messages out of %d", want, next)
	}
	var buf [2]any
	r := fifo{items: buf[:0]}
	r.push(0)
	for i := 1; i < 1000; i++ {
		r.push(i)
		if m := r.pop(); m != i-1 {
			t.Fatalf("popped %v, want %d", m, i-1)
		}
	}
	if cap(r.items) > 4 {
		t.Fatalf("a queue of one or two messages grew to %d slots", cap(r.items))
	}
}

// mailboxActor embeds its Mailbox, as a coordinator's request actor does.
type mailboxActor struct {
	mailbox Mailbox
	recv    func(actor.Context)
}

func (a *mailboxActor) Receive(c actor.Context) { a.recv(c) }

func (a *mailboxActor) props() *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return a },
		actor.WithMailbox(func() actor.Mailbox { return &a.mailbox }))
}

// TestMailboxDelivers: Started first, then every message of every sender in each sender's order (senders on
// many goroutines at once, the actor on protoactor's default dispatcher), then Stopping and Stopped.
func TestMailboxDelivers(t *testing.T) {
	sys := NewSystem(slog.New(slog.DiscardHandler))
	const senders, each = 8, 500
	got := make(chan any, senders*each+8)
	a := &mailboxActor{recv: func(c actor.Context) { got <- c.Message() }}
	pid := sys.Root.Spawn(a.props())
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				sys.Root.Send(pid, [2]int{s, i})
			}
		}()
	}
	wg.Wait()
	sys.Root.Poison(pid)                     // NB: after the queued messages (Stop, a system message, would come before them)
	deadline := time.After(30 * time.Second) // NB: a bound on messages that must come, not a wait
	next := make([]int, senders)
	started, stopping := false, false
	for {
		var m any
		select {
		case m = <-got:
		case <-deadline:
			t.Fatalf("Stopped never came; next message per sender %v", next)
		}
		switch m := m.(type) {
		case *actor.Started:
			started = true
		case [2]int:
			if !started || m[1] != next[m[0]] {
				t.Fatalf("message %v: started %v, want sender %d's message %d", m, started, m[0], next[m[0]])
			}
			next[m[0]]++
		case *actor.Stopping:
			stopping = true
		case *actor.Stopped:
			for s, n := range next {
				if n != each {
					t.Fatalf("stopped after %d of sender %d's %d messages", n, s, each)
				}
			}
			if !stopping {
				t.Fatal("Stopped without Stopping")
			}
			return
		}
	}
}

// recordingMailbox records the types of the system messages protoactor posts.
type recordingMailbox struct {
	*Mailbox
	mu  sync.Mutex
	sys []string
}

func (m *recordingMailbox) PostSystemMessage(msg any) {
	m.mu.Lock()
	m.sys = append(m.sys, fmt.Sprintf("%T", msg))
	m.mu.Unlock()
	m.Mailbox.PostSystemMessage(msg)
}

func (m *recordingMailbox) posted() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.sys...)
}

// TestCanaryMailboxSupervision pins what Mailbox assumes of protoactor's supervision: a panic in Receive is
// escalated through the mailbox's invoker (EscalateFailure), which suspends the mailbox with an
// *actor.SuspendMailbox system message and, once the supervisor restarts the actor, resumes it with an
// *actor.ResumeMailbox; the messages posted meanwhile are delivered to the restarted instance, in order.
// If an upgrade renames those messages, a suspended Mailbox would pass them to the actor instead.
func TestCanaryMailboxSupervision(t *testing.T) {
	sys := NewSystem(slog.New(slog.DiscardHandler))
	got := make(chan any, 16)
	var rec *recordingMailbox
	props := actor.PropsFromProducer(func() actor.Actor {
		return actor.ReceiveFunc(func(c actor.Context) {
			switch m := c.Message().(type) {
			case string:
				if m == "boom" {
					panic("boom")
				}
				got <- m
			case *actor.Restarting:
				got <- "restarting"
			}
		})
	}, actor.WithMailbox(func() actor.Mailbox {
		rec = &recordingMailbox{Mailbox: &Mailbox{}}
		return rec
	}), actor.WithSupervisor(actor.NewOneForOneStrategy(10, time.Minute, actor.DefaultDecider)))
	root := actor.NewRootContext(sys, nil).WithGuardian(actor.NewOneForOneStrategy(10, time.Minute, actor.DefaultDecider))
	pid, err := root.SpawnNamed(props, "canary-mailbox")
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Root.Stop(pid)
	for _, m := range []string{"a", "boom", "b", "c"} {
		sys.Root.Send(pid, m)
	}
	var seq []any
	deadline := time.After(30 * time.Second) // NB: a bound on messages that must come, not a wait
	for len(seq) < 4 {
		select {
		case m := <-got:
			seq = append(seq, m)
		case <-deadline:
			t.Fatalf("got %v, want a, restarting, b, c", seq)
		}
	}
	if fmt.Sprint(seq) != "[a restarting b c]" {
		t.Fatalf("got %v, want a, restarting, b, c", seq)
	}
	posted := fmt.Sprint(rec.posted())
	if posted != "[*actor.Started *actor.SuspendMailbox *actor.Restart *actor.ResumeMailbox]" {
		t.Fatalf("system messages posted %s", posted)
	}
}

// TestCanaryMailboxSpawnAllocations pins what Mailbox saves: a spawn and stop with protoactor's default
// mailbox allocates at least four objects more than with a Mailbox inside the actor (the mailbox, its
// queues, their nodes, the closure of each scheduled run). If an upgrade makes the default cheaper, the
// coordinator's own mailbox may no longer pay for itself: re-measure.
func TestCanaryMailboxSpawnAllocations(t *testing.T) {
	sys := NewSystem(slog.New(slog.DiscardHandler))
	// NB: a synchronized dispatcher runs the whole life inside Spawn and Stop, so allocations are counted.
	disp := actor.WithDispatcher(actor.NewSynchronizedDispatcher(300))
	recv := func(c actor.Context) {
		if _, ok := c.Message().(*actor.Started); ok {
			c.Send(c.Self(), "ping")
		}
	}
	def := minAllocs(func() {
		a := &mailboxActor{recv: recv}
		pid := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return a }, disp))
		sys.Root.Stop(pid)
	})
	own := minAllocs(func() {
		a := &mailboxActor{recv: recv}
		props := a.props()
		props.Configure(disp)
		pid := sys.Root.Spawn(props)
		sys.Root.Stop(pid)
	})
	t.Logf("spawn, one message, stop: %v allocations with the default mailbox, %v with Mailbox", def, own)
	if def-own < 4 {
		t.Fatalf("the default mailbox costs %v allocations, Mailbox %v: fewer than 4 saved", def, own)
	}
}
