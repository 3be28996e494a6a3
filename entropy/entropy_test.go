package entropy_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/entropy"
	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/kv"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) { w.t.Log(strings.TrimSpace(string(p))); return len(p), nil }

const q, n = 8, 2

// twoNodes is two "nodes" in one actor system: a vnode manager each (its own storage), and a ring of both.
type twoNodes struct {
	sys  *actor.ActorSystem
	ring *ring.Ring
	vn   map[ring.NodeID]*vnode.Manager
	db   map[ring.NodeID]*storage.Memory
	down atomic.Value // ring.NodeID
}

func (c *twoNodes) Ring() *ring.Ring { return c.ring }
func (c *twoNodes) Up(x ring.NodeID) bool {
	d, _ := c.down.Load().(ring.NodeID)
	return x != d
}

func newTwoNodes(t *testing.T) *twoNodes {
	logger := slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sys := actors.NewSystem(logger)
	t.Cleanup(sys.Shutdown)
	r, err := ring.New(q, n, []ring.NodeID{"a", "b"})
	if r == nil {
		t.Fatal(err)
	}
	c := &twoNodes{sys: sys, ring: r, vn: map[ring.NodeID]*vnode.Manager{}, db: map[ring.NodeID]*storage.Memory{}}
	for _, node := range []ring.NodeID{"a", "b"} {
		db := storage.NewMemory()
		parts := make([]int, q)
		for i := range parts {
			parts[i] = i
		}
		m, err := vnode.StartManager(sys, vnode.ManagerConfig{Name: "vnode-sup-" + string(node), Node: string(node),
			Partitions: parts, Factory: kv.NewVnode(kv.DefaultConfig()), Store: db, Logger: logger,
			AAE: vnode.AAEConfig{Q: q}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = m.Stop(ctx)
		})
		c.vn[node], c.db[node] = m, db
	}
	return c
}

func (c *twoNodes) ask(t *testing.T, node ring.NodeID, p int, msg any) any {
	t.Helper()
	res, err := actors.Request(context.Background(), c.sys, c.vn[node].PID(p), msg, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// replicas are key's primaries.
func (c *twoNodes) replicas(key string) []ring.PrefEntry {
	return c.ring.Preflist([]byte(key), n, nil)
}

// repair is a model of KV's: read every replica, write the merged object to each.
func (c *twoNodes) repair(ctx context.Context, key []byte) error {
	var merged *kv.Object
	for _, e := range c.replicas(string(key)) {
		res, err := actors.Request(ctx, c.sys, c.vn[e.Node].PID(e.Partition), &kv.GetRequest{V: 1, Key: key}, 5*time.Second)
		if err != nil {
			return err
		}
		merged = kv.Sync(merged, res.(*kv.GetReply).Object, false)
	}
	if merged == nil {
		return nil
	}
	for _, e := range c.replicas(string(key)) {
		if _, err := actors.Request(ctx, c.sys, c.vn[e.Node].PID(e.Partition), &kv.PutRequest{V: 1, Key: key, Object: merged}, 5*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// copyOf is what one replica of key holds ("" for nothing), as its version hash.
func (c *twoNodes) copyOf(t *testing.T, e ring.PrefEntry, key string) uint64 {
	return kv.VersionHash(c.ask(t, e.Node, e.Partition, &kv.GetRequest{V: 1, Key: []byte(key)}).(*kv.GetReply).Object)
}

func (c *twoNodes) start(t *testing.T, node ring.NodeID, period time.Duration, repairs *atomic.Int64) *entropy.Manager {
	svc := entropy.Service{Name: "kv",
		Vnode: func(x ring.NodeID, p int) *actor.PID { return c.vn[x].PID(p) },
		Repair: func(ctx context.Context, key []byte) error {
			repairs.Add(1)
			return c.repair(ctx, key)
		}}
	m, err := entropy.Start(c.sys, entropy.Config{Node: node, N: n, Period: period, RepairRate: 1e5, Name: "aae-sup-" + string(node)},
		c, []entropy.Service{svc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Stop(ctx)
	})
	return m
}

// TestExchangesRepairWhatNobodyReads: keys on one replica only, keys with different versions on the two,
// and a tombstone on one replica against a live value on the other all converge with no client reading;
// then the exchanges find nothing more to repair.
func TestExchangesRepairWhatNobodyReads(t *testing.T) {
	c := newTwoNodes(t)
	var keys []string
	for i := range 300 {
		k := fmt.Sprintf("key-%d", i)
		keys = append(keys, k)
		rs := c.replicas(k)
		switch i % 4 {
		case 0: // only on the first replica
			c.ask(t, rs[0].Node, rs[0].Partition, &kv.PutRequest{V: 1, Key: []byte(k), Coordinate: true, Blind: true, Value: []byte("x")})
		case 1: // only on the second
			c.ask(t, rs[1].Node, rs[1].Partition, &kv.PutRequest{V: 1, Key: []byte(k), Coordinate: true, Blind: true, Value: []byte("y")})
		case 2: // on both, concurrent writes (siblings once merged)
			for j, e := range rs {
				c.ask(t, e.Node, e.Partition, &kv.PutRequest{V: 1, Key: []byte(k), Coordinate: true, Blind: true, Value: fmt.Appendf(nil, "v%d", j)})
			}
		case 3: // in step on both, then deleted on the first only
			o := c.ask(t, rs[0].Node, rs[0].Partition, &kv.PutRequest{V: 1, Key: []byte(k), Coordinate: true, Blind: true, Value: []byte("z")}).(*kv.PutReply).Object
			c.ask(t, rs[1].Node, rs[1].Partition, &kv.PutRequest{V: 1, Key: []byte(k), Object: o})
			c.ask(t, rs[0].Node, rs[0].Partition, &kv.PutRequest{V: 1, Key: []byte(k), Coordinate: true, Context: o.Clock, Meta: kv.Meta{Deleted: true}})
		}
	}
	var repairs atomic.Int64
	ma := c.start(t, "a", 200*time.Millisecond, &repairs)
	mb := c.start(t, "b", 200*time.Millisecond, &repairs)
	eventually.True(t, 30*time.Second, "every replica of every key converged", func() bool {
		for _, k := range keys {
			rs := c.replicas(k)
			if c.copyOf(t, rs[0], k) != c.copyOf(t, rs[1], k) {
				return false
			}
		}
		return true
	})
	for i, k := range keys {
		o := c.ask(t, c.replicas(k)[1].Node, c.replicas(k)[1].Partition, &kv.GetRequest{V: 1, Key: []byte(k)}).(*kv.GetReply).Object
		switch {
		case o == nil:
			t.Fatalf("%s: lost", k)
		case i%4 == 2 && o.LiveCount(time.Now().Unix()) != 2:
			t.Fatalf("%s: %d live siblings after repair, want both writes", k, o.LiveCount(time.Now().Unix()))
		case i%4 == 3 && !o.TombstoneOnly(time.Now().Unix()):
			t.Fatalf("%s: the delete did not reach the second replica: %v", k, o)
		}
	}
	// Quiet: two more full periods of both managers find nothing.
	before := repairs.Load()
	sa, sb := ma.Stats(), mb.Stats()
	eventually.True(t, 30*time.Second, "two more periods of exchanges", func() bool {
		return ma.Stats().Exchanges >= sa.Exchanges+2*q && mb.Stats().Exchanges >= sb.Exchanges+2*q
	})
	if got := repairs.Load(); got != before {
		t.Fatalf("%d repairs after convergence", got-before)
	}
	if st := ma.Stats(); st.ExchangeErrors != 0 || st.RepairErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
	status := ma.Status()
	if len(status) != len(c.ring.PartitionsOf("a")) || status[0].Exchanges == 0 || status[0].LastResult == "" {
		t.Fatalf("status %+v", status)
	}
}

// TestExchangeWithADownPeerIsSkipped: nothing is sent to a node the cluster reports down.
func TestExchangeWithADownPeerIsSkipped(t *testing.T) {
	c := newTwoNodes(t)
	c.down.Store(ring.NodeID("b"))
	var repairs atomic.Int64
	m := c.start(t, "a", 100*time.Millisecond, &repairs)
	eventually.True(t, 10*time.Second, "exchanges skipped", func() bool { return m.Stats().Skipped >= 16 })
	if st := m.Stats(); st.Exchanges != 0 {
		t.Fatalf("exchanges ran with the peer down: %+v", st)
	}
}

// switchable is a cluster whose ring the test replaces.
type switchable struct {
	*twoNodes
	r atomic.Pointer[ring.Ring]
}

func (s *switchable) Ring() *ring.Ring { return s.r.Load() }

// TestRingChangePlansAnew: the exchanges planned on a one-node ring (the node before it joined) are
// replaced by the new ring's as soon as it changes, not a period later.
func TestRingChangePlansAnew(t *testing.T) {
	c := newTwoNodes(t)
	alone, err := ring.NewFromOwners(slices.Repeat([]ring.NodeID{"a"}, q), 1)
	if err != nil {
		t.Fatal(err)
	}
	two, err := ring.NewFromOwners(c.ring.Owners(), 2)
	if err != nil {
		t.Fatal(err)
	}
	sc := &switchable{twoNodes: c}
	sc.r.Store(alone)
	var askedB atomic.Int64
	svc := entropy.Service{Name: "kv",
		Vnode: func(x ring.NodeID, p int) *actor.PID {
			if x == "b" {
				askedB.Add(1)
			}
			return c.vn[x].PID(p)
		},
		Repair: func(ctx context.Context, key []byte) error { return c.repair(ctx, key) }}
	m, err := entropy.Start(c.sys, entropy.Config{Node: "a", N: n, Period: time.Hour, Name: "aae-sup-switch"}, sc,
		[]entropy.Service{svc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop(context.Background()) })
	eventually.True(t, 5*time.Second, "the one-node plan's first exchange", func() bool { return m.Stats().Exchanges >= 1 })
	if askedB.Load() != 0 {
		t.Fatal("the one-node plan named b")
	}
	sc.r.Store(two)
	// With an hour's period, only a new plan brings an exchange with b within seconds.
	eventually.True(t, 5*time.Second, "an exchange with b on the new ring", func() bool { return askedB.Load() >= 1 })
}

// TestExchangeWithAGoneVnodeFailsAtOnce: a vnode that no longer exists answers with a dead letter; the
// exchange ends with an error then, not at its timeout.
func TestExchangeWithAGoneVnodeFailsAtOnce(t *testing.T) {
	c := newTwoNodes(t)
	svc := entropy.Service{Name: "kv",
		Vnode: func(x ring.NodeID, p int) *actor.PID {
			if x == "b" {
				return actor.NewPID(c.sys.Address(), "vnode-gone")
			}
			return c.vn[x].PID(p)
		},
		Repair: func(context.Context, []byte) error { return nil }}
	m, err := entropy.Start(c.sys, entropy.Config{Node: "a", N: n, Period: time.Hour, Timeout: time.Hour,
		Name: "aae-sup-gone"}, c, []entropy.Service{svc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop(context.Background()) })
	eventually.True(t, 5*time.Second, "the exchange failed", func() bool { return m.Stats().ExchangeErrors >= 1 })
}
