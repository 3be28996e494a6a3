package vnode

import (
	"context"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/storage"
)

// Behaviour is what a vnode does: riak_core's vnode behaviour callbacks in Go. gokai's KV store is one
// Behaviour (package kv); users write others and get routing, replication, handoff and supervision for free.
//
// Threading: every method is called from the owning vnode actor only, one call at a time, never
// concurrently. Methods must not block for long: a vnode serves one message at a time, and a gokai node
// runs an idle vnode's mailbox on the goroutine of whoever sent it the message (a client connection, a
// coordinator), so a slow handler also delays that sender. Never wait for another actor's reply inside a
// method: send a message and handle the reply as a command. Blocking work (a scan, a call to another
// system) goes to the node's worker pool: return Async from HandleCommand (or Stream from HandleCoverage).
//
// Lifecycle: Init is called when the vnode actor starts, after every restart (a panic in any method restarts
// the vnode alone; the message being handled is dropped), and after a handoff drop deleted the partition,
// each time on a fresh value from the Factory. All state that must survive a restart belongs in Env.Store.
//
// Besides these methods, a Behaviour may implement optional interfaces (riak_core's other callbacks); the
// framework's default applies where it does not:
//
//	HandoffCommander  commands during a handoff      default: forwarded to the new owner, not applied here
//	HandoffMerger     did a handed-off item change?  default: assume it did
//	HandoffBatchMerger  a received batch in one call (one storage write)  default: item by item
//	ConcurrentFold    fold off the actor             default: the fold runs inside the vnode actor
//	HandoffStarter    may refuse a handoff           default: every handoff may start
//	HandoffCanceller  a handoff session ended unfinished
//	HandoffFinisher   a handoff completed (before the partition's data is deleted)
//	CoverageHandler   coverage commands (list keys, count, ...)  default: refused with an error chunk
//	InfoHandler       timers (Self.After) and messages to itself (Self.Send)  default: dropped, logged
//	ExitHandler       watched or spawned actors that stopped (Self.Watch, Self.Spawn)  default: ignored
//	AAEHasher         the tree key and version hash of a stored item: anti-entropy's hash trees  default: none
type Behaviour interface {
	// Init prepares the behaviour for its partition. An error crashes the vnode (the supervisor retries
	// within its restart limits).
	Init(env Env) error
	// HandleCommand handles one message sent to the vnode and returns what the framework should do.
	// During a handoff it is not called for behaviours without HandoffCommander: the command goes to the
	// new owner instead (see HandoffCommander), unless the session failed already. Every message that is
	// not the framework's arrives here, replies to requests the behaviour sent included.
	HandleCommand(cmd any, from Sender) Result
	// HandoffFold visits every item the vnode holds, for handoff to another node.
	HandoffFold(fn func(key, value []byte) error) error
	// EncodeHandoffItem turns one folded item into bytes for the wire.
	EncodeHandoffItem(key, value []byte) ([]byte, error)
	// HandleHandoffData applies one item received by handoff, merging with what the vnode holds. It must
	// merge, never overwrite: during a handoff the new owner also takes commands (the forwarded ones, and its
	// own) while the old owner's items arrive.
	HandleHandoffData(data []byte) error
	// IsEmpty reports whether the vnode holds no data (a handoff source may then be dropped).
	IsEmpty() (bool, error)
	// Delete removes all of the vnode's data (after a completed handoff).
	Delete() error
	// Terminate is called when the vnode stops, before it restarts, and before a handoff drop replaces the
	// behaviour with a fresh one. reason is nil on a normal stop. The behaviour's timers are cancelled and
	// the actors it spawned are stopped by the framework.
	Terminate(reason any)
}

// Factory makes a fresh Behaviour value; it is called at start, after every restart and after a drop.
type Factory func() Behaviour

// Env is what a Behaviour gets to work with.
type Env struct {
	Node      string            // this node's id
	Partition int               // the ring partition this vnode serves
	Store     storage.Partition // the partition's key space in the node's storage backend
	Logger    *slog.Logger      // carries node and partition attributes
	Now       func() time.Time  // the node's clock (fake in tests)
	// AAE is the vnode's anti-entropy hash trees when the behaviour implements AAEHasher and the node runs
	// anti-entropy, else nil. A behaviour that has them writes every change of an item through AAE.Write
	// (so the trees and their index stay in step with storage), and never writes keys that start with
	// AAEReservedPrefix.
	AAE *Hashtrees
	// Self is the vnode's handle on itself: timers, messages to itself, actors it spawns or watches. It
	// belongs to this Behaviour value: its timers and messages die with it (restart, stop, drop). The zero
	// Self (a behaviour run outside a vnode, in a unit test) sends nothing.
	Self Self
}

// resultKind says what a Result asks of the framework.
type resultKind uint8

const (
	resultNone resultKind = iota
	resultReply
	resultAsync
	resultStream
)

// Result is a Behaviour's decision about a command, executed by the vnode actor (riak_core's
// {reply, ...} / {noreply, ...} / {async, ...}).
type Result struct {
	kind     resultKind
	reply    any
	work     func(ctx context.Context) any
	fold     StreamFunc
	busy     any
	hasBusy  bool
	hasReply bool
}

// Reply makes the vnode answer the command's sender with msg (nothing is sent for a nil msg).
func Reply(msg any) Result { return Result{kind: resultReply, reply: msg, hasReply: true} }

// Reply returns the reply a Result carries (nil for NoReply, Async and Stream), so wrapping behaviours can
// inspect or delay it.
func (r Result) Reply() any { return r.reply }

// NoReply makes the vnode send nothing now; the behaviour may answer later with Sender.Send.
func NoReply() Result { return Result{} }

// Async hands work to the node's worker pool (riak_core_vnode_worker_pool) and sends what it returns to the
// command's sender (nothing for nil). The vnode goes on serving meanwhile.
//
// Threading: work runs on a pool goroutine, concurrently with every method of the behaviour: it must not
// touch the behaviour's fields without synchronisation. Reading Env.Store is safe (the backend is safe for
// concurrent use; Fold reads a snapshot). Writing the partition from work is not: a write made there during
// a handoff reaches neither the fold nor the new owner. Send the outcome to the vnode instead (Self.Send,
// handled by HandleInfo inside the actor). ctx ends when the vnode manager stops.
//
// A handoff drop waits until no async work of the partition runs (so none reads a partition being
// deleted). When the pool's queue is full, the work is not run and the sender gets the IfBusy reply, if
// one was given (else nothing: it times out).
func Async(work func(ctx context.Context) any) Result { return Result{kind: resultAsync, work: work} }

// IfBusy sets the reply an Async or Stream result sends at once when the worker pool's queue is full
// (a Stream without it ends with an error chunk).
func (r Result) IfBusy(reply any) Result {
	r.busy, r.hasBusy = reply, true
	return r
}

// StreamFunc is a coverage fold: it calls emit for every item the coverage command returns, in the order
// the requester should see them, and returns nil once done. emit keeps item (do not modify it afterwards) and
// blocks while the requester has the whole window of chunks unacknowledged; it returns an error once the
// stream must stop (the requester cancelled, went silent, or the node stops), which the fold must return.
// A fold that can run long without emitting should also return when ctx ends.
type StreamFunc func(ctx context.Context, emit func(item []byte) error) error

// Stream answers a coverage command (HandleCoverage) with a stream: the framework runs fold on the node's
// worker pool and sends what it emits to the requester in bounded chunks, each sent only once the window
// allows (see CoverageRequest). fold runs concurrently with the behaviour's methods: the threading rule of
// Async applies (read a storage snapshot; never write the partition). Returned from anything but
// HandleCoverage, the result is refused with a logged error.
func Stream(fold StreamFunc) Result { return Result{kind: resultStream, fold: fold} }

// Sender identifies who sent a command, so a behaviour can answer later (from a timer or another
// goroutine): Send is safe from any goroutine.
type Sender struct {
	system *actor.ActorSystem
	pid    *actor.PID
}

// Valid reports whether the command carried a sender to answer.
func (s Sender) Valid() bool { return s.pid != nil }

// Send delivers msg to the sender. It is a no-op for a command without a sender.
func (s Sender) Send(msg any) {
	if s.pid != nil {
		s.system.Root.Send(s.pid, msg)
	}
}
