package vnode

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/vmihailenco/msgpack/v5"
)

// Handoff support in the vnode actor (riak_core's handoff states, run by the framework for every
// Behaviour; doc.go draws the states with the callbacks).
//
// In handoff, the sender folds the partition (HandoffFold, concurrently with commands) into HandoffBatch
// messages to the new owner's vnode, while the vnode keeps serving. What happens to a command depends on
// the behaviour:
//
//   - With HandoffCommander, the behaviour decides per command whether the new owner must see it too: the
//     KV behaviour applies every write here and forwards the resulting object (a HandoffForward item).
//   - Without it (the default), the command is not applied here: it is forwarded to the new owner
//     (HandoffCommand; riak_core's forward), which handles it as its own command and answers the sender
//     directly. The old owner's data then stays as the fold's snapshot saw it, so the fold moves all of it,
//     whatever the behaviour's commands do. Applying the command here and also at the new owner would be
//     wrong for commands that are not idempotent (an increment would count twice once the folded value
//     merges in), and forwarding only its effect needs the behaviour's help (HandoffCommander). The price:
//     a read forwarded during the fold sees the new owner's partial copy, like a stale replica. The
//     commands must be registered for the wire to reach another node (a command that cannot be sent fails
//     the session, see below). A forwarded command is never forwarded back to the vnode it came from (two
//     vnodes handing the partition to each other): that vnode applies it.
//
// The framework counts the acknowledgements of both kinds of forward. FinishHandoff answers once every
// forward was acknowledged; HandoffDrop also waits for the partition's async work (Async, Stream) to end,
// then deletes the data inside the actor, so no write slips between the last forward and the delete. Once
// a session failed (a forward was lost), commands are applied locally again: its drop will be refused, and
// the retry folds them. Writes arriving after the drop (from coordinators with an older ring) are kept as
// ordinary data and handed off again. Timers and HandleInfo are never forwarded (see InfoHandler).
//
// Every handoff is a session, named by the id HandoffStarted returns. FinishHandoff, HandoffDrop and
// CancelHandoff name the session they mean and are refused (or ignored) for any other: a transfer's retry,
// or a late message of a cancelled transfer, can never act on, or wait for, another transfer's state.
// Forwards are numbered from one counter shared by every vnode of the process, so an acknowledgement that
// arrives after its session ended (or after the vnode restarted) matches nothing. A forward that stays
// unacknowledged for the waiter's AckTimeout fails the session (the transfer is then retried from the start)
// instead of holding FinishHandoff and HandoffDrop for ever. Each session that HandoffStarting let begin ends
// with exactly one of HandoffCancelled or HandoffFinished, unless the vnode restarts or stops first
// (Terminate).

// HandoffCommander is implemented by behaviours that need to act on commands arriving during a handoff
// (riak_core's handle_handoff_command). Without it, every command arriving during a handoff is forwarded to
// the new owner instead of being handled here (see above).
type HandoffCommander interface {
	// HandleHandoffCommand handles cmd like HandleCommand and returns, in forward, a handoff item (an
	// EncodeHandoffItem output) the new owner must also apply with HandleHandoffData; nil for none. It is
	// called from the vnode actor only.
	HandleHandoffCommand(cmd any, from Sender) (res Result, forward []byte)
}

// HandoffMerger is implemented by behaviours that can tell whether a handed-off item changed what the vnode
// holds. A vnode that is itself handing off passes on only the items that changed its data (the others it
// held already, so its fold or an earlier forward covers them): two vnodes handing the same partition to each
// other (rings that disagree for a moment, a partition that moves back) then stop once both hold the same,
// instead of sending the items back and forth for ever. Without it every received item is passed on,
// except a forward back to the vnode it came from.
type HandoffMerger interface {
	// MergeHandoffData is HandleHandoffData that also reports whether the vnode's data changed.
	MergeHandoffData(data []byte) (changed bool, err error)
}

// HandoffBatchMerger is implemented by behaviours that can apply a whole received HandoffBatch at once,
// typically as one storage write instead of one per item. Without it the framework applies the items one by
// one (MergeHandoffData, or HandleHandoffData).
type HandoffBatchMerger interface {
	// MergeHandoffBatch applies items in order, with exactly the outcome of MergeHandoffData called on each
	// in turn: an item merges with what the vnode holds and with the earlier items of the same key. It sets
	// changed[i] (len(changed) == len(items)) to whether item i changed the vnode's data, as
	// MergeHandoffData would have reported it. applied is how many items, from the first, are in storage:
	// all of them when err is nil; on an error, the items before the failing one, or none when the write
	// itself failed. It is called from the vnode actor only.
	MergeHandoffBatch(items [][]byte, changed []bool) (applied int, err error)
}

// ConcurrentFold is the promise a Behaviour makes about HandoffFold and EncodeHandoffItem: they may run on
// the handoff sender's goroutine, concurrently with the vnode's other methods, because they only read a
// consistent snapshot of storage. The KV behaviour makes it; behaviours that cannot are folded inside the
// vnode actor.
type ConcurrentFold interface {
	ConcurrentFoldSafe()
}

// DefaultForwardAckTimeout is how long a forward may stay unacknowledged when FinishHandoff or HandoffDrop
// does not say (AckTimeout 0).
const DefaultForwardAckTimeout = 10 * time.Second

// BeginHandoff puts the vnode in handoff mode towards Target (the new owner's vnode) in a new session. A
// session already under way ends: its waiters are answered with an error and its forwards are no longer
// waited for (its transfer fails and is retried). The behaviour may refuse (HandoffStarter). Local only. The
// reply is *HandoffStarted.
type BeginHandoff struct {
	Target *actor.PID
	Node   string // the new owner's node id, for HandoffStarter and HandoffFinisher
	Hinted bool   // a hinted handoff (a fallback's data going to the owner), not an ownership move
}

// HandoffStarted gives the sender the session id (0 for a FoldRequest) and the behaviour's fold and item
// encoder (the reply to BeginHandoff and to FoldRequest). Refused is set, and nothing else, when the
// behaviour refused the handoff: the vnode stays in normal mode; retry later.
type HandoffStarted struct {
	Session uint64 // never 0 for a handoff
	Fold    func(fn func(key, value []byte) error) error
	Encode  func(key, value []byte) ([]byte, error)
	Refused string
}

// FinishHandoff asks for a *HandoffFlushed reply once every forward of Session was acknowledged, or one
// stayed unacknowledged for AckTimeout (0: DefaultForwardAckTimeout) since it was sent. Local only.
type FinishHandoff struct {
	Session    uint64
	AckTimeout time.Duration
}

// HandoffFlushed answers FinishHandoff; Err is set if a forward failed or timed out, or the session is not
// the vnode's current one (the transfer must be retried).
type HandoffFlushed struct {
	Forwarded int
	Err       string
}

// CancelHandoff returns the vnode to normal mode if Session is its current session (a failed or cancelled
// transfer; a completed one whose partition came back). Local only.
type CancelHandoff struct{ Session uint64 }

// HandoffDrop ends a completed handoff by deleting the partition's data, atomically with respect to writes:
// the vnode waits until every forward of Session was acknowledged (at most AckTimeout after it was sent;
// 0: DefaultForwardAckTimeout), then deletes and returns to normal mode (writes arriving later are kept, as
// new data to hand off). The reply is *HandoffDropped. Local only.
type HandoffDrop struct {
	Session    uint64
	AckTimeout time.Duration
}

// HandoffDropped answers HandoffDrop; Err is set when Session is not the vnode's current session (it
// restarted, or another handoff began) or a forward failed: nothing was deleted and the transfer must be
// redone. Arrived says what reached the vnode between the previous drop (or its start) and this one: why
// there was data to hand off.
type HandoffDropped struct {
	Err     string
	Arrived Arrivals
}

// Arrivals counts what reached a vnode since its data was last dropped (or since it started).
type Arrivals struct {
	Requests uint64 // commands from coordinators (the vnode was in their preference lists)
	Items    uint64 // handoff items from other vnodes (batches and forwards of their transfers)
}

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
	From  string   `msgpack:"f,omitempty"` // the sending node's id ("" = not said): see handoffFromTarget
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

// HandoffCommand carries to the new owner a command that reached the old owner during a handoff, for a
// behaviour without HandoffCommander: the new owner handles it as its own command (HandleCommand, or its
// HandoffCommander when it is handing off too), answers ReplyTo (the command's sender; nil for none)
// directly, and acknowledges with a HandoffForwardAck of Seq once the command was handled. Cmd must be a
// message registered for the wire to cross nodes.
type HandoffCommand struct {
	V       uint8
	Seq     uint64
	Cmd     any
	ReplyTo *actor.PID
}

// handoffCommandWire is HandoffCommand on the wire, Cmd as a nested wire envelope.
type handoffCommandWire struct {
	V       uint8      `msgpack:"v"`
	Seq     uint64     `msgpack:"s"`
	Cmd     []byte     `msgpack:"c"`
	ReplyTo *actor.PID `msgpack:"r"`
}

var (
	_ msgpack.CustomEncoder = (*HandoffCommand)(nil)
	_ msgpack.CustomDecoder = (*HandoffCommand)(nil)
)

// EncodeMsgpack encodes c for the wire; Cmd must be a registered wire message.
func (c *HandoffCommand) EncodeMsgpack(enc *msgpack.Encoder) error {
	cmd, err := encodeNested(c.Cmd)
	if err != nil {
		return fmt.Errorf("vnode: handoff command: %w", err)
	}
	return enc.Encode(&handoffCommandWire{V: c.V, Seq: c.Seq, Cmd: cmd, ReplyTo: c.ReplyTo})
}

// DecodeMsgpack decodes a HandoffCommand from the wire.
func (c *HandoffCommand) DecodeMsgpack(dec *msgpack.Decoder) error {
	var w handoffCommandWire
	if err := dec.Decode(&w); err != nil {
		return err
	}
	cmd, err := decodeNested(w.Cmd)
	if err != nil {
		return fmt.Errorf("vnode: handoff command: %w", err)
	}
	*c = HandoffCommand{V: w.V, Seq: w.Seq, Cmd: cmd, ReplyTo: w.ReplyTo}
	return nil
}

// HandoffForwardAck acknowledges a HandoffForward or a HandoffCommand.
type HandoffForwardAck struct {
	V   uint8  `msgpack:"v"`
	Seq uint64 `msgpack:"s"`
	Err string `msgpack:"e"`
}

// handoffIDs numbers handoff sessions and forwards, for every vnode of the process: an id is never reused,
// not even by a vnode that restarted, so a late message of an ended session matches nothing.
var handoffIDs atomic.Uint64

// handoffState is the vnode actor's bookkeeping of one handoff session.
type handoffState struct {
	session   uint64
	target    *actor.PID
	to        HandoffTarget
	pending   map[uint64]time.Time // forward id -> when it was sent
	forwarded int
	failed    string
	flushWait []*actor.PID
	dropWait  []*actor.PID
	// ackTimeout is the shortest AckTimeout of the waiters; timerArmed: a forwardDeadline is on its way.
	ackTimeout time.Duration
	timerArmed bool
}

// forwardDeadline makes the vnode check its unacknowledged forwards (a timer sends it).
type forwardDeadline struct{ session uint64 }

// handleHandoff handles the handoff messages; it reports whether msg was one.
func (a *vnodeActor) handleHandoff(ctx actor.Context, msg any) bool {
	switch m := msg.(type) {
	case *BeginHandoff:
		a.endHandoff(ctx, "vnode: handoff superseded by a newer one")
		to := HandoffTarget{Node: m.Node, PID: m.Target, Hinted: m.Hinted}
		if hs, ok := a.b.(HandoffStarter); ok && !hs.HandoffStarting(to) {
			ctx.Respond(&HandoffStarted{Refused: fmt.Sprintf("vnode: partition %d: the behaviour refused the handoff", a.env.Partition)})
			return true
		}
		a.handoff = &handoffState{session: handoffIDs.Add(1), target: m.Target, to: to, pending: map[uint64]time.Time{}}
		st := a.foldFuncs(ctx)
		st.Session = a.handoff.session
		ctx.Respond(st)
	case *FoldRequest:
		ctx.Respond(a.foldFuncs(ctx))
	case *foldInActor:
		if err := a.b.HandoffFold(m.fn); err != nil {
			ctx.Respond(err)
		} else {
			ctx.Respond(struct{}{})
		}
	case *FinishHandoff:
		if err := a.checkSession(m.Session); err != "" {
			ctx.Respond(&HandoffFlushed{Err: err})
			return true
		}
		a.handoff.flushWait = append(a.handoff.flushWait, ctx.Sender())
		a.waitForwards(ctx, m.AckTimeout)
	case *CancelHandoff:
		if a.handoff != nil && a.handoff.session == m.Session {
			a.endHandoff(ctx, "vnode: handoff cancelled")
		}
	case *HandoffDrop:
		if err := a.checkSession(m.Session); err != "" {
			ctx.Respond(&HandoffDropped{Err: err})
			return true
		}
		a.handoff.dropWait = append(a.handoff.dropWait, ctx.Sender())
		a.waitForwards(ctx, m.AckTimeout)
	case *forwardDeadline:
		if h := a.handoff; h != nil && h.session == m.session {
			h.timerArmed = false
			a.expireForwards(ctx)
		}
	case *IsEmptyRequest:
		empty, err := a.b.IsEmpty()
		rep := &IsEmptyReply{Empty: empty, Ring: a.ringSeen}
		if err != nil {
			rep.Err = err.Error()
		}
		ctx.Respond(rep)
	case *HandoffBatch:
		if m.From != "" && a.handoff != nil && m.From == a.handoff.to.Node {
			a.handoffFromTarget(fmt.Sprintf("a batch of %d items from node %s", len(m.Items), m.From))
		}
		a.ringSeen = max(a.ringSeen, m.Ring)
		a.arrived.Items += uint64(len(m.Items))
		ack := &HandoffAck{V: 1, Seq: m.Seq}
		applied, changed, err := a.mergeBatch(m.Items)
		if err != nil {
			ack.Err = fmt.Sprintf("vnode: partition %d: handoff item: %v", a.env.Partition, err)
		}
		// NB: counted once stored, so a scan that reads the count and then folds sees the items.
		a.received.Add(int64(applied))
		for i, it := range m.Items[:applied] {
			a.forwardIncoming(ctx, it, changed[i], nil)
		}
		a.shared.metrics.handoffItems.Add(int64(len(m.Items)))
		ctx.Respond(ack)
	case *HandoffCommand:
		if h := a.handoff; h != nil && ctx.Sender() != nil && pidKey(ctx.Sender()) == pidKey(h.target) {
			a.handoffFromTarget("a command forwarded by the target vnode")
		}
		// NB: counted as a handoff arrival too: it is data another node's transfer sent here.
		a.received.Add(1)
		a.commandFrom(ctx, m.Cmd, Sender{system: ctx.ActorSystem(), pid: m.ReplyTo}, ctx.Sender())
		ctx.Respond(&HandoffForwardAck{V: 1, Seq: m.Seq})
	case *HandoffForward:
		if h := a.handoff; h != nil && ctx.Sender() != nil && pidKey(ctx.Sender()) == pidKey(h.target) {
			a.handoffFromTarget("an item forwarded by the target vnode")
		}
		a.arrived.Items++
		ack := &HandoffForwardAck{V: 1, Seq: m.Seq}
		if changed, err := a.mergeItem(m.Item); err != nil {
			ack.Err = fmt.Sprintf("vnode: partition %d: forwarded item: %v", a.env.Partition, err)
		} else {
			a.received.Add(1)
			a.forwardIncoming(ctx, m.Item, changed, ctx.Sender())
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
		h := a.handoff
		if h == nil {
			return true
		}
		if _, ok := h.pending[m.Seq]; !ok {
			return true // an acknowledgement of an ended session
		}
		delete(h.pending, m.Seq)
		if m.Err != "" && h.failed == "" {
			h.failed = m.Err
		}
		a.flushHandoff(ctx)
	default:
		return false
	}
	return true
}

// handoffFromTarget fails a hinted handoff session that receives handoff data (what) from its own target.
// The target hands the partition here: it holds this node for the partition's owner (or a replica of its
// keys) while this node held the target for the owner, and one of the two views is stale. Data from the
// target is applied here and not passed back to it (items would circulate for ever); a hinted session then
// ends by deleting the partition, and with the target dropping its copy once its own move is done, both
// copies were gone (a replica lost in a join-then-leave under load). The failed session keeps everything;
// the hint scan looks again with a newer state. An ownership session is left alone: it drops only once
// the claimant's state records the move done.
func (a *vnodeActor) handoffFromTarget(what string) {
	h := a.handoff
	if !h.to.Hinted || h.failed != "" {
		return
	}
	h.failed = fmt.Sprintf("vnode: partition %d: %s during a hinted handoff to it: the partition is kept here", a.env.Partition, what)
}

// checkSession returns why a request for session cannot be served ("" when it can).
func (a *vnodeActor) checkSession(session uint64) string {
	switch {
	case a.handoff == nil:
		return "vnode: not in handoff (restarted, cancelled or dropped already?)"
	case a.handoff.session != session:
		return fmt.Sprintf("vnode: handoff session %d is not the current one (%d): superseded", session, a.handoff.session)
	}
	return ""
}

// endHandoff ends the current session, if any, answering its waiters with reason.
func (a *vnodeActor) endHandoff(ctx actor.Context, reason string) {
	h := a.handoff
	if h == nil {
		return
	}
	for _, w := range h.flushWait {
		ctx.Send(w, &HandoffFlushed{Forwarded: h.forwarded, Err: reason})
	}
	for _, w := range h.dropWait {
		ctx.Send(w, &HandoffDropped{Err: reason})
	}
	a.handoff = nil
	if hc, ok := a.b.(HandoffCanceller); ok {
		hc.HandoffCancelled()
	}
}

// mergeItem applies a received handoff item and reports whether it changed the vnode's data (true when the
// behaviour cannot tell).
func (a *vnodeActor) mergeItem(item []byte) (bool, error) {
	if m, ok := a.b.(HandoffMerger); ok {
		return m.MergeHandoffData(item)
	}
	return true, a.b.HandleHandoffData(item)
}

// mergeBatch applies a received batch's items in order: in one call when the behaviour is a
// HandoffBatchMerger, else item by item up to the first error. It returns how many items (from the first)
// were applied and, for each of those, whether it changed the vnode's data.
func (a *vnodeActor) mergeBatch(items [][]byte) (applied int, changed []bool, err error) {
	changed = a.changedBuf(len(items))
	if bm, ok := a.b.(HandoffBatchMerger); ok {
		applied, err = bm.MergeHandoffBatch(items, changed)
		if applied < 0 || applied > len(items) || (err == nil && applied != len(items)) {
			// NB: a behaviour breaking its contract: what it stored is unknown, so nothing counts as applied
			// (nothing is passed on) and the sender retries the transfer.
			return 0, changed, fmt.Errorf("MergeHandoffBatch reported %d of %d items applied (err %v)", applied, len(items), err)
		}
		return applied, changed, err
	}
	for i, it := range items {
		if changed[i], err = a.mergeItem(it); err != nil {
			return i, changed, err
		}
	}
	return len(items), changed, nil
}

// changedBuf returns a reused slice of n booleans (a batch's changed flags).
func (a *vnodeActor) changedBuf(n int) []bool {
	if cap(a.changed) < n {
		a.changed = make([]bool, n)
	}
	a.changed = a.changed[:n]
	clear(a.changed)
	return a.changed
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
//
// An item that changed nothing here is not passed on (the vnode held it already: the fold or an earlier
// forward carries it), nor is a forward sent back to the vnode it came from (from; nil for a batch). Both
// stop items circulating between vnodes that hand the partition to each other.
func (a *vnodeActor) forwardIncoming(ctx actor.Context, item []byte, changed bool, from *actor.PID) {
	h := a.handoff
	if h == nil || !changed || (from != nil && from.Address == h.target.Address && from.Id == h.target.Id) {
		return
	}
	a.forward(ctx, item)
}

// forward sends item to the handoff target; FinishHandoff and HandoffDrop wait for its acknowledgement.
func (a *vnodeActor) forward(ctx actor.Context, item []byte) {
	h := a.handoff
	seq := handoffIDs.Add(1)
	// NB: real time, like the timer that checks it: this is a transport deadline, not data.
	h.pending[seq] = time.Now()
	h.forwarded++
	ctx.Request(h.target, &HandoffForward{V: 1, Seq: seq, Item: item})
}

// foldInActor runs a fold inside the vnode actor for behaviours without ConcurrentFold.
type foldInActor struct{ fn func(key, value []byte) error }

// foldInActorTimeout bounds a fold run inside the actor (the transfer's own deadline is shorter).
const foldInActorTimeout = 24 * time.Hour

// waitForwards registers a waiter's ack timeout, fails the session if a forward is overdue already, and
// answers the waiters if nothing is pending.
func (a *vnodeActor) waitForwards(ctx actor.Context, ackTimeout time.Duration) {
	h := a.handoff
	if ackTimeout <= 0 {
		ackTimeout = DefaultForwardAckTimeout
	}
	if h.ackTimeout == 0 || ackTimeout < h.ackTimeout {
		h.ackTimeout = ackTimeout
	}
	a.expireForwards(ctx)
}

// expireForwards fails the session when a forward stayed unacknowledged for the waiters' ack timeout;
// otherwise it arms a timer for the oldest pending forward. Then it answers the waiters if nothing is
// pending.
func (a *vnodeActor) expireForwards(ctx actor.Context) {
	h := a.handoff
	if len(h.pending) > 0 && h.ackTimeout > 0 {
		now := time.Now()
		oldest := now
		for _, sent := range h.pending {
			if sent.Before(oldest) {
				oldest = sent
			}
		}
		if wait := oldest.Add(h.ackTimeout).Sub(now); wait <= 0 {
			if h.failed == "" {
				h.failed = fmt.Sprintf("vnode: partition %d: %d forwards to %s/%s not acknowledged within %v",
					a.env.Partition, len(h.pending), h.target.Address, h.target.Id, h.ackTimeout)
			}
			clear(h.pending)
		} else if !h.timerArmed {
			h.timerArmed = true
			sys, self, session := ctx.ActorSystem(), ctx.Self(), h.session
			time.AfterFunc(wait, func() { sys.Root.Send(self, &forwardDeadline{session: session}) })
		}
	}
	a.flushHandoff(ctx)
}

// flushHandoff answers the waiters once no forward is pending: flushes with the session's outcome, and drops
// (once no async work of the partition runs either) by deleting the partition's data unless a forward
// failed, which ends the session.
func (a *vnodeActor) flushHandoff(ctx actor.Context) {
	h := a.handoff
	if len(h.pending) > 0 {
		return
	}
	for _, w := range h.flushWait {
		ctx.Send(w, &HandoffFlushed{Forwarded: h.forwarded, Err: h.failed})
	}
	h.flushWait = nil
	if len(h.dropWait) == 0 || (h.failed == "" && a.jobs.Load() > 0) {
		// NB: jobDone calls this again when the partition's async work ends.
		return
	}
	if h.failed != "" {
		rep := &HandoffDropped{Err: h.failed, Arrived: a.arrived}
		waiters := h.dropWait
		h.dropWait = nil
		a.endHandoff(ctx, "") // NB: no waiter left for it to answer; it calls HandoffCancelled
		for _, w := range waiters {
			ctx.Send(w, rep)
		}
		return
	}
	rep := &HandoffDropped{Arrived: a.arrived}
	waiters := h.dropWait
	a.handoff = nil
	if hf, ok := a.b.(HandoffFinisher); ok {
		hf.HandoffFinished(h.to)
	}
	if err := a.b.Delete(); err != nil {
		rep.Err = fmt.Sprintf("vnode: partition %d: drop: %v", a.env.Partition, err)
	} else {
		a.arrived = Arrivals{}
		// The behaviour's state was deleted: start it afresh on the (now empty) partition.
		a.replaceBehaviour(ctx, "handoff drop")
	}
	for _, w := range waiters {
		ctx.Send(w, rep)
	}
}

// command runs a user command, through the handoff rules when a handoff is under way.
func (a *vnodeActor) command(ctx actor.Context, msg any, from Sender) {
	a.commandFrom(ctx, msg, from, nil)
}

// commandFrom runs a command that came from origin: nil for a command sent to this vnode, the old owner's
// vnode for a HandoffCommand. A command is never forwarded back to the vnode it came from (two vnodes handing
// the partition to each other would pass it back and forth for ever): it is applied here.
func (a *vnodeActor) commandFrom(ctx actor.Context, msg any, from Sender, origin *actor.PID) {
	a.arrived.Requests++
	if obs := a.shared.observe; obs != nil {
		if a.untimed++; a.untimed < a.shared.observeEvery {
			obs(msg, -1)
		} else {
			a.untimed = 0
			start := a.shared.now()
			defer func() { obs(msg, a.shared.now().Sub(start)) }()
		}
	}
	if h := a.handoff; h != nil {
		if hc, ok := a.b.(HandoffCommander); ok {
			res, fwd := hc.HandleHandoffCommand(msg, from)
			a.execute(ctx, res, from)
			if fwd != nil {
				a.forward(ctx, fwd)
			}
			return
		}
		if h.failed == "" && (origin == nil || pidKey(origin) != pidKey(h.target)) {
			a.forwardCommand(ctx, msg, from)
			return
		}
	}
	a.execute(ctx, a.b.HandleCommand(msg, from), from)
}

// forwardCommand sends a command to the handoff target instead of handling it (the default for behaviours
// without HandoffCommander); FinishHandoff and HandoffDrop wait for its acknowledgement.
func (a *vnodeActor) forwardCommand(ctx actor.Context, msg any, from Sender) {
	h := a.handoff
	seq := handoffIDs.Add(1)
	h.pending[seq] = time.Now()
	h.forwarded++
	ctx.Request(h.target, &HandoffCommand{V: 1, Seq: seq, Cmd: msg, ReplyTo: from.pid})
}
