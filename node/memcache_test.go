package node

import (
	"testing"

	"github.com/gokai-kv/gokai/kv"
)

// TestWrittenCas: a memcache write hands out the sibling set's cas unique only when the written value is
// the key's only value (tombstones aside); when it became a sibling of values its writer never saw, the
// unique it hands out is one no read shows, so a cas with it cannot supersede them.
func TestWrittenCas(t *testing.T) {
	clock := kv.VClock{{Actor: "n/1/a", Counter: 3}, {Actor: "n/2/b", Counter: 1}}
	sib := func(actor string, n uint64, deleted bool) kv.Sibling {
		return kv.Sibling{Value: []byte("v"), Dot: kv.Dot{Actor: actor, Counter: n}, Meta: kv.Meta{Deleted: deleted}}
	}
	only := &kv.Object{Clock: clock, Siblings: []kv.Sibling{sib("n/1/a", 3, false)}}
	withTombstone := &kv.Object{Clock: clock, Siblings: []kv.Sibling{sib("n/2/b", 1, true), sib("n/1/a", 3, false)}}
	withSibling := &kv.Object{Clock: clock, Siblings: []kv.Sibling{sib("n/2/b", 1, false), sib("n/1/a", 3, false)}}
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
