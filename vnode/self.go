package vnode

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Self is a vnode's handle on itself, given to its Behaviour in Env.Self (riak_core's send_command_after,
// and the vnode process's own links and monitors). It belongs to one Behaviour value, an incarnation: the
// timers and messages of an incarnation die with it (the vnode restarts, stops, or a drop replaces the
// behaviour), so a fresh Behaviour never receives its predecessor's.
//
// Threading: Send and After are safe from any goroutine (async work, timers). Spawn, Watch and Unwatch act
// on the vnode actor itself: call them only from a Behaviour method (they panic elsewhere).
type Self struct{ inc *incarnation }

// incarnation is one Behaviour value's timers, messages and watched actors.
type incarnation struct {
	system *actor.ActorSystem
	pid    *actor.PID

	mu     sync.Mutex
	timers map[uint64]*time.Timer // REQUIRES: mu held
	nextID uint64                 // REQUIRES: mu held
	dead   bool                   // REQUIRES: mu held

	// inCall is true while the vnode actor handles a message (a Behaviour method may run), and ctx holds
	// its context. Both are atomic: a Spawn misplaced on another goroutine reads them without a data race
	// (and panics, unless the vnode happens to be handling a message at that moment).
	inCall atomic.Bool
	// ctx is stored once per actor context (protoactor keeps one context for an actor's life), never
	// cleared: inCall says whether it may be used.
	ctx atomic.Pointer[actor.Context]
	// Used by the vnode actor only (inside Receive).
	watched map[string]bool // actors spawned or watched by this incarnation, by pidKey
}

// enter and leave bracket the vnode actor's handling of a message.
func (c *incarnation) enter(ctx actor.Context) {
	if p := c.ctx.Load(); p == nil || *p != ctx {
		c.storeCtx(ctx)
	}
	c.inCall.Store(true)
}

// storeCtx keeps ctx for Self. NB: apart from enter, so that only this rare call moves its ctx to the heap
// (&ctx in enter itself allocated on every message).
//
//go:noinline
func (c *incarnation) storeCtx(ctx actor.Context) { c.ctx.Store(&ctx) }

func (c *incarnation) leave() { c.inCall.Store(false) }

func newIncarnation(system *actor.ActorSystem, pid *actor.PID) *incarnation {
	return &incarnation{system: system, pid: pid, timers: map[uint64]*time.Timer{}, watched: map[string]bool{}}
}

// selfMessage carries a timer's or Self.Send's message to the vnode; the vnode drops it unless inc is its
// current incarnation (and, for a timer, the timer was not stopped meanwhile).
type selfMessage struct {
	inc   *incarnation
	timer uint64 // 0 for Self.Send
	msg   any
}

// PID is the vnode actor's PID (stable across restarts), or nil for the zero Self.
func (s Self) PID() *actor.PID {
	if s.inc == nil {
		return nil
	}
	return s.inc.pid
}

// Send delivers msg to the behaviour's HandleInfo, inside the vnode actor, after the messages already
// queued. Safe from any goroutine; dropped once the incarnation is gone.
func (s Self) Send(msg any) {
	c := s.inc
	if c == nil {
		return
	}
	c.mu.Lock()
	dead := c.dead
	c.mu.Unlock()
	if !dead {
		c.system.Root.Send(c.pid, &selfMessage{inc: c, msg: msg})
	}
}

// Timer is a message the vnode will deliver to HandleInfo later (Self.After).
type Timer struct {
	inc *incarnation
	id  uint64
}

// After delivers msg to HandleInfo once d has passed (riak_core's send_command_after), unless the timer is
// stopped first or the incarnation ends. Safe from any goroutine.
func (s Self) After(d time.Duration, msg any) Timer {
	c := s.inc
	if c == nil {
		return Timer{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return Timer{}
	}
	c.nextID++
	id := c.nextID
	c.timers[id] = time.AfterFunc(d, func() { c.system.Root.Send(c.pid, &selfMessage{inc: c, timer: id, msg: msg}) })
	return Timer{inc: c, id: id}
}

// Stop cancels the timer. It reports whether it did: false when the message was handled already, the timer
// was stopped before, or its incarnation ended. After Stop returns true the message is never handled.
func (t Timer) Stop() bool {
	c := t.inc
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	tm, ok := c.timers[t.id]
	if !ok {
		return false
	}
	tm.Stop()
	delete(c.timers, t.id)
	return true
}

// take claims a fired timer for delivery: false if it was stopped meanwhile or the incarnation ended.
func (c *incarnation) take(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.timers[id]; !ok || c.dead {
		return false
	}
	delete(c.timers, id)
	return true
}

// pending is how many timers wait (tests).
func (c *incarnation) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// kill ends the incarnation: its timers stop and its messages still queued are dropped on arrival.
func (c *incarnation) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dead = true
	for id, tm := range c.timers {
		tm.Stop()
		delete(c.timers, id)
	}
}

// callCtx is the actor context of the Behaviour method running now; it panics outside one.
func (s Self) callCtx(what string) (*incarnation, actor.Context) {
	c := s.inc
	if c == nil || !c.inCall.Load() {
		panic("vnode: Self." + what + " called outside a Behaviour method of a running vnode")
	}
	p := c.ctx.Load()
	if p == nil {
		panic("vnode: Self." + what + " called outside a Behaviour method of a running vnode")
	}
	return c, *p
}

// Spawn starts an actor as a child of the vnode: it stops with the vnode (and with the behaviour, on a
// drop), and its end is reported to HandleExit. Call it only from a Behaviour method.
func (s Self) Spawn(props *actor.Props) *actor.PID {
	c, ctx := s.callCtx("Spawn")
	pid := ctx.Spawn(props)
	c.watched[pidKey(pid)] = true
	return pid
}

// Watch reports pid's end to HandleExit (immediately, with NotFound, if it does not exist). Call it only
// from a Behaviour method.
func (s Self) Watch(pid *actor.PID) {
	c, ctx := s.callCtx("Watch")
	c.watched[pidKey(pid)] = true
	ctx.Watch(pid)
}

// Unwatch stops reporting pid's end. Call it only from a Behaviour method.
func (s Self) Unwatch(pid *actor.PID) {
	c, ctx := s.callCtx("Unwatch")
	delete(c.watched, pidKey(pid))
	ctx.Unwatch(pid)
}

// pidKey names a PID in maps (address and id; a PID's RequestId does not name another actor).
func pidKey(pid *actor.PID) string { return pid.Address + "/" + pid.Id }
