package vnode

import (
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
// method: send a message and handle the reply as a command.
//
// Lifecycle: Init is called when the vnode actor starts and again, on a fresh value from the Factory, after
// every restart (a panic in any method restarts the vnode alone; the message being handled is dropped).
// All state that must survive a restart belongs in Env.Store.
type Behaviour interface {
	// Init prepares the behaviour for its partition. An error crashes the vnode (the supervisor retries
	// within its restart limits).
	Init(env Env) error
	// HandleCommand handles one message sent to the vnode and returns what the framework should do.
	HandleCommand(cmd any, from Sender) Result
	// HandoffFold visits every item the vnode holds, for handoff to another node.
	HandoffFold(fn func(key, value []byte) error) error
	// EncodeHandoffItem turns one folded item into bytes for the wire.
	EncodeHandoffItem(key, value []byte) ([]byte, error)
	// HandleHandoffData applies one item received by handoff, merging with what the vnode holds.
	HandleHandoffData(data []byte) error
	// IsEmpty reports whether the vnode holds no data (a handoff source may then be dropped).
	IsEmpty() (bool, error)
	// Delete removes all of the vnode's data (after a completed handoff).
	Delete() error
	// Terminate is called when the vnode stops or before it restarts. reason is nil on a normal stop.
	Terminate(reason any)
}

// Factory makes a fresh Behaviour value; it is called at start and after every restart.
type Factory func() Behaviour

// Env is what a Behaviour gets to work with.
type Env struct {
	Node      string            // this node's id
	Partition int               // the ring partition this vnode serves
	Store     storage.Partition // the partition's key space in the node's storage backend
	Logger    *slog.Logger      // carries node and partition attributes
	Now       func() time.Time  // the node's clock (fake in tests)
}

// Result is a Behaviour's decision about a command, executed by the vnode actor (riak_core's
// {reply, ...} / {noreply, ...}).
type Result struct {
	reply    any
	hasReply bool
}

// Reply makes the vnode answer the command's sender with msg.
func Reply(msg any) Result { return Result{reply: msg, hasReply: true} }

// Reply returns the reply a Result carries (nil for NoReply), so wrapping behaviours can inspect or delay it.
func (r Result) Reply() any { return r.reply }

// NoReply makes the vnode send nothing now; the behaviour may answer later with Sender.Send.
func NoReply() Result { return Result{} }

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
