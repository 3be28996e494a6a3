package kv

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/protocol/memcache"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// flushObj builds an object of siblings written by actor a at the given LastMods (a negative one is a
// tombstone at -LastMod).
func flushObj(t *testing.T, lastMods ...int64) *Object {
	t.Helper()
	var o *Object
	for _, lm := range lastMods {
		meta := Meta{LastMod: lm}
		if lm < 0 {
			meta = Meta{LastMod: -lm, Deleted: true}
		}
		var err error
		// An empty context: every write is a sibling of the others.
		if o, err = Update(o, "a", nil, false, fmt.Appendf(nil, "v%d", lm), meta, 1, UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

func TestFlushedView(t *testing.T) {
	o := flushObj(t, 10, 20, -25, 30)
	for _, tc := range []struct {
		cutoff   int64
		live     []int64 // LastMods of the live siblings
		same     bool    // Flushed returns o itself
		notFound bool
	}{
		{0, []int64{10, 20, 30}, true, false},
		{9, []int64{10, 20, 30}, true, false},
		{10, []int64{20, 30}, false, false},
		{25, []int64{30}, false, false},
		{30, nil, false, true},
		{1 << 62, nil, false, true},
	} {
		v := o.Flushed(tc.cutoff)
		if (v == o) != tc.same {
			t.Fatalf("cutoff %d: same object %v, want %v", tc.cutoff, v == o, tc.same)
		}
		if err := v.Validate(); err != nil || !v.Clock.Equal(o.Clock) || len(v.Siblings) != len(o.Siblings) {
			t.Fatalf("cutoff %d: view %v (%v): the clock and the dots must stay", tc.cutoff, v, err)
		}
		var live []int64
		for _, s := range v.Live(1) {
			live = append(live, s.Meta.LastMod)
		}
		if fmt.Sprint(live) != fmt.Sprint(tc.live) {
			t.Fatalf("cutoff %d: live %v, want %v", tc.cutoff, live, tc.live)
		}
		e, err := ToEntry(v, 1, memcache.Read{Context: true})
		if err != nil || e.Found == tc.notFound || len(e.Context) == 0 {
			t.Fatalf("cutoff %d: entry %+v, %v", tc.cutoff, e, err)
		}
		if want, _ := o.Clock.MarshalBinary(); string(e.Context) != string(want) {
			t.Fatalf("cutoff %d: the context of a flushed key is not the object's clock", tc.cutoff)
		}
	}
	// The view never touches the object it was made from.
	if o.LiveCount(1) != 3 || string(o.Siblings[0].Value) != "v10" {
		t.Fatalf("Flushed modified its object: %v", o)
	}
	if (*Object)(nil).Flushed(5) != nil {
		t.Fatal("nil object")
	}
}

// TestFlushedNeverResurrects: replicas merge the real objects (read repair, handoff, anti-entropy: Sync), and
// whatever a stale replica brings back is hidden just the same; a write with the context of a read of the
// flushed key supersedes the hidden siblings on every replica it reaches.
func TestFlushedNeverResurrects(t *testing.T) {
	const cutoff = 100
	a := flushObj(t, 10, 50)
	var stale *Object // a replica that missed both writes
	older, err := Update(nil, "b", nil, false, []byte("old"), Meta{LastMod: 5}, 1, UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, merged := range []*Object{Sync(a, stale, false), Sync(stale, a, false), Sync(a, older, false), Sync(Sync(a, older, false), a, false)} {
		if merged.Flushed(cutoff).LiveCount(1) != 0 {
			t.Fatalf("a merge brought back a flushed value: %v", merged.Flushed(cutoff))
		}
	}
	all := Sync(a, older, false)
	read := all.Flushed(cutoff)
	// `add` after the flush: a write with the read's context, coordinated by a replica that holds only a.
	w, err := Update(a, "a", read.Clock, false, []byte("new"), Meta{LastMod: 200}, 2, UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Object{a, older, all} {
		m := Sync(r, w, false)
		if len(m.Siblings) != 1 || string(m.Siblings[0].Value) != "new" {
			t.Fatalf("after the write, a replica holding %v merges to %v: the hidden siblings must be superseded", r, m)
		}
	}
}

// TestCoordinatorHidesFlushed: KV's reads through a coordinator (and so every memcache command) hide what
// the flush cutoff hides, writes after the flush are seen, add over a flushed key succeeds, and the
// coverage fold skips keys whose every value is flushed.
func TestCoordinatorHidesFlushed(t *testing.T) {
	var cut atomic.Int64
	cfg := DefaultConfig()
	cfg.FlushCutoff = func(int64) int64 { return cut.Load() }
	n := startTestNode(t, NewVnode(cfg), nil)
	c, err := NewCoordinator(n.svc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &memcacheStore{coord: c, now: time.Now}
	ctx := context.Background()
	for i := range 20 {
		if _, err := s.Set(ctx, fmt.Appendf(nil, "k%d", i), memcache.Value{Data: []byte("v")}, memcache.Supersede{Blind: true}); err != nil {
			t.Fatal(err)
		}
	}
	cut.Store(time.Now().UnixNano())
	for i := range 20 {
		e, err := s.Get(ctx, fmt.Appendf(nil, "k%d", i), memcache.Read{})
		if err != nil || e.Found {
			t.Fatalf("k%d after the flush: %+v %v", i, e, err)
		}
	}
	// A blind set, and an add (a write with the miss's context), after the flush are seen.
	if _, err := s.Set(ctx, []byte("k1"), memcache.Value{Data: []byte("set")}, memcache.Supersede{Blind: true}); err != nil {
		t.Fatal(err)
	}
	miss, err := s.Get(ctx, []byte("k2"), memcache.Read{Context: true})
	if err != nil {
		t.Fatal(err)
	}
	cas, err := s.Set(ctx, []byte("k2"), memcache.Value{Data: []byte("add")}, memcache.Supersede{Context: miss.Context})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"k1": "set", "k2": "add"} {
		e, err := s.Get(ctx, []byte(key), memcache.Read{})
		if err != nil || !e.Found || len(e.Siblings) != 1 || string(e.Siblings[0].Data) != want {
			t.Fatalf("%s after the flush and a write: %+v %v", key, e, err)
		}
		if key == "k2" && e.Cas != cas {
			t.Fatalf("add over a flushed key: cas %d, a read shows %d (the flushed sibling must be superseded)", cas, e.Cas)
		}
	}
	// The replicas' objects of k2 hold only the add: the write superseded the flushed sibling.
	o, err := c.Get(ctx, []byte("k2"), coordinator.ReadOptions{})
	if err != nil || len(o.Siblings) != 1 {
		t.Fatalf("k2 holds %v (%v)", o, err)
	}
}

func TestCoverKeysHidesFlushed(t *testing.T) {
	sys := actors.NewSystem(slog.New(slog.DiscardHandler))
	defer sys.Shutdown()
	var clock, cut atomic.Int64
	clock.Store(1_700_000_000)
	cfg := DefaultConfig()
	cfg.FlushCutoff = func(int64) int64 { return cut.Load() }
	m, err := vnode.StartManager(sys, vnode.ManagerConfig{Node: "n", Partitions: []int{3}, Factory: NewVnode(cfg),
		Store: storage.NewMemory(), Now: func() time.Time { return time.Unix(clock.Load(), 0) }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(context.Background()) }()
	put := func(key string) {
		t.Helper()
		res, err := actors.Request(context.Background(), sys, m.PID(3), &PutRequest{V: 1, Key: []byte(key), Coordinate: true, Blind: true, Value: []byte("v")}, 5*time.Second)
		if err != nil || res.(*PutReply).Err != "" {
			t.Fatalf("put %s: %v %v", key, res, err)
		}
	}
	count := func() uint64 {
		t.Helper()
		rep, err := vnode.RequestCoverage(context.Background(), sys, m.PID(3), &vnode.CoverageRequest{Cmd: &CountKeysRequest{V: 1}}, 10*time.Second, nil)
		if err != nil || rep.(*CountKeysReply).Err != "" {
			t.Fatal(rep, err)
		}
		return rep.(*CountKeysReply).Count
	}
	for i := range 10 {
		put(fmt.Sprintf("old%d", i))
	}
	cut.Store(time.Unix(clock.Load(), 0).UnixNano())
	clock.Add(1)
	put("new")
	if got := count(); got != 1 {
		t.Fatalf("%d live keys after the flush and one write, want 1", got)
	}
}
