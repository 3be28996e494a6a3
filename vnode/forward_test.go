package vnode_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/handoff"
	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// twoNodes resolves partition vnodes for a handoff manager: "a" is local, "b" the other node.
type twoNodes struct{ a, b *vnode.Manager }

func (r twoNodes) LocalVnode(_ string, p int) *actor.PID { return r.a.PID(p) }

func (r twoNodes) VnodePID(_ string, node ring.NodeID, p int) *actor.PID {
	if node == "b" {
		return r.b.PID(p)
	}
	return nil
}

// TestDefaultHandoffForwardsCommands: a behaviour without any handoff hook hands its partition off under a
// write load (a real transfer by the handoff manager, real vnodes of two managers). Writes acknowledged while
// the transfer runs must all survive the drop that ends it: with nothing forwarded, the writes taken after the
// fold's snapshot would be deleted with the partition. The fold of each pass waits, once it has visited
// everything, until 50 more writes were acknowledged, so such writes exist on every run.
func TestDefaultHandoffForwardsCommands(t *testing.T) {
	sys := newSystem(t)
	dbA, dbB := storage.NewMemory(), storage.NewMemory()
	var acked atomic.Int64
	afterFold := func() error {
		want := acked.Load() + 50
		if !eventually.Within(10*time.Second, func() bool { return acked.Load() >= want }) {
			return fmt.Errorf("writes stalled at %d acknowledged during the handoff", acked.Load())
		}
		return nil
	}
	start := func(name, node string, db storage.Backend, gate func() error) *vnode.Manager {
		m, err := vnode.StartManager(sys, vnode.ManagerConfig{Name: name, Node: node, Partitions: []int{5},
			Factory: func() vnode.Behaviour { return &setVnode{afterFold: gate} }, Store: db})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Stop(context.Background()) })
		return m
	}
	a, b := start("sup-a", "a", dbA, afterFold), start("sup-b", "b", dbB, nil)
	for i := range 200 {
		if rep := addVia(t, sys, a.PID(5), fmt.Sprintf("before%d", i)); rep.Err != "" {
			t.Fatal(rep.Err)
		}
	}

	// The writer adds elements to A without pause and records those acknowledged.
	var (
		wg      sync.WaitGroup
		stop    atomic.Bool
		mu      sync.Mutex
		written []string
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			elem := fmt.Sprintf("during%d", i)
			res, err := actors.Request(context.Background(), sys, a.PID(5), &addElem{Elem: elem}, 5*time.Second)
			if err != nil {
				continue // not acknowledged: may or may not be stored
			}
			if rep := res.(*elemAdded); rep.Err == "" && rep.Elem == elem {
				mu.Lock()
				written = append(written, elem)
				mu.Unlock()
				acked.Add(1)
			}
		}
	}()
	defer func() { stop.Store(true); wg.Wait() }()

	hm, err := handoff.New(handoff.Config{Self: "a", Services: []string{"probe"}, Resolver: twoNodes{a: a, b: b}, System: sys, Timeout: 10 * time.Second,
		RetryAfter: 50 * time.Millisecond, Report: func(context.Context, handoff.Move) error { return nil }, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer hm.Close()
	hm.SyncHinted([]handoff.Move{{Service: "probe", Partition: 5, From: "a", To: "b", Hinted: true}})
	eventually.True(t, 30*time.Second, "the hinted handoff of partition 5 dropped its data", func() bool { return hm.HintedRounds() == 1 })
	// A few more writes after the drop (kept at A, as new data to hand off).
	more := acked.Load() + 20
	eventually.True(t, 10*time.Second, "writes after the drop", func() bool { return acked.Load() >= more })
	stop.Store(true)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	var lost []string
	for _, e := range written {
		if !holds(dbA, 5, e) && !holds(dbB, 5, e) {
			lost = append(lost, e)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d of %d acknowledged writes lost by the handoff, e.g. %v", len(lost), len(written), lost[:min(5, len(lost))])
	}
	// The writes after each fold pass (50 each, a count pass and a send pass) were taken by the new owner.
	atB := 0
	for _, e := range written {
		if holds(dbB, 5, e) {
			atB++
		}
	}
	if atB < 100 {
		t.Fatalf("only %d writes of the load reached the new owner, want at least 100 (forwarded during the session)", atB)
	}
	for i := range 200 {
		if e := fmt.Sprintf("before%d", i); !holds(dbB, 5, e) {
			t.Fatalf("%s did not reach the new owner", e)
		}
	}
	t.Logf("%d writes acknowledged during and after the handoff, none lost", len(written))
}

func addVia(t *testing.T, sys *actor.ActorSystem, pid *actor.PID, elem string) *elemAdded {
	t.Helper()
	res, err := actors.Request(context.Background(), sys, pid, &addElem{Elem: elem}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return res.(*elemAdded)
}
