package coordinator_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// A service other than KV on the public API: a max register per key. Its value is a plain struct (not a
// pointer, as KV's is), its vnodes keep the largest number written, and a read merges with max.

// reg is the register's value: Found is false for a replica that holds nothing.
type reg struct {
	N     uint64
	Found bool
}

// Messages between the register's coordinators and vnodes (local only: the test runs one node).
type (
	regRead struct {
		Tag uint32
		Key []byte
	}
	regWrite struct {
		Tag uint32
		Key []byte
		N   uint64
	}
	regReply struct {
		Tag   uint32
		Val   reg
		Write bool
		Err   string
	}
)

// regVnode is the register's vnode behaviour: a write keeps the larger of the stored and the written
// number and answers with the result; a read answers what is stored.
type regVnode struct{ env vnode.Env }

func (b *regVnode) Init(env vnode.Env) error { b.env = env; return nil }

func (b *regVnode) load(key []byte) (reg, error) {
	raw, err := b.env.Store.Get(key)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return reg{}, nil
	case err != nil:
		return reg{}, err
	case len(raw) != 8:
		return reg{}, errors.New("reg: bad stored value")
	}
	return reg{N: binary.BigEndian.Uint64(raw), Found: true}, nil
}

func (b *regVnode) HandleCommand(cmd any, _ vnode.Sender) vnode.Result {
	switch m := cmd.(type) {
	case *regRead:
		v, err := b.load(m.Key)
		return vnode.Reply(reply(m.Tag, v, false, err))
	case *regWrite:
		v, err := b.load(m.Key)
		if err == nil && (!v.Found || m.N > v.N) {
			v = reg{N: m.N, Found: true}
			err = b.env.Store.Put(m.Key, binary.BigEndian.AppendUint64(nil, m.N))
		}
		return vnode.Reply(reply(m.Tag, v, true, err))
	}
	return vnode.NoReply()
}

func reply(tag uint32, v reg, write bool, err error) *regReply {
	r := &regReply{Tag: tag, Val: v, Write: write}
	if err != nil {
		r.Err = err.Error()
	}
	return r
}

func (b *regVnode) HandoffFold(fn func(key, value []byte) error) error { return b.env.Store.Fold(fn) }
func (b *regVnode) EncodeHandoffItem(key, value []byte) ([]byte, error) {
	return append(append([]byte{}, value...), key...), nil
}
func (b *regVnode) HandleHandoffData([]byte) error { return errors.New("reg: no handoff in this test") }
func (b *regVnode) IsEmpty() (bool, error)         { return b.env.Store.IsEmpty() }
func (b *regVnode) Delete() error                  { return b.env.Store.Drop() }
func (b *regVnode) Terminate(any)                  {}

// regProtocol is the register's coordinator.Protocol.
type regProtocol struct{}

func (regProtocol) Missing(v reg) bool  { return !v.Found }
func (regProtocol) Equal(a, b reg) bool { return a == b }
func (regProtocol) Merge(a, b reg) reg {
	if b.N > a.N {
		return b
	}
	return a
}
func (regProtocol) Decode(msg any) (coordinator.Reply[reg], bool) {
	m, ok := msg.(*regReply)
	if !ok {
		return coordinator.Reply[reg]{}, false
	}
	r := coordinator.Reply[reg]{Tag: m.Tag, Value: m.Val, Write: m.Write}
	if m.Err != "" {
		r.Err = errors.New(m.Err)
	}
	return r, true
}

// regOp is one register request's commands: n is the number a write stores.
type regOp struct{ n uint64 }

func (o *regOp) Command(key []byte, tag uint32) any {
	if o.n == 0 {
		return &regRead{Tag: tag, Key: key}
	}
	return &regWrite{Tag: tag, Key: key, N: o.n}
}
func (o *regOp) Replicate(key []byte, tag uint32, v reg) any {
	return &regWrite{Tag: tag, Key: key, N: v.N}
}
func (o *regOp) Reap([]byte, reg) any { return nil }

type regRouter struct {
	ring   *ring.Ring
	vnodes *vnode.Manager
}

func (r regRouter) Preflist(key []byte, n int) []ring.PrefEntry { return r.ring.Preflist(key, n, nil) }
func (r regRouter) VnodePID(_ ring.NodeID, p int) *actor.PID    { return r.vnodes.PID(p) }
func (r regRouter) Fallback([]byte, int, ring.NodeID) (ring.PrefEntry, bool) {
	return ring.PrefEntry{}, false
}
func (r regRouter) ReportFailure(ring.NodeID) {}

// TestAServiceOtherThanKV runs the max register through coordinator.Write and coordinator.Read on one node
// (N=3 vnodes): a write reaches every replica, a read merges the replicas' values, and a replica that
// answers with less is repaired.
func TestAServiceOtherThanKV(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	sys := actors.NewSystem(logger)
	t.Cleanup(sys.Shutdown)
	rg, err := ring.New(8, 3, []ring.NodeID{"n1"})
	if err != nil {
		t.Fatal(err)
	}
	db := storage.NewMemory()
	vnodes, err := vnode.StartManager(sys, vnode.ManagerConfig{Node: "n1", Partitions: rg.PartitionsOf("n1"),
		Factory: func() vnode.Behaviour { return &regVnode{} }, Store: db, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = vnodes.Stop(context.Background()) })
	cfg := coordinator.DefaultConfig("n1")
	cfg.Linger, cfg.Logger = 50*time.Millisecond, logger
	svc, err := coordinator.Start(sys, cfg, regRouter{ring: rg, vnodes: vnodes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop(context.Background()) })
	var proto coordinator.Protocol[reg] = regProtocol{}
	ctx := context.Background()
	key := []byte("hits")
	stored := func(p int) reg {
		raw, err := db.Get(uint32(p), key)
		if errors.Is(err, storage.ErrNotFound) {
			return reg{}
		}
		if err != nil {
			t.Fatal(err)
		}
		return reg{N: binary.BigEndian.Uint64(raw), Found: true}
	}
	replicas := rg.Preflist(key, 3, nil)

	if v, err := coordinator.Read(ctx, svc, proto, key, coordinator.ReadOptions{}, regOp{}); err != nil || v.Found {
		t.Fatalf("read of a missing key: %+v %v", v, err)
	}
	w, err := coordinator.Write(ctx, svc, proto, key, coordinator.WriteOptions{W: 3}, regOp{n: 7})
	if err != nil || w != (reg{N: 7, Found: true}) {
		t.Fatalf("write: %+v %v", w, err)
	}
	for _, e := range replicas {
		if got := stored(e.Partition); got.N != 7 {
			t.Fatalf("partition %d holds %+v after a W=3 write", e.Partition, got)
		}
	}
	// One replica falls behind (below the coordinator); a read with R=3 still answers the max, and repairs.
	behind := replicas[1].Partition
	if err := db.Put(uint32(behind), key, binary.BigEndian.AppendUint64(nil, 2)); err != nil {
		t.Fatal(err)
	}
	v, err := coordinator.Read(ctx, svc, proto, key, coordinator.ReadOptions{R: 3}, regOp{})
	if err != nil || v != (reg{N: 7, Found: true}) {
		t.Fatalf("read: %+v %v", v, err)
	}
	eventually.True(t, 5*time.Second, "the replica that answered less is repaired", func() bool { return stored(behind).N == 7 })
	if got := svc.Stats().ReadRepairs; got != 1 {
		t.Fatalf("read repairs %d, want 1", got)
	}
	// A bad request never reaches a replica.
	if _, err := coordinator.Read(ctx, svc, proto, key, coordinator.ReadOptions{R: 4}, regOp{}); !errors.Is(err, coordinator.ErrBadRequest) {
		t.Fatalf("R=4 with N=3: %v, want ErrBadRequest", err)
	}
}

// downRouter routes to one vnode manager per node; the nodes in down have no reachable vnode (VnodePID nil,
// as the node's router answers for a member it sees down or gone).
type downRouter struct {
	ring   *ring.Ring
	vnodes map[ring.NodeID]*vnode.Manager
	mu     sync.Mutex
	down   map[ring.NodeID]bool // REQUIRES: mu held
}

func (r *downRouter) Preflist(key []byte, n int) []ring.PrefEntry {
	return r.ring.Preflist(key, n, nil)
}
func (r *downRouter) VnodePID(node ring.NodeID, p int) *actor.PID {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down[node] || r.vnodes[node] == nil {
		return nil
	}
	return r.vnodes[node].PID(p)
}
func (r *downRouter) Fallback([]byte, int, ring.NodeID) (ring.PrefEntry, bool) {
	return ring.PrefEntry{}, false
}
func (r *downRouter) ReportFailure(ring.NodeID) {}

// TestWriteCoordinatesAtAReachableReplica: a write from a node that holds no replica of the key is
// coordinated by the first replica it can reach, not by the first of the list when that one is unreachable
// (which failed the write, applied nowhere, with an error a client could only take as indeterminate).
func TestWriteCoordinatesAtAReachableReplica(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	sys := actors.NewSystem(logger)
	t.Cleanup(sys.Shutdown)
	names := []ring.NodeID{"n1", "n2", "n3"}
	rg, err := ring.New(8, 3, names)
	if err != nil && !errors.Is(err, ring.ErrTargetN) {
		t.Fatal(err)
	}
	r := &downRouter{ring: rg, vnodes: map[ring.NodeID]*vnode.Manager{}, down: map[ring.NodeID]bool{"n1": true}}
	all := []int{0, 1, 2, 3, 4, 5, 6, 7}
	for _, n := range names {
		m, err := vnode.StartManager(sys, vnode.ManagerConfig{Name: "reg-" + string(n), Node: string(n), Partitions: all,
			Factory: func() vnode.Behaviour { return &regVnode{} }, Store: storage.NewMemory(), Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Stop(context.Background()) })
		r.vnodes[n] = m
	}
	cfg := coordinator.DefaultConfig("client") // a node that holds no replica
	cfg.Linger, cfg.Logger = 50*time.Millisecond, logger
	svc, err := coordinator.Start(sys, cfg, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop(context.Background()) })
	// A key whose list starts on the node that is down.
	var key []byte
	for i := 0; key == nil; i++ {
		if k := []byte(fmt.Sprintf("key%d", i)); rg.Preflist(k, 3, nil)[0].Node == "n1" {
			key = k
		}
	}
	w, err := coordinator.Write(context.Background(), svc, regProtocol{}, key, coordinator.WriteOptions{W: 2}, regOp{n: 5})
	if err != nil || w != (reg{N: 5, Found: true}) {
		t.Fatalf("write with the first replica unreachable: %+v %v", w, err)
	}
	// The same on a node of the list whose own vnode does not run (not started yet, as right after a join):
	// another replica coordinates.
	cfg1 := coordinator.DefaultConfig("n1")
	cfg1.Linger, cfg1.Logger = 50*time.Millisecond, logger
	svc1, err := coordinator.Start(sys, cfg1, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc1.Stop(context.Background()) })
	if w, err := coordinator.Write(context.Background(), svc1, regProtocol{}, key, coordinator.WriteOptions{W: 2}, regOp{n: 6}); err != nil || w != (reg{N: 6, Found: true}) {
		t.Fatalf("write on a node whose own replica is not running: %+v %v", w, err)
	}
	// With every replica unreachable there is no one to coordinate: the write fails, applied nowhere.
	r.mu.Lock()
	r.down["n2"], r.down["n3"] = true, true
	r.mu.Unlock()
	if _, err := coordinator.Write(context.Background(), svc, regProtocol{}, key, coordinator.WriteOptions{W: 1}, regOp{n: 6}); err == nil {
		t.Fatal("a write with no replica reachable succeeded")
	}
}
