package kv

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// batchPair is two KV vnodes that start from the same stored objects: one takes handed-off items one by one
// (MergeHandoffData), the other as batches (MergeHandoffBatch).
type batchPair struct {
	dbs  [2]storage.Backend
	vns  [2]*Vnode
	part uint32
}

func newBatchPair(t *testing.T, cfg Config, initial map[string]*Object) *batchPair {
	t.Helper()
	now := func() time.Time { return time.Unix(1700000000, 0) }
	p := &batchPair{part: 7}
	for i := range p.vns {
		db := storage.NewMemory()
		for k, o := range initial {
			raw, err := o.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Put(p.part, append([]byte{nsObject}, k...), raw); err != nil {
				t.Fatal(err)
			}
		}
		vn := NewVnode(cfg)().(*Vnode)
		if err := vn.Init(vnode.Env{Node: fmt.Sprint("n", i), Partition: int(p.part), Store: storage.Partition{Backend: db, ID: p.part},
			Logger: slog.Default(), Now: now}); err != nil {
			t.Fatal(err)
		}
		p.dbs[i], p.vns[i] = db, vn
	}
	return p
}

// apply gives items to both vnodes and returns each path's applied count, changed flags and error.
func (p *batchPair) apply(items [][]byte) (one, batch int, oneChanged, batchChanged []bool, oneErr, batchErr error) {
	oneChanged = make([]bool, len(items))
	for i, it := range items {
		c, err := p.vns[0].MergeHandoffData(it)
		if err != nil {
			oneErr = err
			break
		}
		oneChanged[i] = c
		one++
	}
	batchChanged = make([]bool, len(items))
	batch, batchErr = p.vns[1].MergeHandoffBatch(items, batchChanged)
	return
}

// objects reads every stored object of a vnode: user key -> encoded object.
func (p *batchPair) objects(t *testing.T, i int) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := p.dbs[i].Fold(p.part, func(k, v []byte) error {
		if len(k) > 0 && k[0] == nsObject {
			out[string(k[1:])] = string(v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// check compares the two vnodes: the same stored bytes per key, and the same answer to a get of every key
// (through the object cache, which must agree with storage).
func (p *batchPair) check(t *testing.T, keys []string) {
	t.Helper()
	a, b := p.objects(t, 0), p.objects(t, 1)
	if len(a) != len(b) {
		t.Fatalf("item by item stored %d objects, the batch %d", len(a), len(b))
	}
	for k, v := range a {
		if b[k] != v {
			t.Fatalf("key %q: the batch stored a different object than item by item", k)
		}
	}
	for _, k := range keys {
		var got [2]*Object
		for i, vn := range p.vns {
			rep := vn.HandleCommand(&GetRequest{V: 1, Key: []byte(k)}, vnode.Sender{}).Reply().(*GetReply)
			if rep.Err != "" {
				t.Fatal(rep.Err)
			}
			got[i] = rep.Object
		}
		if (got[0] == nil) != (got[1] == nil) || (got[0] != nil && !got[0].Equal(got[1])) {
			t.Fatalf("key %q: a get answers %v item by item, %v after the batch", k, got[0], got[1])
		}
	}
}

func handoffItem(t *testing.T, key string, o *Object) []byte {
	t.Helper()
	raw, err := o.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	vn := &Vnode{}
	item, err := vn.EncodeHandoffItem([]byte(key), raw)
	if err != nil {
		t.Fatal(err)
	}
	return item
}

func mustUpdate(t *testing.T, local *Object, actor string, ctx VClock, value string, deleted bool) *Object {
	t.Helper()
	o, err := Update(local, actor, ctx, ctx == nil, []byte(value), Meta{Deleted: deleted}, 1700000000_000000000, UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestHandoffBatchMergesLikeItemByItem: a batch holding two versions of one key (in both orders), a key the
// receiver holds newer already, tombstones over values and values over tombstones, concurrent versions that
// become siblings, and a key new to the receiver stores exactly what the items applied one by one store,
// with the same changed flags.
func TestHandoffBatchMergesLikeItemByItem(t *testing.T) {
	v1 := mustUpdate(t, nil, "a", nil, "v1", false)
	v2 := mustUpdate(t, v1, "a", v1.Clock, "v2", false)
	v3 := mustUpdate(t, v2, "b", v2.Clock, "v3", false)
	tomb := mustUpdate(t, v2, "a", v2.Clock, "", true)
	afterTomb := mustUpdate(t, tomb, "c", tomb.Clock, "back", false)
	concurrent := mustUpdate(t, v1, "d", v1.Clock, "other", false) // concurrent with v2 and v3
	initial := map[string]*Object{
		"newer-here": v3,   // the items are older
		"tombstoned": v2,   // a tombstone arrives
		"revived":    tomb, // a value over the tombstone arrives
		"siblings":   v2,   // a concurrent version arrives
		"same":       v2,   // the same version arrives: nothing changes
	}
	items := [][]byte{
		handoffItem(t, "two-versions", v1), handoffItem(t, "two-versions", v2), // older, then newer
		handoffItem(t, "reversed", v2), handoffItem(t, "reversed", v1), // newer, then older: no change
		handoffItem(t, "newer-here", v1), handoffItem(t, "newer-here", v2),
		handoffItem(t, "tombstoned", tomb),
		handoffItem(t, "revived", afterTomb),
		handoffItem(t, "siblings", concurrent), handoffItem(t, "siblings", v3), // siblings, then v3 beside them
		handoffItem(t, "same", v2),
		handoffItem(t, "new", tomb), handoffItem(t, "new", v3), // a tombstone, then a concurrent value
	}
	wantChanged := []bool{true, true, true, false, false, false, true, true, true, true, false, true, true}
	keys := []string{"two-versions", "reversed", "newer-here", "tombstoned", "revived", "siblings", "same", "new"}
	for _, cache := range []int{0, DefaultConfig().CacheBytes} {
		t.Run(fmt.Sprint("cache=", cache), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.CacheBytes = cache
			p := newBatchPair(t, cfg, initial)
			one, batch, oneChanged, batchChanged, oneErr, batchErr := p.apply(items)
			if oneErr != nil || batchErr != nil || one != len(items) || batch != len(items) {
				t.Fatalf("applied %d (%v) item by item, %d (%v) as a batch; want %d", one, oneErr, batch, batchErr, len(items))
			}
			for i := range items {
				if oneChanged[i] != wantChanged[i] || batchChanged[i] != wantChanged[i] {
					t.Fatalf("item %d: changed %v item by item, %v in the batch, want %v", i, oneChanged[i], batchChanged[i], wantChanged[i])
				}
			}
			p.check(t, keys)
			got := p.vns[1].HandleCommand(&GetRequest{V: 1, Key: []byte("siblings")}, vnode.Sender{}).Reply().(*GetReply).Object
			if len(got.Siblings) != 2 {
				t.Fatalf("siblings: %d siblings, want 2 (concurrent and v3)", len(got.Siblings))
			}
			if got := p.vns[1].HandleCommand(&GetRequest{V: 1, Key: []byte("newer-here")}, vnode.Sender{}).Reply().(*GetReply).Object; !got.Equal(v3) {
				t.Fatalf("newer-here: the batch replaced the newer local version: %v", got)
			}
		})
	}
}

// TestHandoffBatchStopsAtABadItem: an item that does not decode ends the batch: the items before it are
// stored (as item by item), the rest are not, and the applied count says so.
func TestHandoffBatchStopsAtABadItem(t *testing.T) {
	v1 := mustUpdate(t, nil, "a", nil, "v1", false)
	v2 := mustUpdate(t, v1, "a", v1.Clock, "v2", false)
	items := [][]byte{handoffItem(t, "x", v1), handoffItem(t, "x", v2), {0x92, 0xc4, 0xff}, handoffItem(t, "y", v1)}
	p := newBatchPair(t, DefaultConfig(), nil)
	one, batch, _, _, oneErr, batchErr := p.apply(items)
	if one != 2 || batch != 2 || oneErr == nil || batchErr == nil {
		t.Fatalf("applied %d (%v) item by item, %d (%v) as a batch; want 2 and an error each", one, oneErr, batch, batchErr)
	}
	p.check(t, []string{"x", "y"})
	if got := p.objects(t, 1); len(got) != 1 {
		t.Fatalf("the batch stored %d keys, want 1 (x)", len(got))
	}
}

// failingWrites is a backend whose batch writes fail once armed.
type failingWrites struct {
	storage.Backend
	fail bool
}

var errInjected = errors.New("injected write failure")

func (f *failingWrites) Write(p uint32, ops []storage.Op) error {
	if f.fail {
		return errInjected
	}
	return f.Backend.Write(p, ops)
}

// TestHandoffBatchWriteFailure: a failed storage write applies none of the batch (changed all false) and
// leaves no cached object behind that storage does not hold.
func TestHandoffBatchWriteFailure(t *testing.T) {
	db := &failingWrites{Backend: storage.NewMemory()}
	vn := NewVnode(DefaultConfig())().(*Vnode)
	if err := vn.Init(vnode.Env{Node: "n", Partition: 1, Store: storage.Partition{Backend: db, ID: 1}, Logger: slog.Default(),
		Now: func() time.Time { return time.Unix(1700000000, 0) }}); err != nil {
		t.Fatal(err)
	}
	db.fail = true
	v1 := mustUpdate(t, nil, "a", nil, "v1", false)
	changed := make([]bool, 2)
	n, err := vn.MergeHandoffBatch([][]byte{handoffItem(t, "x", v1), handoffItem(t, "y", v1)}, changed)
	if n != 0 || !errors.Is(err, errInjected) || changed[0] || changed[1] {
		t.Fatalf("applied %d, err %v, changed %v; want 0, the injected error, none changed", n, err, changed)
	}
	db.fail = false
	for _, k := range []string{"x", "y"} {
		if o := vn.HandleCommand(&GetRequest{V: 1, Key: []byte(k)}, vnode.Sender{}).Reply().(*GetReply).Object; o != nil {
			t.Fatalf("%s: a get answers %v after a failed write", k, o)
		}
	}
}

// TestHandoffBatchMatchesItemByItemRandomly compares the two paths on random batches: a few keys, versions
// from several writers (values and tombstones, some concurrent), random initial copies on the receiver.
func TestHandoffBatchMatchesItemByItemRandomly(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 2))
	actors := []string{"a", "b", "c"}
	for round := range 400 {
		// Even rounds: a few keys in any order. Odd rounds: batches long enough for the prefetch (one fold over
		// the batch's keys), in key order as a fold sends them, over more keys.
		keys := []string{"k0", "k1", "k2", "k3"}
		long := round%2 == 1
		if long {
			keys = nil
			for i := range 24 {
				keys = append(keys, fmt.Sprintf("k%02d", i))
			}
		}
		// A history per key: each version updates a random earlier one (or none), so some descend from
		// others and some are concurrent.
		versions := map[string][]*Object{}
		for _, k := range keys {
			var hist []*Object
			for range 1 + rng.IntN(5) {
				var base *Object
				var ctx VClock
				if len(hist) > 0 && rng.IntN(4) > 0 {
					base = hist[rng.IntN(len(hist))]
					ctx = base.Clock
				}
				hist = append(hist, mustUpdate(t, base, actors[rng.IntN(len(actors))], ctx, fmt.Sprint("v", round), rng.IntN(4) == 0))
			}
			versions[k] = hist
		}
		initial := map[string]*Object{}
		for _, k := range keys {
			if rng.IntN(2) == 0 {
				initial[k] = versions[k][rng.IntN(len(versions[k]))]
			}
		}
		var items [][]byte
		if long {
			// Each key 0-3 times, in key order; some stored keys the batch does not carry sit between.
			for _, k := range keys {
				for range rng.IntN(4) {
					items = append(items, handoffItem(t, k, versions[k][rng.IntN(len(versions[k]))]))
				}
			}
		} else {
			for range 1 + rng.IntN(12) {
				k := keys[rng.IntN(len(keys))]
				items = append(items, handoffItem(t, k, versions[k][rng.IntN(len(versions[k]))]))
			}
		}
		cfg := DefaultConfig()
		if rng.IntN(2) == 0 {
			cfg.CacheBytes = 0
		}
		p := newBatchPair(t, cfg, initial)
		// Some keys read before (cached, present or absent), alike on both vnodes.
		for _, k := range keys {
			if rng.IntN(3) == 0 {
				for _, vn := range p.vns {
					vn.HandleCommand(&GetRequest{V: 1, Key: []byte(k)}, vnode.Sender{})
				}
			}
		}
		one, batch, oneChanged, batchChanged, oneErr, batchErr := p.apply(items)
		if oneErr != nil || batchErr != nil || one != batch {
			t.Fatalf("round %d: applied %d (%v) item by item, %d (%v) as a batch", round, one, oneErr, batch, batchErr)
		}
		for i := range items {
			if oneChanged[i] != batchChanged[i] {
				t.Fatalf("round %d, item %d: changed %v item by item, %v in the batch", round, i, oneChanged[i], batchChanged[i])
			}
		}
		p.check(t, keys)
	}
}
