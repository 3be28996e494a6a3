package vnode

import (
	"fmt"
	"math/bits"
	"slices"

	"github.com/gokai-kv/gokai/ring"
)

// Filter says which keys of a vnode's data a coverage request covers: those whose hash partition (the top
// log2(Q) bits of ring.KeyHash, as ring.Ring.PartitionForKey computes it on a ring of Q partitions) is one
// of Partitions. A vnode of partition x holds, as a primary, the keys of the partitions ring.Ring.Sources
// lists for x; a coverage plan that uses only some of those (another vnode covers the rest) names them here.
//
// The zero Filter (Q 0) covers every key the vnode holds. Coverage plans should always name the partitions:
// a vnode may also hold keys outside its ranges (data on its way to another vnode: a re-home, hints), which
// an unfiltered fold would return a second time.
type Filter struct {
	Q          int   `msgpack:"q"` // the ring's partition count; 0: no filter
	Partitions []int `msgpack:"p"` // ascending, distinct, each in [0, Q)
}

// NewFilter returns the filter of partitions on a ring of q partitions (in any order; duplicates are
// merged). It fails for a q that is not a valid ring size or a partition out of range.
func NewFilter(q int, partitions ...int) (Filter, error) {
	ps := slices.Clone(partitions)
	slices.Sort(ps)
	f := Filter{Q: q, Partitions: slices.Compact(ps)}
	if err := f.Validate(); err != nil {
		return Filter{}, err
	}
	return f, nil
}

// All reports whether f covers every key (the zero Filter).
func (f Filter) All() bool { return f.Q == 0 && len(f.Partitions) == 0 }

// Validate reports why f is not a filter: Q not a valid ring size, or Partitions not ascending, distinct
// and within [0, Q). Filters from the wire are validated before a behaviour sees them.
func (f Filter) Validate() error {
	if f.All() {
		return nil
	}
	if err := ring.CheckQ(f.Q); err != nil {
		return fmt.Errorf("vnode: filter: %w", err)
	}
	if len(f.Partitions) > f.Q {
		return fmt.Errorf("vnode: filter: %d partitions on a ring of %d", len(f.Partitions), f.Q)
	}
	for i, p := range f.Partitions {
		if p < 0 || p >= f.Q {
			return fmt.Errorf("vnode: filter: partition %d out of range [0, %d)", p, f.Q)
		}
		if i > 0 && p <= f.Partitions[i-1] {
			return fmt.Errorf("vnode: filter: partitions not ascending and distinct (%d after %d)", p, f.Partitions[i-1])
		}
	}
	return nil
}

// Match reports whether key is covered. REQUIRES: f is valid.
func (f Filter) Match(key []byte) bool {
	if f.All() {
		return true
	}
	return f.MatchHash(ring.KeyHash(key))
}

// MatchHash reports whether a key of hash h (ring.KeyHash) is covered. REQUIRES: f is valid.
func (f Filter) MatchHash(h uint64) bool {
	if f.All() {
		return true
	}
	p := 0
	if f.Q > 1 {
		// NB: the same bits as ring.Ring.PartitionForKey (Q is a power of two).
		p = int(h >> (64 - bits.TrailingZeros(uint(f.Q))))
	}
	_, found := slices.BinarySearch(f.Partitions, p)
	return found
}
