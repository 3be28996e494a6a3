package counter

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/handoff"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

type twoNodes struct{ a, b *vnode.Manager }

func (n twoNodes) LocalVnode(_ string, p int) *actor.PID { return n.a.PID(p) }
func (n twoNodes) VnodePID(_ string, node ring.NodeID, p int) *actor.PID {
	if node == "b" {
		return n.b.PID(p)
	}
	return n.a.PID(p)
}

// TestCounterGetsSupervisionPersistenceAndHandoffForFree runs the counter behaviour on the gokai vnode
// framework: routing by ring, a crash of a vnode, and an ownership handoff to another node's vnode.
func TestCounterGetsSupervisionPersistenceAndHandoffForFree(t *testing.T) {
	sys := actors.NewSystem(slog.New(slog.DiscardHandler))
	defer sys.Shutdown()
	rg, err := ring.New(8, 1, []ring.NodeID{"a"})
	if err != nil {
		t.Fatal(err)
	}
	all := rg.PartitionsOf("a")
	mk := func(name, node string) *vnode.Manager {
		m, err := vnode.StartManager(sys, vnode.ManagerConfig{Name: name, Node: node, Partitions: all, Factory: New, Store: storage.NewMemory()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Stop(context.Background()) })
		return m
	}
	a, b := mk("counters-a", "a"), mk("counters-b", "b")
	ask := func(m *vnode.Manager, msg any, name string) uint64 {
		t.Helper()
		res, err := actors.Request(context.Background(), sys, m.PID(rg.PartitionForKey([]byte(name))), msg, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		v := res.(*Value)
		if v.Err != "" {
			t.Fatal(v.Err)
		}
		return v.Count
	}
	for i := 0; i < 10; i++ {
		for j := 0; j <= i; j++ {
			ask(a, &Incr{Name: fmt.Sprintf("page%d", i), By: 1}, fmt.Sprintf("page%d", i))
		}
	}
	// A crashed vnode restarts with its counters.
	p := rg.PartitionForKey([]byte("page3"))
	if err := a.Crash(p, "example"); err != nil {
		t.Fatal(err)
	}
	if got := ask(a, &Read{Name: "page3"}, "page3"); got != 4 {
		t.Fatalf("page3 after crash = %d, want 4", got)
	}
	// Hand every partition from a to b.
	done := make(chan handoff.Move, len(all))
	hm, err := handoff.New(handoff.Config{Self: "a", Services: []string{"counter"}, Resolver: twoNodes{a, b}, System: sys,
		Report: func(_ context.Context, m handoff.Move) error { done <- m; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer hm.Close()
	var moves []handoff.Move
	for _, p := range all {
		moves = append(moves, handoff.Move{Service: "counter", Partition: p, From: "a", To: "b"})
	}
	hm.Sync(moves)
	for range all {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("handoff stuck: %+v", hm.Progress())
		}
	}
	for i := 0; i < 10; i++ {
		name := fmt.Sprintf("page%d", i)
		if got := ask(b, &Read{Name: name}, name); got != uint64(i+1) {
			t.Fatalf("%s at the new owner = %d, want %d", name, got, i+1)
		}
	}
}
