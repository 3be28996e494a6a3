package vnode

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// allocCtx stands for the actor context protoactor keeps for a vnode's life (enter only compares it).
type allocCtx struct{ actor.Context }

// TestIncarnationEnterAllocates: entering a message with the context already stored allocates nothing (a
// vnode enters once per message; storing &ctx used to move every call's ctx to the heap).
func TestIncarnationEnterAllocates(t *testing.T) {
	c := newIncarnation(nil, nil)
	var ctx actor.Context = &allocCtx{}
	c.enter(ctx)
	c.leave()
	if p := c.ctx.Load(); p == nil || *p != ctx {
		t.Fatal("enter did not store the context")
	}
	if n := testing.AllocsPerRun(100, func() { c.enter(ctx); c.leave() }); n != 0 {
		t.Fatalf("enter with the stored context: %v allocations, want 0", n)
	}
	other := actor.Context(&allocCtx{})
	c.enter(other)
	if p := c.ctx.Load(); p == nil || *p != other || !c.inCall.Load() {
		t.Fatal("enter with a new context did not store it")
	}
	c.leave()
}
