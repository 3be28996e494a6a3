package vnode

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/storage"
)

func putVia(t *testing.T, sys *actor.ActorSystem, pid *actor.PID, key, val string) *PutReply {
	t.Helper()
	res, err := actors.Request(context.Background(), sys, pid, &PutRequest{V: 1, Key: []byte(key), Coordinate: true, Blind: true, Value: []byte(val)}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return res.(*PutReply)
}

func getVia(t *testing.T, sys *actor.ActorSystem, pid *actor.PID, key string) *Object {
	t.Helper()
	res, err := actors.Request(context.Background(), sys, pid, &GetRequest{V: 1, Key: []byte(key)}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return res.(*GetReply).Object
}

// startPartition5 starts a vnode manager of node running a KV vnode for partition 5 over memory storage.
func startPartition5(t *testing.T, sys *actor.ActorSystem, name, node string) *Manager {
	t.Helper()
	m, err := StartManager(sys, ManagerConfig{Name: name, Node: node, Partitions: []int{5}, Factory: NewKV(DefaultKVConfig()), Store: storage.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop(context.Background()) })
	return m
}

// TestHandoffMovesEverythingIncludingWritesDuringTheFold runs a whole ownership handoff between two vnodes
// of partition 5 (old owner A, new owner B) while writes keep arriving at A.
func TestHandoffMovesEverythingIncludingWritesDuringTheFold(t *testing.T) {
	sys := newSystem(t)
	mk := func(name, node string) *Manager { return startPartition5(t, sys, name, node) }
	a, b := mk("sup-a", "a"), mk("sup-b", "b")
	pa, pb := a.PID(5), b.PID(5)
	for i := 0; i < 500; i++ {
		putVia(t, sys, pa, fmt.Sprintf("old%d", i), "v")
	}
	res, err := actors.Request(context.Background(), sys, pa, &BeginHandoff{Target: pb}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	st := res.(*HandoffStarted)

	// Writers hit the old owner during the fold: new keys and overwrites of folded ones.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 300; i++ {
			putVia(t, sys, pa, fmt.Sprintf("new%d", i), "during")
			putVia(t, sys, pa, fmt.Sprintf("old%d", i), "overwritten")
		}
	}()
	var batch [][]byte
	var seq uint64
	send := func() {
		seq++
		r, err := actors.Request(context.Background(), sys, pb, &HandoffBatch{V: 1, Seq: seq, Items: batch}, 5*time.Second)
		if err != nil {
			t.Error(err)
			return
		}
		if ack := r.(*HandoffAck); ack.Err != "" || ack.Seq != seq {
			t.Errorf("ack %+v", ack)
		}
		batch = nil
	}
	err = st.Fold(func(k, v []byte) error {
		item, err := st.Encode(k, v)
		if err != nil {
			return err
		}
		batch = append(batch, item)
		if len(batch) == 64 {
			send()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(batch) > 0 {
		send()
	}
	wg.Wait()
	res, err = actors.Request(context.Background(), sys, pa, &FinishHandoff{}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if fl := res.(*HandoffFlushed); fl.Err != "" || fl.Forwarded != 600 {
		t.Fatalf("flushed %+v, want 600 forwards", fl)
	}
	// The new owner holds exactly what the old one holds.
	for _, k := range []string{"old0", "old299", "old300", "old499", "new0", "new299"} {
		oa, ob := getVia(t, sys, pa, k), getVia(t, sys, pb, k)
		if oa == nil || !oa.Equal(ob) {
			t.Fatalf("%s: old owner %v, new owner %v", k, oa, ob)
		}
	}
	if got := string(getVia(t, sys, pb, "old0").Siblings[0].Value); got != "overwritten" {
		t.Fatalf("old0 at new owner: %q", got)
	}
	// A hinted handoff ends by dropping the data, once every forward is acknowledged.
	res, err = actors.Request(context.Background(), sys, pa, &HandoffDrop{}, 5*time.Second)
	if err != nil || res.(*HandoffDropped).Err != "" {
		t.Fatalf("drop: %v %v", res, err)
	}
	if getVia(t, sys, pa, "old0") != nil {
		t.Fatal("old owner still holds data after the drop")
	}
	res, _ = actors.Request(context.Background(), sys, pa, &IsEmptyRequest{}, time.Second)
	if !res.(*IsEmptyReply).Empty {
		t.Fatal("old owner not empty after the drop")
	}
	// A drop outside a handoff is refused (nothing deleted).
	putVia(t, sys, pa, "later", "x")
	res, _ = actors.Request(context.Background(), sys, pa, &HandoffDrop{}, time.Second)
	if res.(*HandoffDropped).Err == "" || getVia(t, sys, pa, "later") == nil {
		t.Fatal("a drop without a handoff must be refused")
	}
	if b.Metrics().HandoffItemsReceived() != 500 {
		t.Fatalf("items received %d, want 500", b.Metrics().HandoffItemsReceived())
	}
}

// TestHandoffDataArrivingDuringAnOutgoingHandoffIsPassedOn: when two nodes' rings disagree, a vnode can be
// handing its partition off (as hints) while the other side's transfer still brings it items. Those items
// arrive after the fold's snapshot; the vnode must pass them on before its drop, or they are lost.
func TestHandoffDataArrivingDuringAnOutgoingHandoffIsPassedOn(t *testing.T) {
	sys := newSystem(t)
	mk := func(name, node string) *Manager { return startPartition5(t, sys, name, node) }
	a, b, src := mk("sup-a", "a"), mk("sup-b", "b"), mk("sup-src", "src")
	pa, pb, psrc := a.PID(5), b.PID(5), src.PID(5)
	putVia(t, sys, pb, "b-own", "v")
	// B starts handing off to A (its hint scan, on a stale ring)...
	if _, err := actors.Request(context.Background(), sys, pb, &BeginHandoff{Target: pa}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	// ...while another node's transfer brings B items, as a batch and as a forward.
	item := func(key string) []byte {
		o := putVia(t, sys, psrc, key, "from-src").Object
		raw, err := o.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		it, err := (&KV{}).EncodeHandoffItem([]byte(key), raw)
		if err != nil {
			t.Fatal(err)
		}
		return it
	}
	res, err := actors.Request(context.Background(), sys, pb, &HandoffBatch{V: 1, Seq: 1, Items: [][]byte{item("batched")}}, 2*time.Second)
	if err != nil || res.(*HandoffAck).Err != "" {
		t.Fatalf("batch: %v %v", res, err)
	}
	res, err = actors.Request(context.Background(), sys, pb, &HandoffForward{V: 1, Seq: 1, Item: item("forwarded")}, 2*time.Second)
	if err != nil || res.(*HandoffForwardAck).Err != "" {
		t.Fatalf("forward: %v %v", res, err)
	}
	res, err = actors.Request(context.Background(), sys, pb, &HandoffDrop{}, 5*time.Second)
	if err != nil || res.(*HandoffDropped).Err != "" {
		t.Fatalf("drop: %v %v", res, err)
	}
	for _, k := range []string{"batched", "forwarded"} {
		if o := getVia(t, sys, pa, k); o == nil || string(o.Siblings[0].Value) != "from-src" {
			t.Fatalf("%s: lost between the two handoffs (A holds %v)", k, o)
		}
	}
}

// TestFoldAndDropRequests: FoldRequest reads without entering handoff mode (a write is not forwarded), a
// DropRequest removes only keys still stored exactly as the fold read them, and HandoffReceived counts the
// items a vnode took, across a restart of the vnode.
func TestFoldAndDropRequests(t *testing.T) {
	sys := newSystem(t)
	a, b := startPartition5(t, sys, "sup-a", "a"), startPartition5(t, sys, "sup-b", "b")
	pa, pb := a.PID(5), b.PID(5)
	for _, k := range []string{"k1", "k2", "k3"} {
		putVia(t, sys, pa, k, "v")
	}
	res, err := actors.Request(context.Background(), sys, pa, &FoldRequest{}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	st := res.(*HandoffStarted)
	var keys, objs, items [][]byte
	if err := st.Fold(func(k, v []byte) error {
		item, err := st.Encode(k, v)
		if err != nil {
			return err
		}
		key, obj, err := DecodeHandoffItem(item)
		keys, objs, items = append(keys, key), append(objs, obj), append(items, item)
		return err
	}); err != nil || len(keys) != 3 {
		t.Fatalf("fold: %d keys, %v", len(keys), err)
	}
	// Not in handoff mode: FinishHandoff says so.
	if r, err := actors.Request(context.Background(), sys, pa, &FinishHandoff{}, 2*time.Second); err != nil || r.(*HandoffFlushed).Err == "" {
		t.Fatalf("after FoldRequest the vnode is in handoff mode: %v %v", r, err)
	}
	// k2 changes after the fold: its drop must be refused; k3 is gone already.
	putVia(t, sys, pa, "k2", "newer")
	res, err = actors.Request(context.Background(), sys, pa, &DropRequest{Keys: keys[:1], Objects: objs[:1]}, 2*time.Second)
	if err != nil || res.(*DropReply).Dropped != 1 || res.(*DropReply).Err != "" {
		t.Fatalf("drop k1: %v %v", res, err)
	}
	res, err = actors.Request(context.Background(), sys, pa, &DropRequest{Keys: keys, Objects: objs}, 2*time.Second)
	if err != nil || res.(*DropReply).Err != "" {
		t.Fatalf("drop all: %v %v", res, err)
	}
	for i, k := range keys {
		o := getVia(t, sys, pa, string(k))
		switch {
		case string(k) == "k2" && (o == nil || string(o.Siblings[0].Value) != "newer"):
			t.Fatalf("k2, written after the fold, was dropped: %v", o)
		case string(k) != "k2" && o != nil:
			t.Fatalf("%s still held after its drop (item %d)", k, i)
		}
	}
	if got := res.(*DropReply).Dropped; got != 1 {
		t.Fatalf("dropped %d keys in the second request, want 1 (k3)", got)
	}
	if r, err := actors.Request(context.Background(), sys, pa, &DropRequest{Keys: keys}, 2*time.Second); err != nil || r.(*DropReply).Err == "" {
		t.Fatalf("mismatched drop request accepted: %v %v", r, err)
	}

	// HandoffReceived counts merged items, and keeps counting across a vnode restart.
	if got := b.HandoffReceived(5); got != 0 {
		t.Fatalf("received %d before any handoff", got)
	}
	r, err := actors.Request(context.Background(), sys, pb, &HandoffBatch{V: 1, Seq: 1, Items: items}, 2*time.Second)
	if err != nil || r.(*HandoffAck).Err != "" {
		t.Fatalf("batch: %v %v", r, err)
	}
	if got := b.HandoffReceived(5); got != 3 {
		t.Fatalf("received %d, want 3", got)
	}
	if err := b.Crash(5, "test"); err != nil {
		t.Fatal(err)
	}
	r, err = actors.Request(context.Background(), sys, pb, &HandoffBatch{V: 1, Seq: 2, Items: items[:1]}, 2*time.Second)
	if err != nil || r.(*HandoffAck).Err != "" {
		t.Fatalf("batch after restart: %v %v", r, err)
	}
	if got := b.HandoffReceived(5); got != 4 {
		t.Fatalf("received %d after a restart, want 4", got)
	}
	if got := b.HandoffReceived(6); got != 0 {
		t.Fatalf("partition without a vnode: received %d", got)
	}
}
