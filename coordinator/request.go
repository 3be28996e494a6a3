package coordinator

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
)

// liveEntry is a request's place on the Service's live list (the coordinators Stop must stop, from admission
// until Stopped). It is not generic, so one list holds the requests of every service and value type.
type liveEntry struct {
	// REQUIRES: Service.liveMu held for prev and next.
	prev, next *liveEntry
	// pid is set once the actor started; stopReq when Stop asked this request to stop (see Service.Stop).
	pid     atomic.Pointer[actor.PID]
	stopReq atomic.Bool
}

// requestActor is the thin shell around one request's FSM: it sends what the FSM asks, feeds it replies and
// timers, answers the caller once, and stops when the FSM is done. One actor per request ("every request is
// a process"); all its state lives inside Receive. V is the service's value type, O its op type (held by
// value, so the op's commands can live in this one allocation).
type requestActor[V, O any, PO OpPtr[V, O]] struct {
	live    liveEntry
	disp    actors.InlineFirst // this actor's dispatcher (Service.run)
	mailbox actors.Mailbox     // this actor's mailbox (Service.run): no allocation of its own
	props   actor.Props        // this actor's props (a copy of Service.props)
	svc     *Service
	proto   Protocol[V]
	op      O
	key     []byte
	targets []Target
	pids    []*actor.PID
	pidBuf  [4]*actor.PID

	// The answer reaches the caller through result when it comes during the first run (inline, before
	// Spawn returns), else through the waiter's channel. REQUIRES: mu held for result, settled, waiter.
	mu      sync.Mutex
	result  outcome[V]
	settled bool
	waiter  chan outcome[V]

	get    *GetFSM[V]
	getFSM GetFSM[V] // get points here: one allocation for the actor and its FSM
	put    *PutFSM[V]

	timers   []*time.Timer
	answered bool
	stopping bool
	// Timers asked for during the first run wait in deferred until armTimers, which the actor sends itself
	// at the start: a request whose replicas answered at once is done by then and arms none (a read
	// asks for two, the deadline and the linger, and arming and stopping them was ~5% of a read).
	deferring bool
	// sentInDefer: the actor sent to replicas since it last sent armTimers; their inline replies are
	// queued behind that armTimers (a write's replication, after the coordinating vnode's reply), so
	// armTimers goes round once more.
	sentInDefer bool
	deferRounds int8
	deferred    []StartTimer
	deferBuf    [2]StartTimer
	// NB: the small fields are packed beside one another: a read's request actor with its mailbox stays in
	// the 1280-byte size class with the allocator's 8-byte header (TestRequestActorSize).
}

// outcome is what a coordinator hands back to the waiting caller.
type outcome[V any] struct {
	v   V
	err error
}

// armTimers ends the deferral of timers (see requestActor.deferred).
type armTimers struct{}

// timerFired is what a timer sends the actor.
type timerFired struct{ t Timer }

// replicaUnreachable reports a target without a reachable vnode.
type replicaUnreachable struct {
	i   int
	err error
}

var errNoVnode = errors.New("coordinator: replica unreachable")

func (a *requestActor[V, O, PO]) Receive(ctx actor.Context) {
	// NB: the actor has no receiver middleware (actors.WireSenderProps, see Start): replies from other nodes
	// are decoded here.
	m, ok := actors.DecodeReceived(ctx, ctx.Message())
	if !ok {
		return
	}
	switch msg := m.(type) {
	case *actor.Started:
		a.live.pid.Store(ctx.Self())
		if a.live.stopReq.Load() {
			// Stop ran before it could know this actor's pid: nothing was sent yet, stop at once.
			a.answer(outcome[V]{err: ErrShuttingDown})
			a.stopping = true
			ctx.Stop(ctx.Self())
			return
		}
		a.pids = a.pidBuf[:0] // NB: append grows past the buffer when N > len(pidBuf)
		for _, t := range a.targets {
			a.pids = append(a.pids, a.svc.router.VnodePID(t.Node, t.Partition))
		}
		a.deferring, a.deferred = true, a.deferBuf[:0]
		if a.get != nil {
			a.apply(ctx, a.get.Start())
		} else {
			a.apply(ctx, a.put.Start())
		}
		// NB: sent after the fan-out, so queued behind the replies of replicas that answered inline.
		actors.Tell(ctx, ctx.Self(), armTimers{})
		a.sentInDefer = false
	case armTimers:
		if a.sentInDefer && a.deferRounds < 2 && !a.stopping {
			a.sentInDefer = false
			a.deferRounds++
			actors.Tell(ctx, ctx.Self(), armTimers{})
			return
		}
		a.deferring = false
		if !a.stopping {
			for _, e := range a.deferred {
				a.arm(ctx, e)
			}
		}
		a.deferred = nil
	case *replicaUnreachable:
		a.unreachable(ctx, msg.i, msg.err)
	case *actor.DeadLetterResponse:
		// gokai's transport refused a request (the peer's queue is full; actors.Remote names the target): a
		// failure of that replica now, rather than silence until the deadline. protoactor's own dead letters
		// carry no target and cannot be matched to a replica: those replicas stay silent.
		for i, pid := range a.pids {
			if pid != nil && msg.Target != nil && pid.Address == msg.Target.Address && pid.Id == msg.Target.Id {
				a.unreachable(ctx, i, fmt.Errorf("%w: partition %d on %s (refused by the transport)", errNoVnode, a.targets[i].Partition, a.targets[i].Node))
				break
			}
		}
	case *timerFired:
		if a.get != nil {
			a.apply(ctx, a.get.Fire(msg.t))
		} else {
			a.apply(ctx, a.put.Fire(msg.t))
		}
	case *actor.Stopped:
		for _, t := range a.timers {
			t.Stop()
		}
		if !a.answered {
			// Crashed or stopped by a shutdown before answering: never leave a caller hanging.
			a.answer(outcome[V]{err: ErrCoordinatorCrashed})
		}
		a.svc.untrack(&a.live)
		a.svc.active.Add(-1)
	default:
		r, ok := a.proto.Decode(msg)
		if !ok || r.Write != (a.get == nil) {
			return // not a reply, or the acknowledgement of a read repair: nothing to do
		}
		if r.Err != nil {
			a.reportFailure(int(r.Tag))
		}
		if a.get != nil {
			a.apply(ctx, a.get.Reply(int(r.Tag), r.Value, r.Err))
		} else {
			a.apply(ctx, a.put.Reply(int(r.Tag), r.Value, r.Err))
		}
	}
}

// unreachable feeds target i's failure to reach it.
func (a *requestActor[V, O, PO]) unreachable(ctx actor.Context, i int, err error) {
	a.reportFailure(i)
	var none V
	if a.get != nil {
		a.apply(ctx, a.get.Reply(i, none, err))
	} else {
		a.apply(ctx, a.put.Reply(i, none, err))
	}
}

func (a *requestActor[V, O, PO]) reportFailure(i int) {
	if i >= 0 && i < len(a.targets) && a.targets[i].Node != a.svc.cfg.Node {
		a.svc.router.ReportFailure(a.targets[i].Node)
	}
}

// fallback finds a stand-in for failed write target i and adds it to the write (sloppy quorum).
func (a *requestActor[V, O, PO]) fallback(ctx actor.Context, i int) {
	ts := a.put.Targets()
	if i < 0 || i >= len(ts) {
		return
	}
	failed := ts[i]
	a.reportFailure(i)
	e, ok := a.svc.router.Fallback(a.key, failed.Partition, failed.Node)
	if ok {
		for _, t := range ts {
			if t.Node == e.Node && t.Partition == failed.Partition {
				ok = false // that vnode is already a replica of this write
			}
		}
	}
	if !ok {
		a.apply(ctx, a.put.NoFallback())
		return
	}
	t := Target{Partition: failed.Partition, Node: e.Node}
	a.targets = append(a.targets, t)
	a.pids = append(a.pids, a.svc.router.VnodePID(t.Node, t.Partition))
	a.svc.fallbacks.Add(1)
	a.apply(ctx, a.put.AddFallback(t))
}

// arm starts timer e.
func (a *requestActor[V, O, PO]) arm(ctx actor.Context, e StartTimer) {
	self, sys, t := ctx.Self(), ctx.ActorSystem(), e.Timer
	a.timers = append(a.timers, time.AfterFunc(e.After, func() { sys.Root.Send(self, &timerFired{t: t}) }))
}

func (a *requestActor[V, O, PO]) answer(o outcome[V]) {
	a.answered = true
	a.svc.pending.Add(-1)
	a.mu.Lock()
	if a.waiter != nil {
		a.waiter <- o // NB: buffered (1) and written once: never blocks
	} else {
		a.result, a.settled = o, true
	}
	a.mu.Unlock()
}

// send sends msg to target i. NB: actors.Ask and actors.Tell rather than ctx.Request and ctx.Send, here and
// for every send of this actor: a vnode of this node gets the message without the sender middleware, which
// only acts on other nodes' pids and would make protoactor allocate this actor's context extras.
func (a *requestActor[V, O, PO]) send(ctx actor.Context, i int, msg any) {
	a.sentInDefer = a.deferring
	if pid := a.pids[i]; pid != nil {
		actors.Ask(ctx, pid, msg)
		return
	}
	actors.Tell(ctx, ctx.Self(), &replicaUnreachable{i: i, err: fmt.Errorf("%w: partition %d on %s", errNoVnode, a.targets[i].Partition, a.targets[i].Node)})
}

func (a *requestActor[V, O, PO]) apply(ctx actor.Context, effects []Effect) {
	op := PO(&a.op)
	for _, e := range effects {
		switch e := e.(type) {
		case SendGet:
			a.send(ctx, e.Target, op.Command(a.key, uint32(e.Target)))
		case SendPut[V]:
			if e.Coordinate {
				a.send(ctx, e.Target, op.Command(a.key, uint32(e.Target)))
			} else {
				a.send(ctx, e.Target, op.Replicate(a.key, uint32(e.Target), e.Value))
			}
		case Repair[V]:
			a.svc.repairs.Add(1)
			if pid := a.pids[e.Target]; pid != nil {
				actors.Ask(ctx, pid, op.Replicate(a.key, uint32(e.Target), e.Value))
			}
		case SendReap[V]:
			if msg := op.Reap(a.key, e.Value); msg != nil {
				for _, pid := range a.pids {
					if pid != nil {
						actors.Tell(ctx, pid, msg)
					}
				}
			}
		case StartTimer:
			if a.deferring {
				a.deferred = append(a.deferred, e)
			} else {
				a.arm(ctx, e)
			}
		case NeedFallback:
			a.fallback(ctx, e.Target)
		case Silent:
			a.reportFailure(e.Target)
		case Answer[V]:
			if !a.answered {
				a.answer(outcome[V]{v: e.Value, err: e.Err})
			}
		case Done:
			if !a.stopping {
				a.stopping = true
				ctx.Stop(ctx.Self())
			}
		}
	}
}
