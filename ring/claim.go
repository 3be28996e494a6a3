package ring

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// TargetNFeasible reports whether q partitions can be owned by nodes nodes,
// balanced (each holds floor(q/nodes) or ceil(q/nodes)), so that every n
// consecutive partitions (wrapping) sit on n distinct nodes. n is capped at
// q, as in a preference list.
//
// The exact condition is nodes * floor(q/n) >= q (equivalently
// ceil(q/nodes) <= floor(q/n)): a node holding c partitions needs c*n
// ring positions to keep its copies n apart, and the most loaded node holds
// ceil(q/nodes). It implies n <= nodes. With Q a power of two, nodes == n
// is feasible only when n divides Q, so 3 nodes with n=3 never are (Q=64:
// 3*21 = 63 < 64); 4 or more nodes with n=3 are for every Q >= 4.
func TargetNFeasible(q, n, nodes int) bool {
	n = min(n, q)
	return n >= 1 && nodes*(q/n) >= q
}

// Claim decides the owners of q partitions (index = partition) for nodes
// with replica count n. prev, if not nil, is the current owner list (length
// q; entries that are empty or not in nodes are unowned, e.g. a leaving
// node's).
//
// The result is:
//   - balanced: every node owns floor(q/len(nodes)) or ceil(q/len(nodes))
//     partitions; with prev, the nodes already holding most keep the
//     extra one;
//   - spread: any v consecutive partitions (wrapping) belong to v distinct
//     nodes, where v = SpreadWindow(q, n, len(nodes)); v = min(n, q)
//     whenever len(nodes) >= min(n, q) and TargetNFeasible(q, n,
//     len(nodes)). Same-node pairs closer than min(n, len(nodes)) that
//     remain beyond v are as few and as far apart as the search finds
//     (fewest adjacent pairs first, then fewest two apart, and so on);
//   - sticky: with prev it keeps as many partitions on their current owner
//     as its search finds; the search is a heuristic, not a proof of the
//     minimum (see Figures);
//   - deterministic: equal inputs (nodes in any order) give equal outputs.
//
// When len(nodes) >= min(n, q) but TargetNFeasible is false (3 nodes with
// n=3, for one), Claim returns those owners together with an error
// wrapping ErrTargetN: a warning, since preference lists skip to n distinct
// nodes anyway (Ring.PreflistForPartition). Claim still prefers target_n
// because it keeps every list consecutive, and consecutive lists do not
// change when ownership changes. With fewer nodes than n there is no error:
// a preference list simply cannot name n distinct nodes then. Other errors
// (ErrInvalidQ, ErrInvalidN, ErrInvalidNodes, ErrInvalidOwners) return nil
// owners.
//
// Figures, measured on striped rings and random join/leave histories, as
// moves per partition the plain lower bound (unowned partitions plus those
// above target) says must move:
//   - a join of one node to a striped ring moves exactly the lower bound,
//     floor(q/(m+1)), all onto the new node; after random histories, within
//     1/16 of it (whenever the spread window stays the same);
//   - a leave moves 1x to 2x; on rings of at most 8 partitions an
//     exhaustive search never beats Claim by more than one move;
//   - a leave to few nodes for the window, when a hole's 2(w-1) neighbours
//     can cover every remaining node (n=4 down to 5-7 nodes, n=5 down to
//     6-9), moves up to 7x: no node fits in a hole, and even an exact
//     search on small rings needs about 2.7x there. From 5 to 4 nodes with
//     n=3 an exact dynamic program (see paced) brings it to 2x;
//   - a change of spread window relays the ring: from 4 to 3 nodes with
//     n=3 about 3x, as the best 3-node layout differs from any 4-node one
//     almost everywhere.
func Claim(q, n int, nodes []NodeID, prev []NodeID) ([]NodeID, error) {
	if err := CheckQ(q); err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, fmt.Errorf("%w: n=%d (want >= 1)", ErrInvalidN, n)
	}
	sorted, err := sortedNodes(nodes)
	if err != nil {
		return nil, err
	}
	if prev != nil && len(prev) != q {
		return nil, fmt.Errorf("%w: prev has %d partitions, want q=%d", ErrInvalidOwners, len(prev), q)
	}
	c := newClaimer(q, n, sorted, prev)
	own := c.claim()
	out := make([]NodeID, q)
	for i, x := range own {
		out[i] = sorted[x]
	}
	m := len(sorted)
	// INVARIANT: fresh() is clean for v and claim() never prefers a
	// layout that is lexicographically worse.
	if v := SpreadWindow(q, n, m); !c.clean(own, v) {
		panic(fmt.Sprintf("ring: claim broke the spread window %d: q=%d n=%d nodes=%d", v, q, n, m))
	}
	if m >= min(n, q) && !TargetNFeasible(q, n, m) {
		return out, fmt.Errorf("%w: q=%d n=%d nodes=%d (needs nodes*floor(q/n) >= q)", ErrTargetN, q, n, m)
	}
	return out, nil
}

// SpreadWindow returns the v that Claim guarantees for q partitions, replica
// count n and the given number of nodes: every v consecutive partitions are
// on v distinct nodes. It is the largest v <= min(n, nodes) with
// TargetNFeasible(q, v, nodes) (and at least 1).
func SpreadWindow(q, n, nodes int) int {
	v := min(n, nodes, q)
	for v > 1 && !TargetNFeasible(q, v, nodes) {
		v--
	}
	return max(v, 1)
}

// sortedNodes validates nodes and returns a sorted copy.
func sortedNodes(nodes []NodeID) ([]NodeID, error) {
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%w: no nodes", ErrInvalidNodes)
	}
	s := slices.Clone(nodes)
	slices.Sort(s)
	for i, x := range s {
		if x == "" {
			return nil, fmt.Errorf("%w: empty node id", ErrInvalidNodes)
		}
		if i > 0 && s[i-1] == x {
			return nil, fmt.Errorf("%w: duplicate node %q", ErrInvalidNodes, x)
		}
	}
	return s, nil
}

// claimer holds one Claim computation. Nodes are indices into the sorted
// node list; -1 marks an unowned partition.
//
// Placement quality is a penalty: the number of same-node pairs of
// partitions at each ring distance d < w, compared lexicographically from
// d = 1 (see penalty). Zero means every w consecutive partitions are on
// distinct nodes; when that is impossible, the best effort first keeps
// copies off neighbouring partitions, then off partitions two apart, and so
// on. Local search scores a change with weight[d] = 9^(w-1-d) per pair,
// which orders changes the same way, since one swap changes at most four
// pairs at each distance.
type claimer struct {
	q, m, w int
	weight  []int   // index d in [1, w)
	prev    []int32 // nil without prev
	target  []int   // partitions each node ends with
}

func newClaimer(q, n int, nodes []NodeID, prev []NodeID) *claimer {
	m := len(nodes)
	c := &claimer{q: q, m: m, w: min(n, m, q)}
	c.weight = make([]int, c.w)
	// Saturates (n > ~18) so that sums of 4*w weights cannot overflow.
	limit := math.MaxInt64 / 9 / (8 * c.w)
	for d, wt := c.w-1, 1; d >= 1; d-- {
		c.weight[d] = wt
		wt = min(9*wt, limit)
	}
	prevCount := make([]int, m)
	if prev != nil {
		index := make(map[NodeID]int32, m)
		for i, x := range nodes {
			index[x] = int32(i)
		}
		c.prev = make([]int32, q)
		for p, o := range prev {
			x, ok := index[o]
			if !ok {
				x = -1
			} else {
				prevCount[x]++
			}
			c.prev[p] = x
		}
	}
	// Balanced targets; the extra partitions go to the nodes that hold most
	// now (then to the lowest ids), which keeps the moves needed lowest.
	base, extra := q/m, q%m
	order := make([]int, m)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(prevCount[b], prevCount[a]) })
	c.target = make([]int, m)
	for k, x := range order {
		c.target[x] = base
		if k < extra {
			c.target[x]++
		}
	}
	return c
}

// claim returns the owner of every partition.
func (c *claimer) claim() []int32 {
	fresh := c.fresh()
	if c.prev == nil {
		return fresh
	}
	best := c.settle(c.prev)
	consider := func(cand []int32) {
		if d := slices.Compare(c.penalty(cand), c.penalty(best)); d < 0 || d == 0 && c.moves(cand) < c.moves(best) {
			best = cand
		}
	}
	if !c.clean(best, c.w) || c.moves(best) > c.minMoves() {
		if TargetNFeasible(c.q, c.w, c.m) {
			if p := c.paced(); p != nil {
				consider(p)
			}
		}
		consider(c.align(fresh))
	}
	return best
}

// minMoves is a lower bound on the moves from prev: unowned partitions plus
// the partitions nodes hold above their target.
func (c *claimer) minMoves() int {
	count := make([]int, c.m)
	lb := 0
	for _, x := range c.prev {
		if x < 0 {
			lb++
		} else {
			count[x]++
		}
	}
	for x, n := range count {
		lb += max(0, n-c.target[x])
	}
	return lb
}

// penalty returns, for d = 1 .. w-1, the number of partitions i whose
// owner also owns partition i+d (mod q). Compare with slices.Compare.
func (c *claimer) penalty(own []int32) []int {
	q := c.q
	pairs := make([]int, c.w)
	for i, x := range own {
		for d := 1; d < c.w; d++ {
			if x >= 0 && own[(i+d)%q] == x {
				pairs[d]++
			}
		}
	}
	return pairs[1:]
}

// clean reports whether every v consecutive partitions of own (v <= w)
// have distinct owners.
func (c *claimer) clean(own []int32, v int) bool {
	for d, n := range c.penalty(own) {
		if d+1 < v && n > 0 {
			return false
		}
	}
	return true
}

// posCost returns the penalty of the pairs that include partition i.
func (c *claimer) posCost(own []int32, i int) int {
	x := own[i]
	if x < 0 {
		return 0
	}
	q, cost := c.q, 0
	for d := 1; d < c.w; d++ {
		j, k := i+d, i-d
		if j >= q {
			j -= q
		}
		if k < 0 {
			k += q
		}
		if own[j] == x {
			cost += c.weight[d]
		}
		if own[k] == x {
			cost += c.weight[d]
		}
	}
	return cost
}

// fits reports whether node x may own partition i without another copy of
// x within distance w-1.
func (c *claimer) fits(own []int32, x int32, i int) bool {
	q := c.q
	for d := 1; d < c.w; d++ {
		j, k := i+d, i-d
		if j >= q {
			j -= q
		}
		if k < 0 {
			k += q
		}
		if own[j] == x || own[k] == x {
			return false
		}
	}
	return true
}

// moves counts the partitions whose owner differs from prev.
func (c *claimer) moves(own []int32) int {
	n := 0
	for i, x := range own {
		if c.prev[i] != x {
			n++
		}
	}
	return n
}

// fresh lays out the targets with no regard to prev: a diagonal stripe
// (node k at partitions k, k+m, k+2m, ...) when its wrap-around is clean,
// otherwise the column layout that is valid whenever the spread is
// feasible. When it is not, the better after local search of the stripe
// and the column layout for the widest window v < w that is feasible (local
// search never lets pairs closer than v appear, so that one stays clean for
// v).
func (c *claimer) fresh() []int32 {
	q, m, w := c.q, c.m, c.w
	// Stripe: the nodes with the extra partition first, so that the first
	// q%m stripe positions (the ones that get one more copy) are theirs.
	order := make([]int32, 0, m)
	for x := range m {
		if c.target[x] > q/m {
			order = append(order, int32(x))
		}
	}
	for x := range m {
		if c.target[x] == q/m {
			order = append(order, int32(x))
		}
	}
	own := make([]int32, q)
	for i := range own {
		own[i] = order[i%m]
	}
	if c.clean(own, w) {
		return own
	}
	if TargetNFeasible(q, w, m) {
		return c.columns(w)
	}
	c.improve(own, 64*q*w+1<<16)
	if v := SpreadWindow(q, w, m); v > 1 && !c.clean(own, v) {
		cols := c.columns(v)
		c.improve(cols, 64*q*w+1<<16)
		if slices.Compare(c.penalty(cols), c.penalty(own)) < 0 {
			own = cols
		}
	}
	return own
}

// columns builds a layout where every w consecutive partitions are
// distinct, given that no node's target exceeds k = floor(q/w)
// (TargetNFeasible(q, w, m)).
//
// The ring is cut into k rows of L = floor(q/k) >= w partitions, the first
// q%k rows one longer. Cells are filled column by column (column 0 of every
// row, then column 1, ...), each node's copies consecutively, nodes in
// descending target order. Then:
//   - a node never has two copies in one row, and copies in consecutive
//     rows of one column are a full row (>= w) apart;
//   - nodes with exactly k copies come first and fill whole columns (there
//     are at most L of them, as they hold k each of the q = kL+q%k cells);
//   - any other node that runs from the bottom of column c into the top of
//     column c+1 ends at row b-1 of c+1 and restarts at row a >= b+1 of c,
//     so those copies are at least two rows minus one cell apart (>= 2w-1);
//   - across the wrap, a node is at least one row apart from itself.
func (c *claimer) columns(w int) []int32 {
	q := c.q
	k := q / w
	L, long := q/k, q%k
	rowStart := make([]int, k)
	for row := 1; row < k; row++ {
		rowStart[row] = rowStart[row-1] + L
		if row-1 < long {
			rowStart[row]++
		}
	}
	order := make([]int32, c.m)
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int { return cmp.Compare(c.target[b], c.target[a]) })
	own := make([]int32, q)
	col, row := 0, 0
	for _, x := range order {
		for range c.target[x] {
			own[rowStart[row]+col] = x
			row++
			if row == k || col == L && row == long {
				row, col = 0, col+1
			}
		}
	}
	return own
}

// align relabels and rotates a fresh layout to keep as many partitions as
// it can on their prev owners. Labels are only exchanged between nodes with
// equal targets, so balance is kept.
func (c *claimer) align(fresh []int32) []int32 {
	q, m := c.q, c.m
	step := max(1, q/64)
	type pair struct {
		from, to int32
		n        int
	}
	counts := make(map[[2]int32]int)
	bestScore, bestRot := -1, 0
	var bestMap []int32
	var pairs []pair
	for rot := 0; rot < q; rot += step {
		clear(counts)
		for i := range q {
			if p := c.prev[i]; p >= 0 {
				counts[[2]int32{fresh[(i+rot)%q], p}]++
			}
		}
		pairs = pairs[:0]
		for k, n := range counts {
			if c.target[k[0]] == c.target[k[1]] {
				pairs = append(pairs, pair{k[0], k[1], n})
			}
		}
		slices.SortFunc(pairs, func(a, b pair) int {
			return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.from, b.from), cmp.Compare(a.to, b.to))
		})
		relabel := make([]int32, m)
		taken := make([]bool, m)
		for i := range relabel {
			relabel[i] = -1
		}
		score := 0
		for _, p := range pairs {
			if relabel[p.from] < 0 && !taken[p.to] {
				relabel[p.from], taken[p.to] = p.to, true
				score += p.n
			}
		}
		for x := range relabel {
			if relabel[x] >= 0 {
				continue
			}
			for y := range m {
				if !taken[y] && c.target[y] == c.target[x] {
					relabel[x], taken[y] = int32(y), true
					break
				}
			}
		}
		if score > bestScore {
			bestScore, bestRot, bestMap = score, rot, relabel
		}
	}
	own := make([]int32, q)
	for i := range own {
		own[i] = bestMap[fresh[(i+bestRot)%q]]
	}
	return own
}
