package ring

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
// for keys of partition p (riak_core's apl, with Dynamo's skip rule, §4.3).
//
// Primaries: walk the ring from p (p, p+1, ..., wrapping, each visited
// once) and take a partition, with its owner, only if that owner is not yet
// in the list, until the list holds n distinct nodes. So the n replicas of a
// key are on n distinct nodes whenever the ring has n nodes, whatever Q and
// the claim. A ring that meets target_n (every n consecutive partitions on
// distinct nodes; see Claim) gives exactly p, p+1, ..., p+n-1. When the ring
// has fewer than n distinct nodes, the walk also takes the earliest
// partitions it would skip, in ring order, until it holds n (so one node
// gets n distinct vnodes p, p+1, ..., p+n-1). Partition p itself always
// comes first. The walk does not look at liveness: the primaries of a key
// change only with ownership. "The span" below is the walk from p up to its
// last primary.
//
// n is capped at Q; n <= 0 returns nil. up reports whether a node is up; nil
// means every node is up. It is called only from this goroutine, several
// times per node, and must be cheap.
//
// A primary whose node is down is replaced by a fallback for the same
// partition: the node of the next partition after the span (wrapping, up to
// p again, each visited once) that is up and not already in the list, as a
// live primary or as a fallback. (Inside the span every skipped partition
// belongs to a node already listed, so looking there would find no new
// node.) When fewer distinct up nodes remain than down primaries (3 nodes,
// N=3, two down), the rest of the fallbacks go to up nodes already in the
// list, in ring order from after the span (riak's sloppy quorum: a write
// stays possible while one node is up; the hint still lives in a vnode of
// its own partition). Fallbacks have Primary=false and HintFor = the down
// node. Only when no node is up at all is a replica left out, so the list
// may be shorter than n.
//
// Order: the live primaries in ring order, then the fallbacks in the ring
// order of the primaries they replace. Only the result slice is allocated
// (and, with more than 8 primaries down at once, a small buffer).
//
// REQUIRES: 0 <= p < Q.
func (r *Ring) PreflistForPartition(p, n int, up func(NodeID) bool) []PrefEntry {
	q := len(r.owners)
	if p < 0 || p >= q {
		panic(fmt.Sprintf("ring: partition %d out of range [0, %d)", p, q))
	}
	if n <= 0 {
		return nil
	}
	n = min(n, q)
	mask := q - 1 // q is a power of two
	out := make([]PrefEntry, 0, n)
	// The walk. Live primaries go to out as it meets them; down ones wait in down (their partitions, in
	// ring order) for fallbacks.
	var downBuf [8]int // NB: on the stack; more than 8 down primaries spill to the heap
	down := downBuf[:0]
	// NB: with fewer distinct nodes than n, fill is how many of the skipped partitions the walk must take
	// (the earliest ones: each is taken as the walk meets it).
	fill := n - min(n, len(r.nodes))
	// NB: on rings of up to 64 nodes, seen has bit i set once r.nodes[i] is in the list (primaries, then
	// fallbacks), so "already listed" is a bit test instead of string comparisons.
	small := len(r.nodes) <= 64
	var seen uint64
	off := 0 // offset from p of the next partition the walk looks at
	for ; len(out)+len(down) < n; off++ {
		part := (p + off) & mask
		node := r.owners[part]
		var dup bool
		if small {
			bit := uint64(1) << r.idx[part]
			dup, seen = seen&bit != 0, seen|bit
		} else {
			dup = listed(out, node) || r.ownsOne(down, node)
		}
		if dup {
			if fill == 0 {
				continue
			}
			fill--
		}
		if up == nil || up(node) {
			out = append(out, PrefEntry{Partition: part, Node: node, Primary: true})
		} else {
			down = append(down, part)
		}
	}
	if len(down) == 0 {
		return out
	}
	// Fallbacks, in the ring order of the primaries they replace: first distinct up nodes from the
	// partitions after the span. Once that walk runs out, it finds nothing for the later ones either.
	// NB: the primaries name min(n, nodes) distinct nodes, so with n or fewer nodes in the ring every node
	// is listed already and no partition after the span can give a new one: skip the walk (3 nodes, N=3,
	// one down would otherwise visit the whole ring for every key).
	after := off // the first offset after the span
	found := 0
	if len(r.nodes) > n {
		next := after // next offset to try
		for _, part := range down {
			for ; next < q; next++ {
				cpart := (p + next) & mask
				cand := r.owners[cpart]
				var dup bool
				if small {
					dup = seen&(1<<r.idx[cpart]) != 0 // NB: down primaries are in seen too; they fail up anyway
				} else {
					dup = listed(out, cand)
				}
				if !dup && up(cand) {
					out = append(out, PrefEntry{Partition: part, Node: cand, HintFor: r.owners[part]})
					seen |= 1 << r.idx[cpart]
					break
				}
			}
			if next >= q {
				break
			}
			next++
			found++
		}
	}
	// Too few distinct up nodes: reuse up nodes, walking the ring from after the span; a replica for which
	// no node is up is left out.
	rOff := after & mask
	for _, part := range down[found:] {
		for range q {
			cand := r.owners[(p+rOff)&mask]
			rOff = (rOff + 1) & mask
			if up(cand) {
				out = append(out, PrefEntry{Partition: part, Node: cand, HintFor: r.owners[part]})
				break
			}
		}
	}
	return out
}

// ownsOne reports whether node owns one of the partitions ps.
func (r *Ring) ownsOne(ps []int, node NodeID) bool {
	for _, p := range ps {
		if r.owners[p] == node {
			return true
		}
	}
	return false
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

// Sources returns, for every partition x (index), the partitions p, ascending, whose n primaries include
// x: the key ranges whose replicas x's vnode holds as a primary. On a ring that meets target_n they are
// x-n+1, ..., x (wrapping); where preference lists skip, they depend on the owners around x, so an
// ownership change elsewhere can change them. n is capped at Q; n <= 0 gives empty lists.
func (r *Ring) Sources(n int) [][]int {
	q := len(r.owners)
	out := make([][]int, q)
	for p := range q {
		for _, e := range r.PreflistForPartition(p, n, nil) {
			out[e.Partition] = append(out[e.Partition], p)
		}
	}
	return out
}
