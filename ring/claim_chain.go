package ring

// Chain search limits: hops per chain, partitions examined per search, and
// how far (in partitions) a node may move in one hop, in multiples of w.
const (
	chainMaxHops  = 6
	chainMaxNodes = 2048
	chainReach    = 2
)

// chainer finds augmenting chains of moves. A chain starts by emptying a
// partition (a hole, or a partition of a node above target), then moves a
// node from a nearby partition into the empty one, which empties that one,
// and so on, until a node below target fits in the empty partition. Every
// step keeps every w consecutive partitions distinct, so a chain of k hops
// fixes one unit of imbalance for k+1 moves. The search is breadth-first,
// so the chain found from a start is a shortest one.
//
// This is what fills holes whose neighbours already cover every node below
// target (after a leave from a striped ring, all holes look alike): the
// node that fits is elsewhere, and a neighbour has to make room.
type chainer struct {
	pos, parent, mover, depth []int32 // BFS nodes; mover moved from pos into parent's pos
	seen                      []uint32
	stamp                     uint32
	undoPos, undoOwn          []int32
	budget                    int // BFS nodes left to examine in all searches
}

// run searches a chain starting at partition src and applies it to own
// and count. It reports whether it found one; it gives up when the search
// budget is spent.
func (ch *chainer) run(c *claimer, own []int32, count []int, src int) bool {
	q := c.q
	if len(ch.seen) != q {
		ch.seen = make([]uint32, q)
		ch.stamp = 0
	}
	ch.stamp++
	ch.pos = append(ch.pos[:0], int32(src))
	ch.parent = append(ch.parent[:0], -1)
	ch.mover = append(ch.mover[:0], -1)
	ch.depth = append(ch.depth[:0], 0)
	ch.seen[src] = ch.stamp
	srcOwner := own[src]
	reach := min(chainReach*c.w, q/2)
	for k := 0; k < len(ch.pos) && k < chainMaxNodes && ch.budget > 0; k++ {
		ch.budget--
		ch.apply(own, k)
		p := int(ch.pos[k])
		// A node below target (not the one emptied at the start) that fits ends it.
		sink := int32(-1)
		for x := range int32(c.m) {
			if x != srcOwner && count[x] < c.target[x] && c.fits(own, x, p) &&
				(sink < 0 || c.target[x]-count[x] > c.target[sink]-count[sink]) {
				sink = x
			}
		}
		if sink >= 0 {
			own[p] = sink
			count[sink]++
			if srcOwner >= 0 {
				count[srcOwner]--
			}
			return true
		}
		if ch.depth[k] < chainMaxHops {
			for d := -reach; d <= reach; d++ {
				p2 := ((p+d)%q + q) % q
				if d == 0 || ch.seen[p2] == ch.stamp {
					continue
				}
				if z := own[p2]; z >= 0 && c.fitsMoving(own, z, p, p2) {
					ch.seen[p2] = ch.stamp
					ch.pos = append(ch.pos, int32(p2))
					ch.parent = append(ch.parent, int32(k))
					ch.mover = append(ch.mover, z)
					ch.depth = append(ch.depth, ch.depth[k]+1)
				}
			}
		}
		ch.revert(own)
	}
	return false
}

// apply sets own to the state at BFS node k: every hop on the path from the
// start done, and node k's partition empty. It records how to undo it.
func (ch *chainer) apply(own []int32, k int) {
	ch.undoPos, ch.undoOwn = ch.undoPos[:0], ch.undoOwn[:0]
	set := func(p, x int32) {
		ch.undoPos = append(ch.undoPos, p)
		ch.undoOwn = append(ch.undoOwn, own[p])
		own[p] = x
	}
	for j := int32(k); ch.parent[j] >= 0; j = ch.parent[j] {
		set(ch.pos[ch.parent[j]], ch.mover[j])
	}
	set(ch.pos[k], -1)
}

// revert undoes the last apply.
func (ch *chainer) revert(own []int32) {
	for i := len(ch.undoPos) - 1; i >= 0; i-- {
		own[ch.undoPos[i]] = ch.undoOwn[i]
	}
}

// fitsMoving reports whether node x, now at partition from, fits at
// partition i once it has left from.
func (c *claimer) fitsMoving(own []int32, x int32, i, from int) bool {
	q := c.q
	for d := 1; d < c.w; d++ {
		j, k := i+d, i-d
		if j >= q {
			j -= q
		}
		if k < 0 {
			k += q
		}
		if own[j] == x && j != from || own[k] == x && k != from {
			return false
		}
	}
	return true
}
