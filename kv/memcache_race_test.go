package kv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/protocol/memcache"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// inprocCluster is three nodes in one process and one actor system, for tests that need writes coordinated
// by different vnodes: each node has its own storage, its own vnodes (under a supervisor of its own name, with
// actor ids of its own name) and its own coordinators, and the router sends (node, partition) to that node's
// vnode. The coordinator and vnode code is the real one; there is no transport (two protoactor remotes in one
// process trip the race detector) and no gossip: every node is always up.
type inprocCluster struct {
	system *actor.ActorSystem
	ring   *ring.Ring
	names  []ring.NodeID
	stores map[ring.NodeID]*storage.Memory
	vnodes map[ring.NodeID]*vnode.Manager
	coords map[ring.NodeID]*Coordinator
}

// inprocRouter serves every coordinator of the cluster. Its maps are written before the first request and
// only read afterwards.
type inprocRouter struct{ c *inprocCluster }

func (r inprocRouter) Preflist(key []byte, n int) []ring.PrefEntry {
	return r.c.ring.Preflist(key, n, nil)
}
func (r inprocRouter) VnodePID(node ring.NodeID, p int) *actor.PID {
	if m := r.c.vnodes[node]; m != nil {
		return m.PID(p)
	}
	return nil
}
func (r inprocRouter) Fallback([]byte, int, ring.NodeID) (ring.PrefEntry, bool) {
	return ring.PrefEntry{}, false // every node is up
}
func (r inprocRouter) ReportFailure(ring.NodeID) {}

func startInprocCluster(t *testing.T) *inprocCluster {
	t.Helper()
	const q = 8
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	names := []ring.NodeID{"n1", "n2", "n3"}
	// NB: 8 partitions cannot put every 3 consecutive ones on distinct nodes (ErrTargetN); the ring is
	// still valid, and the tests choose keys whose preference list spans the three nodes.
	rg, err := ring.New(q, 3, names)
	if err != nil && !errors.Is(err, ring.ErrTargetN) {
		t.Fatal(err)
	}
	c := &inprocCluster{system: actors.NewSystem(logger), ring: rg, names: names,
		stores: map[ring.NodeID]*storage.Memory{}, vnodes: map[ring.NodeID]*vnode.Manager{},
		coords: map[ring.NodeID]*Coordinator{}}
	disp := actors.NewDispatcher(4, 300)
	all := make([]int, q)
	for p := range all {
		all[p] = p
	}
	for _, name := range names {
		c.stores[name] = storage.NewMemory()
		// As in a node: a vnode for every partition, running inline on its senders while idle.
		m, err := vnode.StartManager(c.system, vnode.ManagerConfig{Name: "vnode-sup-" + string(name), Node: string(name),
			Partitions: all, Factory: NewVnode(DefaultConfig()), Store: c.stores[name], Logger: logger,
			Dispatcher: actor.NewSynchronizedDispatcher(300)})
		if err != nil {
			t.Fatal(err)
		}
		c.vnodes[name] = m
	}
	for _, name := range names {
		cfg := coordinator.DefaultConfig(name)
		cfg.Linger, cfg.Logger, cfg.Dispatcher = 100*time.Millisecond, logger, disp
		svc, err := coordinator.Start(c.system, cfg, inprocRouter{c})
		if err != nil {
			t.Fatal(err)
		}
		if c.coords[name], err = NewCoordinator(svc, DefaultConfig()); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, name := range names {
			if err := c.coords[name].Service().Drain(ctx); err != nil {
				t.Error(err)
			}
			_ = c.coords[name].Service().Stop(ctx)
		}
		for _, name := range names {
			_ = c.vnodes[name].Stop(ctx)
		}
		c.system.Shutdown()
		disp.Close()
	})
	return c
}

// replica is what node's vnode of partition p stores for key (nil if nothing), read below the vnode.
func (c *inprocCluster) replica(t *testing.T, node ring.NodeID, p int, key []byte) *Object {
	t.Helper()
	raw, err := c.stores[node].Get(uint32(p), append([]byte{'k'}, key...))
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

// spanningKey finds a key (prefix-0, prefix-1, ...) whose preference list holds a replica on each of the
// three nodes, and returns it with each node's partition for it.
func (c *inprocCluster) spanningKey(t *testing.T, prefix string) ([]byte, map[ring.NodeID]int) {
	t.Helper()
	for i := range 1000 {
		key := []byte(fmt.Sprintf("%s-%d", prefix, i))
		part := map[ring.NodeID]int{}
		for _, e := range c.ring.Preflist(key, 3, nil) {
			part[e.Node] = e.Partition
		}
		if len(part) == 3 {
			return key, part
		}
	}
	t.Fatalf("no key %s-N spans the three nodes", prefix)
	return nil, nil
}

// serveMemcache serves the memcache face over store on a loopback port until the test ends.
func serveMemcache(t *testing.T, store memcache.Store) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := memcache.NewServer(memcache.Config{}, store, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return ln.Addr().String()
}

// readBarrier holds every read until `want` reads have returned, so read-then-write commands on several
// connections all read before any of them writes.
type readBarrier struct {
	want  int32
	seen  atomic.Int32
	once  sync.Once
	ready chan struct{}
}

func newReadBarrier(want int) *readBarrier {
	return &readBarrier{want: int32(want), ready: make(chan struct{})}
}

func (b *readBarrier) arrive(ctx context.Context) error {
	if b.seen.Add(1) >= b.want {
		b.once.Do(func() { close(b.ready) })
	}
	select {
	case <-b.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gatedStore is a node's memcache store whose reads pass a barrier and whose writes wait for a gate (nil:
// no gate), so a test decides how two clients' commands interleave.
type gatedStore struct {
	*memcacheStore
	reads *readBarrier
	gate  chan struct{}
}

func (g *gatedStore) Get(ctx context.Context, key []byte, want memcache.Read) (memcache.Entry, error) {
	e, err := g.memcacheStore.Get(ctx, key, want)
	if err != nil {
		return e, err
	}
	return e, g.reads.arrive(ctx)
}

func (g *gatedStore) Set(ctx context.Context, key []byte, v memcache.Value, over memcache.Supersede) (uint64, error) {
	if g.gate != nil {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return g.memcacheStore.Set(ctx, key, v, over)
}

// liveValues lists the live sibling values of o, sorted.
func liveValues(o *Object) []string {
	var out []string
	if o != nil {
		for _, s := range o.Live(time.Now().Unix()) {
			out = append(out, string(s.Value))
		}
	}
	slices.Sort(out)
	return out
}

// TestConcurrentAddsOfAMissingKeyBothSurvive: two clients `add` one missing key through two nodes whose
// coordinating vnodes differ. Both read a miss before either writes; the first add is stored on every
// replica (the coordinating vnode of the second included) before the second is written. Both were answered
// STORED, so both values must be there afterwards, as siblings: an add after a miss supersedes nothing.
func TestConcurrentAddsOfAMissingKeyBothSurvive(t *testing.T) {
	c := startInprocCluster(t)
	key, part := c.spanningKey(t, "race")

	reads := newReadBarrier(2)
	gate := make(chan struct{})
	a := &gatedStore{memcacheStore: &memcacheStore{coord: c.coords["n1"], now: time.Now}, reads: reads}
	b := &gatedStore{memcacheStore: &memcacheStore{coord: c.coords["n2"], now: time.Now}, reads: reads, gate: gate}
	ca, cb := dial(t, serveMemcache(t, a)), dial(t, serveMemcache(t, b))
	c3 := dial(t, serveMemcache(t, &memcacheStore{coord: c.coords["n3"], now: time.Now}))

	replyB := make(chan string, 1)
	go func() {
		line, err := addRaw(cb, string(key), "bravo")
		if err != nil {
			line = err.Error()
		}
		replyB <- line
	}()
	if got, err := addRaw(ca, string(key), "alpha"); err != nil || got != "STORED\r\n" {
		t.Fatalf("add alpha through n1: %q %v", got, err)
	}
	// alpha reached n2's replica, which coordinates bravo's write: the worst case for a write that would
	// supersede what its coordinating vnode holds.
	eventually.True(t, 10*time.Second, "alpha reaches n2's replica", func() bool {
		return slices.Contains(liveValues(c.replica(t, "n2", part["n2"], key)), "alpha")
	})
	close(gate)
	select {
	case got := <-replyB:
		if got != "STORED\r\n" {
			t.Fatalf("add bravo through n2: %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reply to add bravo through n2")
	}

	for name, conn := range map[string]*rawClient{"n1": ca, "n2": cb, "n3": c3} {
		got := conn.do("gets "+string(key)+"\r\n", "END")
		if m := valueLine.FindAllStringSubmatch(got, -1); len(m) != 2 || !strings.Contains(got, "\r\nalpha\r\n") ||
			!strings.Contains(got, "\r\nbravo\r\n") {
			t.Errorf("gets through %s: %q, want alpha and bravo as siblings", name, got)
		}
	}
	for _, name := range c.names {
		if got := liveValues(c.replica(t, name, part[name], key)); !slices.Equal(got, []string{"alpha", "bravo"}) {
			t.Errorf("%s's replica holds %q, want alpha and bravo", name, got)
		}
	}
}

// addRaw sends one add and returns its reply line.
func addRaw(rc *rawClient, key, value string) (string, error) {
	_ = rc.c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := fmt.Fprintf(rc.c, "add %s 0 0 %d\r\n%s\r\n", key, len(value), value); err != nil {
		return "", err
	}
	return rc.r.ReadString('\n')
}

// rawClient is a memcache text-protocol connection for tests.
type rawClient struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *rawClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, c: c, r: bufio.NewReader(c)}
}

// do sends req and reads lines until one equals until ("" reads one line).
func (rc *rawClient) do(req string, until string) string {
	rc.t.Helper()
	_ = rc.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(rc.c, req); err != nil {
		rc.t.Fatal(err)
	}
	var b strings.Builder
	for {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			rc.t.Fatalf("after %q: %v (%q)", req, err, b.String())
		}
		b.WriteString(line)
		if until == "" || strings.TrimRight(line, "\r\n") == until {
			return b.String()
		}
	}
}

var valueLine = regexp.MustCompile(`VALUE (\S+) (\d+) (\d+) (\d+)\r\n`)
