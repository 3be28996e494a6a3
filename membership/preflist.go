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
// in the list, as a live primary or as a fallback. When fewer distinct up
// nodes remain than down primaries (3 nodes, N=3, two down), the rest of the
// fallbacks go to up nodes already in the list, in ring order (riak's sloppy
// quorum: a write stays possible while one node is up; the hint still lives
// in a vnode of its own partition). Fallbacks have Primary=false and
// HintFor = the down node. Only when no node is up at all is a replica left
// out, so the list may be shorter than n.
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
	isDown := func(i int) bool {
		if i < 256 {
			return down[i/64]&(1<<(i%64)) != 0
		}
		return !up(r.owners[(p+i)&mask])
	}
	live := len(out)
	next := n // next offset from p to try as a fallback
	var missing []int
	for i := range n {
		if !isDown(i) {
			continue
		}
		part := (p + i) & mask
		found := false
		for ; next < q; next++ {
			cand := r.owners[(p+next)&mask]
			if !up(cand) || listed(out, cand) {
				continue
			}
			out = append(out, PrefEntry{Partition: part, Node: cand, HintFor: r.owners[part]})
			next++
			found = true
			break
		}
		if !found {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return out
	}
	// Too few distinct up nodes: reuse up nodes, walking the ring from after the span.
	off := n
	for _, i := range missing {
		part := (p + i) & mask
		for tries := 0; tries < q; tries++ {
			cand := r.owners[(p+off)&mask]
			off = (off + 1) % q
			if up(cand) {
				out = append(out, PrefEntry{Partition: part, Node: cand, HintFor: r.owners[part]})
				break
			}
		}
	}
	// Fallbacks in the ring order of the primaries they replace.
	fb := out[live:]
	for a := 1; a < len(fb); a++ {
		for b := a; b > 0 && ((fb[b].Partition-p)&mask) < ((fb[b-1].Partition-p)&mask); b-- {
			fb[b], fb[b-1] = fb[b-1], fb[b]
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
