package vnode_test

import (
	"context"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// TestAsyncWork: async work runs off the vnode (which keeps serving), its result goes to the command's
// sender, a full pool answers with the IfBusy reply, and stopping the manager ends the work's context.
func TestAsyncWork(t *testing.T) {
	sys := newSystem(t)
	j := newJournal()
	m := startProbe(t, sys, "sup", j, vnode.ManagerConfig{Workers: 1, WorkQueue: 1})
	pid := m.PID(5)
	first := sys.Root.RequestFuture(pid, &asyncWork{Tag: "first"}, 5*time.Second)   // runs, blocked
	second := sys.Root.RequestFuture(pid, &asyncBusy{Tag: "second"}, 5*time.Second) // queued
	// The pool is full: the third is refused at once with its busy reply.
	if got := req(t, sys, pid, &asyncBusy{Tag: "third"}).(*done).Tag; got != "third busy" {
		t.Fatalf("a third job on a full pool: %q", got)
	}
	if n := m.Metrics().AsyncRefused(); n != 1 {
		t.Fatalf("AsyncRefused %d, want 1", n)
	}
	// The vnode serves commands while its work runs.
	if rep := addVia(t, sys, pid, "meanwhile"); rep.Err != "" {
		t.Fatal(rep.Err)
	}
	close(j.releaseCh())
	for _, f := range []struct {
		name string
		res  func() (any, error)
	}{{"first", first.Result}, {"second", second.Result}} {
		res, err := f.res()
		if err != nil || res.(*done).Tag != f.name {
			t.Fatalf("%s: %v %v", f.name, res, err)
		}
	}

	// Work still running when the manager stops sees its context end; its sender gets the result.
	j.setRelease(make(chan struct{}))
	last := sys.Root.RequestFuture(pid, &asyncWork{Tag: "last"}, 5*time.Second)
	// NB: running, not only submitted: a job still queued when the manager stops is dropped unanswered.
	eventually.True(t, 5*time.Second, "the last work runs", func() bool { return j.has("async running last") })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := last.Result(); err != nil || res.(*done).Tag != "last cancelled" {
		t.Fatalf("work at stop: %v %v", res, err)
	}
}

// TestHandoffDropWaitsForAsyncWork: a drop does not delete the partition while async work of the partition
// runs (it may be reading it); it deletes once the work ended.
func TestHandoffDropWaitsForAsyncWork(t *testing.T) {
	sys := newSystem(t)
	j, jb := newJournal(), newJournal()
	db := storage.NewMemory()
	a := startProbe(t, sys, "sup-a", j, vnode.ManagerConfig{Store: db})
	b := startProbe(t, sys, "sup-b", jb, vnode.ManagerConfig{})
	pa := a.PID(5)
	addVia(t, sys, pa, "x")
	work := sys.Root.RequestFuture(pa, &asyncWork{Tag: "reader"}, 10*time.Second)
	req(t, sys, pa, &hasElem{Elem: "x"}) // NB: the work was submitted before this answer
	st := req(t, sys, pa, &vnode.BeginHandoff{Target: b.PID(5)}).(*vnode.HandoffStarted)
	if fl := req(t, sys, pa, &vnode.FinishHandoff{Session: st.Session}).(*vnode.HandoffFlushed); fl.Err != "" {
		t.Fatalf("flush: %+v", fl)
	}
	drop := sys.Root.RequestFuture(pa, &vnode.HandoffDrop{Session: st.Session}, 10*time.Second)
	// The drop waits: the data is still there (IsEmptyRequest is handled after the drop request).
	if e := req(t, sys, pa, &vnode.IsEmptyRequest{}).(*vnode.IsEmptyReply); e.Empty {
		t.Fatal("the partition was dropped while async work ran")
	}
	close(j.releaseCh())
	if res, err := work.Result(); err != nil || res.(*done).Tag != "reader" {
		t.Fatalf("work: %v %v", res, err)
	}
	res, err := drop.Result()
	if err != nil || res.(*vnode.HandoffDropped).Err != "" {
		t.Fatalf("drop: %v %v", res, err)
	}
	if holds(db, 5, "x") {
		t.Fatal("the drop did not delete the partition")
	}
	if !j.has("finished ") {
		t.Fatal("HandoffFinished was not called")
	}
}

// TestAsyncResultHasNoReply: a Result's Reply accessor is nil for Async, so wrapping behaviours do not
// mistake it for an answer.
func TestAsyncResultHasNoReply(t *testing.T) {
	if vnode.Async(func(context.Context) any { return 1 }).Reply() != nil {
		t.Fatal("Async carries a reply")
	}
}
