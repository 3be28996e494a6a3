package kv

import (
	"context"
	"encoding/binary"
	"hash/fnv"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/internal/eventually"
)

// tombstoneOnSomeReplicas leaves key deleted on its first replica only: the tombstone was reaped on the
// others (as a reap that reached only some replicas, or a restore of a backup from before the write).
func tombstoneOnSomeReplicas(t *testing.T, n *testNode, key []byte) {
	t.Helper()
	ctx := context.Background()
	o, err := n.kv.Put(ctx, key, []byte("v"), Meta{}, nil, true, coordinator.WriteOptions{W: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.kv.Delete(ctx, key, o.Clock, false, coordinator.WriteOptions{W: 3}); err != nil {
		t.Fatal(err)
	}
	for _, e := range n.ring.Preflist(key, 3, nil)[1:] {
		if err := n.db.Delete(uint32(e.Partition), append([]byte{'k'}, key...)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRepairOfATombstoneInReapModeReapsItEverywhere: a tombstone against nothing converges to nothing on
// every replica (and the value never comes back).
func TestRepairOfATombstoneInReapModeReapsItEverywhere(t *testing.T) {
	n := startTestNode(t, uncachedKV(), nil)
	key := []byte("gone")
	tombstoneOnSomeReplicas(t, n, key)
	cfg := DefaultConfig()
	cfg.DeleteMode, cfg.ReapDelay = DeleteReap, 20*time.Millisecond
	c, err := NewCoordinator(n.svc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Repair(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 5*time.Second, "the tombstone reaped on every replica", func() bool {
		for _, o := range n.replicas(t, key) {
			if o != nil {
				return false
			}
		}
		return true
	})
	if got := c.Stats().Gets; got != 0 {
		t.Fatalf("a repair counted as %d client gets", got)
	}
}

// TestRepairOfATombstoneInKeepModePropagatesIt: with tombstones kept, every replica ends with the tombstone.
func TestRepairOfATombstoneInKeepModePropagatesIt(t *testing.T) {
	n := startTestNode(t, uncachedKV(), nil)
	key := []byte("gone")
	tombstoneOnSomeReplicas(t, n, key)
	want := n.replica(t, n.ring.Preflist(key, 3, nil)[0].Partition, key)
	if err := n.kv.Repair(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 5*time.Second, "the tombstone on every replica", func() bool { return allEqual(n.replicas(t, key), want) })
	if !want.TombstoneOnly(0) {
		t.Fatalf("first replica holds %v, want a tombstone", want)
	}
}

// TestVersionHashFollowsEqual: objects Equal calls equal hash alike; a new dot, a tombstone or a merged
// clock changes the hash.
func TestVersionHashFollowsEqual(t *testing.T) {
	a, err := Update(nil, "a", nil, false, []byte("x"), Meta{}, 1, UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Update(nil, "b", nil, false, []byte("x"), Meta{}, 1, UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tomb, err := Update(a, "a", a.Clock, false, nil, Meta{Deleted: true}, 2, UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ab := Sync(a, b, false)
	if VersionHash(a) != VersionHash(a.Clone()) || VersionHash(ab) != VersionHash(Sync(b, a, false)) {
		t.Fatal("equal objects hash differently")
	}
	hs := map[uint64]bool{0: true}
	for _, o := range []*Object{a, b, tomb, ab} {
		h := VersionHash(o)
		if hs[h] {
			t.Fatalf("%v: hash %x taken (or zero)", o, h)
		}
		hs[h] = true
	}
	if VersionHash(nil) != 0 {
		t.Fatal("absent is not 0")
	}
}

// TestVersionHashIsFNV1a: the inline hash is FNV-1a over the documented bytes (it is part of what two
// nodes compare: a change would make every exchange between old and new nodes repair every key).
func TestVersionHashIsFNV1a(t *testing.T) {
	o := &Object{Clock: VClock{{Actor: "a", Counter: 2}, {Actor: "bc", Counter: 1 << 40}},
		Siblings: []Sibling{{Dot: Dot{Actor: "bc", Counter: 1 << 40}}}}
	h := fnv.New64a()
	for _, e := range o.Clock {
		h.Write([]byte(e.Actor))
		h.Write([]byte{0})
		h.Write(binary.BigEndian.AppendUint64(nil, e.Counter))
	}
	h.Write([]byte{1})
	for _, s := range o.Siblings {
		h.Write([]byte(s.Dot.Actor))
		h.Write([]byte{0})
		h.Write(binary.BigEndian.AppendUint64(nil, s.Dot.Counter))
	}
	if got, want := VersionHash(o), h.Sum64(); got != want {
		t.Fatalf("VersionHash %x, FNV-1a %x", got, want)
	}
	if n := testing.AllocsPerRun(100, func() { VersionHash(o) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
