package vnode

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
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

// vnodeActor hosts one Behaviour for one partition. All Behaviour calls happen inside Receive.
type vnodeActor struct {
	env     Env
	factory Factory
	b       Behaviour
	metrics *Metrics
	handoff *handoffState // nil unless a handoff is under way
	// ringSeen is the newest cluster-state version of the transfers that sent this vnode data.
	ringSeen uint64
	// arrived counts what reached the vnode since its data was last dropped (HandoffDropped.Arrived).
	arrived Arrivals
	// retired: the vnode accepted a retire and is about to be stopped; commands still queued are refused
	// (a dead-letter answer: the coordinator counts the replica as failed at once), never applied to a
	// partition nobody will hand off.
	retired bool
	// received counts the handoff items this partition's vnode took (batches and forwards), across
	// restarts: the counter belongs to the Manager (Manager.HandoffReceived).
	received *atomic.Int64
}

func (a *vnodeActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		a.b = a.factory()
		if err := a.b.Init(a.env); err != nil {
			// NB: a panic hands the failure to the vnode supervisor, which restarts this vnode within its
			// restart limits or stops it (and the manager escalates).
			panic(fmt.Errorf("vnode: init partition %d: %w", a.env.Partition, err))
		}
		a.metrics.starts.Add(1)
	case *actor.Restarting:
		a.metrics.restarts.Add(1)
		if a.b != nil {
			a.b.Terminate("restart")
		}
	case *actor.Stopping:
		if a.b != nil {
			a.b.Terminate(nil)
		}
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
		if a.handleHandoff(ctx, msg) {
			return
		}
		a.command(ctx, msg, Sender{system: ctx.ActorSystem(), pid: ctx.Sender()})
	}
}

func newVnodeProps(env Env, factory Factory, m *Metrics, received *atomic.Int64) *actor.Props {
	return actors.WireProps(actor.PropsFromProducer(func() actor.Actor {
		return &vnodeActor{env: env, factory: factory, metrics: m, received: received}
	}))
}

func partitionLogger(l *slog.Logger, node string, p int) *slog.Logger {
	return l.With("node", node, "partition", p)
}
