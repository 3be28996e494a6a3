package ring

import (
	"math"
	"slices"
)

// The dynamic program of this file lays the ring out partition by
// partition, keeping every w consecutive partitions distinct and changing
// as few partitions from prev as possible. It serves leaves where local
// repair does worst: a hole whose 2(w-1) neighbours cover every other node
// (a leave from 5 to 4 or 6 to 5 nodes with n=3) can only be filled by
// rearranging neighbours, and those are cases with few nodes, where the
// state space is small. (For n=5 from 8 to 7 nodes it would need far more
// memory than the limits below allow.)

// Limits of the dynamic program: back-pointer tables of one byte per
// (partition, state), and transition steps.
const (
	seqMaxTable = 1 << 22
	seqMaxWork  = 1 << 26
)

// seqSpace holds the tuple part of a state, the ordered owners of the last
// w-1 partitions (distinct nodes, oldest first), and where the run starts.
type seqSpace struct {
	w, m   int
	tuples int
	tuple  []int32 // tuples*(w-1)
	next   []int32 // tuples*m: the tuple after appending x, or -1
	back   []int32 // tuples*m: the tuple before, given the node z it dropped, or -1
	start  int     // partition where the run starts
	first  []int32 // owners of partitions start .. start+w-2, kept from prev
	t0     int32   // tuple of first
	closes []bool  // per tuple: followed by first, every window stays distinct
}

// newSeqSpace returns the tuple space, or nil when it has more than
// maxTuples tuples or prev has no w-1 consecutive distinct owners to start
// from.
func (c *claimer) newSeqSpace(maxTuples int) *seqSpace {
	q, m, w := c.q, c.m, c.w
	if w < 2 || m < w || m > 255 || q < 2*w {
		return nil
	}
	n := 1
	for i := range w - 1 {
		if n *= m - i; n > maxTuples {
			return nil
		}
	}
	// Run from the first place where prev has w-1 distinct owners in a row,
	// and keep those: the layout then goes round the ring and must close up
	// with them.
	start := -1
	for o := 0; o < q && start < 0; o++ {
		ok := true
		for i := range w - 1 {
			x := c.prev[(o+i)%q]
			ok = ok && x >= 0
			for j := range i {
				ok = ok && c.prev[(o+j)%q] != x
			}
		}
		if ok {
			start = o
		}
	}
	if start < 0 {
		return nil
	}
	s := &seqSpace{w: w, m: m, tuples: n, start: start, tuple: make([]int32, 0, n*(w-1))}
	var gen func(prefix []int32)
	gen = func(prefix []int32) {
		if len(prefix) == w-1 {
			s.tuple = append(s.tuple, prefix...)
			return
		}
		for x := range int32(m) {
			if !slices.Contains(prefix, x) {
				gen(append(prefix, x))
			}
		}
	}
	gen(make([]int32, 0, w-1))
	key := func(t []int32) string {
		b := make([]byte, len(t))
		for i, x := range t {
			b[i] = byte(x)
		}
		return string(b)
	}
	id := make(map[string]int32, n)
	for t := range int32(n) {
		id[key(s.at(t))] = t
	}
	s.next = make([]int32, n*m)
	s.back = make([]int32, n*m)
	for t := range int32(n) {
		cur := s.at(t)
		for x := range int32(m) {
			k := int(t)*m + int(x)
			s.next[k], s.back[k] = -1, -1
			if !slices.Contains(cur, x) {
				s.next[k] = id[key(append(slices.Clone(cur[1:]), x))]
			}
			if !slices.Contains(cur[:w-2], x) {
				s.back[k] = id[key(append([]int32{x}, cur[:w-2]...))]
			}
		}
	}
	s.first = make([]int32, w-1)
	for i := range s.first {
		s.first[i] = c.prev[(start+i)%q]
	}
	s.t0 = id[key(s.first)]
	s.closes = make([]bool, n)
	for t := range int32(n) {
		seq := append(slices.Clone(s.at(t)), s.first...)
		s.closes[t] = true
		for i := 1; i < len(seq); i++ {
			for j := max(0, i-w+1); j < i; j++ {
				if seq[i] == seq[j] {
					s.closes[t] = false
				}
			}
		}
	}
	return s
}

// at returns tuple t.
func (s *seqSpace) at(t int32) []int32 {
	return s.tuple[int(t)*(s.w-1) : int(t+1)*(s.w-1)]
}

// pos returns the partition of step k (steps place partitions after first).
func (s *seqSpace) pos(k, q int) int { return (s.start + s.w - 1 + k) % q }

// paced returns the balanced layout with every w consecutive partitions
// distinct that changes fewest partitions from prev among those whose
// running count of each node stays within ±B of an even pace round the
// ring. A state is a tuple plus each node's deviation from its pace (the
// last node's follows from the others, as counts sum to the partitions
// placed): tuples * (2B+1)^(m-1) states. paced takes the largest B in
// [1, 3] within the limits, and returns nil when none fits or no layout
// exists.
func (c *claimer) paced() []int32 {
	q, m, w := c.q, c.m, c.w
	sp := c.newSeqSpace(seqMaxTable / q)
	if sp == nil {
		return nil
	}
	tuples := sp.tuples
	bound, devs := 0, 0
	for b := 3; b >= 1 && bound == 0; b-- {
		d := 1
		for range m - 1 {
			if d *= 2*b + 1; d > seqMaxTable {
				break
			}
		}
		if st := tuples * d; d <= seqMaxTable && st <= seqMaxTable/q && st*(m-w+1) <= seqMaxWork/q {
			bound, devs = b, d
		}
	}
	if bound == 0 {
		return nil
	}
	states := tuples * devs

	// Deviation of node x after k partitions: its count minus
	// floor(k*target/q), in [-bound, bound]. Nodes 0..m-2 are packed base
	// 2*bound+1 (pw of the last node is 0: it is not packed); the last
	// node's is excess(k) minus the sum of the others.
	base := 2*bound + 1
	last := m - 1
	pw := make([]int, m)
	for x := range last {
		pw[x] = 1
		if x > 0 {
			pw[x] = pw[x-1] * base
		}
	}
	dev := func(d, x int) int { return d/pw[x]%base - bound }
	ideal := func(x, k int) int { return k * c.target[x] / q }
	excess := func(k int) int {
		e := k
		for x := range m {
			e -= ideal(x, k)
		}
		return e
	}
	sumDev := make([]int, devs)
	for d := range devs {
		for x := range last {
			sumDev[d] += dev(d, x)
		}
	}
	d0 := 0
	for x := range last {
		cnt := 0
		if slices.Contains(sp.first, int32(x)) {
			cnt = 1
		}
		d0 += (cnt - ideal(x, w-1) + bound) * pw[x]
	}
	if dl := excess(w-1) - sumDev[d0]; dl < -bound || dl > bound {
		return nil
	}
	zero := 0
	for x := range last {
		zero += bound * pw[x]
	}

	const inf = math.MaxInt32
	cost := make([]int32, states)
	nextCost := make([]int32, states)
	for s := range cost {
		cost[s] = inf
	}
	cost[int(sp.t0)*devs+d0] = 0
	steps := q - (w - 1)
	dropped := make([]uint8, steps*states) // per step and state reached
	var inc []int                          // packed nodes whose pace rises this step
	low := make([]int32, devs)             // per deviation: -1 no inc node at -bound, x the one, -2 several
	for k := range steps {
		pos, kk := sp.pos(k, q), w-1+k // kk: partitions placed before this one
		inc = inc[:0]
		shift, lastUp := 0, 0
		for x := range m {
			if ideal(x, kk+1) > ideal(x, kk) {
				if x == last {
					lastUp = 1
					continue
				}
				inc = append(inc, x)
				shift += pw[x]
			}
		}
		exc := excess(kk)
		for d := range devs {
			low[d] = -1
			for _, y := range inc {
				if dev(d, y) == -bound {
					if low[d] == -1 {
						low[d] = int32(y)
					} else {
						low[d] = -2
					}
				}
			}
		}
		for s := range nextCost {
			nextCost[s] = inf
		}
		for s, cs := range cost {
			if cs == inf {
				continue
			}
			t, d := s/devs, s%devs
			if low[d] == -2 {
				continue
			}
			dl := exc - sumDev[d] // the last node's deviation
			for x := range m {
				nt := sp.next[t*m+x]
				if nt < 0 || low[d] >= 0 && low[d] != int32(x) {
					continue
				}
				if x == last {
					if dl+1-lastUp > bound {
						continue
					}
				} else {
					if dl-lastUp < -bound {
						continue
					}
					up := 0
					if slices.Contains(inc, x) {
						up = 1
					}
					if dev(d, x)+1-up > bound {
						continue
					}
				}
				ns := int(nt)*devs + d - shift + pw[x]
				v := cs
				if c.prev[pos] != int32(x) {
					v++
				}
				if v < nextCost[ns] {
					nextCost[ns] = v
					dropped[k*states+ns] = uint8(sp.at(int32(t))[0])
				}
			}
		}
		cost, nextCost = nextCost, cost
	}
	end := -1
	for t := range tuples {
		if s := t*devs + zero; sp.closes[t] && cost[s] < inf && (end < 0 || cost[s] < cost[end]) {
			end = s
		}
	}
	if end < 0 {
		return nil
	}
	own := make([]int32, q)
	for i, x := range sp.first {
		own[(sp.start+i)%q] = x
	}
	for k, s := steps-1, end; k >= 0; k-- {
		t, d := s/devs, s%devs
		x := sp.at(int32(t))[w-2]
		own[sp.pos(k, q)] = x
		kk := w - 1 + k
		for y := range last {
			if ideal(y, kk+1) > ideal(y, kk) {
				d += pw[y]
			}
		}
		d -= pw[x] // 0 for the last node
		s = int(sp.back[t*m+int(dropped[k*states+s])])*devs + d
	}
	return own
}
