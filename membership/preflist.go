package membership

import "fmt"

// PrefEntry is one replica of a preference list: the vnode for Partition
// running on Node.
type PrefEntry struct {
	Partition int
	Node      NodeID
	// Primary is true when Node owns Partition in the ring.
	Primary bool
	// HintFor is, for a fallback, the down primary node it stands in for
	// (the data it takes is handed back to that node later); "" for primaries.
	HintFor NodeID
}

// Preflist returns the annotated preference list for key: see
// PreflistForPartition.
func (r *Ring) Preflist(key []byte, n int, up func(NodeID) bool) []PrefEntry {
	return r.PreflistForPartition(r.PartitionForKey(key), n, up)
}

// PreflistForPartition returns the annotated preference list of n replicas
// for keys of partition p (riak_core's apl).
//
// The primaries are partitions p, p+1, ..., p+n-1 (mod Q) with their
// owners; on a ring with fewer than n nodes some of them share a node. n is
// capped at Q; n <= 0 returns nil. up reports whether a node is up; nil
// means every node is up. It is called only from this goroutine, several
// times per node, and must be cheap.
//
// A primary whose node is down is replaced by a fallback for the same
// partition: the node of the next partition after the primaries' span
// (p+n, p+n+1, ..., wrapping, each visited once) that is up and not already
// in the list, as a live primary or as a fallback. Fallbacks have
// Primary=false and HintFor = the down node. When no such node remains the
// replica is left out, so the list may be shorter than n.
//
// Order: the live primaries in ring order, then the fallbacks in the ring
// order of the primaries they replace. Only the result slice is allocated.
//
// REQUIRES: 0 <= p < Q.
func (r *Ring) PreflistForPartition(p, n int, up func(NodeID) bool) []PrefEntry {
	q := len(r.owners)
	if p < 0 || p >= q {
		panic(fmt.Sprintf("membership: partition %d out of range [0, %d)", p, q))
	}
	if n <= 0 {
		return nil
	}
	n = min(n, q)
	mask := q - 1 // q is a power of two
	out := make([]PrefEntry, 0, n)
	var down [4]uint64 // bit i: primary i is down (first 256 primaries)
	anyDown := false
	for i := range n {
		part := (p + i) & mask
		node := r.owners[part]
		if up == nil || up(node) {
			out = append(out, PrefEntry{Partition: part, Node: node, Primary: true})
			continue
		}
		anyDown = true
		if i < 256 {
			down[i/64] |= 1 << (i % 64)
		}
	}
	if !anyDown {
		return out
	}
	next := n // next offset from p to try as a fallback
	for i := range n {
		part := (p + i) & mask
		primary := r.owners[part]
		if i < 256 {
			if down[i/64]&(1<<(i%64)) == 0 {
				continue
			}
		} else if up(primary) {
			continue
		}
		for ; next < q; next++ {
			cand := r.owners[(p+next)&mask]
			if !up(cand) || listed(out, cand) {
				continue
			}
			out = append(out, PrefEntry{Partition: part, Node: cand, HintFor: primary})
			next++
			break
		}
		if next >= q {
			break
		}
	}
	return out
}

// listed reports whether node already appears in l.
func listed(l []PrefEntry, node NodeID) bool {
	for _, e := range l {
		if e.Node == node {
			return true
		}
	}
	return false
}
