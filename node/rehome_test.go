package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/kv"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

func TestRehomeDue(t *testing.T) {
	now := time.Unix(1000, 0)
	kvs := func(ps ...int) []slot {
		var out []slot
		for _, p := range ps {
			out = append(out, slot{Service: "kv", Partition: p})
		}
		return out
	}
	k := func(p int) slot { return slot{Service: "kv", Partition: p} }
	recv := map[slot]int64{k(2): 5}
	received := func(sl slot) int64 { return recv[sl] }
	marks := map[slot]rehomeMark{
		k(1):                           {ring: 7, received: 0, confirmed: true},   // done under this ring
		k(2):                           {ring: 7, received: 4, confirmed: true},   // took handed-off data since
		k(3):                           {ring: 6, received: 0, confirmed: true},   // done under another ring
		k(5):                           {ring: 7, received: 0, confirmed: true},   // done, not owned any more
		k(6):                           {ring: 7, at: now.Add(-rehomeSettle / 2)}, // first pass done, the confirming one not yet due
		k(7):                           {ring: 7, at: now.Add(-rehomeSettle)},     // first pass done, the confirming one due
		{Service: "ctr", Partition: 1}: {ring: 7, confirmed: true},
	}
	retry := map[slot]time.Time{k(4): now.Add(time.Second), k(3): now.Add(-time.Second)}
	for _, tc := range []struct {
		name  string
		owned []slot
		now   time.Time
		want  []slot
	}{
		{"marks, data taken, other ring, waiting retry", kvs(4, 3, 2, 1), now, kvs(2, 3)},
		{"retry time reached", kvs(1, 2, 3, 4), now.Add(2 * time.Second), kvs(2, 3, 4)},
		{"nothing owned", nil, now, nil},
		{"unmarked partitions are due", kvs(9, 8), now, kvs(8, 9)},
		{"confirming passes", kvs(6, 7), now, kvs(7)},
		{"confirming passes later", kvs(6, 7), now.Add(rehomeSettle), kvs(6, 7)},
		// A mark is one service's: another service's vnode of a marked partition is due.
		{"services apart", []slot{k(1), {Service: "ctr", Partition: 1}, {Service: "ctr", Partition: 2}, k(2)},
			now, []slot{{Service: "ctr", Partition: 2}, k(2)}},
	} {
		if got := rehomeDue(tc.owned, 7, received, marks, retry, tc.now, func(int) bool { return false }); !slices.Equal(got, tc.want) {
			t.Errorf("%s: rehomeDue = %v, want %v", tc.name, got, tc.want)
		}
	}
	// Partitions whose sources changed go first.
	first := func(p int) bool { return p == 9 || p == 3 }
	if got := rehomeDue(kvs(8, 9, 2, 3), 7, received, marks, nil, now, first); !slices.Equal(got, kvs(3, 9, 2, 8)) {
		t.Errorf("with priority: rehomeDue = %v, want [3 9 2 8]", got)
	}
}

// TestRehomeFirst: the partitions whose sources differ between two rings are the ones whose lists
// changed.
func TestRehomeFirst(t *testing.T) {
	r0, _ := ring.NewFromOwners([]ring.NodeID{"b", "b", "c", "a", "c", "b", "a", "c"}, 1)
	r1, _ := ring.NewFromOwners([]ring.NodeID{"b", "a", "c", "a", "c", "b", "a", "c"}, 2)
	first := rehomeFirst(r0, r1, 3)
	s0, s1 := r0.Sources(3), r1.Sources(3)
	changed := 0
	for x := range 8 {
		if first(x) != !slices.Equal(s0[x], s1[x]) {
			t.Fatalf("partition %d: first %v, sources %v then %v", x, first(x), s0[x], s1[x])
		}
		if first(x) {
			changed++
		}
	}
	if !first(3) || changed == 8 {
		t.Fatalf("partition 3 (dropped from partition 0's list) first %v; %d of 8 changed", first(3), changed)
	}
	if rehomeFirst(nil, r1, 3)(3) {
		t.Fatal("no previous ring: nothing goes first")
	}
}

// keyIn returns a key with the given prefix whose partition on ring r is p (keys chosen by search).
func keyIn(t *testing.T, r *ring.Ring, prefix string, p int) []byte {
	t.Helper()
	for i := range 100000 {
		k := fmt.Appendf(nil, "%s-%d", prefix, i)
		if r.PartitionForKey(k) == p {
			return k
		}
	}
	t.Fatalf("no key in partition %d", p)
	return nil
}

// rehomeNodes runs the vnodes of nodes a, b and c in one actor system, each over its own memory storage,
// one vnode per partition.
type rehomeNodes struct {
	sys       *actor.ActorSystem
	m         map[ring.NodeID]*vnode.Manager
	reachable map[ring.NodeID]*atomic.Bool
}

func startRehomeNodes(t *testing.T, q int) *rehomeNodes {
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rn := &rehomeNodes{sys: actors.NewSystem(logger), m: map[ring.NodeID]*vnode.Manager{}, reachable: map[ring.NodeID]*atomic.Bool{}}
	t.Cleanup(rn.sys.Shutdown)
	all := make([]int, q)
	for p := range all {
		all[p] = p
	}
	for _, node := range []ring.NodeID{"a", "b", "c"} {
		m, err := vnode.StartManager(rn.sys, vnode.ManagerConfig{Name: "sup-" + string(node), Node: string(node), Partitions: all,
			Factory: kv.NewVnode(kv.DefaultConfig()), Store: storage.NewMemory(), Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Stop(context.Background()) })
		rn.m[node] = m
		rn.reachable[node] = &atomic.Bool{}
		rn.reachable[node].Store(true)
	}
	return rn
}

func (rn *rehomeNodes) vnode(node ring.NodeID, p int) *actor.PID {
	if r, ok := rn.reachable[node]; !ok || !r.Load() {
		return nil
	}
	return rn.m[node].PID(p)
}

// rehomer is node a's.
func (rn *rehomeNodes) rehomer() *rehomer {
	return &rehomer{system: rn.sys, local: rn.m["a"].PID, vnode: rn.vnode, n: 3, drop: *kv.Service(kv.DefaultOptions()).Rehome,
		batchItems: 2, batchBytes: 1 << 20, timeout: 2 * time.Second}
}

func (rn *rehomeNodes) get(t *testing.T, node ring.NodeID, p int, key []byte) *kv.Object {
	t.Helper()
	res, err := actors.Request(context.Background(), rn.sys, rn.m[node].PID(p), &kv.GetRequest{V: 1, Key: key}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return res.(*kv.GetReply).Object
}

// write writes key at the vnodes of list: the first coordinates, the others take its object.
func (rn *rehomeNodes) write(t *testing.T, key []byte, val string, list []ring.PrefEntry) *kv.Object {
	t.Helper()
	var obj *kv.Object
	for i, e := range list {
		req := &kv.PutRequest{V: 1, Key: key, Object: obj}
		if i == 0 {
			req = &kv.PutRequest{V: 1, Key: key, Coordinate: true, Blind: true, Value: []byte(val)}
		}
		res, err := actors.Request(context.Background(), rn.sys, rn.m[e.Node].PID(e.Partition), req, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if rep := res.(*kv.PutReply); rep.Err != "" {
			t.Fatal(rep.Err)
		} else if i == 0 {
			obj = rep.Object
		}
	}
	return obj
}

func partitionsOf(list []ring.PrefEntry) []int {
	var out []int
	for _, e := range list {
		out = append(out, e.Partition)
	}
	return out
}

// TestRehomeMovesKeysWhoseListChanged follows a key whose preference list changes with ownership: under
// r0 the list of its partition 0 skips partition 1 (owned by b, like 0) and ends at partition 3 (a's);
// when partition 1 moves to a, the list becomes 0, 1, 2. The copy in a's vnode 3 is then not read by
// anyone, and a's vnode 1 has nothing. A re-home pass over partition 3 puts the key on every vnode of its
// new list and drops it from 3; keys that 3 holds for its own key ranges stay. A target that cannot be
// reached keeps the copy where it is.
func TestRehomeMovesKeysWhoseListChanged(t *testing.T) {
	r0, err := ring.NewFromOwners([]ring.NodeID{"b", "b", "c", "a", "c", "b", "a", "c"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := ring.NewFromOwners([]ring.NodeID{"b", "a", "c", "a", "c", "b", "a", "c"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	before, after := r0.PreflistForPartition(0, 3, nil), r1.PreflistForPartition(0, 3, nil)
	if !slices.Equal(partitionsOf(before), []int{0, 2, 3}) || !slices.Equal(partitionsOf(after), []int{0, 1, 2}) {
		t.Fatalf("lists of partition 0: %v then %v", before, after)
	}
	sources := r1.Sources(3)[3]
	if !slices.Equal(sources, []int{2, 3}) {
		t.Fatalf("Sources(3) under r1 = %v", sources)
	}
	rn := startRehomeNodes(t, 8)
	moved := keyIn(t, r1, "moved", 0)
	obj := rn.write(t, moved, "v", before)
	own := keyIn(t, r1, "own", 3)   // partition 3's own key range
	near := keyIn(t, r1, "near", 2) // partition 2's list names 3 too
	for _, k := range [][]byte{own, near} {
		rn.write(t, k, "stays", []ring.PrefEntry{{Partition: 3, Node: "a"}})
	}
	if rn.get(t, "a", 1, moved) != nil {
		t.Fatal("a's vnode 1 holds the key before the pass")
	}

	// c is unreachable: vnode 2 of the new list cannot take the key, so it stays in 3.
	rn.reachable["c"].Store(false)
	st, err := rn.rehomer().partition(context.Background(), r1, 2, sources, 3)
	if !errors.Is(err, errRehomeTarget) || st.misplaced != 1 || st.moved != 0 {
		t.Fatalf("pass with c unreachable: %+v %v", st, err)
	}
	if rn.get(t, "a", 3, moved) == nil {
		t.Fatal("the key left partition 3 although c's vnode 2 did not take it")
	}

	rn.reachable["c"].Store(true)
	st, err = rn.rehomer().partition(context.Background(), r1, 2, sources, 3)
	if err != nil || st.misplaced != 1 || st.moved != 1 {
		t.Fatalf("pass: %+v %v", st, err)
	}
	for _, e := range after {
		if o := rn.get(t, e.Node, e.Partition, moved); o == nil || !o.Equal(obj) {
			t.Fatalf("%s's vnode %d after the pass: %v, want %v", e.Node, e.Partition, o, obj)
		}
	}
	if o := rn.get(t, "a", 3, moved); o != nil {
		t.Fatalf("partition 3 still holds the moved key: %v", o)
	}
	for _, k := range [][]byte{own, near} {
		if rn.get(t, "a", 3, k) == nil {
			t.Fatalf("%s left partition 3, whose list it is on", k)
		}
	}
	// A second pass finds nothing.
	if st, err := rn.rehomer().partition(context.Background(), r1, 2, sources, 3); err != nil || st != (rehomeStats{}) {
		t.Fatalf("second pass: %+v %v", st, err)
	}
}

// TestRehomeOnANode runs the node's own re-home: a one-node cluster marks every partition after its first
// pass, and confirms (and saves) the marks rehomeSettle later (a fake clock jumps ahead); then partition
// 5 takes, by handoff, a copy of a key whose list (p, p+1, p+2 on the one node) does not name 5, as a
// fallback's hints would bring it. The node's next scan moves the key to the vnodes of its list and drops
// it from 5. After a restart the marks are read back.
func TestRehomeOnANode(t *testing.T) {
	dir := t.TempDir()
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	n := startTestNodeClock(t, func(c *Config) { c.DataDir = dir }, now)
	rg := n.Ring()
	const x = 5
	src := rg.Sources(n.cfg.N)[x]
	var p int
	for p = range rg.Q() {
		if !slices.Contains(src, p) {
			break
		}
	}
	key := keyIn(t, rg, "misplaced", p)
	marked := func(confirmed bool) func() bool {
		return func() bool {
			n.cl.rehome.mu.Lock()
			defer n.cl.rehome.mu.Unlock()
			for p := range rg.Q() {
				if m, ok := n.cl.rehome.marks[slot{Service: kv.ServiceName, Partition: p}]; !ok || m.confirmed != confirmed {
					return false
				}
			}
			return !n.cl.rehome.running
		}
	}
	eventually.True(t, 10*time.Second, "the first pass marks every partition", marked(false))
	if _, err := os.Stat(n.rehomePath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marks saved before they were confirmed: %v", err)
	}
	skew.Add(int64(rehomeSettle))
	eventually.True(t, 10*time.Second, "the confirming pass", marked(true))
	if raw, err := os.ReadFile(n.rehomePath()); err != nil || len(raw) == 0 {
		t.Fatalf("marks not saved: %v", err)
	}

	// A misplaced copy arrives in partition 5 by handoff.
	o, err := kv.Update(nil, "elsewhere/1/x", nil, true, []byte("value"), kv.Meta{}, 1, kv.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := o.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	kvb := kv.NewVnode(kv.DefaultConfig())()
	item, err := kvb.EncodeHandoffItem(key, raw)
	if err != nil {
		t.Fatal(err)
	}
	res, err := actors.Request(context.Background(), n.System(), n.Vnodes(kv.ServiceName).PID(x), &vnode.HandoffBatch{V: 1, Seq: 1, Items: [][]byte{item}}, 2*time.Second)
	if err != nil || res.(*vnode.HandoffAck).Err != "" {
		t.Fatalf("handoff batch: %v %v", res, err)
	}
	get := func(part int) *kv.Object {
		res, err := actors.Request(context.Background(), n.System(), n.Vnodes(kv.ServiceName).PID(part), &kv.GetRequest{V: 1, Key: key}, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return res.(*kv.GetReply).Object
	}
	list := rg.PreflistForPartition(p, n.cfg.N, nil)
	eventually.True(t, 10*time.Second, "the key on its list and gone from partition 5", func() bool {
		for _, e := range list {
			if got := get(e.Partition); got == nil || !got.Equal(o) {
				return false
			}
		}
		return get(x) == nil
	})
	// NB: the pass counts its moves once it ends, after the drop the poll above saw.
	eventually.True(t, 10*time.Second, "gokai_rehomed_keys counts the move", func() bool { return n.cl.rehome.moved.Load() == 1 })
	if got := n.cl.rehome.moved.Load(); got != 1 {
		t.Fatalf("gokai_rehomed_keys = %d, want 1", got)
	}

	// The marks survive a restart.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	n2 := startTestNodeClock(t, func(c *Config) { c.DataDir = dir }, now)
	marks := n2.loadRehomeMarks()
	fp := ringFingerprint(n2.Ring(), n2.cfg.N)
	if due := rehomeDue(n2.rehomeSlots(n2.Ring()), fp, func(slot) int64 { return 0 }, marks, nil, time.Now(), func(int) bool { return false }); len(due) != 0 {
		t.Fatalf("after a restart, partitions due again: %v (marks %v)", due, marks)
	}
}
