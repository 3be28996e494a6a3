package counter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/handoff"
	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// cluster is nodes in one process and one actor system: each has its own storage, its own counter vnodes
// (under a supervisor of its own name, so actor ids of its own name) and its own coordinators; the router
// sends (node, partition) to that node's vnode. The vnode and coordinator code is the real one; there is no
// transport (two protoactor remotes in one process trip the race detector: the multi-process tests in
// internal/itest run the binary) and every node is up.
type cluster struct {
	system  *actor.ActorSystem
	ring    *ring.Ring
	names   []ring.NodeID
	stores  map[ring.NodeID]*storage.Memory
	vnodes  map[ring.NodeID]*vnode.Manager
	clients map[ring.NodeID]*Client
}

// router serves every coordinator of the cluster; its maps are written before the first request.
type router struct{ c *cluster }

func (r router) Preflist(key []byte, n int) []ring.PrefEntry { return r.c.ring.Preflist(key, n, nil) }
func (r router) VnodePID(node ring.NodeID, p int) *actor.PID {
	if m := r.c.vnodes[node]; m != nil {
		return m.PID(p)
	}
	return nil
}
func (r router) Fallback([]byte, int, ring.NodeID) (ring.PrefEntry, bool) {
	return ring.PrefEntry{}, false
}
func (r router) ReportFailure(ring.NodeID) {}

func startCluster(t testing.TB, factory vnode.Factory) *cluster {
	t.Helper()
	const q = 16
	logger := testLogger(t)
	names := []ring.NodeID{"n1", "n2", "n3"}
	rg, err := ring.New(q, 3, names)
	if err != nil && !errors.Is(err, ring.ErrTargetN) {
		t.Fatal(err)
	}
	c := &cluster{system: actors.NewSystem(logger), ring: rg, names: names, stores: map[ring.NodeID]*storage.Memory{},
		vnodes: map[ring.NodeID]*vnode.Manager{}, clients: map[ring.NodeID]*Client{}}
	all := make([]int, q)
	for p := range all {
		all[p] = p
	}
	var coords []*coordinator.Service
	for _, name := range names {
		c.stores[name] = storage.NewMemory()
		m, err := vnode.StartManager(c.system, vnode.ManagerConfig{Name: "vnode-sup-counter-" + string(name),
			Node: string(name), Partitions: all, Factory: factory, Store: c.stores[name], Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		c.vnodes[name] = m
	}
	for _, name := range names {
		cfg := coordinator.DefaultConfig(name)
		cfg.Linger, cfg.Logger = 100*time.Millisecond, logger
		svc, err := coordinator.Start(c.system, cfg, router{c})
		if err != nil {
			t.Fatal(err)
		}
		coords = append(coords, svc)
		c.clients[name] = NewClient(svc)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, svc := range coords {
			if err := svc.Drain(ctx); err != nil {
				t.Error(err)
			}
			_ = svc.Stop(ctx)
		}
		for _, name := range names {
			_ = c.vnodes[name].Stop(ctx)
		}
		c.system.Shutdown()
	})
	return c
}

// replicaState reads partition p's stored state of name on node, below the vnodes.
func (c *cluster) replicaState(t *testing.T, node ring.NodeID, p int, name string) *State {
	t.Helper()
	raw, err := c.stores[node].Get(uint32(p), append([]byte{nsCounter}, name...))
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	s, err := UnmarshalState(raw)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestIncrementsThroughEveryNodeAddUp: concurrent increments and decrements of one counter through the
// coordinators of three nodes, every one acknowledged at W=2, are all counted by a read from any node, and
// every replica converges to the same state (read repair). The old example (one shared total per replica,
// merged by max) kept only the largest replica's count.
func TestIncrementsThroughEveryNodeAddUp(t *testing.T) {
	c := startCluster(t, NewVnode)
	name := "page-views"
	pl := c.ring.Preflist([]byte(name), 3, nil)
	seen := map[ring.NodeID]bool{}
	for _, e := range pl {
		seen[e.Node] = true
	}
	if len(seen) != 3 {
		t.Fatalf("preference list %+v does not span three nodes", pl)
	}
	ctx := context.Background()
	var want atomic.Int64
	var wg sync.WaitGroup
	for w := range 6 {
		node := c.names[w%3]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				by := int64(i%7 + 1)
				if w%2 == 1 {
					by = -by
				}
				if err := c.clients[node].Incr(ctx, []byte(name), by, coordinator.WriteOptions{}); err != nil {
					t.Errorf("incr through %s: %v", node, err)
					return
				}
				want.Add(by)
			}
		}()
	}
	wg.Wait()
	for _, node := range c.names {
		got, err := c.clients[node].Value(ctx, []byte(name), coordinator.ReadOptions{R: 3})
		if err != nil || got != want.Load() {
			t.Fatalf("value through %s: %d (%v), want %d", node, got, err, want.Load())
		}
	}
	// Every replica converges to the merge (replication at W=2 reaches the third one too; the reads at R=3
	// repair what it missed).
	final, err := c.clients["n1"].State(ctx, []byte(name), coordinator.ReadOptions{R: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(final.Entries) != 3 {
		t.Fatalf("state %+v: want one actor per node (each node coordinated increments)", final)
	}
	for _, e := range pl {
		eventually.True(t, 5*time.Second, fmt.Sprintf("replica %s/%d holds the merged state", e.Node, e.Partition),
			func() bool { return Equal(c.replicaState(t, e.Node, e.Partition, name), final) })
	}
	// A counter no one incremented reads as 0.
	if got, err := c.clients["n2"].Value(ctx, []byte("never"), coordinator.ReadOptions{}); err != nil || got != 0 {
		t.Fatalf("value of a new counter: %d %v", got, err)
	}
}

// TestReadRepairsStaleReplicas: a replica that missed increments (its stored state is older) is repaired
// with the merged state by a read at the default R, whether its reply was among the R the read answered with
// or came late.
func TestReadRepairsStaleReplicas(t *testing.T) {
	c := startCluster(t, NewVnode)
	ctx := context.Background()
	name := "stale"
	for i, n := range c.names {
		if err := c.clients[n].Incr(ctx, []byte(name), int64(i+1), coordinator.WriteOptions{W: 3}); err != nil {
			t.Fatal(err)
		}
	}
	pl := c.ring.Preflist([]byte(name), 3, nil)
	full := c.replicaState(t, pl[0].Node, pl[0].Partition, name)
	// Put an older state back on every replica in turn, below the vnodes, and read.
	for _, e := range pl {
		older := &State{Entries: full.Entries[:1]}
		raw, _ := older.MarshalBinary()
		if err := c.stores[e.Node].Put(uint32(e.Partition), append([]byte{nsCounter}, name...), raw); err != nil {
			t.Fatal(err)
		}
		if got, err := c.clients["n2"].Value(ctx, []byte(name), coordinator.ReadOptions{}); err != nil || got != 6 {
			t.Fatalf("read with %s/%d stale: %d %v, want 6", e.Node, e.Partition, got, err)
		}
		eventually.True(t, 5*time.Second, fmt.Sprintf("%s/%d repaired", e.Node, e.Partition), func() bool {
			return Equal(c.replicaState(t, e.Node, e.Partition, name), full)
		})
	}
}

// TestIncrementOutOfRangeIsRefusedWhole: an increment that would overflow fails with ErrOutOfRange and is
// applied nowhere.
func TestIncrementOutOfRangeIsRefusedWhole(t *testing.T) {
	c := startCluster(t, NewVnode)
	ctx := context.Background()
	name := []byte("big")
	for range 1024 {
		if err := c.clients["n1"].Incr(ctx, name, MaxBy, coordinator.WriteOptions{W: 3}); err != nil {
			t.Fatal(err)
		}
	}
	// 1024 * (2^53-1) = 2^63 - 1024; another MaxBy passes MaxInt64.
	err := c.clients["n1"].Incr(ctx, name, MaxBy, coordinator.WriteOptions{})
	if !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("overflowing increment: %v", err)
	}
	if err := c.clients["n1"].Incr(ctx, name, MaxBy+1, coordinator.WriteOptions{}); !errors.Is(err, ErrBadIncrement) {
		t.Fatalf("increment of 2^53: %v", err)
	}
	got, err := c.clients["n2"].Value(ctx, name, coordinator.ReadOptions{R: 3})
	if want := int64(1024 * MaxBy); err != nil || got != want {
		t.Fatalf("value %d (%v), want %d", got, err, want)
	}
}

type twoNodes struct{ a, b *vnode.Manager }

func (n twoNodes) LocalVnode(_ string, p int) *actor.PID { return n.a.PID(p) }
func (n twoNodes) VnodePID(_ string, node ring.NodeID, p int) *actor.PID {
	if node == "b" {
		return n.b.PID(p)
	}
	return n.a.PID(p)
}

// TestVnodeKeepsItsCountsAndHandsThemOff: a vnode that crashes restarts with its counters and its actor id;
// an ownership handoff moves whole states to the new owner, which merges them; the old owner's partition is
// dropped, and a vnode that starts there again increments under a new actor id (a new epoch).
func TestVnodeKeepsItsCountsAndHandsThemOff(t *testing.T) {
	logger := testLogger(t)
	sys := actors.NewSystem(logger)
	defer sys.Shutdown()
	rg, err := ring.New(8, 1, []ring.NodeID{"a"})
	if err != nil {
		t.Fatal(err)
	}
	all := rg.PartitionsOf("a")
	mk := func(node string) *vnode.Manager {
		m, err := vnode.StartManager(sys, vnode.ManagerConfig{Name: "counters-" + node, Node: node, Partitions: all,
			Factory: NewVnode, Store: storage.NewMemory(), Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Stop(context.Background()) })
		return m
	}
	a, b := mk("a"), mk("b")
	ask := func(m *vnode.Manager, msg any, name string) *StateReply {
		t.Helper()
		res, err := actors.Request(context.Background(), sys, m.PID(rg.PartitionForKey([]byte(name))), msg, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		r := res.(*StateReply)
		if r.Err != "" {
			t.Fatal(r.Err)
		}
		return r
	}
	value := func(m *vnode.Manager, name string) int64 {
		t.Helper()
		v, err := ask(m, &ReadRequest{V: 1, Name: []byte(name)}, name).State.Value()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for i := range 10 {
		name := fmt.Sprintf("page%d", i)
		for range i + 1 {
			ask(a, &IncrRequest{V: 1, Name: []byte(name), By: 2}, name)
		}
		ask(a, &IncrRequest{V: 1, Name: []byte(name), By: -1}, name)
	}
	p := rg.PartitionForKey([]byte("page3"))
	actorBefore := ask(a, &ReadRequest{V: 1, Name: []byte("page3")}, "page3").State.Entries[0].Actor
	if err := a.Crash(p, "test"); err != nil {
		t.Fatal(err)
	}
	if got := value(a, "page3"); got != 7 {
		t.Fatalf("page3 after a crash = %d, want 7", got)
	}
	st := ask(a, &IncrRequest{V: 1, Name: []byte("page3"), By: 1}, "page3").State
	if len(st.Entries) != 1 || st.Entries[0].Actor != actorBefore {
		t.Fatalf("after a crash the vnode increments under %+v, want its actor %s", st.Entries, actorBefore)
	}
	// b already counted page3 on its own: the handoff merges, it does not overwrite.
	ask(b, &IncrRequest{V: 1, Name: []byte("page3"), By: 100}, "page3")

	done := make(chan handoff.Move, len(all))
	hm, err := handoff.New(handoff.Config{Self: "a", Logger: logger, Services: []string{ServiceName}, Resolver: twoNodes{a, b}, System: sys,
		Report: func(_ context.Context, m handoff.Move) error { done <- m; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer hm.Close()
	var moves []handoff.Move
	for _, p := range all {
		moves = append(moves, handoff.Move{Service: ServiceName, Partition: p, From: "a", To: "b"})
	}
	hm.Sync(moves)
	for range all {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("handoff stuck: %+v", hm.Progress())
		}
	}
	for i := range 10 {
		name := fmt.Sprintf("page%d", i)
		want := int64(2*(i+1) - 1)
		if i == 3 {
			want += 1 + 100
		}
		if got := value(b, name); got != want {
			t.Fatalf("%s at the new owner = %d, want %d", name, got, want)
		}
	}
}

// TestANewEpochAfterDataLoss: a vnode keeps its actor id across restarts (it is stored with the partition's
// data), and mints a new one once the data is gone (a drop after a handoff, a wiped disk): restarting an old
// actor's totals from zero would hide its new increments behind the totals other replicas remember.
func TestANewEpochAfterDataLoss(t *testing.T) {
	store := storage.NewMemory()
	env := vnode.Env{Node: "n1", Partition: 5, Store: storage.Partition{Backend: store, ID: 5}, Logger: testLogger(t)}
	v := &Vnode{}
	if err := v.Init(env); err != nil {
		t.Fatal(err)
	}
	first := v.Actor()
	rep := v.HandleCommand(&IncrRequest{V: 1, Name: []byte("x"), By: 3}, vnode.Sender{}).Reply().(*StateReply)
	if rep.Err != "" || rep.State.Entries[0].Actor != first {
		t.Fatalf("increment: %+v", rep)
	}
	if empty, err := v.IsEmpty(); err != nil || empty {
		t.Fatalf("IsEmpty with a counter: %v %v", empty, err)
	}
	again := &Vnode{}
	if err := again.Init(env); err != nil || again.Actor() != first {
		t.Fatalf("restart: actor %s (%v), want %s", again.Actor(), err, first)
	}
	if err := again.Delete(); err != nil {
		t.Fatal(err)
	}
	fresh := &Vnode{}
	if err := fresh.Init(env); err != nil || fresh.Actor() == first {
		t.Fatalf("after a drop: actor %s (%v), the old one was %s", fresh.Actor(), err, first)
	}
	// The actor id is the vnode's own metadata: not a counter, never handed off.
	if empty, err := fresh.IsEmpty(); err != nil || !empty {
		t.Fatalf("IsEmpty of a fresh vnode: %v %v", empty, err)
	}
}

// TestVnodeRefusesBadNames: a command from another node naming no counter, or one past MaxNameLen, is
// answered with an error, not stored.
func TestVnodeRefusesBadNames(t *testing.T) {
	store := storage.NewMemory()
	v := &Vnode{}
	if err := v.Init(vnode.Env{Node: "n1", Store: storage.Partition{Backend: store}, Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	long := make([]byte, MaxNameLen+1)
	for _, cmd := range []any{&IncrRequest{V: 1, Tag: 2, By: 1}, &IncrRequest{V: 1, Tag: 2, Name: long, By: 1},
		&ReadRequest{V: 1, Tag: 2}, &MergeRequest{V: 1, Tag: 2, Name: long, State: &State{Entries: []Entry{{Actor: "a", P: 1}}}}} {
		rep := v.HandleCommand(cmd, vnode.Sender{}).Reply().(*StateReply)
		if rep.Err == "" || rep.Tag != 2 {
			t.Errorf("%T: %+v, want an error with the tag", cmd, rep)
		}
	}
	if empty, err := v.IsEmpty(); err != nil || !empty {
		t.Fatalf("a refused command stored something: empty=%v %v", empty, err)
	}
}

// BenchmarkIncr: increments of one counter through the coordinators of three in-process nodes (N=3, W=2),
// one at a time: the coordinating vnode applies it, the request actor replicates the state to two more.
func BenchmarkIncr(b *testing.B) {
	c := startCluster(b, NewVnode)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := c.clients[c.names[i%3]].Incr(ctx, []byte("bench"), 1, coordinator.WriteOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValue: reads at R=2 of a counter three nodes incremented (a state of three actors).
func BenchmarkValue(b *testing.B) {
	c := startCluster(b, NewVnode)
	ctx := context.Background()
	for _, n := range c.names {
		if err := c.clients[n].Incr(ctx, []byte("bench"), 1, coordinator.WriteOptions{W: 3}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if v, err := c.clients[c.names[i%3]].Value(ctx, []byte("bench"), coordinator.ReadOptions{}); err != nil || v != 3 {
			b.Fatal(v, err)
		}
	}
}
