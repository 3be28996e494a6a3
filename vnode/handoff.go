package vnode

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Handoff support in the vnode actor (riak_core's handoff states, run by the framework for every
// Behaviour):
//
//	normal ──BeginHandoff──► handoff ──FinishHandoff──► (flushed) ──HandoffDrop──► normal, data deleted
//	   ▲                        │
//	   └──────CancelHandoff─────┘
//
// In handoff, the sender folds the partition (HandoffFold, concurrently with commands) into HandoffBatch
// messages to the new owner's vnode, while the vnode keeps serving: a Behaviour that implements
// HandoffCommander decides per command whether the new owner must see it too (KV forwards the result of
// every write), and the framework sends such forwards as HandoffForward and counts their acks. FinishHandoff
// answers once every forward was acknowledged; HandoffDrop then deletes the data inside the actor, so no
// write slips between the last forward and the delete. Writes arriving afterwards (from coordinators with an
// older ring) are kept as ordinary data and handed off again.

// HandoffCommander is implemented by behaviours that need to act on commands arriving during a handoff.
// Without it, commands are handled normally and nothing is forwarded (the fold alone moves the data).
type HandoffCommander interface {
	// HandleHandoffCommand handles cmd like HandleCommand and returns, in forward, a handoff item (an
	// EncodeHandoffItem output) the new owner must also apply with HandleHandoffData; nil for none. It is
	// called from the vnode actor only.
	HandleHandoffCommand(cmd any, from Sender) (res Result, forward []byte)
}

// ConcurrentFold is the promise a Behaviour makes about HandoffFold and EncodeHandoffItem: they may run on
// the handoff sender's goroutine, concurrently with the vnode's other methods, because they only read a
// consistent snapshot of storage. KV makes it; behaviours that cannot are folded inside the vnode actor.
type ConcurrentFold interface {
	ConcurrentFoldSafe()
}

// BeginHandoff puts the vnode in handoff mode towards Target (the new owner's vnode). Local only.
// The reply is *HandoffStarted.
type BeginHandoff struct{ Target *actor.PID }

// HandoffStarted gives the sender the behaviour's fold and item encoder (the reply to BeginHandoff and to
// FoldRequest).
type HandoffStarted struct {
	Fold   func(fn func(key, value []byte) error) error
	Encode func(key, value []byte) ([]byte, error)
}

// FinishHandoff asks for a *HandoffFlushed reply once every forwarded command was acknowledged.
type FinishHandoff struct{}

// HandoffFlushed answers FinishHandoff; Err is set if a forward failed (the transfer must be retried).
type HandoffFlushed struct {
	Forwarded int
	Err       string
}

// CancelHandoff returns the vnode to normal mode (a failed or cancelled transfer).
type CancelHandoff struct{}

// HandoffDrop ends a completed handoff by deleting the partition's data, atomically with respect to writes:
// the vnode waits until every forwarded write was acknowledged, then deletes and returns to normal mode
// (writes arriving later are kept, as new data to hand off). The reply is *HandoffDropped. Local only.
type HandoffDrop struct{}

// HandoffDropped answers HandoffDrop; Err is set when the vnode was not in handoff mode (it restarted) or
// a forward failed: nothing was deleted and the transfer must be redone.
type HandoffDropped struct{ Err string }

// FoldRequest asks for the behaviour's fold and item encoder without entering handoff mode, for a scan
// that only reads (the node's re-home of misplaced keys). The reply is *HandoffStarted. Local only.
type FoldRequest struct{}

// IsEmptyRequest asks whether the vnode holds data; the reply is *IsEmptyReply. Local only.
type IsEmptyRequest struct{}

// IsEmptyReply answers IsEmptyRequest.
type IsEmptyReply struct {
	Empty bool
	Err   string
	// Ring is the newest cluster-state version under which a transfer sent this vnode data (0: none since
	// the vnode started). A node whose own state is older must not hand the partition on as hints yet: the
	// data may be arriving because the node became its owner in a state it has not seen.
	Ring uint64
}

// HandoffBatch carries folded items to the new owner's vnode. Items are EncodeHandoffItem outputs.
type HandoffBatch struct {
	V     uint8    `msgpack:"v"`
	Seq   uint64   `msgpack:"s"`
	Items [][]byte `msgpack:"i"`
	Ring  uint64   `msgpack:"r,omitempty"` // the sender's cluster-state version (0 = unknown)
}

// HandoffAck acknowledges a HandoffBatch once every item is in storage.
type HandoffAck struct {
	V   uint8  `msgpack:"v"`
	Seq uint64 `msgpack:"s"`
	Err string `msgpack:"e"`
}

// HandoffForward carries to the new owner the item of a write the old owner applied during the handoff.
type HandoffForward struct {
	V    uint8  `msgpack:"v"`
	Seq  uint64 `msgpack:"s"`
	Item []byte `msgpack:"i"`
}

// HandoffForwardAck acknowledges a HandoffForward.
type HandoffForwardAck struct {
	V   uint8  `msgpack:"v"`
	Seq uint64 `msgpack:"s"`
	Err string `msgpack:"e"`
}

// handoffState is the vnode actor's handoff bookkeeping.
type handoffState struct {
	target    *actor.PID
	seq       uint64
	pending   map[uint64]struct{}
	forwarded int
	failed    string
	flushWait []*actor.PID
	dropWait  []*actor.PID
}

// handleHandoff handles the handoff messages; it reports whether msg was one.
func (a *vnodeActor) handleHandoff(ctx actor.Context, msg any) bool {
	switch m := msg.(type) {
	case *BeginHandoff:
		a.handoff = &handoffState{target: m.Target, pending: map[uint64]struct{}{}}
		ctx.Respond(a.foldFuncs(ctx))
	case *FoldRequest:
		ctx.Respond(a.foldFuncs(ctx))
	case *foldInActor:
		if err := a.b.HandoffFold(m.fn); err != nil {
			ctx.Respond(err)
		} else {
			ctx.Respond(struct{}{})
		}
	case *FinishHandoff:
		if a.handoff == nil {
			ctx.Respond(&HandoffFlushed{Err: "vnode: not in handoff"})
			return true
		}
		a.handoff.flushWait = append(a.handoff.flushWait, ctx.Sender())
		a.flushHandoff(ctx)
	case *CancelHandoff:
		a.handoff = nil
	case *HandoffDrop:
		if a.handoff == nil {
			ctx.Respond(&HandoffDropped{Err: "vnode: not in handoff (restarted?)"})
			return true
		}
		a.handoff.dropWait = append(a.handoff.dropWait, ctx.Sender())
		a.flushHandoff(ctx)
	case *IsEmptyRequest:
		empty, err := a.b.IsEmpty()
		rep := &IsEmptyReply{Empty: empty, Ring: a.ringSeen}
		if err != nil {
			rep.Err = err.Error()
		}
		ctx.Respond(rep)
	case *HandoffBatch:
		a.ringSeen = max(a.ringSeen, m.Ring)
		ack := &HandoffAck{V: 1, Seq: m.Seq}
		for _, it := range m.Items {
			if err := a.b.HandleHandoffData(it); err != nil {
				ack.Err = fmt.Sprintf("vnode: partition %d: handoff item: %v", a.env.Partition, err)
				break
			}
			// NB: counted once stored, so a scan that reads the count and then folds sees the item.
			a.received.Add(1)
			a.forwardIncoming(ctx, it)
		}
		a.metrics.handoffItems.Add(int64(len(m.Items)))
		ctx.Respond(ack)
	case *HandoffForward:
		ack := &HandoffForwardAck{V: 1, Seq: m.Seq}
		if err := a.b.HandleHandoffData(m.Item); err != nil {
			ack.Err = fmt.Sprintf("vnode: partition %d: forwarded item: %v", a.env.Partition, err)
		} else {
			a.received.Add(1)
			a.forwardIncoming(ctx, m.Item)
		}
		ctx.Respond(ack)
	case *actor.DeadLetterResponse:
		// A forward's target is gone: nothing can be acknowledged any more, and the transfer must be redone.
		if a.handoff == nil {
			return true
		}
		if a.handoff.failed == "" {
			a.handoff.failed = "vnode: forward target unreachable"
		}
		clear(a.handoff.pending)
		a.flushHandoff(ctx)
	case *HandoffForwardAck:
		if a.handoff == nil {
			return true
		}
		delete(a.handoff.pending, m.Seq)
		if m.Err != "" && a.handoff.failed == "" {
			a.handoff.failed = m.Err
		}
		a.flushHandoff(ctx)
	default:
		return false
	}
	return true
}

// foldFuncs is the behaviour's fold and encoder for a sender's goroutine.
func (a *vnodeActor) foldFuncs(ctx actor.Context) *HandoffStarted {
	b := a.b
	st := &HandoffStarted{Encode: b.EncodeHandoffItem, Fold: b.HandoffFold}
	if _, ok := b.(ConcurrentFold); !ok {
		// Fold inside the actor: the behaviour made no concurrency promise. The fold is called from the
		// sender's goroutine, so it reaches the actor through the root context, never through ctx.
		sys, self := ctx.ActorSystem(), ctx.Self()
		st.Fold = func(fn func(key, value []byte) error) error {
			res, err := sys.Root.RequestFuture(self, &foldInActor{fn: fn}, foldInActorTimeout).Result()
			if err != nil {
				return err
			}
			if e, _ := res.(error); e != nil {
				return e
			}
			return nil
		}
	}
	return st
}

// forwardIncoming passes on an item handed to this vnode while it is itself handing off. Without it the
// item would be in neither place: it arrived after the fold's snapshot, and HandoffDrop deletes it. That
// happens when two nodes' rings disagree for a moment: the new owner of a partition, still on the old ring,
// hands what it holds back to the old owner as hints while the old owner's transfer still arrives.
func (a *vnodeActor) forwardIncoming(ctx actor.Context, item []byte) {
	if a.handoff != nil {
		a.forward(ctx, item)
	}
}

// forward sends item to the handoff target; HandoffDrop waits for its acknowledgement.
func (a *vnodeActor) forward(ctx actor.Context, item []byte) {
	h := a.handoff
	h.seq++
	h.pending[h.seq] = struct{}{}
	h.forwarded++
	ctx.Request(h.target, &HandoffForward{V: 1, Seq: h.seq, Item: item})
}

// foldInActor runs a fold inside the vnode actor for behaviours without ConcurrentFold.
type foldInActor struct{ fn func(key, value []byte) error }

// foldInActorTimeout bounds a fold run inside the actor (the transfer's own deadline is shorter).
const foldInActorTimeout = 24 * time.Hour

func (a *vnodeActor) flushHandoff(ctx actor.Context) {
	h := a.handoff
	if len(h.pending) > 0 {
		return
	}
	for _, w := range h.flushWait {
		ctx.Send(w, &HandoffFlushed{Forwarded: h.forwarded, Err: h.failed})
	}
	h.flushWait = nil
	if len(h.dropWait) == 0 {
		return
	}
	rep := &HandoffDropped{Err: h.failed}
	if h.failed == "" {
		if err := a.b.Delete(); err != nil {
			rep.Err = fmt.Sprintf("vnode: partition %d: drop: %v", a.env.Partition, err)
		} else {
			// The behaviour's state was deleted: start it afresh on the (now empty) partition.
			a.b = a.factory()
			if err := a.b.Init(a.env); err != nil {
				panic(fmt.Errorf("vnode: re-init partition %d after drop: %w", a.env.Partition, err))
			}
		}
	}
	for _, w := range h.dropWait {
		ctx.Send(w, rep)
	}
	a.handoff = nil
}

// command runs a user command, through the handoff rules when a handoff is under way.
func (a *vnodeActor) command(ctx actor.Context, msg any, from Sender) {
	if a.handoff != nil {
		if hc, ok := a.b.(HandoffCommander); ok {
			res, fwd := hc.HandleHandoffCommand(msg, from)
			if res.hasReply && from.pid != nil {
				ctx.Respond(res.reply)
			}
			if fwd != nil {
				a.forward(ctx, fwd)
			}
			return
		}
	}
	res := a.b.HandleCommand(msg, from)
	if res.hasReply && from.pid != nil {
		ctx.Respond(res.reply)
	}
}
