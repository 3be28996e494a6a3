package actors

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// Mailbox is a mailbox for a short-lived actor that gets a handful of messages, such as a request's
// coordinator, meant to be embedded in the actor's own struct: its queues keep their first few messages in
// the struct, so a spawn allocates nothing for its mailbox. protoactor's default (actor.Unbounded) costs
// every spawn five allocations (the mailbox, its queue wrapper, a ring buffer of ten slots, a lock-free
// queue and its first node), one more per system message and a closure per scheduled run.
//
// It keeps the default mailbox's contract, which protoactor's actor context relies on: system messages run
// before user messages; *actor.SuspendMailbox and *actor.ResumeMailbox (sent by supervision around a
// failure) stop and restart the user messages and are not passed on; a panic in the invoker is recovered and
// escalated with the message that caused it (actor.MessageInvoker.EscalateFailure), and the run goes on
// with the next message; a run yields its processor every Throughput messages; a message posted while a run
// ends is picked up by that run or schedules the next. A posted actor.MessageBatch (bare or in an envelope)
// is posted message by message and then as itself, as the default does. Mailbox middlewares (statistics)
// are not supported.
//
// Use: embed a Mailbox in the actor, and give the actor's props actor.WithMailbox(func() actor.Mailbox {
// return &a.mailbox }). One Mailbox serves one spawn; it must not be copied once it was produced. Its
// methods are safe for concurrent use (any goroutine may post).
type Mailbox struct {
	mu   sync.Mutex
	sys  fifo // REQUIRES: mu held
	user fifo // REQUIRES: mu held
	// The queues' first slots (RegisterHandlers hands them over). NB: four user messages, because a
	// request coordinator's first run queues its replicas' inline replies and its own timer message
	// behind the Started it is handling; two system messages (Started, then a Stop).
	sysBuf  [2]any
	userBuf [4]any

	status    atomic.Int32 // mailboxIdle or mailboxRunning: one run at a time
	sysCount  atomic.Int32 // messages in sys; written under mu, read without it
	userCount atomic.Int32 // messages in user; written under mu, read without it
	suspended atomic.Bool

	invoker    actor.MessageInvoker
	dispatcher actor.Dispatcher
	runFn      func()       // processMessages, bound once: a method value per schedule would allocate
	peer       *InlineFirst // RunPeerMessagesInline: the dispatcher told of messages from other nodes
}

var _ actor.Mailbox = (*Mailbox)(nil)

const (
	mailboxIdle int32 = iota
	mailboxRunning
)

// fifo is a queue over a slice that starts as a buffer its owner holds (Mailbox's sysBuf and userBuf): a
// queue that never holds more than the buffer allocates nothing.
type fifo struct {
	head  int   // index of the next message in items
	items []any // items[head:] are queued
}

func (q *fifo) push(m any) {
	switch {
	case q.head == len(q.items):
		clear(q.items[:q.head])
		q.items, q.head = q.items[:0], 0
	case len(q.items) == cap(q.items) && q.head > 0:
		// NB: shift instead of growing, so a queue that never quite empties does not grow without bound.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, m)
}

func (q *fifo) pop() any {
	if q.head >= len(q.items) {
		return nil
	}
	m := q.items[q.head]
	q.items[q.head] = nil // NB: the message may be large; do not keep it reachable
	q.head++
	return m
}

// PostUserMessage implements actor.Mailbox.
func (m *Mailbox) PostUserMessage(message any) {
	// NB: as protoactor's default mailbox: a batch's messages first, then the batch itself.
	if batch, ok := message.(actor.MessageBatch); ok {
		for _, msg := range batch.GetMessages() {
			m.PostUserMessage(msg)
		}
	}
	if env, ok := message.(*actor.MessageEnvelope); ok {
		if batch, ok := env.Message.(actor.MessageBatch); ok {
			for _, msg := range batch.GetMessages() {
				m.PostUserMessage(msg)
			}
		}
	}
	if m.peer != nil && fromPeer(message) {
		m.peer.fromPeer.Store(true) // NB: before schedule, which asks m.peer whether to run inline
	}
	m.mu.Lock()
	m.user.push(message)
	m.userCount.Add(1)
	m.mu.Unlock()
	m.schedule()
}

// RunPeerMessagesInline makes d, the actor's dispatcher, run inline the run that a message from another node
// starts: on the transport's receiving goroutine, which delivered it and has nothing else to do for it. Call
// it before the spawn. Why: a coordinator's replies from other nodes went from that goroutine to a pool
// worker, one more goroutine hand-off on the path of every request with a remote replica. The receiving
// goroutine already runs the vnodes other nodes ask (inline while idle), so a coordinator there nests no
// deeper than a vnode does.
//
// It relies on protoactor posting to the mailbox the envelope the transport delivered, with the header the
// transport guard stamps on it (RemoteHeader); a canary test pins it. The mark is cleared when the run takes
// a message from another node, so a mark left by one that arrived while the actor was running does not make
// a later, local, run inline (it may clear the mark of a message posted meanwhile, which then runs on the
// pool: harmless).
func (m *Mailbox) RunPeerMessagesInline(d *InlineFirst) { m.peer = d }

// PostSystemMessage implements actor.Mailbox.
func (m *Mailbox) PostSystemMessage(message any) {
	m.mu.Lock()
	m.sys.push(message)
	m.sysCount.Add(1)
	m.mu.Unlock()
	m.schedule()
}

// RegisterHandlers implements actor.Mailbox.
func (m *Mailbox) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	m.invoker, m.dispatcher = invoker, dispatcher
	m.runFn = m.processMessages
	m.mu.Lock()
	if m.sys.items == nil && m.user.items == nil { // NB: nothing posted yet (protoactor posts after this)
		m.sys.items, m.user.items = m.sysBuf[:0], m.userBuf[:0]
	}
	m.mu.Unlock()
}

// Start implements actor.Mailbox.
func (m *Mailbox) Start() {}

// UserMessageCount implements actor.Mailbox.
func (m *Mailbox) UserMessageCount() int { return int(m.userCount.Load()) }

func (m *Mailbox) schedule() {
	if m.status.CompareAndSwap(mailboxIdle, mailboxRunning) {
		m.dispatcher.Schedule(m.runFn)
	}
}

func (m *Mailbox) processMessages() {
	for {
		m.run()
		m.status.Store(mailboxIdle)
		// NB: a message posted after run found the queues empty, but before the store above, saw the
		// mailbox running and did not schedule: take it here.
		if m.sysCount.Load() == 0 && (m.suspended.Load() || m.userCount.Load() == 0) {
			return
		}
		if !m.status.CompareAndSwap(mailboxIdle, mailboxRunning) {
			return // a poster scheduled a run of its own
		}
	}
}

// pop takes the next message off q and counts it out of n, under the lock that counted it in: the counts
// are exact whenever mu is free.
func (m *Mailbox) pop(q *fifo, n *atomic.Int32) any {
	m.mu.Lock()
	msg := q.pop()
	if msg != nil {
		n.Add(-1)
	}
	m.mu.Unlock()
	return msg
}

func (m *Mailbox) run() {
	var msg any
	defer func() {
		if r := recover(); r != nil {
			m.invoker.EscalateFailure(r, msg)
		}
	}()
	i, t := 0, m.dispatcher.Throughput()
	for {
		if i > t {
			i = 0
			runtime.Gosched()
		}
		i++
		if msg = m.pop(&m.sys, &m.sysCount); msg != nil {
			switch msg.(type) {
			case *actor.SuspendMailbox:
				m.suspended.Store(true)
			case *actor.ResumeMailbox:
				m.suspended.Store(false)
			default:
				m.invoker.InvokeSystemMessage(msg)
			}
			continue
		}
		if m.suspended.Load() {
			return
		}
		if msg = m.pop(&m.user, &m.userCount); msg == nil {
			return
		}
		if m.peer != nil && fromPeer(msg) {
			// NB: the run this message asked for has it (see RunPeerMessagesInline).
			m.peer.fromPeer.Store(false)
		}
		m.invoker.InvokeUserMessage(msg)
	}
}

// fromPeer reports whether a posted message is one the transport delivered from another node.
func fromPeer(msg any) bool {
	env, ok := msg.(*actor.MessageEnvelope)
	return ok && env.Header.Get(RemoteHeader) == "1"
}
