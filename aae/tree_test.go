package aae

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/ring"
)

// model is a replica's items: key -> version hash (0 never stored).
type model map[string]uint64

// rebuild makes the tree of m from scratch.
func (m model) rebuild() *Tree {
	t := &Tree{}
	for k, v := range m {
		t.Insert(ring.KeyHash([]byte(k)), v)
	}
	return t
}

// segmentFold is the model of a vnode's segment-filtered fold: the items of segments ss, sorted by key.
func (m model) segmentFold(ss []int) []KeyVersion {
	want := map[int]bool{}
	for _, s := range ss {
		want[s] = true
	}
	var out []KeyVersion
	for k, v := range m {
		if want[SegmentOf(ring.KeyHash([]byte(k)))] {
			out = append(out, KeyVersion{Key: []byte(k), Version: v})
		}
	}
	SortKeys(out)
	return out
}

// TestXORUpdateEqualsRebuild: for random sequences of writes, overwrites and deletes, the tree kept current
// by O(1) updates equals the tree rebuilt from the final items.
func TestXORUpdateEqualsRebuild(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 7))
		m := model{}
		live := &Tree{}
		keys := 1 + rng.IntN(3000)
		for range rng.IntN(20000) {
			k := fmt.Sprintf("key-%d", rng.IntN(keys))
			old := m[k]
			var nv uint64
			if rng.IntN(4) != 0 { // a write; else a delete
				nv = rng.Uint64() | 1
			}
			live.Update(ring.KeyHash([]byte(k)), old, nv)
			if nv == 0 {
				delete(m, k)
			} else {
				m[k] = nv
			}
		}
		want := m.rebuild()
		if !live.Equal(want) || live.Root() != want.Root() {
			t.Fatalf("seed %d: updated tree differs from the rebuilt one (root %x vs %x)", seed, live.Root(), want.Root())
		}
		if err := live.Check(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if len(m) == 0 != live.Empty() {
			t.Fatalf("seed %d: %d items, Empty %v", seed, len(m), live.Empty())
		}
	}
}

func TestDeleteEverythingEmptiesTheTree(t *testing.T) {
	tr := &Tree{}
	for i := range 100 {
		tr.Insert(ring.KeyHash(fmt.Appendf(nil, "k%d", i)), uint64(i+1))
	}
	if tr.Empty() {
		t.Fatal("a tree of 100 items is empty")
	}
	for i := range 100 {
		tr.Update(ring.KeyHash(fmt.Appendf(nil, "k%d", i)), uint64(i+1), 0)
	}
	if !tr.Empty() || !tr.Equal(&Tree{}) {
		t.Fatal("deleting every item leaves a non-empty tree")
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tr := &Tree{}
	for range 5000 {
		tr.Insert(rng.Uint64(), rng.Uint64()|1)
	}
	b, err := tr.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back Tree
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !back.Equal(tr) || back.Root() != tr.Root() || !slices.Equal(back.Branches(), tr.Branches()) {
		t.Fatal("decoded tree differs")
	}
	for _, bad := range [][]byte{nil, b[:len(b)-1], append([]byte{9}, b[1:]...)} {
		if err := back.UnmarshalBinary(bad); err == nil {
			t.Fatalf("%d bytes (version %d) decoded", len(bad), bad)
		}
	}
}

// runExchange runs an exchange between two models as the shell does, with a segment fold from each.
func runExchange(a, b model, maxSegments int) Outcome {
	ta, tb := a.rebuild(), b.rebuild()
	e := NewExchange(maxSegments)
	q := e.Start()
	for {
		aa, ab := AnswerFrom(ta, q), AnswerFrom(tb, q)
		if q.Kind == QueryKeys {
			aa.Keys, ab.Keys = a.segmentFold(q.Segments), b.segmentFold(q.Segments)
		}
		next, done := e.Answer(aa, ab)
		if done {
			return e.Outcome()
		}
		q = next
	}
}

// TestExchangeFindsExactlyTheDifferingKeys: replicas that differ by missing keys, extra keys and other
// versions; the exchange reports exactly those keys.
func TestExchangeFindsExactlyTheDifferingKeys(t *testing.T) {
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 99))
		a := model{}
		for i := range 2000 + rng.IntN(3000) {
			a[fmt.Sprintf("k%d", i)] = rng.Uint64() | 1
		}
		b := model{}
		for k, v := range a {
			b[k] = v
		}
		var want [][]byte
		for range rng.IntN([]int{1, 10, 200, 3000}[seed%4]) {
			k := fmt.Sprintf("k%d", rng.IntN(8000))
			switch rng.IntN(3) {
			case 0:
				delete(b, k)
			case 1:
				b[k] = rng.Uint64() | 1
			case 2:
				a[k] = rng.Uint64() | 1
			}
		}
		for k, v := range a {
			if b[k] != v {
				want = append(want, []byte(k))
			}
		}
		for k := range b {
			if _, ok := a[k]; !ok {
				want = append(want, []byte(k))
			}
		}
		slices.SortFunc(want, bytes.Compare)
		got := runExchange(a, b, Segments)
		if !slices.EqualFunc(got.Keys, want, bytes.Equal) {
			t.Fatalf("seed %d: exchange found %d keys, %d differ", seed, len(got.Keys), len(want))
		}
		if got.Truncated {
			t.Fatalf("seed %d: truncated with no limit", seed)
		}
	}
}

func TestExchangeOfEqualTreesStopsAtTheRoot(t *testing.T) {
	a := model{"x": 1, "y": 2}
	e := NewExchange(10)
	q := e.Start()
	ta := a.rebuild()
	if _, done := e.Answer(AnswerFrom(ta, q), AnswerFrom(ta, q)); !done {
		t.Fatal("equal roots did not end the exchange")
	}
	if o := e.Outcome(); len(o.Keys) != 0 || o.Branches != 0 {
		t.Fatalf("outcome %+v", o)
	}
}

// TestExchangeRepeatDropsInFlightDifferences: a segment that differs in the first look but not the second
// (a write in flight reached the other replica meanwhile) is not fetched.
func TestExchangeRepeatDropsInFlightDifferences(t *testing.T) {
	a := model{"k1": 1, "k2": 2}
	b := model{"k1": 1}
	ta, tb := a.rebuild(), b.rebuild()
	e := NewExchange(10)
	q := e.Start()
	q, _ = e.Answer(AnswerFrom(ta, q), AnswerFrom(tb, q))
	q, _ = e.Answer(AnswerFrom(ta, q), AnswerFrom(tb, q))
	if q.Kind != QuerySegments {
		t.Fatalf("query %v, want segments", q.Kind)
	}
	q, _ = e.Answer(AnswerFrom(ta, q), AnswerFrom(tb, q))
	if q.Kind != QuerySegments {
		t.Fatalf("query %v, want the repeated segments", q.Kind)
	}
	tb.Insert(ring.KeyHash([]byte("k2")), 2) // the write in flight lands
	if _, done := e.Answer(AnswerFrom(ta, q), AnswerFrom(tb, q)); !done {
		t.Fatal("the repeat still found a difference")
	}
	if o := e.Outcome(); o.Segments != 0 || len(o.Keys) != 0 {
		t.Fatalf("outcome %+v", o)
	}
}

func TestExchangeTruncatesAtMaxSegments(t *testing.T) {
	a, b := model{}, model{}
	for i := range 500 {
		a[fmt.Sprintf("k%d", i)] = 1
	}
	got := runExchange(a, b, 8)
	if !got.Truncated || got.Segments != 8 {
		t.Fatalf("outcome: truncated %v, %d segments", got.Truncated, got.Segments)
	}
	if len(got.Keys) == 0 || len(got.Keys) >= 500 {
		t.Fatalf("%d keys from 8 segments", len(got.Keys))
	}
}

func TestDiffKeysMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		a, b := model{}, model{}
		for range rng.IntN(50) {
			a[fmt.Sprintf("%d", rng.IntN(60))] = uint64(rng.IntN(3) + 1)
		}
		for range rng.IntN(50) {
			b[fmt.Sprintf("%d", rng.IntN(60))] = uint64(rng.IntN(3) + 1)
		}
		all := func(m model) []KeyVersion {
			var out []KeyVersion
			for k, v := range m {
				out = append(out, KeyVersion{Key: []byte(k), Version: v})
			}
			SortKeys(out)
			return out
		}
		var want []string
		for k := range a {
			if a[k] != b[k] {
				want = append(want, k)
			}
		}
		for k := range b {
			if _, ok := a[k]; !ok {
				want = append(want, k)
			}
		}
		slices.Sort(want)
		var got []string
		for _, k := range DiffKeys(all(a), all(b)) {
			got = append(got, string(k))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("DiffKeys %v, want %v", got, want)
		}
	}
}

// TestBucketLimitsTheRate: a burst goes at once, then one token per 1/rate, whatever the callers' pace.
func TestBucketLimitsTheRate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := NewBucket(10, 5)
	for i := range 5 {
		if w := b.Take(t0); w != 0 {
			t.Fatalf("token %d of the burst waits %s", i, w)
		}
	}
	if w := b.Take(t0); w != 100*time.Millisecond {
		t.Fatalf("past the burst: wait %s, want 100ms", w)
	}
	if w := b.Take(t0); w != 200*time.Millisecond {
		t.Fatalf("second past the burst: wait %s, want 200ms", w)
	}
	// After a second the bucket refilled (10 tokens, minus the 2 owed, capped at the burst of 5).
	if w := b.Take(t0.Add(time.Second)); w != 0 {
		t.Fatalf("after a second: wait %s", w)
	}
	if w := (&Bucket{}).Take(t0); w != 0 {
		t.Fatal("the zero bucket limits")
	}
}
