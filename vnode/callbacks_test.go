package vnode_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/handoff"
	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

func wantEvents(t *testing.T, j *journal, want ...string) {
	t.Helper()
	if got := j.take(); !slices.Equal(got, want) {
		t.Fatalf("callbacks:\n got %q\nwant %q", got, want)
	}
}

// TestHandoffLifecycleCallbacks: HandoffStarting may refuse (nothing changes), every session it let begin
// ends with exactly one of HandoffCancelled (cancel, superseded, failed drop) or HandoffFinished (a
// completed drop, before Delete), and a drop replaces the behaviour (Terminate, then Init of a fresh one).
func TestHandoffLifecycleCallbacks(t *testing.T) {
	sys := newSystem(t)
	j, jb := newJournal(), newJournal()
	dbA, dbB := storage.NewMemory(), storage.NewMemory()
	a := startProbe(t, sys, "sup-a", j, vnode.ManagerConfig{Store: dbA})
	b := startProbe(t, sys, "sup-b", jb, vnode.ManagerConfig{Store: dbB})
	pa, pb := a.PID(5), b.PID(5)
	addVia(t, sys, pa, "x")
	wantEvents(t, j, "init 1")
	begin := func(target *actor.PID) *vnode.HandoffStarted {
		return req(t, sys, pa, &vnode.BeginHandoff{Target: target, Node: "b", Hinted: true}).(*vnode.HandoffStarted)
	}

	// Refused: no session, the vnode serves commands itself.
	j.mu.Lock()
	j.refuse = 1
	j.mu.Unlock()
	if st := begin(pb); st.Refused == "" || st.Session != 0 || st.Fold != nil {
		t.Fatalf("refused handoff started: %+v", st)
	}
	wantEvents(t, j, "starting b hinted=true ok=false")
	if fl := req(t, sys, pa, &vnode.FinishHandoff{Session: 1}).(*vnode.HandoffFlushed); !strings.Contains(fl.Err, "not in handoff") {
		t.Fatalf("after a refusal the vnode is in handoff: %+v", fl)
	}
	addVia(t, sys, pa, "local")
	if !holds(dbA, 5, "local") {
		t.Fatal("a command after a refused handoff was not applied locally")
	}

	// Cancelled, superseded.
	s1 := begin(pb)
	sys.Root.Send(pa, &vnode.CancelHandoff{Session: s1.Session})
	s2 := begin(pb)
	s3 := begin(pb)
	wantEvents(t, j, "starting b hinted=true ok=true", "cancelled", "starting b hinted=true ok=true", "cancelled", "starting b hinted=true ok=true")
	if s2.Session == s3.Session {
		t.Fatal("sessions share an id")
	}

	// A failed drop (the forward target vanished) ends the session: cancelled, nothing deleted.
	hole, _ := spawnHole(t, sys)
	s4 := begin(hole)
	if err := sys.Root.StopFuture(hole).Wait(); err != nil {
		t.Fatal(err)
	}
	addVia0(sys, pa, "lost-forward") // forwarded to a dead target: no reply, the session fails
	if d := req(t, sys, pa, &vnode.HandoffDrop{Session: s4.Session, AckTimeout: time.Second}).(*vnode.HandoffDropped); d.Err == "" {
		t.Fatalf("drop after a lost forward: %+v", d)
	}
	wantEvents(t, j, "cancelled", "starting b hinted=true ok=true", "cancelled")
	if !holds(dbA, 5, "x") {
		t.Fatal("a failed drop deleted data")
	}

	// Finished: fold to B, flush, drop: HandoffFinished, then Delete, then a fresh behaviour.
	s5 := begin(pb)
	var items [][]byte
	if err := s5.Fold(func(k, v []byte) error {
		it, err := s5.Encode(k, v)
		items = append(items, it)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if ack := req(t, sys, pb, &vnode.HandoffBatch{V: 1, Seq: 1, Items: items}).(*vnode.HandoffAck); ack.Err != "" {
		t.Fatal(ack.Err)
	}
	if d := req(t, sys, pa, &vnode.HandoffDrop{Session: s5.Session}).(*vnode.HandoffDropped); d.Err != "" {
		t.Fatalf("drop: %+v", d)
	}
	wantEvents(t, j, "starting b hinted=true ok=true", "finished b", "terminate 1 handoff drop", "init 2")
	if holds(dbA, 5, "x") || !holds(dbB, 5, "x") || !holds(dbB, 5, "local") {
		t.Fatal("the drop did not move the data")
	}
}

// addVia0 sends an addElem without waiting for a reply.
func addVia0(sys *actor.ActorSystem, pid *actor.PID, elem string) {
	sys.Root.RequestFuture(pid, &addElem{Elem: elem}, time.Second)
}

// TestHandoffRefusedIsRetried: a transfer whose vnode refuses the handoff is retried until it accepts.
func TestHandoffRefusedIsRetried(t *testing.T) {
	sys := newSystem(t)
	j, jb := newJournal(), newJournal()
	dbB := storage.NewMemory()
	a := startProbe(t, sys, "sup-a", j, vnode.ManagerConfig{})
	b := startProbe(t, sys, "sup-b", jb, vnode.ManagerConfig{Store: dbB})
	addVia(t, sys, a.PID(5), "x")
	j.mu.Lock()
	j.refuse = 3
	j.mu.Unlock()
	hm, err := handoff.New(handoff.Config{Self: "a", Services: []string{"probe"}, Resolver: twoNodes{a: a, b: b}, System: sys, Timeout: 5 * time.Second,
		RetryAfter: time.Millisecond, Report: func(context.Context, handoff.Move) error { return nil }, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer hm.Close()
	hm.SyncHinted([]handoff.Move{{Service: "probe", Partition: 5, From: "a", To: "b", Hinted: true}})
	eventually.True(t, 20*time.Second, "the hinted handoff completed", func() bool { return hm.HintedRounds() == 1 })
	got := j.take()
	refusals := 0
	for _, e := range got {
		if e == "starting b hinted=true ok=false" {
			refusals++
		}
	}
	if refusals != 3 || !slices.Contains(got, "finished b") || !holds(dbB, 5, "x") {
		t.Fatalf("callbacks %q; want 3 refusals, then a finished handoff", got)
	}
	if p := hm.Progress(); len(p) != 1 || p[0].Attempts != 4 {
		t.Fatalf("progress %+v, want 4 attempts", p)
	}
}
