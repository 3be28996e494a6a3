package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/ring"
)

// testLogger logs to t at info (debug with GOKAI_TEST_DEBUG=1) until the
// test's cleanup turns it off, so late memberlist goroutines cannot log
// into a finished test.
func testLogger(t *testing.T) *slog.Logger {
	var off atomic.Bool
	t.Cleanup(func() { off.Store(true) }) // registered first: runs last
	level := slog.LevelInfo
	if os.Getenv("GOKAI_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	w := writerFunc(func(p []byte) (int, error) {
		if !off.Load() {
			t.Log(strings.TrimSpace(string(p)))
		}
		return len(p), nil
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// fastConfig returns a config for a node of a test cluster: loopback, any
// port, quick gossip, push-pull practically off (so that convergence has
// to come from the version broadcasts and pulls).
func fastConfig(t *testing.T, name string, st *ClusterState) GossipConfig {
	return GossipConfig{
		Self:             mem(name),
		BindAddr:         "127.0.0.1",
		ProbeInterval:    200 * time.Millisecond,
		ProbeTimeout:     100 * time.Millisecond,
		GossipInterval:   20 * time.Millisecond,
		PushPullInterval: time.Hour,
		AnnounceInterval: 250 * time.Millisecond,
		TCPTimeout:       5 * time.Second, // a loaded test machine, with -race
		Logger:           testLogger(t),
		State:            st,
	}
}

// startNode starts a gossip node and shuts it down at cleanup.
func startNode(t *testing.T, cfg GossipConfig) *Gossip {
	t.Helper()
	g, err := StartGossip(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Shutdown() })
	return g
}

// ownState returns a fresh one-node state of a cluster of name's own.
func ownState(t *testing.T, name string) *ClusterState {
	return must(t)(NewClusterState("own-"+name, mem(name), 64, 3))
}

// startCluster starts n nodes n0..: n0 creates cluster c1, the others join
// it with adopt, like `gokai cluster join` on fresh nodes.
func startCluster(t *testing.T, n int, tweak func(*GossipConfig)) []*Gossip {
	t.Helper()
	cfg := fastConfig(t, "n0", must(t)(NewClusterState("c1", mem("n0"), 64, 3)))
	if tweak != nil {
		tweak(&cfg)
	}
	nodes := []*Gossip{startNode(t, cfg)}
	for i := 1; i < n; i++ {
		name := fmt.Sprintf("n%d", i)
		cfg := fastConfig(t, name, ownState(t, name))
		if tweak != nil {
			tweak(&cfg)
		}
		g := startNode(t, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := g.Join(ctx, []string{nodes[0].Addr()}, true)
		cancel()
		if err != nil {
			t.Fatalf("%s joins: %v", name, err)
		}
		nodes = append(nodes, g)
	}
	waitFor(t, 5*time.Second, "every node sees every other alive", func() bool {
		for _, g := range nodes {
			for _, h := range nodes {
				if !g.Alive(h.self) {
					return false
				}
			}
		}
		return true
	}, nodes...)
	return nodes
}

// waitFor is eventually.True that, on failure, first logs what each of views holds and sees; it returns how
// long cond took to hold.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool, views ...*Gossip) time.Duration {
	t.Helper()
	start := time.Now()
	if !eventually.Within(timeout, cond) {
		for _, g := range views {
			t.Logf("%s holds %v", g.self, g.State())
			for _, m := range g.Members() {
				t.Logf("%s sees %+v", g.self, m)
			}
		}
		t.Fatalf("not within %v: %s", timeout, what)
	}
	return time.Since(start)
}

// converged reports whether every node holds a state with want's content.
func converged(nodes []*Gossip, want *ClusterState) bool {
	h := want.Hash()
	for _, g := range nodes {
		if s := g.State(); s.Version != want.Version || s.Hash() != h {
			return false
		}
	}
	return true
}

func TestGossipConverges(t *testing.T) {
	nodes := startCluster(t, 5, nil)
	base := nodes[0].State()
	for i, g := range nodes {
		if g.State().Hash() != base.Hash() {
			t.Fatalf("n%d did not adopt the seed's state: %v", i, g.State())
		}
	}
	// The seed has every joiner's meta at once (the joiner's second
	// push-pull); others learn it by gossip, or push-pull (off here).
	// NB: the meta only, not liveness: on a loaded machine a probe may time out and make a member suspect
	// for a moment, which says nothing about the meta the joins carried.
	for _, m := range nodes[0].Members() {
		if m.Cluster != "c1" || m.RPCAddr != string(m.Name)+":8087" {
			t.Fatalf("the seed lacks a joiner's meta after the joins returned: %+v", m)
		}
	}
	// A change proposed on any node reaches all (push-pull is off).
	s := base
	for _, from := range []int{3, 0, 4} {
		next := must(t)(s.StageJoin(mem(fmt.Sprintf("x%d", from))))
		if !nodes[from].Propose(next) {
			t.Fatalf("n%d refused a newer state", from)
		}
		if nodes[from].Propose(next) || nodes[from].Propose(s) {
			t.Fatal("an equal or older state was installed")
		}
		d := waitFor(t, 5*time.Second, "converge", func() bool { return converged(nodes, next) }, nodes...)
		t.Logf("5 nodes: v%d proposed on n%d everywhere in %v", next.Version, from, d)
		s = next
	}
}

// TestGossipConcurrentProposes: two claimants propose different states of
// the same version at once; every node ends with the same one.
func TestGossipConcurrentProposes(t *testing.T) {
	nodes := startCluster(t, 4, nil)
	base := nodes[0].State()
	a := must(t)(base.StageJoin(mem("xa")))
	b := must(t)(base.StageJoin(mem("xb")))
	if a.Version != b.Version || a.Hash() == b.Hash() {
		t.Fatal("want two different states of one version")
	}
	winner := a
	if Newer(b, a) {
		winner = b
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); nodes[1].Propose(a) }()
	go func() { defer wg.Done(); nodes[2].Propose(b) }()
	wg.Wait()
	d := waitFor(t, 5*time.Second, "converge on the winner", func() bool { return converged(nodes, winner) }, nodes...)
	t.Logf("4 nodes: concurrent proposals settled on the winner in %v", d)
	for _, g := range nodes {
		if g.Propose(a) || g.Propose(b) {
			t.Fatal("a node took a state the winner beats")
		}
	}
}

// metaSettled reports whether every node sees every node alive with the
// meta of cluster c1.
func metaSettled(nodes []*Gossip) bool {
	for _, g := range nodes {
		for _, m := range g.Members() {
			if m.Cluster != "c1" || m.State != LiveAlive || m.RPCAddr != string(m.Name)+":8087" {
				return false
			}
		}
	}
	return true
}

// TestGossipPushPull: with version broadcasts ignored, push-pull alone
// spreads a state (and the node metas).
func TestGossipPushPull(t *testing.T) {
	nodes := startCluster(t, 4, func(c *GossipConfig) {
		c.PushPullInterval = 50 * time.Millisecond
		c.ignoreVersions = true
	})
	next := must(t)(nodes[0].State().StageJoin(mem("x")))
	nodes[2].Propose(next)
	d := waitFor(t, 5*time.Second, "converge by push-pull", func() bool { return converged(nodes, next) }, nodes...)
	t.Logf("4 nodes, push-pull every 50ms only: converged in %v", d)
	waitFor(t, 5*time.Second, "every node's meta says cluster c1", func() bool { return metaSettled(nodes) }, nodes...)
}

// TestGossipFailureDetection: a node that stops without a word is seen dead by every other, quickly with
// aggressive probes.
func TestGossipFailureDetection(t *testing.T) {
	nodes := startCluster(t, 4, func(c *GossipConfig) {
		c.ProbeInterval = 50 * time.Millisecond
		c.ProbeTimeout = 25 * time.Millisecond
		c.SuspicionMult = 2
	})
	nodes[3].Shutdown()
	d := waitFor(t, 5*time.Second, "n3 seen down after Shutdown", func() bool {
		return !nodes[0].Alive("n3") && !nodes[1].Alive("n3") && !nodes[2].Alive("n3")
	})
	t.Logf("hard stop (probe 50ms/25ms, suspicion x2): seen dead by all in %v", d)
	for _, m := range nodes[0].Members() {
		if m.Name == "n3" && (m.State != LiveDead || m.Since.IsZero()) {
			t.Fatalf("n0 sees n3 %s since %v, want dead", m.State, m.Since)
		}
	}
	if !nodes[0].Alive("n0") || nodes[0].Alive("nobody") {
		t.Fatal("Alive of self / of an unknown node")
	}
}

// TestGossipLeave: a node that leaves is seen left (not dead) by every other.
//
// NB: separate from the hard stop above, at the ordinary test probe timings: with 25 ms probes a loaded
// machine may suspect the leaving node and declare it dead before its leave arrives, and memberlist then
// keeps it dead (a leave is a dead message from the node itself, ignored once the node is dead).
func TestGossipLeave(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	if err := nodes[2].Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	d := waitFor(t, 5*time.Second, "n2 seen left after Leave", func() bool {
		return !nodes[0].Alive("n2") && !nodes[1].Alive("n2")
	})
	t.Logf("graceful leave: seen by all in %v", d)
	for _, g := range nodes[:2] {
		for _, m := range g.Members() {
			want := map[ring.NodeID]LiveState{"n0": LiveAlive, "n1": LiveAlive, "n2": LiveLeft}[m.Name]
			if m.State != want || m.Since.IsZero() {
				t.Fatalf("%s sees %s %s since %v, want %s", g.self, m.Name, m.State, m.Since, want)
			}
		}
	}
}

// TestGossipAdopt: a fresh node joining with adopt takes the cluster's
// state (not its own, older one), then follows it.
func TestGossipAdopt(t *testing.T) {
	nodes := startCluster(t, 2, nil)
	s := must(t)(nodes[0].State().StageJoin(mem("x")))
	s = must(t)(s.StageJoin(mem("y")))
	nodes[0].Propose(s)
	waitFor(t, 5*time.Second, "converge", func() bool { return converged(nodes, s) }, nodes...)

	if err := nodes[1].Join(context.Background(), []string{nodes[0].Addr()}, true); !errors.Is(err, ErrNotAlone) {
		t.Fatalf("adopting join of a node with peers: %v, want ErrNotAlone", err)
	}
	fresh := startNode(t, fastConfig(t, "n9", ownState(t, "n9")))
	if err := fresh.Join(context.Background(), []string{nodes[1].Addr()}, true); err != nil {
		t.Fatal(err)
	}
	if got := fresh.State(); got.Hash() != s.Hash() {
		t.Fatalf("adopted %v, want %v", got, s)
	}
	nodes = append(nodes, fresh)
	waitFor(t, 5*time.Second, "n0 sees n9 in cluster c1", func() bool {
		for _, m := range nodes[0].Members() {
			if m.Name == "n9" {
				return m.Cluster == "c1" && m.State == LiveAlive
			}
		}
		return false
	})
	next := must(t)(s.StageJoin(mem("n9")))
	nodes[0].Propose(next)
	waitFor(t, 5*time.Second, "the adopted node follows the cluster", func() bool { return converged(nodes, next) }, nodes...)

	// Adopting with an unreachable seed fails and keeps the own state.
	lone := startNode(t, fastConfig(t, "n8", ownState(t, "n8")))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := lone.Join(ctx, []string{"127.0.0.1:1"}, true); err == nil {
		t.Fatal("join of an unreachable seed succeeded")
	}
	if lone.State().Cluster != "own-n8" {
		t.Fatalf("failed join changed the state: %v", lone.State())
	}
}

// TestGossipForeignCluster: a node of another cluster joining without adopt
// is refused; neither side merges members or state.
func TestGossipForeignCluster(t *testing.T) {
	nodes := startCluster(t, 2, nil)
	other := startNode(t, fastConfig(t, "e", ownState(t, "e")))
	otherState := other.State()
	err := other.Join(context.Background(), []string{nodes[0].Addr()}, false)
	if !errors.Is(err, ErrForeignCluster) {
		t.Fatalf("join of another cluster: %v, want ErrForeignCluster", err)
	}
	// A barrier: a change spreads through c1; by then the refused join
	// has long been handled on the seed.
	next := must(t)(nodes[0].State().StageJoin(mem("x")))
	nodes[0].Propose(next)
	waitFor(t, 5*time.Second, "converge", func() bool { return converged(nodes, next) }, nodes...)
	for _, g := range nodes {
		for _, m := range g.Members() {
			if m.Name == "e" {
				t.Fatalf("%s lists the foreign node: %+v", g.self, m)
			}
		}
	}
	if len(other.Members()) != 1 || other.State() != otherState {
		t.Fatalf("the foreign node merged: %v, %v", other.Members(), other.State())
	}
	if nodes[0].Propose(otherState) {
		t.Fatal("Propose installed a state of another cluster")
	}
}

func TestGossipSubscribe(t *testing.T) {
	g := startNode(t, fastConfig(t, "a", must(t)(NewClusterState("c1", mem("a"), 8, 2))))
	ch, cancel := g.Subscribe()
	if s := <-ch; s != g.State() {
		t.Fatal("first receive must be the current state")
	}
	s := g.State()
	var last *ClusterState
	for i := range 5 { // nobody reads: only the latest is kept
		s = must(t)(s.StageJoin(mem(fmt.Sprintf("x%d", i))))
		if !g.Propose(s) {
			t.Fatal("propose refused")
		}
		last = s
	}
	if got := <-ch; got != last {
		t.Fatalf("got v%d, want the latest v%d", got.Version, last.Version)
	}
	select {
	case got := <-ch:
		t.Fatalf("unexpected v%d", got.Version)
	default:
	}
	cancel()
	cancel()
	if _, ok := <-ch; ok {
		t.Fatal("cancel must close the channel")
	}
	ch2, _ := g.Subscribe()
	<-ch2
	g.Shutdown()
	if _, ok := <-ch2; ok {
		t.Fatal("Shutdown must close the channel")
	}
	if g.Propose(must(t)(s.StageJoin(mem("late")))) {
		t.Fatal("Propose after Shutdown")
	}
	if err := g.Join(context.Background(), []string{"127.0.0.1:1"}, false); !errors.Is(err, ErrClosed) {
		t.Fatalf("Join after Shutdown: %v", err)
	}
	if err := g.Leave(time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Leave after Shutdown: %v", err)
	}
	if ch3, _ := g.Subscribe(); ch3 != nil {
		if _, ok := <-ch3; ok {
			t.Fatal("Subscribe after Shutdown must return a closed channel")
		}
	}
}

// TestGossipHostileInput feeds the delegate malformed and hostile bytes:
// nothing crashes, allocates unboundedly or changes the state.
func TestGossipHostileInput(t *testing.T) {
	g := startNode(t, fastConfig(t, "a", must(t)(NewClusterState("c1", mem("a"), 8, 2))))
	d := &gossipDelegate{g}
	before := g.State()
	bomb := []byte{0xdd, 0xff, 0xff, 0xff, 0xff}
	other := must(t)(NewClusterState("c2", mem("a"), 8, 2))
	otherNext, _ := must(t)(other.StageJoin(mem("b"))).MarshalBinary()
	for _, b := range [][]byte{
		nil, {0}, {99, 1, 2},
		append([]byte{msgStateVersion}, bomb...),
		append([]byte{msgPullState}, bomb...),
		append([]byte{msgStateReply}, bomb...),
		append([]byte{msgStateReply}, make([]byte, MaxStateBytes+1)...),
		append([]byte{msgStateVersion}, make([]byte, 600)...),
		append([]byte{msgStateReply}, otherNext...), // another cluster's state
		encodeStateVersion(msgStateVersion, stateVersion{Cluster: "c1", Version: 99, From: "nobody"}),
		encodeStateVersion(msgPullState, stateVersion{Cluster: "c1", Version: 1, From: "nobody"}),
	} {
		d.NotifyMsg(b)
	}
	d.MergeRemoteState(bomb, false)
	d.MergeRemoteState(otherNext, false)
	if g.State() != before {
		t.Fatal("hostile input changed the state")
	}
	for _, meta := range [][]byte{nil, bomb, {0x80}} {
		if d.NotifyAlive(&memberlist.Node{Name: "z", Meta: meta}) == nil {
			t.Fatalf("meta %x accepted", meta)
		}
	}
}

func TestGossipConfigValidate(t *testing.T) {
	st := must(t)(NewClusterState("c1", mem("a"), 8, 2))
	good := GossipConfig{Self: mem("a"), State: st}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		field string
		f     func(*GossipConfig)
	}{
		{"Self", func(c *GossipConfig) { c.Self = Member{} }},
		{"BindAddr", func(c *GossipConfig) { c.BindAddr = "localhost" }},
		{"BindPort", func(c *GossipConfig) { c.BindPort = 70000 }},
		{"ProbeInterval", func(c *GossipConfig) { c.ProbeInterval = -1 }},
		{"ProbeTimeout", func(c *GossipConfig) { c.ProbeTimeout = -1 }},
		{"SuspicionMult", func(c *GossipConfig) { c.SuspicionMult = -1 }},
		{"GossipInterval", func(c *GossipConfig) { c.GossipInterval = -1 }},
		{"PushPullInterval", func(c *GossipConfig) { c.PushPullInterval = -1 }},
		{"TCPTimeout", func(c *GossipConfig) { c.TCPTimeout = -1 }},
		{"RetransmitMult", func(c *GossipConfig) { c.RetransmitMult = -1 }},
		{"AnnounceInterval", func(c *GossipConfig) { c.AnnounceInterval = -1 }},
		{"DeadNodeReclaimTime", func(c *GossipConfig) { c.DeadNodeReclaimTime = -1 }},
		{"State", func(c *GossipConfig) { c.State = nil }},
		{"State", func(c *GossipConfig) { bad := *st; bad.Version = 0; c.State = &bad }},
	} {
		c := good
		tc.f(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "GossipConfig."+tc.field) {
			t.Errorf("%s: %v", tc.field, err)
		}
		if _, err := StartGossip(c); err == nil {
			t.Errorf("%s: StartGossip accepted an invalid config", tc.field)
		}
	}
}
