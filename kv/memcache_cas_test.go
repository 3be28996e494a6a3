package kv

import "testing"

// TestWrittenCas: a memcache write hands out the sibling set's cas unique only when the written value is
// the key's only value (tombstones aside); when it became a sibling of values its writer never saw, the
// unique it hands out is one no read shows, so a cas with it cannot supersede them.
func TestWrittenCas(t *testing.T) {
	clock := VClock{{Actor: "n/1/a", Counter: 3}, {Actor: "n/2/b", Counter: 1}}
	sib := func(actor string, n uint64, deleted bool) Sibling {
		return Sibling{Value: []byte("v"), Dot: Dot{Actor: actor, Counter: n}, Meta: Meta{Deleted: deleted}}
	}
	only := &Object{Clock: clock, Siblings: []Sibling{sib("n/1/a", 3, false)}}
	withTombstone := &Object{Clock: clock, Siblings: []Sibling{sib("n/2/b", 1, true), sib("n/1/a", 3, false)}}
	withSibling := &Object{Clock: clock, Siblings: []Sibling{sib("n/2/b", 1, false), sib("n/1/a", 3, false)}}
	if got := WrittenCas(only); got != clock.Hash() {
		t.Errorf("only value: %d, want the set's %d", got, clock.Hash())
	}
	if got := WrittenCas(withTombstone); got != clock.Hash() {
		t.Errorf("value beside a tombstone: %d, want the set's %d", got, clock.Hash())
	}
	if got := WrittenCas(withSibling); got == clock.Hash() || got == 0 {
		t.Errorf("value beside an unseen sibling: %d, the set's own or 0", got)
	}
	if WrittenCas(nil) == 0 {
		t.Error("nil object: 0")
	}
}
