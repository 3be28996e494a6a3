package vnode_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/vnode"
)

// TestTimersAndInfo: a timer reaches HandleInfo; a stopped timer never does; Self.Send works from any
// goroutine; and timers and messages of an incarnation die with it (a restart), never reaching the next.
func TestTimersAndInfo(t *testing.T) {
	sys := newSystem(t)
	j := newJournal()
	m := startProbe(t, sys, "sup", j, vnode.ManagerConfig{})
	pid := m.PID(5)
	req(t, sys, pid, &setTimer{Name: "soon", D: time.Millisecond})
	req(t, sys, pid, &setTimer{Name: "never", D: time.Hour})
	eventually.True(t, 5*time.Second, "the timer fired", func() bool { return j.has("info 1 soon") })
	if got := req(t, sys, pid, &stopTimer{Name: "soon"}).(*done).Tag; got != "false" {
		t.Fatalf("stopping a fired timer reported %s", got)
	}
	if got := req(t, sys, pid, &stopTimer{Name: "never"}).(*done).Tag; got != "true" {
		t.Fatalf("stopping a pending timer reported %s", got)
	}
	go j.self(1).Send("from a goroutine")
	eventually.True(t, 5*time.Second, "Self.Send arrived", func() bool { return j.has("info 1 from a goroutine") })

	// A restart ends incarnation 1: its pending timer is cancelled, its messages are dropped.
	req(t, sys, pid, &setTimer{Name: "pending", D: time.Hour})
	old := j.self(1)
	oldTimer := old.After(time.Hour, "old")
	if err := m.Crash(5, "test"); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 5*time.Second, "the vnode restarted", func() bool { return j.has("init 2") })
	if oldTimer.Stop() {
		t.Fatal("a timer of the crashed incarnation was still pending")
	}
	old.Send("stale")
	old.After(0, "stale timer")
	j.self(2).Send("fresh") // NB: queued after the stale ones: once it arrived, they would have too
	eventually.True(t, 5*time.Second, "the new incarnation's message", func() bool { return j.has("info 2 fresh") })
	for _, e := range j.take() {
		if e == "info 1 stale" || e == "info 2 stale" || e == "info 2 stale timer" || e == "info 2 pending" {
			t.Fatalf("a message of the old incarnation reached the behaviour: %q", e)
		}
	}
	// The zero Self (a behaviour outside a vnode) sends nothing and does not panic.
	var zero vnode.Self
	zero.Send("x")
	if zero.After(time.Millisecond, "x").Stop() || zero.PID() != nil {
		t.Fatal("the zero Self has a timer or a PID")
	}
}

// TestExits: the end of a spawned child and of a watched actor reach HandleExit; an unwatched actor's does
// not; a restart stops the old incarnation's children without reporting them to the new one.
func TestExits(t *testing.T) {
	sys := newSystem(t)
	j := newJournal()
	m := startProbe(t, sys, "sup", j, vnode.ManagerConfig{})
	pid := m.PID(5)
	child := req(t, sys, pid, &spawnOne{Name: "child"}).(*actor.PID)
	other := sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	unwatched := sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	req(t, sys, pid, &watchOne{Name: "other", PID: other})
	req(t, sys, pid, &watchOne{Name: "unwatched", PID: unwatched})
	req(t, sys, pid, &unwatchOne{Name: "unwatched"})
	for _, p := range []*actor.PID{unwatched, child, other} {
		if err := sys.Root.StopFuture(p).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	eventually.True(t, 5*time.Second, "exits reported", func() bool { return j.has("exit 1 child Stopped") && j.has("exit 1 other Stopped") })
	// NB: the unwatched actor stopped first; its end would have been reported before the others'.
	if j.has("exit 1 unwatched Stopped") {
		t.Fatal("an unwatched actor's end was reported")
	}

	// A child of incarnation 1 is stopped by the restart, and incarnation 2 hears nothing of it.
	child2 := req(t, sys, pid, &spawnOne{Name: "child2"}).(*actor.PID)
	if err := m.Crash(5, "test"); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 5*time.Second, "the vnode restarted", func() bool { return j.has("init 2") })
	eventually.True(t, 5*time.Second, "the old incarnation's child stopped", func() bool {
		_, alive := sys.ProcessRegistry.Get(child2)
		return !alive
	})
	child3 := req(t, sys, pid, &spawnOne{Name: "child3"}).(*actor.PID)
	if err := sys.Root.StopFuture(child3).Wait(); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 5*time.Second, "the new child's exit", func() bool { return j.has("exit 2 child3 Stopped") })
	// NB: child2 stopped before child3 was even spawned: its end would have been reported first.
	if got := j.take(); slices.ContainsFunc(got, func(e string) bool { return strings.Contains(e, "child2") || strings.Contains(e, "unknown") }) {
		t.Fatalf("the old incarnation's child was reported: %q", got)
	}
}

// TestSelfOutsideACallbackPanics: Spawn and Watch act on the vnode actor and refuse to run elsewhere.
func TestSelfOutsideACallbackPanics(t *testing.T) {
	sys := newSystem(t)
	j := newJournal()
	m := startProbe(t, sys, "sup", j, vnode.ManagerConfig{})
	req(t, sys, m.PID(5), &hasElem{Elem: "x"}) // NB: Init done
	// NB: the answer may arrive before the vnode has finished handling the request; nothing else is sent
	// to it, so once it leaves that message it stays idle.
	eventually.True(t, 5*time.Second, "the vnode idle", func() bool { return !j.self(1).InCall() })
	defer func() {
		if recover() == nil {
			t.Fatal("Self.Spawn outside a Behaviour method did not panic")
		}
	}()
	j.self(1).Spawn(actor.PropsFromFunc(func(actor.Context) {}))
}
