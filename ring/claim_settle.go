package ring

import (
	"cmp"
	"math"
	"slices"
)

// settle turns start (prev) into a balanced layout with as few changes as
// it finds: unowned partitions go to nodes below target where they fit
// (matching, then chains of moves), nodes below target take partitions
// from nodes above it (spread evenly round the ring, then by chains), what
// is left goes where it hurts least, and local search removes the short
// windows that remain.
func (c *claimer) settle(start []int32) []int32 {
	q, m := c.q, c.m
	own := slices.Clone(start)
	count := make([]int, m)
	for _, x := range own {
		if x >= 0 {
			count[x]++
		}
	}
	want := func(x int) int { return c.target[x] - count[x] }
	// takeable: unowned, or owned by a node above its target.
	takeable := func(i int) bool { return own[i] < 0 || count[own[i]] > c.target[own[i]] }
	give := func(i int, x int32) {
		if o := own[i]; o >= 0 {
			count[o]--
		}
		own[i] = x
		count[x]++
	}

	// 1. Unowned partitions to nodes below target that fit there, as many
	// as a bipartite matching finds; the rest by chains of moves.
	c.fillHoles(own, count)
	ch := chainer{budget: 64*q + 1<<16}
	for i := range q {
		if own[i] < 0 {
			ch.run(c, own, count, i)
		}
	}

	// 2. Each node below target takes from nodes above it, paced so its
	// new partitions spread evenly around the ring; then unpaced.
	order := make([]int, 0, m)
	for x := range m {
		if want(x) > 0 {
			order = append(order, x)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(want(b), want(a)) })
	for _, x := range order {
		need := want(x)
		got := 0
		for idx := 0; idx < q && got < need; idx++ {
			if got*q >= need*(idx+1) { // ahead of an even pace
				continue
			}
			if takeable(idx) && c.fits(own, int32(x), idx) {
				give(idx, int32(x))
				got++
			}
		}
		for i := 0; i < q && want(x) > 0; i++ {
			if takeable(i) && c.fits(own, int32(x), i) {
				give(i, int32(x))
			}
		}
	}

	// 2b. Chains from partitions of nodes above target.
	short := 0
	for x := range m {
		short += max(0, want(x))
	}
	for i := 0; i < q && short > 0; i++ {
		if o := own[i]; o >= 0 && count[o] > c.target[o] && ch.run(c, own, count, i) {
			short--
		}
	}

	// 3. Whatever is still wanted goes where it hurts least: sweeps that
	// accept a rising penalty for x, 0 first.
	for x := range int32(m) {
		for level := 0; want(int(x)) > 0; {
			nextLevel := math.MaxInt
			for i := 0; i < q && want(int(x)) > 0; i++ {
				if !takeable(i) || own[i] == x {
					continue
				}
				o := own[i]
				own[i] = x
				cost := c.posCost(own, i)
				own[i] = o
				if cost <= level {
					give(i, x)
				} else {
					nextLevel = min(nextLevel, cost)
				}
			}
			level = nextLevel
		}
	}

	c.improve(own, 64*q*c.w+1<<16)
	return own
}

// fillHoles gives unowned partitions to nodes below target where they fit,
// as many as it can: a maximum b-matching of holes to nodes (node x takes
// at most target-count holes), found with augmenting paths. Holes of one
// leaving node are at least w apart, so matched holes do not crowd one
// another; when they would, the later hole stays unowned.
func (c *claimer) fillHoles(own []int32, count []int) {
	m := c.m
	var holes []int
	for i, x := range own {
		if x < 0 {
			holes = append(holes, i)
		}
	}
	if len(holes) == 0 {
		return
	}
	cands := make([][]int32, len(holes)) // nodes that fit, per hole
	for h, i := range holes {
		for x := range m {
			if count[x] < c.target[x] && c.fits(own, int32(x), i) {
				cands[h] = append(cands[h], int32(x))
			}
		}
	}
	match := make([]int32, len(holes)) // node per hole, -1 none
	for h := range match {
		match[h] = -1
	}
	holesOf := make([][]int, m) // matched holes per node
	seen := make([]int, m)      // augmentation stamp per node
	var augment func(h, stamp int) bool
	augment = func(h, stamp int) bool {
		for _, x := range cands[h] {
			if seen[x] == stamp {
				continue
			}
			seen[x] = stamp
			if len(holesOf[x]) < c.target[x]-count[x] {
				match[h] = x
				holesOf[x] = append(holesOf[x], h)
				return true
			}
			for k, h2 := range holesOf[x] {
				if augment(h2, stamp) {
					match[h] = x
					holesOf[x][k] = h // h2 now matched elsewhere
					return true
				}
			}
		}
		return false
	}
	for h := range holes {
		augment(h, h+1)
	}
	for h, i := range holes {
		if x := match[h]; x >= 0 && c.fits(own, x, i) {
			own[i] = x
			count[x]++
		}
	}
}

// improve swaps owners of partition pairs while that lowers the penalty,
// preferring among the best swaps those that move fewest partitions away
// from prev. budget bounds the number of swaps evaluated.
func (c *claimer) improve(own []int32, budget int) {
	q := c.q
	for {
		improved := false
		for i := range q {
			if c.posCost(own, i) == 0 {
				continue
			}
			a := own[i]
			bestJ, bestDP, bestDM := -1, 0, 0
			for j := range q {
				b := own[j]
				if b == a {
					continue
				}
				budget--
				before := c.posCost(own, i) + c.posCost(own, j)
				own[i], own[j] = b, a
				after := c.posCost(own, i) + c.posCost(own, j)
				own[i], own[j] = a, b
				dp := after - before
				if dp >= 0 {
					continue
				}
				dm := 0
				if c.prev != nil {
					dm = c.moveDelta(i, a, b) + c.moveDelta(j, b, a)
				}
				if bestJ < 0 || dp < bestDP || dp == bestDP && dm < bestDM {
					bestJ, bestDP, bestDM = j, dp, dm
				}
			}
			if bestJ >= 0 {
				own[i], own[bestJ] = own[bestJ], a
				improved = true
			}
			if budget <= 0 {
				return
			}
		}
		if !improved {
			return
		}
	}
}

// moveDelta is the change in moves when partition i goes from owner a to b.
func (c *claimer) moveDelta(i int, a, b int32) int {
	d := 0
	if c.prev[i] != a {
		d--
	}
	if c.prev[i] != b {
		d++
	}
	return d
}
