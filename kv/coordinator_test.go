package kv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
	"unsafe"
)

// testNode is a real single node without listeners: goleveldb in a temp dir, vnode actors, coordinators.
type testNode struct {
	system *actor.ActorSystem
	db     storage.Backend
	ring   *ring.Ring
	vnodes *vnode.Manager
	svc    *coordinator.Service
	kv     *Coordinator
}

type testRouter struct{ n *testNode }

func (r testRouter) Preflist(key []byte, n int) []ring.PrefEntry {
	return r.n.ring.Preflist(key, n, nil)
}
func (r testRouter) VnodePID(_ ring.NodeID, p int) *actor.PID { return r.n.vnodes.PID(p) }
func (r testRouter) Fallback([]byte, int, ring.NodeID) (ring.PrefEntry, bool) {
	return ring.PrefEntry{}, false // one node: no other node to stand in
}
func (r testRouter) ReportFailure(ring.NodeID) {}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func startBenchNode(b *testing.B) *testNode {
	return startNode(b, slog.New(slog.DiscardHandler), nil, nil)
}

// uncachedKV is the KV behaviour without its object cache, for tests that damage a replica by editing
// storage below the vnode (which a cache would hide until the vnode restarts).
func uncachedKV() vnode.Factory {
	cfg := DefaultConfig()
	cfg.CacheBytes = 0
	return NewVnode(cfg)
}

func startTestNode(t *testing.T, factory vnode.Factory, mod func(*coordinator.Config)) *testNode {
	t.Helper()
	return startNode(t, testLogger(t), factory, mod)
}

func startNode(t testing.TB, logger *slog.Logger, factory vnode.Factory, mod func(*coordinator.Config)) *testNode {
	t.Helper()
	return startNodeDispatch(t, logger, factory, mod, false, nil)
}

// startNodeDispatch starts a one-node test cluster. Vnodes run inline on their senders' goroutines, as in
// a node without fsync, or on the worker pool (pooled), as in a node with it. route, if not nil, makes the
// coordinators' router (default testRouter).
func startNodeDispatch(t testing.TB, logger *slog.Logger, factory vnode.Factory, mod func(*coordinator.Config), pooled bool,
	route func(*testNode) coordinator.Router) *testNode {
	return startNodeWith(t, logger, factory, mod, pooled, route, vnode.AAEConfig{})
}

// startNodeWith is startNodeDispatch with the vnodes' hash-tree configuration (Q 0: off).
func startNodeWith(t testing.TB, logger *slog.Logger, factory vnode.Factory, mod func(*coordinator.Config), pooled bool,
	route func(*testNode) coordinator.Router, aae vnode.AAEConfig) *testNode {
	t.Helper()
	db, err := storage.OpenLevelDB(storage.DefaultLevelDBConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	rg, err := ring.New(8, 3, []ring.NodeID{"n1"})
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{system: actors.NewSystem(logger), db: db, ring: rg}
	disp := actors.NewDispatcher(8, 300)
	if factory == nil {
		factory = NewVnode(DefaultConfig())
	}
	var vdisp actor.Dispatcher = disp
	if !pooled {
		vdisp = actor.NewSynchronizedDispatcher(300)
	}
	n.vnodes, err = vnode.StartManager(n.system, vnode.ManagerConfig{Node: "n1", Partitions: rg.PartitionsOf("n1"),
		Factory: factory, Store: db, Logger: logger, Dispatcher: vdisp, AAE: aae})
	if err != nil {
		t.Fatal(err)
	}
	cfg := coordinator.DefaultConfig("n1")
	cfg.Linger = 200 * time.Millisecond
	cfg.Logger = logger
	cfg.Dispatcher = disp
	if mod != nil {
		mod(&cfg)
	}
	var router coordinator.Router = testRouter{n}
	if route != nil {
		router = route(n)
	}
	n.svc, err = coordinator.Start(n.system, cfg, router)
	if err != nil {
		t.Fatal(err)
	}
	if n.kv, err = NewCoordinator(n.svc, DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.svc.Drain(ctx); err != nil {
			t.Error(err)
		}
		_ = n.svc.Stop(ctx)
		_ = n.vnodes.Stop(ctx)
		n.system.Shutdown()
		disp.Close()
		_ = db.Close()
	})
	return n
}

// mustCoordinator runs KV on svc with the default configuration.
func mustCoordinator(t testing.TB, svc *coordinator.Service) *Coordinator {
	t.Helper()
	c, err := NewCoordinator(svc, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// replica reads the stored object of key at partition p straight from storage, below the coordinator.
func (n *testNode) replica(t *testing.T, p int, key []byte) *Object {
	t.Helper()
	raw, err := n.db.Get(uint32(p), append([]byte{'k'}, key...))
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	o, err := UnmarshalObject(raw)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func (n *testNode) replicas(t *testing.T, key []byte) []*Object {
	var out []*Object
	for _, e := range n.ring.Preflist(key, 3, nil) {
		out = append(out, n.replica(t, e.Partition, key))
	}
	return out
}

func allEqual(objs []*Object, want *Object) bool {
	for _, o := range objs {
		if o == nil || !o.Equal(want) {
			return false
		}
	}
	return true
}

func TestPutGetReplicatesToNVnodes(t *testing.T) {
	n := startTestNode(t, nil, nil)
	ctx := context.Background()
	key := []byte("alpha")
	w, err := n.kv.Put(ctx, key, []byte("one"), Meta{Flags: 7}, nil, true, coordinator.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 5*time.Second, "all 3 replicas hold the write", func() bool { return allEqual(n.replicas(t, key), w) })
	o, err := n.kv.Get(ctx, key, coordinator.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, ok := o.Chosen(0)
	if !ok || string(s.Value) != "one" || s.Meta.Flags != 7 {
		t.Fatalf("got %+v", s)
	}
	missing, err := n.kv.Get(ctx, []byte("nope"), coordinator.ReadOptions{})
	if err != nil || missing != nil {
		t.Fatalf("missing key: %v %v", missing, err)
	}
}

// TestPooledVnodes runs concurrent writes and reads with vnodes on the worker pool (a node with fsync).
func TestPooledVnodes(t *testing.T) {
	n := startNodeDispatch(t, testLogger(t), nil, nil, true, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				key := []byte(fmt.Sprintf("w%d-%d", w, i))
				if _, err := n.kv.Put(ctx, key, key, Meta{}, nil, true, coordinator.WriteOptions{}); err != nil {
					errs <- err
					return
				}
				o, err := n.kv.Get(ctx, key, coordinator.ReadOptions{})
				if err != nil || o == nil || string(o.Siblings[0].Value) != string(key) {
					errs <- fmt.Errorf("get %s: %v %v", key, o, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestReadRepairsRemovedAndStaleReplicas(t *testing.T) {
	for _, tc := range []struct {
		name    string
		replica int
		stale   bool
	}{{"removed", 1, false}, {"stale", 2, true}, {"removed-first", 0, false}} {
		t.Run(tc.name, func(t *testing.T) {
			n := startTestNode(t, uncachedKV(), nil)
			ctx := context.Background()
			key := []byte("repair-me")
			v1, err := n.kv.Put(ctx, key, []byte("v1"), Meta{}, nil, true, coordinator.WriteOptions{W: 3})
			if err != nil {
				t.Fatal(err)
			}
			v2, err := n.kv.Put(ctx, key, []byte("v2"), Meta{}, v1.Clock, false, coordinator.WriteOptions{W: 3})
			if err != nil {
				t.Fatal(err)
			}
			p := uint32(n.ring.Preflist(key, 3, nil)[tc.replica].Partition)
			// Below the coordinator, one replica loses the key or goes back to v1.
			if tc.stale {
				raw, _ := v1.MarshalBinary()
				err = n.db.Put(p, append([]byte{'k'}, key...), raw)
			} else {
				err = n.db.Delete(p, append([]byte{'k'}, key...))
			}
			if err != nil {
				t.Fatal(err)
			}
			o, err := n.kv.Get(ctx, key, coordinator.ReadOptions{R: 2})
			if err != nil {
				t.Fatal(err)
			}
			// Any 2 of the 3 replicas include a good one, so the read answers v2.
			if s, _ := o.Chosen(0); string(s.Value) != "v2" || len(o.Live(0)) != 1 {
				t.Fatalf("read %v, want v2 alone", o.Live(0))
			}
			eventually.True(t, 5*time.Second, "read repair of every replica", func() bool { return allEqual(n.replicas(t, key), v2) })
			if got := n.kv.Stats().ReadRepairs; got != 1 {
				t.Fatalf("read repairs %d, want 1", got)
			}
		})
	}
}

// heldGets wraps the KV behaviour: the vnode of one partition answers reads late, only once the test
// closes release, as a riak_core vnode answering {noreply} and replying later would. The test decides when
// the late reply comes, so no assertion depends on how fast the machine is.
type heldGets struct {
	vnode.Behaviour
	partition *atomic.Int64
	release   <-chan struct{}
	env       vnode.Env
}

func (s *heldGets) Init(env vnode.Env) error { s.env = env; return s.Behaviour.Init(env) }

func (s *heldGets) HandleCommand(cmd any, from vnode.Sender) vnode.Result {
	res := s.Behaviour.HandleCommand(cmd, from)
	if _, ok := cmd.(*GetRequest); ok && int64(s.env.Partition) == s.partition.Load() {
		reply := res.Reply()
		go func() { <-s.release; from.Send(reply) }()
		return vnode.NoReply()
	}
	return res
}

// releaseOnCleanup returns a release channel for heldGets that the test closes itself, or cleanup does.
func releaseOnCleanup(t *testing.T) (release chan struct{}, closeRelease func()) {
	release = make(chan struct{})
	var once sync.Once
	closeRelease = func() { once.Do(func() { close(release) }) }
	t.Cleanup(closeRelease)
	return release, closeRelease
}

func TestLateReplyIsStillRepaired(t *testing.T) {
	slowPart := &atomic.Int64{}
	slowPart.Store(-1)
	kvb := uncachedKV()
	release, closeRelease := releaseOnCleanup(t)
	n := startTestNode(t, func() vnode.Behaviour {
		return &heldGets{Behaviour: kvb(), partition: slowPart, release: release}
	}, func(c *coordinator.Config) { c.Linger = 10 * time.Second })
	ctx := context.Background()
	key := []byte("late")
	w, err := n.kv.Put(ctx, key, []byte("v"), Meta{}, nil, true, coordinator.WriteOptions{W: 3})
	if err != nil {
		t.Fatal(err)
	}
	pl := n.ring.Preflist(key, 3, nil)
	slow := pl[0].Partition
	if err := n.db.Delete(uint32(slow), append([]byte{'k'}, key...)); err != nil {
		t.Fatal(err)
	}
	slowPart.Store(int64(slow))
	o, err := n.kv.Get(ctx, key, coordinator.ReadOptions{R: 2})
	if err != nil || !o.Equal(w) {
		t.Fatalf("get: %v %v", o, err)
	}
	if n.replica(t, slow, key) != nil {
		t.Fatal("the slow replica must still be empty when the client is answered")
	}
	closeRelease() // the late reply comes while the coordinator lingers
	took := eventually.True(t, 5*time.Second, "repair of the late replica", func() bool { return n.replica(t, slow, key).Equal(w) })
	t.Logf("late replica repaired %s after its reply was released", took)
}

func TestSameContextWritesBecomeSiblingsAndContextWriteResolves(t *testing.T) {
	n := startTestNode(t, nil, nil)
	ctx := context.Background()
	key := []byte("sib")
	base, err := n.kv.Put(ctx, key, []byte("base"), Meta{}, nil, true, coordinator.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"left", "right"} {
		if _, err := n.kv.Put(ctx, key, []byte(v), Meta{}, base.Clock, false, coordinator.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	o, err := n.kv.Get(ctx, key, coordinator.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if live := o.Live(0); len(live) != 2 {
		t.Fatalf("want 2 siblings, got %d", len(live))
	}
	if _, err := n.kv.Put(ctx, key, []byte("merged"), Meta{}, o.Clock, false, coordinator.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	o, err = n.kv.Get(ctx, key, coordinator.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if live := o.Live(0); len(live) != 1 || string(live[0].Value) != "merged" {
		t.Fatalf("want merged alone, got %v", live)
	}
	if n.kv.Stats().SiblingsSeen != 1 {
		t.Fatalf("siblings seen %d", n.kv.Stats().SiblingsSeen)
	}
}

func TestVnodeCrashMidLoadLosesNoAcknowledgedWrite(t *testing.T) {
	n := startTestNode(t, nil, func(c *coordinator.Config) { c.Timeout = 2 * time.Second })
	ctx := context.Background()
	var (
		mu    sync.Mutex
		acked = map[string]string{}
		fails atomic.Int64
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 400; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k, v := fmt.Sprintf("k%d-%d", w, i%50), fmt.Sprintf("v%d", i)
				if _, err := n.kv.Put(ctx, []byte(k), []byte(v), Meta{}, nil, true, coordinator.WriteOptions{}); err != nil {
					fails.Add(1)
					continue
				}
				mu.Lock()
				acked[k] = v
				mu.Unlock()
			}
		}(w)
	}
	// Crash every vnode a few times while the load runs.
	for round := 0; round < 3; round++ {
		for _, p := range n.vnodes.Partitions() {
			if err := n.vnodes.Crash(p, "test"); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(20 * time.Millisecond) // scenario: the writers run between crash rounds; not a wait
	}
	wg.Wait()
	close(stop)
	if r := n.vnodes.Metrics().Restarts(); r < int64(len(n.vnodes.Partitions())) {
		t.Fatalf("restarts %d, want at least one per vnode", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged")
	}
	for k, v := range acked {
		o, err := n.kv.Get(ctx, []byte(k), coordinator.ReadOptions{R: 2})
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		found := false
		for _, s := range o.Live(0) {
			// Later writes to the same key supersede earlier ones; the last acknowledged value of a key must
			// be present (a blind write may race with another writer's, leaving both as siblings).
			if string(s.Value) == v {
				found = true
			}
		}
		if !found {
			t.Fatalf("%s: acknowledged %q lost; have %v", k, v, o.Live(0))
		}
	}
	t.Logf("%d keys acknowledged, %d writes failed during crashes, %d restarts", len(acked), fails.Load(), n.vnodes.Metrics().Restarts())
}

func TestOverloadFailsFastAndDrainRefuses(t *testing.T) {
	slowPart := &atomic.Int64{}
	slowPart.Store(-1)
	kvb := NewVnode(DefaultConfig())
	release, closeRelease := releaseOnCleanup(t)
	n := startTestNode(t, func() vnode.Behaviour {
		return &heldGets{Behaviour: kvb(), partition: slowPart, release: release}
	}, func(c *coordinator.Config) { c.MaxInFlight = 1 })
	ctx := context.Background()
	key := []byte("a")
	slowPart.Store(int64(n.ring.PartitionForKey(key)))
	got := make(chan error, 1)
	go func() {
		_, err := n.kv.Get(ctx, key, coordinator.ReadOptions{R: 3})
		got <- err
	}()
	// The first read cannot finish (R=3 and one replica is held): it is the one request in flight.
	eventually.True(t, 5*time.Second, "the first coordinator is alive", func() bool { return n.kv.Stats().Active == 1 })
	if _, err := n.kv.Put(ctx, []byte("b"), []byte("1"), Meta{}, nil, true, coordinator.WriteOptions{}); !errors.Is(err, coordinator.ErrOverload) {
		t.Fatalf("second request: %v, want ErrOverload", err)
	}
	closeRelease()
	if err := <-got; err != nil {
		t.Fatalf("first request: %v", err)
	}
	if n.kv.Stats().Overloads != 1 {
		t.Fatalf("overloads %d", n.kv.Stats().Overloads)
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := n.svc.Drain(dctx); err != nil {
		t.Fatal(err)
	}
	if _, err := n.kv.Get(ctx, key, coordinator.ReadOptions{}); !errors.Is(err, coordinator.ErrShuttingDown) {
		t.Fatalf("after drain: %v, want ErrShuttingDown", err)
	}
}

// crashRouter makes the coordinator of key "boom" panic (in its Started handler, where it looks up its
// vnodes) and sends every replica of key "silent" to an actor that never answers.
type crashRouter struct {
	testRouter
	silent *actor.PID
	keys   map[int]string // partition -> test key
}

func (r crashRouter) VnodePID(node ring.NodeID, p int) *actor.PID {
	switch r.keys[p] {
	case "boom":
		panic("test: coordinator crash")
	case "silent":
		return r.silent
	}
	return r.testRouter.VnodePID(node, p)
}

// TestCoordinatorCrashAndStop: a coordinator that panics fails only its request (ErrCoordinatorCrashed)
// and the service keeps serving; Stop stops a coordinator still waiting for replicas, whose caller is
// answered at once instead of at the deadline.
func TestCoordinatorCrashAndStop(t *testing.T) {
	n := startTestNode(t, nil, nil)
	asked := make(chan struct{}, 8) // a read reached the silent vnode
	silent, err := n.system.Root.SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*GetRequest); ok {
			asked <- struct{}{}
		}
	}), "silent-vnode")
	if err != nil {
		t.Fatal(err)
	}
	r := crashRouter{testRouter: testRouter{n}, silent: silent, keys: map[int]string{}}
	for _, k := range []string{"boom", "silent"} {
		for _, e := range n.ring.Preflist([]byte(k), 3, nil) {
			r.keys[e.Partition] = k
		}
	}
	fine := []byte("fine")
	for _, e := range n.ring.Preflist(fine, 3, nil) {
		if r.keys[e.Partition] != "" {
			t.Skipf("test keys share partition %d on this ring", e.Partition)
		}
	}
	cfg := coordinator.DefaultConfig("n1")
	cfg.Timeout, cfg.Logger = time.Minute, testLogger(t)
	svc, err := coordinator.Start(n.system, cfg, r)
	if err != nil {
		t.Fatal(err)
	}
	kvc := mustCoordinator(t, svc)
	ctx := context.Background()
	if _, err := kvc.Get(ctx, []byte("boom"), coordinator.ReadOptions{}); !errors.Is(err, coordinator.ErrCoordinatorCrashed) {
		t.Fatalf("crashed coordinator: got %v, want ErrCoordinatorCrashed", err)
	}
	if _, err := kvc.Put(ctx, fine, []byte("v"), Meta{}, nil, true, coordinator.WriteOptions{}); err != nil {
		t.Fatalf("service after a crash: %v", err)
	}
	if o, err := kvc.Get(ctx, fine, coordinator.ReadOptions{}); err != nil || o == nil {
		t.Fatalf("service after a crash: %v %v", o, err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := kvc.Get(ctx, []byte("silent"), coordinator.ReadOptions{})
		done <- err
	}()
	// NB: wait for the silent read itself to be under way (its coordinator asked a replica), not for a
	// count of live coordinators: the read of "fine" may still be lingering.
	select {
	case <-asked:
	case <-time.After(5 * time.Second):
		t.Fatal("the silent read never reached its replicas")
	}
	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := svc.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, coordinator.ErrCoordinatorCrashed) {
			t.Fatalf("read stopped by Stop: got %v, want ErrCoordinatorCrashed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop left the caller waiting")
	}
	if _, err := kvc.Get(ctx, fine, coordinator.ReadOptions{}); !errors.Is(err, coordinator.ErrShuttingDown) {
		t.Fatalf("after Stop: got %v, want ErrShuttingDown", err)
	}
}

// stressRouter places the replicas of keys that start with "s" on node "silent", whose vnodes are one actor
// that never answers; other keys go to the test node's vnodes.
type stressRouter struct {
	testRouter
	silent *actor.PID
}

func (r stressRouter) Preflist(key []byte, n int) []ring.PrefEntry {
	pl := r.testRouter.Preflist(key, n)
	if len(key) > 0 && key[0] == 's' {
		for i := range pl {
			pl[i].Node = "silent"
		}
	}
	return pl
}

func (r stressRouter) VnodePID(node ring.NodeID, p int) *actor.PID {
	if node == "silent" {
		return r.silent
	}
	return r.testRouter.VnodePID(node, p)
}

// TestStopStopsEveryAdmittedRequest races Stop against a stream of admissions, many times over, with the
// request actors' first run inline (as in a node) and on protoactor's default dispatcher: every caller
// must be answered promptly (a result, ErrShuttingDown when refused, ErrCoordinatorCrashed when stopped),
// Stop must return, and no coordinator may be left alive. Half the reads go to replicas that never answer,
// under a 1 min deadline, so a request that Stop misses holds its caller and Stop until the test's
// 10 s bound fails it.
func TestStopStopsEveryAdmittedRequest(t *testing.T) {
	n := startTestNode(t, nil, nil)
	silent, err := n.system.Root.SpawnNamed(actor.PropsFromFunc(func(actor.Context) {}), "silent-vnode")
	if err != nil {
		t.Fatal(err)
	}
	router := stressRouter{testRouter: testRouter{n}, silent: silent}
	rng := rand.New(rand.NewPCG(7, 11))
	const callers = 6
	deadline := time.Now().Add(5 * time.Second)
	iters, stopped, refused := 0, 0, 0
	for ; iters < 500 && time.Now().Before(deadline); iters++ {
		cfg := coordinator.DefaultConfig("n1")
		cfg.Timeout, cfg.Logger = time.Minute, testLogger(t)
		if iters%2 == 0 {
			cfg.Dispatcher = n.svc.Config().Dispatcher
		}
		svc, err := coordinator.Start(n.system, cfg, router)
		if err != nil {
			t.Fatal(err)
		}
		kvc := mustCoordinator(t, svc)
		results := make(chan error, 64)
		total := 0
		var ready sync.WaitGroup
		ready.Add(callers)
		for c := range callers {
			reads, spin := 1+rng.IntN(4), rng.IntN(200)
			total += reads
			go func() {
				ready.Done()
				for range spin {
					runtime.Gosched()
				}
				for i := range reads {
					key := fmt.Sprintf("s%d-%d", c, i)
					if i%2 == 1 {
						key = fmt.Sprintf("f%d-%d", c, i)
					}
					_, err := kvc.Get(context.Background(), []byte(key), coordinator.ReadOptions{R: 1})
					results <- err
				}
			}()
		}
		ready.Wait()
		for range rng.IntN(300) {
			runtime.Gosched()
		}
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = svc.Stop(stopCtx)
		cancel()
		if err != nil {
			t.Fatalf("iteration %d: Stop: %v", iters, err)
		}
		timeout := time.After(10 * time.Second)
		for got := 0; got < total; got++ {
			select {
			case err := <-results:
				switch {
				case errors.Is(err, coordinator.ErrShuttingDown):
					refused++
				case errors.Is(err, coordinator.ErrCoordinatorCrashed):
					stopped++
				case err != nil:
					t.Fatalf("iteration %d: a caller got %v", iters, err)
				}
			case <-timeout:
				t.Fatalf("iteration %d: %d of %d callers still waiting after Stop returned", iters, total-got, total)
			}
		}
		if st := svc.Stats(); st.Active != 0 {
			t.Fatalf("iteration %d: %d coordinators alive after Stop", iters, st.Active)
		}
	}
	t.Logf("%d iterations: %d reads stopped, %d refused", iters, stopped, refused)
	if stopped == 0 || refused == 0 {
		t.Fatalf("the race was not exercised: %d reads stopped, %d refused", stopped, refused)
	}
}

// TestGetOpSize pins the size of a read's op, which the coordinator's request actor holds by value: its
// TestRequestActorSize checks the actor's size class with an op of this size.
func TestGetOpSize(t *testing.T) {
	if n := unsafe.Sizeof(getOp{}); n != 128 {
		t.Fatalf("getOp is %d bytes, want 128: update coordinator's sizeOp and check TestRequestActorSize", n)
	}
}
