package actors

import (
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestDecodeReceived: an actor made with WireSenderProps that passes its messages through DecodeReceived gets
// wire messages decoded, as WireProps's receiver middleware would hand them, other messages as they are, and
// drops a wire message that does not decode.
func TestDecodeReceived(t *testing.T) {
	sys := NewSystem(slog.New(slog.DiscardHandler))
	got := make(chan any, 8)
	pid := sys.Root.Spawn(WireSenderProps(actor.PropsFromFunc(func(c actor.Context) {
		m, ok := DecodeReceived(c, c.Message())
		switch {
		case !ok:
			got <- "dropped"
		case m == nil:
		default:
			if _, life := m.(actor.SystemMessage); !life {
				got <- m
			}
		}
	})))
	defer sys.Root.Stop(pid)
	bv, err := EncodeWire(&testEcho{V: 1, Seq: 7, Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	sys.Root.Send(pid, bv)
	sys.Root.Send(pid, "plain")
	sys.Root.Send(pid, &wrapperspb.BytesValue{Value: []byte{0xff, 0xff, 0xff}})
	want := []func(any) bool{
		func(m any) bool { e, ok := m.(*testEcho); return ok && e.Seq == 7 && e.Text == "hi" },
		func(m any) bool { return m == "plain" },
		func(m any) bool { return m == "dropped" },
	}
	for i, w := range want {
		select {
		case m := <-got:
			if !w(m) {
				t.Fatalf("message %d: got %#v", i, m)
			}
		case <-time.After(10 * time.Second): // NB: a deadline for a message that must come, not a wait
			t.Fatalf("message %d never came", i)
		}
	}
}

// TestCanaryLifecycleEnvelopes pins the protoactor behaviour WireSenderProps relies on: an actor with a receiver
// middleware gets each lifecycle message (Started, Stopping, Stopped) wrapped in a new envelope, one without
// gets them bare. If an upgrade changes that, the coordinators' WireSenderProps no longer saves what it was
// made for (or saves more): re-measure.
func TestCanaryLifecycleEnvelopes(t *testing.T) {
	sys := NewSystem(slog.New(slog.DiscardHandler))
	// NB: a synchronized dispatcher runs the mailbox on the spawning and stopping goroutine, so an actor's
	// whole life is inside one call and its allocations are counted.
	life := func(props *actor.Props) func() {
		props.Configure(actor.WithDispatcher(actor.NewSynchronizedDispatcher(300)))
		return func() {
			pid := sys.Root.Spawn(props)
			sys.Root.Stop(pid)
		}
	}
	// The actor sends once, as a coordinator does (its fan-out): through the sender middleware, which makes
	// the context's extras, so only the envelopes differ.
	noop := func() actor.Actor {
		return actor.ReceiveFunc(func(c actor.Context) {
			if _, ok := c.Message().(*actor.Started); ok {
				c.Send(c.Self(), "ping")
			}
		})
	}
	full := minAllocs(life(WireProps(actor.PropsFromProducer(noop))))
	sender := minAllocs(life(WireSenderProps(actor.PropsFromProducer(noop))))
	if full-sender != 3 {
		t.Fatalf("an actor's life: %v allocations with a receiver middleware, %v without: want 3 fewer (one envelope per lifecycle message)", full, sender)
	}
}

// TestTell: Tell delivers to a local actor the bare message with no sender, as a Send without middleware does,
// and, canary of protoactor's sender path, one allocation (the envelope) fewer than ctx.Send from an actor
// with WireProps to an actor without a receiver middleware.
func TestTell(t *testing.T) {
	sys := NewSystem(slog.New(slog.DiscardHandler))
	sync := func(p *actor.Props) *actor.Props {
		return p.Configure(actor.WithDispatcher(actor.NewSynchronizedDispatcher(300)))
	}
	type seen struct {
		msg    any
		sender *actor.PID
	}
	var last seen
	// The sink is made as a coordinator is (WireSenderProps): with a receiver middleware protoactor would wrap
	// the bare message on arrival instead.
	sink := sys.Root.Spawn(sync(WireSenderProps(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(string); ok {
			last = seen{m, c.Sender()}
		}
	}))))
	defer sys.Root.Stop(sink)
	type viaSend struct{}
	type viaTell struct{}
	src := sys.Root.Spawn(sync(WireProps(actor.PropsFromFunc(func(c actor.Context) {
		switch c.Message().(type) {
		case viaSend:
			c.Send(sink, "sent")
		case viaTell:
			Tell(c, sink, "told")
		}
	}))))
	defer sys.Root.Stop(src)

	sys.Root.Send(src, viaTell{})
	if last != (seen{"told", nil}) {
		t.Fatalf("the sink saw %+v, want the bare message without a sender", last)
	}
	sys.Root.Send(src, viaSend{})
	if last != (seen{"sent", nil}) {
		t.Fatalf("the sink saw %+v after a Send", last)
	}
	send := minAllocs(func() { sys.Root.Send(src, viaSend{}) })
	tell := minAllocs(func() { sys.Root.Send(src, viaTell{}) })
	if send-tell != 1 {
		t.Fatalf("a message to a local actor: %v allocations by Send, %v by Tell: want exactly one fewer (the envelope)", send, tell)
	}

	// An unknown pid: the message goes to dead letters, as with Send; nothing panics.
	Tell(sys.Root, actor.NewPID(sys.Address(), "nobody"), "lost")
}

// TestAsk: Ask delivers to a local actor the message with the asking actor as its sender, as Request does,
// and, canary of protoactor's sender path, allocates less than Request from an actor with a sender
// middleware, which makes the context's extras on its first send.
func TestAsk(t *testing.T) {
	sys := NewSystem(slog.New(slog.DiscardHandler))
	sync := func(p *actor.Props) *actor.Props {
		return p.Configure(actor.WithDispatcher(actor.NewSynchronizedDispatcher(300)))
	}
	var gotMsg any
	var gotSender *actor.PID
	sink := sys.Root.Spawn(sync(WireSenderProps(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(string); ok {
			gotMsg, gotSender = m, c.Sender()
		}
	}))))
	defer sys.Root.Stop(sink)
	// life spawns an actor that asks the sink once at its start (as a coordinator's fan-out) and stops it.
	var asker *actor.PID
	life := func(ask func(c actor.Context)) func() {
		props := sync(WireSenderProps(actor.PropsFromFunc(func(c actor.Context) {
			if _, ok := c.Message().(*actor.Started); ok {
				asker = c.Self()
				ask(c)
			}
		})))
		return func() { sys.Root.Stop(sys.Root.Spawn(props)) }
	}
	byAsk := life(func(c actor.Context) { Ask(c, sink, "asked") })
	byRequest := life(func(c actor.Context) { c.Request(sink, "requested") })

	byAsk()
	if gotMsg != "asked" || gotSender == nil || !gotSender.Equal(asker) {
		t.Fatalf("the sink saw %v from %v, want \"asked\" from %v", gotMsg, gotSender, asker)
	}
	byRequest()
	if gotMsg != "requested" || gotSender == nil || !gotSender.Equal(asker) {
		t.Fatalf("the sink saw %v from %v after a Request, want \"requested\" from %v", gotMsg, gotSender, asker)
	}
	a := minAllocs(byAsk)
	r := minAllocs(byRequest)
	if r-a != 3 {
		t.Fatalf("an actor that asks once: %v allocations with Request, %v with Ask: want 3 fewer (the context's extras)", r, a)
	}
}

// minAllocs is testing.AllocsPerRun(200, f) at its lowest of three measurements. AllocsPerRun counts the
// whole process's allocations, so another goroutine's (a timer's, the runtime's, the race detector's) can
// only add to f's own: on a loaded machine one measurement of an exact count came out one high in a few
// hundred runs.
func minAllocs(f func()) float64 {
	n := testing.AllocsPerRun(200, f)
	for range 2 {
		n = min(n, testing.AllocsPerRun(200, f))
	}
	return n
}
