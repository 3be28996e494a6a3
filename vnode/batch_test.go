package vnode_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// batchSetVnode is setVnode that applies a received batch in one call (vnode.HandoffBatchMerger): an item
// changes the set when its element was not held; an empty item fails the batch there, the items before it
// applied. It counts its batch calls, and fails the test's expectations if the framework falls back to
// HandleHandoffData.
type batchSetVnode struct {
	setVnode
	batches, singles *atomic.Int64
}

var _ vnode.HandoffBatchMerger = (*batchSetVnode)(nil)

func (s *batchSetVnode) HandleHandoffData(data []byte) error {
	s.singles.Add(1)
	return s.setVnode.HandleHandoffData(data)
}

func (s *batchSetVnode) MergeHandoffBatch(items [][]byte, changed []bool) (int, error) {
	s.batches.Add(1)
	var ops []storage.Op
	held := map[string]bool{}
	n := len(items)
	var err error
	for i, it := range items {
		if len(it) == 0 {
			n, err = i, errors.New("batchset: empty item")
			break
		}
		if _, e := s.env.Store.Get(it); e == nil || held[string(it)] {
			continue
		}
		held[string(it)] = true
		changed[i] = true
		ops = append(ops, storage.Op{Key: it, Value: []byte{1}})
	}
	if e := s.env.Store.Write(ops); e != nil {
		clear(changed)
		return 0, e
	}
	return n, err
}

// itemRecorder takes HandoffForwards, acknowledges them and reports their items.
type itemRecorder struct{ got chan string }

func (r *itemRecorder) Receive(ctx actor.Context) {
	if m, ok := ctx.Message().(*vnode.HandoffForward); ok {
		r.got <- string(m.Item)
		ctx.Respond(&vnode.HandoffForwardAck{V: 1, Seq: m.Seq})
	}
}

// TestHandoffBatchMergerTakesTheWholeBatch: a behaviour with HandoffBatchMerger gets a received batch in one
// call, never item by item; while the vnode hands off itself, exactly the items the batch applied and that
// changed its data are passed on (not one it held already, nor those after a failing item), and the ack
// carries the failure.
func TestHandoffBatchMergerTakesTheWholeBatch(t *testing.T) {
	sys := newSystem(t)
	var batches, singles atomic.Int64
	db := storage.NewMemory()
	m, err := vnode.StartManager(sys, vnode.ManagerConfig{Name: "sup-batch", Node: "b", Partitions: []int{5}, Store: db,
		Factory: func() vnode.Behaviour { return &batchSetVnode{batches: &batches, singles: &singles} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop(context.Background()) })
	pid := m.PID(5)
	if rep := addVia(t, sys, pid, "held"); rep.Err != "" {
		t.Fatal(rep.Err)
	}
	got := make(chan string, 16)
	rec := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &itemRecorder{got: got} }))
	t.Cleanup(func() { sys.Root.Stop(rec) })
	st := begin(t, sys, pid, rec)

	batch := &vnode.HandoffBatch{V: 1, Seq: 9, Items: [][]byte{[]byte("x"), []byte("held"), []byte("y"), []byte("x"), {}, []byte("z")}}
	res, err := actors.Request(context.Background(), sys, pid, batch, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if ack := res.(*vnode.HandoffAck); ack.Seq != 9 || ack.Err == "" {
		t.Fatalf("ack %+v: want seq 9 and the empty item's error", ack)
	}
	if batches.Load() != 1 || singles.Load() != 0 {
		t.Fatalf("%d batch calls and %d single items, want the batch in one call", batches.Load(), singles.Load())
	}
	for _, e := range []string{"x", "y"} {
		if !holds(db, 5, e) {
			t.Fatalf("%s not stored", e)
		}
	}
	if holds(db, 5, "z") {
		t.Fatal("z, after the failing item, was stored")
	}
	// Every forward is acknowledged before the flush answers: then the recorder holds all of them.
	res, err = actors.Request(context.Background(), sys, pid, &vnode.FinishHandoff{Session: st.Session}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if fl := res.(*vnode.HandoffFlushed); fl.Err != "" || fl.Forwarded != 2 {
		t.Fatalf("flush %+v: want 2 forwards and no error", fl)
	}
	var forwarded []string
	for len(got) > 0 {
		forwarded = append(forwarded, <-got)
	}
	if len(forwarded) != 2 || forwarded[0] != "x" || forwarded[1] != "y" {
		t.Fatalf("passed on %q, want [x y] (the changed items the batch applied, in order)", forwarded)
	}
}
