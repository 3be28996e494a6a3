package vnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/internal/ratelog"
)

// Crash makes a vnode actor panic. It exists for fault-injection tests and operators' drills: the vnode
// must restart alone, reopen its partition and lose nothing acknowledged.
type Crash struct {
	Reason string
}

// retire makes a vnode delete its partition's data, if it holds none, and stop (Manager.Retire). The reply
// is nil, or errNotEmpty when data arrived since the caller found the vnode empty (nothing is deleted).
type retire struct{}

// errNotEmpty refuses a retire: the vnode holds data.
var errNotEmpty = errors.New("vnode: not empty")

// jobDone tells a vnode that one of its partition's async jobs ended (a waiting drop may proceed).
type jobDone struct{}

// shared is what a manager's vnodes share.
type shared struct {
	aae      AAEConfig     // Q 0: no hash trees
	aaeSlots chan struct{} // the rebuild semaphore (AAEConfig.RebuildConcurrency)
	metrics  *Metrics
	pool     *workerPool
	busyLog  ratelog.Limiter // "worker pool busy"

	// observe is ManagerConfig.Observe (nil: commands are not observed), timing one command in every
	// observeEvery; now is its clock.
	observe      func(cmd any, took time.Duration)
	observeEvery uint32
	now          func() time.Time
}

// partitionCounters outlive a partition's vnode actors (restarts, retirement): they belong to the Manager.
type partitionCounters struct {
	// received counts the handoff items this partition's vnode took (batches and forwards).
	received atomic.Int64
	// jobs counts the partition's async work running or queued, whichever vnode incarnation started it.
	jobs atomic.Int64
	// mailbox is the current vnode actor's mailbox (Manager.MailboxDepth); nil before the first spawn.
	mailbox atomic.Pointer[actor.Mailbox]
	// aae is the latest status of the partition's hash trees (nil: none); aaeCounts its counters, owned by
	// whichever vnode incarnation runs (one at a time).
	aae       atomic.Pointer[AAEStatus]
	aaeCounts AAEStatus
	aaeItems  atomic.Int64 // items in the serving trees, kept current on every write
}

// vnodeActor hosts one Behaviour for one partition. All Behaviour calls happen inside Receive.
type vnodeActor struct {
	env     Env // without Self: each incarnation gets its own
	factory Factory
	b       Behaviour
	inc     *incarnation // the Behaviour value's timers, messages and watched actors
	ended   bool         // Terminate was called (restarting or stopping)
	shared  *shared
	handoff *handoffState // nil unless a handoff is under way
	streams map[uint64]*coverageStream
	// ringSeen is the newest cluster-state version of the transfers that sent this vnode data.
	ringSeen uint64
	// arrived counts what reached the vnode since its data was last dropped (HandoffDropped.Arrived).
	arrived Arrivals
	changed []bool // mergeBatch's reused flags
	// retired: the vnode accepted a retire and is about to be stopped; commands still queued are refused
	// (a dead-letter answer: the coordinator counts the replica as failed at once), never applied to a
	// partition nobody will hand off.
	retired  bool
	received *atomic.Int64 // partitionCounters.received
	jobs     *atomic.Int64 // partitionCounters.jobs
	// untimed counts the commands observed since the last timed one (shared.observeEvery).
	untimed  uint32
	counters *partitionCounters
	// aae is the current incarnation's hash trees (nil when the behaviour has none or anti-entropy is off).
	aae *Hashtrees
}

func (a *vnodeActor) Receive(ctx actor.Context) {
	if a.inc != nil {
		a.inc.enter(ctx)
		// NB: a.inc, not the value above: a drop may replace the incarnation meanwhile.
		defer func() { a.inc.leave() }()
	}
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		a.streams = map[uint64]*coverageStream{}
		a.startBehaviour(ctx)
		a.shared.metrics.starts.Add(1)
		a.inc.leave()
	case *actor.Restarting:
		a.shared.metrics.restarts.Add(1)
		a.stopBehaviour("restart")
	case *actor.Stopping:
		a.stopBehaviour(nil)
	case *actor.Terminated:
		a.exit(msg)
	case *actor.Stopped, *actor.ReceiveTimeout:
	case *retire:
		// NB: emptiness is checked here, in the actor, so nothing that arrived since the caller's IsEmpty
		// can be deleted with the partition.
		if empty, err := a.b.IsEmpty(); err != nil || !empty || a.handoff != nil {
			ctx.Respond(errNotEmpty)
			return
		}
		if err := a.b.Delete(); err != nil {
			a.env.Logger.Error("vnode: drop partition failed", "err", err)
		}
		a.retired = true
		ctx.Respond(struct{}{}) // the manager then stops this vnode and waits for it
	case *Crash:
		panic(fmt.Sprintf("vnode: partition %d: crash requested: %s", a.env.Partition, msg.Reason))
	case *selfMessage:
		a.selfMessage(msg)
	case *aaeStep:
		if msg.h == a.aae && a.aae != nil && !a.retired {
			a.aae.step(ctx.ActorSystem(), ctx.Self(), a.env.Logger)
		}
	case *jobDone:
		if a.handoff != nil {
			a.flushHandoff(ctx)
		}
	case actor.SystemMessage, actor.AutoReceiveMessage:
	default:
		if a.b == nil {
			// INVARIANT: Started is always processed before user messages.
			panic("vnode: command before init")
		}
		if a.retired {
			if ctx.Sender() != nil {
				ctx.Respond(&actor.DeadLetterResponse{Target: ctx.Self()})
			}
			return
		}
		if a.handleAAE(ctx, msg) || a.handleHandoff(ctx, msg) || a.handleCoverage(ctx, msg) {
			return
		}
		a.command(ctx, msg, Sender{system: ctx.ActorSystem(), pid: ctx.Sender()})
	}
}

// startBehaviour makes a Behaviour value of a new incarnation and initialises it.
func (a *vnodeActor) startBehaviour(ctx actor.Context) {
	a.inc = newIncarnation(ctx.ActorSystem(), ctx.Self())
	a.inc.enter(ctx)
	a.ended = false
	env := a.env
	env.Self = Self{inc: a.inc}
	a.b = a.factory()
	if _, ok := a.b.(AAEHasher); ok && a.shared.aae.Q == 0 {
		// Anti-entropy is off: writes now bypass the trees, so trees a clean stop persisted earlier must not
		// be trusted when it is on again (without the marker the next start rebuilds them).
		if err := dropCleanMarker(env.Store); err != nil {
			panic(fmt.Errorf("vnode: partition %d: %w", a.env.Partition, err))
		}
	}
	if hasher, ok := a.b.(AAEHasher); ok && a.shared.aae.Q > 0 {
		h, err := openHashtrees(env, hasher, a.shared.aae, &a.counters.aae, &a.counters.aaeCounts,
			&a.counters.aaeItems, a.shared.aaeSlots)
		if err != nil {
			panic(fmt.Errorf("vnode: partition %d: %w", a.env.Partition, err))
		}
		env.AAE, a.aae = h, h
		h.kick(ctx.ActorSystem(), ctx.Self())
	}
	if err := a.b.Init(env); err != nil {
		// NB: a panic hands the failure to the vnode supervisor, which restarts this vnode within its
		// restart limits or stops it (and the manager escalates).
		panic(fmt.Errorf("vnode: init partition %d: %w", a.env.Partition, err))
	}
}

// stopBehaviour ends the incarnation as the vnode restarts or stops: timers and streams end, Terminate is
// called. (protoactor stops the vnode's children.)
func (a *vnodeActor) stopBehaviour(reason any) {
	if a.inc != nil {
		a.inc.kill()
	}
	for _, st := range a.streams {
		st.cancel(fmt.Errorf("vnode: partition %d: vnode restarting or stopping", a.env.Partition))
	}
	if a.b != nil && !a.ended {
		a.ended = true
		a.b.Terminate(reason)
	}
	a.closeHashtrees(reason == nil)
}

// closeHashtrees ends the incarnation's hash trees; on a clean stop (not a retire) it persists them first.
func (a *vnodeActor) closeHashtrees(clean bool) {
	if a.aae == nil {
		return
	}
	if clean && !a.retired {
		if err := a.aae.persist(); err != nil {
			a.env.Logger.Warn("vnode: hash trees not persisted: the next start rebuilds them", "err", err)
		}
	}
	a.aae.close()
	a.aae = nil
}

// replaceBehaviour starts a fresh Behaviour on the partition after a drop deleted its data: the old one's
// timers end, the actors it spawned stop, and it is terminated with reason.
func (a *vnodeActor) replaceBehaviour(ctx actor.Context, reason any) {
	old := a.inc
	old.kill()
	for _, child := range ctx.Children() {
		if old.watched[pidKey(child)] {
			ctx.Stop(child)
		}
	}
	for k := range old.watched {
		delete(old.watched, k) // NB: their ends, still to come, are not the new behaviour's business
	}
	a.b.Terminate(reason)
	a.closeHashtrees(false) // NB: the partition's data, trees included, was deleted
	old.leave()
	a.startBehaviour(ctx)
}

// selfMessage delivers a timer's or Self.Send's message to HandleInfo, if it belongs to the current
// incarnation (and a timer was not stopped meanwhile).
func (a *vnodeActor) selfMessage(m *selfMessage) {
	if m.inc != a.inc || a.ended || a.retired || (m.timer != 0 && !a.inc.take(m.timer)) {
		return
	}
	if ih, ok := a.b.(InfoHandler); ok {
		ih.HandleInfo(m.msg)
		return
	}
	a.env.Logger.Warn("vnode: message to itself dropped: the behaviour has no HandleInfo", "type", fmt.Sprintf("%T", m.msg))
}

// exit reports the end of an actor the current incarnation spawned or watches.
func (a *vnodeActor) exit(m *actor.Terminated) {
	if a.inc == nil || a.ended {
		return
	}
	k := pidKey(m.Who)
	if !a.inc.watched[k] {
		return // not this incarnation's (an earlier one's child, or unwatched since)
	}
	delete(a.inc.watched, k)
	if eh, ok := a.b.(ExitHandler); ok {
		eh.HandleExit(m.Who, m.Why)
	}
}

// execute carries out a Behaviour's Result for a command from from.
func (a *vnodeActor) execute(ctx actor.Context, res Result, from Sender) {
	switch res.kind {
	case resultReply:
		if res.reply != nil && from.pid != nil {
			actors.Tell(ctx, from.pid, res.reply) // NB: no envelope for a local sender (a coordinator of this node)
		}
	case resultAsync:
		work := res.work
		ok := a.submit(ctx, job{
			run: func(c context.Context) {
				if r := work(c); r != nil {
					from.Send(r)
				}
			},
			drop: func() {},
		})
		if !ok {
			a.busy(ctx, res, from)
		}
	case resultStream:
		a.env.Logger.Error("vnode: a Stream result answers coverage requests only: dropped")
	}
}

// busy answers a command whose async work the pool refused.
func (a *vnodeActor) busy(ctx actor.Context, res Result, from Sender) {
	// NB: counted before the sender hears of it, so a sender that reads the counter on the reply sees it.
	a.shared.metrics.asyncRefused.Add(1)
	if res.hasBusy && from.pid != nil && res.busy != nil {
		ctx.Send(from.pid, res.busy)
	}
	a.shared.busyLog.Warn(a.env.Logger, "vnode: worker pool busy: async work refused")
}

// submit hands j to the worker pool, counted as the partition's async work until it ends; false when the
// pool refused it.
func (a *vnodeActor) submit(ctx actor.Context, j job) bool {
	jobs, sys, self := a.jobs, ctx.ActorSystem(), ctx.Self()
	jobs.Add(1)
	done := func() {
		jobs.Add(-1)
		sys.Root.Send(self, &jobDone{})
	}
	ok := a.shared.pool.submit(job{
		run:  func(c context.Context) { defer done(); j.run(c) },
		drop: func() { defer done(); j.drop() },
	})
	if !ok {
		jobs.Add(-1)
	}
	return ok
}

func newVnodeProps(env Env, factory Factory, sh *shared, pc *partitionCounters) *actor.Props {
	return actors.WireProps(actor.PropsFromProducer(func() actor.Actor {
		return &vnodeActor{env: env, factory: factory, shared: sh, received: &pc.received, jobs: &pc.jobs, counters: pc}
	}))
}

func partitionLogger(l *slog.Logger, node string, p int) *slog.Logger {
	return l.With("node", node, "partition", p)
}
