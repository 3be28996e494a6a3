package vnode_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/aae"
	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/kv"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

const aaeQ = 8

// storedItems reads partition p's objects straight from storage: key -> version hash.
func storedItems(t *testing.T, db storage.Backend, p int) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	err := db.Fold(uint32(p), func(k, v []byte) error {
		if len(k) == 0 || k[0] != 'k' {
			return nil
		}
		o, err := kv.UnmarshalObject(v)
		if err != nil {
			return err
		}
		out[string(k[1:])] = kv.VersionHash(o)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// wantTrees builds the trees of items from scratch, by source.
func wantTrees(items map[string]uint64) map[int]*aae.Tree {
	out := map[int]*aae.Tree{}
	for k, v := range items {
		kh := ring.KeyHash([]byte(k))
		src := int(kh >> (64 - 3))
		if out[src] == nil {
			out[src] = &aae.Tree{}
		}
		out[src].Insert(kh, v)
	}
	return out
}

func query(t *testing.T, m *vnode.Manager, p int, q *vnode.AAEQuery) *vnode.AAEAnswer {
	t.Helper()
	a := ask(t, m, p, q).(*vnode.AAEAnswer)
	if a.Err != "" {
		t.Fatalf("partition %d source %d query %d: %s", p, q.Source, q.Kind, a.Err)
	}
	return a
}

// checkTrees asks the vnode for every source's branches and compares them with trees rebuilt from storage,
// and its segment fold of every segment with the stored items.
func checkTrees(t *testing.T, m *vnode.Manager, db storage.Backend, p int) {
	t.Helper()
	items := storedItems(t, db, p)
	want := wantTrees(items)
	all := make([]int, aae.Segments)
	for i := range all {
		all[i] = i
	}
	for src := range aaeQ {
		w := want[src]
		if w == nil {
			w = &aae.Tree{}
		}
		root := query(t, m, p, &vnode.AAEQuery{V: 1, Source: src, Kind: aae.QueryRoot})
		br := query(t, m, p, &vnode.AAEQuery{V: 1, Source: src, Kind: aae.QueryBranches})
		if root.Root != w.Root() || !slices.Equal(br.Branches, w.Branches()) {
			t.Fatalf("partition %d source %d: the vnode's tree differs from a rebuild of storage", p, src)
		}
		keys := query(t, m, p, &vnode.AAEQuery{V: 1, Source: src, Kind: aae.QueryKeys, Segments: all})
		var wantKeys []aae.KeyVersion
		for k, v := range items {
			if int(ring.KeyHash([]byte(k))>>(64-3)) == src {
				wantKeys = append(wantKeys, aae.KeyVersion{Key: []byte(k), Version: v})
			}
		}
		aae.SortKeys(wantKeys)
		if !slices.EqualFunc(keys.Keys, wantKeys, func(a, b aae.KeyVersion) bool {
			return bytes.Equal(a.Key, b.Key) && a.Version == b.Version
		}) {
			t.Fatalf("partition %d source %d: segment fold gave %d keys, storage holds %d", p, src, len(keys.Keys), len(wantKeys))
		}
	}
}

func put(t *testing.T, m *vnode.Manager, p int, key, val string) *kv.Object {
	t.Helper()
	rep := ask(t, m, p, &kv.PutRequest{V: 1, Key: []byte(key), Coordinate: true, Blind: true, Value: []byte(val)}).(*kv.PutReply)
	if rep.Err != "" {
		t.Fatal(rep.Err)
	}
	return rep.Object
}

func waitBuilt(t *testing.T, m *vnode.Manager, p int) vnode.AAEStatus {
	t.Helper()
	var st vnode.AAEStatus
	eventually.True(t, 10*time.Second, "hash trees built", func() bool {
		var ok bool
		st, ok = m.AAEStatus(p)
		return ok && st.State == vnode.AAEBuilt
	})
	return st
}

// TestHashtreesFollowEveryWrite: puts, overwrites, tombstones, reaps, drops and handed-off items keep the
// vnode's trees equal to trees rebuilt from storage, and its segment folds equal to storage.
func TestHashtreesFollowEveryWrite(t *testing.T) {
	db := storage.NewMemory()
	m := startManager(t, db, vnode.ManagerConfig{Partitions: []int{0, 1}, AAE: vnode.AAEConfig{Q: aaeQ}})
	waitBuilt(t, m, 0)
	rng := rand.New(rand.NewPCG(1, 1))
	objs := map[string]*kv.Object{}
	for i := range 600 {
		k := fmt.Sprintf("key-%d", rng.IntN(300))
		switch {
		case i%7 == 3 && objs[k] != nil:
			// a tombstone, then its reap
			rep := ask(t, m, 0, &kv.PutRequest{V: 1, Key: []byte(k), Coordinate: true, Context: objs[k].Clock,
				Meta: kv.Meta{Deleted: true}}).(*kv.PutReply)
			if rep.Err != "" {
				t.Fatal(rep.Err)
			}
			m.System().Root.Send(m.PID(0), &kv.ReapRequest{V: 1, Key: []byte(k), Clock: rep.Object.Clock})
			delete(objs, k)
		case i%5 == 1:
			// replication of another vnode's object (the repair and handoff path)
			o := put(t, m, 1, k, fmt.Sprint(i))
			if rep := ask(t, m, 0, &kv.PutRequest{V: 1, Key: []byte(k), Object: o}).(*kv.PutReply); rep.Err != "" {
				t.Fatal(rep.Err)
			}
		default:
			objs[k] = put(t, m, 0, k, fmt.Sprint(i))
		}
	}
	checkTrees(t, m, db, 0)
	checkTrees(t, m, db, 1)
}

// TestHashtreesPersistAcrossACleanStop: a clean stop writes the trees; the next start loads them (no
// rebuild) and they still match storage. A crash leaves them suspect: the restarted vnode rebuilds, and the
// rebuilt trees match storage too.
func TestHashtreesPersistAcrossACleanStop(t *testing.T) {
	db, err := storage.OpenLevelDB(storage.DefaultLevelDBConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := vnode.ManagerConfig{Partitions: []int{0}, AAE: vnode.AAEConfig{Q: aaeQ, RebuildChunk: 7}}
	m := startManager(t, db, cfg)
	waitBuilt(t, m, 0)
	for i := range 200 {
		put(t, m, 0, fmt.Sprintf("k%d", i), "v")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	m = startManager(t, db, cfg)
	st := waitBuilt(t, m, 0)
	if st.Rebuilds != 0 || st.Items != 200 {
		t.Fatalf("after a clean stop: %+v, want the persisted trees of 200 items and no rebuild", st)
	}
	checkTrees(t, m, db, 0)

	// A crash: the trees are rebuilt from storage (in chunks of 7), and meanwhile writes go on.
	if err := m.Crash(0, "test"); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		put(t, m, 0, fmt.Sprintf("k%d", i*3), "w")
	}
	eventually.True(t, 10*time.Second, "rebuilt after the crash", func() bool {
		st, ok := m.AAEStatus(0)
		return ok && st.State == vnode.AAEBuilt && st.Rebuilds == 1
	})
	checkTrees(t, m, db, 0)
	if st, _ := m.AAEStatus(0); st.Mismatched != 0 {
		t.Fatalf("the rebuild found the live trees wrong: %+v", st)
	}
}

// TestHashtreesRebuildRepairsACorruptIndex: an index entry lost (or wrong) in storage is put right by the
// rebuild that follows an unclean start.
func TestHashtreesRebuildRepairsACorruptIndex(t *testing.T) {
	db := storage.NewMemory()
	cfg := vnode.ManagerConfig{Partitions: []int{0}, AAE: vnode.AAEConfig{Q: aaeQ}}
	m := startManager(t, db, cfg)
	waitBuilt(t, m, 0)
	for i := range 50 {
		put(t, m, 0, fmt.Sprintf("k%d", i), "v")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Drop every index entry and the clean-stop marker, as a crash with a damaged index would leave them.
	var drop []storage.Op
	_ = db.Fold(0, func(k, _ []byte) error {
		if bytes.HasPrefix(k, []byte{0xff, 'A', 'i'}) || bytes.Equal(k, []byte{0xff, 'A', 'c'}) {
			drop = append(drop, storage.Op{Key: bytes.Clone(k), Delete: true})
		}
		return nil
	})
	if len(drop) != 51 {
		t.Fatalf("%d index entries and marker, want 51", len(drop))
	}
	if err := db.Write(0, drop); err != nil {
		t.Fatal(err)
	}
	m = startManager(t, db, cfg)
	st := waitBuilt(t, m, 0)
	if st.Fixed != 50 || st.Rebuilds != 1 {
		t.Fatalf("status %+v: want 50 index entries fixed by one rebuild", st)
	}
	checkTrees(t, m, db, 0)
}

// TestHashtreesAnswerBadQueriesWithAnError: out-of-range sources, branches and segments are refused.
func TestHashtreesAnswerBadQueriesWithAnError(t *testing.T) {
	m := startManager(t, storage.NewMemory(), vnode.ManagerConfig{Partitions: []int{0}, AAE: vnode.AAEConfig{Q: aaeQ}})
	waitBuilt(t, m, 0)
	for _, q := range []*vnode.AAEQuery{
		{Source: aaeQ, Kind: aae.QueryRoot}, {Source: -1, Kind: aae.QueryRoot}, {Kind: 99},
		{Kind: aae.QuerySegments, Branches: []int{aae.Branches}}, {Kind: aae.QueryKeys, Segments: []int{aae.Segments}},
		{Kind: aae.QueryKeys, Segments: []int{5, 3}},
	} {
		if a := ask(t, m, 0, q).(*vnode.AAEAnswer); a.Err == "" {
			t.Fatalf("query %+v answered", q)
		}
	}
	off := startManager(t, storage.NewMemory(), vnode.ManagerConfig{Partitions: []int{0}})
	if a := ask(t, off, 0, &vnode.AAEQuery{Kind: aae.QueryRoot}).(*vnode.AAEAnswer); a.Err == "" {
		t.Fatal("a vnode without anti-entropy answered")
	}
}

// failingWrites is a backend whose batch writes fail while fail is set (a full or failing disk).
type failingWrites struct {
	storage.Backend
	fail atomic.Bool
}

func (f *failingWrites) Write(p uint32, ops []storage.Op) error {
	if f.fail.Load() {
		return errors.New("injected write failure")
	}
	return f.Backend.Write(p, ops)
}

// TestHashtreesRebuildAfterAFailedWrite: a write that failed may or may not have reached storage, so the
// trees are rebuilt from storage (and answer meanwhile from the old ones).
func TestHashtreesRebuildAfterAFailedWrite(t *testing.T) {
	mem := storage.NewMemory()
	db := &failingWrites{Backend: mem}
	m := startManager(t, db, vnode.ManagerConfig{Partitions: []int{0}, AAE: vnode.AAEConfig{Q: aaeQ}})
	st := waitBuilt(t, m, 0)
	for i := range 20 {
		put(t, m, 0, fmt.Sprintf("k%d", i), "v")
	}
	db.fail.Store(true)
	rep := ask(t, m, 0, &kv.PutRequest{V: 1, Key: []byte("k0"), Coordinate: true, Blind: true, Value: []byte("w")}).(*kv.PutReply)
	if rep.Err == "" {
		t.Fatal("the write did not fail")
	}
	if s, _ := m.AAEStatus(0); s.State != vnode.AAERebuilding {
		t.Fatalf("after a failed write the trees are %q, want rebuilding", s.State)
	}
	db.fail.Store(false)
	eventually.True(t, 10*time.Second, "rebuilt", func() bool {
		s, ok := m.AAEStatus(0)
		return ok && s.State == vnode.AAEBuilt && s.Rebuilds == st.Rebuilds+1
	})
	checkTrees(t, m, mem, 0)
}

// TestHashtreesFollowAHandoff: the new owner's trees take the handed-off items (the receive path is a
// write like any other) and match the old owner's; the old owner's drop leaves it with empty trees.
func TestHashtreesFollowAHandoff(t *testing.T) {
	sys := newSystem(t)
	dbA, dbB := storage.NewMemory(), storage.NewMemory()
	mk := func(name, node string, db storage.Backend) *vnode.Manager {
		m, err := vnode.StartManager(sys, vnode.ManagerConfig{Name: name, Node: node, Partitions: []int{5},
			Factory: kv.NewVnode(kv.DefaultConfig()), Store: db, AAE: vnode.AAEConfig{Q: aaeQ}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Stop(context.Background()) })
		return m
	}
	a, b := mk("sup-a", "a", dbA), mk("sup-b", "b", dbB)
	waitBuilt(t, a, 5)
	waitBuilt(t, b, 5)
	for i := range 300 {
		putVia(t, sys, a.PID(5), fmt.Sprintf("k%d", i), "v")
	}
	putVia(t, sys, b.PID(5), "k7", "b's own") // a sibling of a's k7 once merged
	st := begin(t, sys, a.PID(5), b.PID(5))
	var items [][]byte
	if err := st.Fold(func(k, v []byte) error {
		item, err := st.Encode(k, v)
		items = append(items, item)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if r := ask(t, b, 5, &vnode.HandoffBatch{V: 1, Seq: 1, Items: items}).(*vnode.HandoffAck); r.Err != "" {
		t.Fatal(r.Err)
	}
	putVia(t, sys, a.PID(5), "during", "x") // forwarded to b
	if fl := ask(t, a, 5, &vnode.FinishHandoff{Session: st.Session}).(*vnode.HandoffFlushed); fl.Err != "" {
		t.Fatal(fl.Err)
	}
	checkTrees(t, b, dbB, 5)
	if s, _ := b.AAEStatus(5); s.Items != 301 {
		t.Fatalf("new owner's trees hold %d items, want 301", s.Items)
	}
	if r := ask(t, a, 5, &vnode.HandoffDrop{Session: st.Session}).(*vnode.HandoffDropped); r.Err != "" {
		t.Fatal(r.Err)
	}
	s := waitBuilt(t, a, 5)
	if s.Items != 0 {
		t.Fatalf("the old owner's trees hold %d items after the drop", s.Items)
	}
	checkTrees(t, a, dbA, 5)
}

// TestHashtreesRebuildsTakeTurns: with RebuildConcurrency 1, vnodes that must rebuild fold one at a time:
// each rebuild here lasts at least 5 pauses of 20 ms, so serialized rebuilds end at least 100 ms apart.
func TestHashtreesRebuildsTakeTurns(t *testing.T) {
	db := storage.NewMemory()
	o, err := kv.Update(nil, "x/0/1", nil, true, []byte("v"), kv.Meta{}, 1, kv.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := o.MarshalBinary()
	for p := range 3 {
		for i := range 5 {
			if err := db.Put(uint32(p), fmt.Appendf(nil, "kkey-%d", i), raw); err != nil {
				t.Fatal(err)
			}
		}
	}
	m := startManager(t, db, vnode.ManagerConfig{Partitions: []int{0, 1, 2},
		AAE: vnode.AAEConfig{Q: aaeQ, RebuildChunk: 1, RebuildPause: 20 * time.Millisecond, RebuildConcurrency: 1}})
	var ends []time.Time
	for p := range 3 {
		st := waitBuilt(t, m, p)
		if st.Items != 5 {
			t.Fatalf("partition %d: %d items", p, st.Items)
		}
		ends = append(ends, st.BuiltAt)
	}
	slices.SortFunc(ends, func(a, b time.Time) int { return a.Compare(b) })
	for i := 1; i < len(ends); i++ {
		if d := ends[i].Sub(ends[i-1]); d < 100*time.Millisecond {
			t.Fatalf("rebuilds ended %v apart: they ran at once", d)
		}
	}
}

// TestHashtreesAfterRunningWithAAEOff: trees persisted by a clean stop, then a run with anti-entropy off
// (writes bypass the trees), then on again: the trees are rebuilt, not loaded stale.
func TestHashtreesAfterRunningWithAAEOff(t *testing.T) {
	db := storage.NewMemory()
	on := vnode.ManagerConfig{Partitions: []int{0}, AAE: vnode.AAEConfig{Q: aaeQ}}
	stop := func(m *vnode.Manager) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	m := startManager(t, db, on)
	waitBuilt(t, m, 0)
	for i := range 20 {
		put(t, m, 0, fmt.Sprintf("k%d", i), "v")
	}
	stop(m)
	m = startManager(t, db, vnode.ManagerConfig{Partitions: []int{0}})
	for i := range 20 {
		put(t, m, 0, fmt.Sprintf("off%d", i), "v")
	}
	stop(m)
	m = startManager(t, db, on)
	st := waitBuilt(t, m, 0)
	if st.Rebuilds != 1 || st.Items != 40 {
		t.Fatalf("after a run with anti-entropy off: %+v, want a rebuild of 40 items", st)
	}
	checkTrees(t, m, db, 0)
}
