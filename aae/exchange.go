package aae

// Exchange is the comparison of one source's trees on two replicas, as a pure state machine: the shell
// asks both replicas the same Query, gives both answers to Answer, and asks the next Query it returns
// until done. The steps (Tictac's):
//
//	root ──equal──► done (nothing differs)
//	  │ differ
//	  ▼
//	branches ──none differ──► done (the roots differed only by writes in flight)
//	  │ the differing branches B
//	  ▼
//	segments of B ──────────────► S1: the differing segments
//	  ▼
//	segments of S1's branches ──► S2; S = S1 ∩ S2, at most MaxSegments of them  (the repeat rules out
//	  │                                                                         writes in flight)
//	  ▼
//	keys and versions of S ─────► the differing keys ──► done
//
// Each side answers from its own tree at the moment it receives the query, so a write in flight can show
// as a difference once; the repeated segment comparison drops those. What remains differs on both looks:
// the shell repairs those keys (a key written meanwhile is repaired harmlessly: repair merges).
type Exchange struct {
	step        QueryKind
	maxSegments int
	branches    []int
	segments    []int
	res         Outcome
}

// QueryKind is what a Query asks of a replica's tree.
type QueryKind uint8

// Query kinds (append-only: they cross the wire in vnode.AAEQuery).
const (
	QueryRoot     QueryKind = 1 // the root hash
	QueryBranches QueryKind = 2 // every branch hash
	QuerySegments QueryKind = 3 // the segment hashes of Branches
	QueryKeys     QueryKind = 4 // the keys and versions of the items in Segments
	queryDone     QueryKind = 0
)

// Query is one question to both replicas.
type Query struct {
	Kind     QueryKind
	Branches []int // QuerySegments
	Segments []int // QueryKeys, ascending
}

// Answer is one replica's answer to a Query (the field the kind asks for).
type Answer struct {
	Root     uint64
	Branches []uint64
	Segments []uint64     // SegmentsPerBranch per branch asked, in order
	Keys     []KeyVersion // sorted by key
}

// size is the payload of an answer: 8 bytes a hash, a key's bytes and 8 for its version.
func (a Answer) size() int {
	n := 8 + 8*len(a.Branches) + 8*len(a.Segments)
	for _, k := range a.Keys {
		n += len(k.Key) + 8
	}
	return n
}

// Outcome is what an exchange found.
type Outcome struct {
	// Keys are the keys whose versions differ between the replicas, ascending.
	Keys [][]byte
	// Branches and Segments count the differing branches and (twice-checked) segments.
	Branches, Segments int
	// Truncated: more segments differed than MaxSegments; the rest wait for the next exchange.
	Truncated bool
	// Bytes counts the hashes and keys both answers carried (the exchange's payload, without framing).
	Bytes int
}

// NewExchange starts an exchange that compares at most maxSegments segments' keys (minimum 1).
func NewExchange(maxSegments int) *Exchange {
	return &Exchange{step: QueryRoot, maxSegments: max(1, maxSegments)}
}

// Start is the first query.
func (e *Exchange) Start() Query { return Query{Kind: QueryRoot} }

// Outcome is what the exchange found; complete once Answer reported done.
func (e *Exchange) Outcome() Outcome { return e.res }

// Answer takes both replicas' answers to the last query and returns the next one, or done.
func (e *Exchange) Answer(a, b Answer) (next Query, done bool) {
	e.res.Bytes += a.size() + b.size()
	switch e.step {
	case QueryRoot:
		if a.Root == b.Root {
			return e.finish()
		}
		e.step = QueryBranches
		return Query{Kind: QueryBranches}, false
	case QueryBranches:
		e.branches = DiffBranches(a.Branches, b.Branches)
		e.res.Branches = len(e.branches)
		if len(e.branches) == 0 {
			return e.finish()
		}
		e.step = QuerySegments
		return Query{Kind: QuerySegments, Branches: e.branches}, false
	case QuerySegments:
		s := DiffSegments(e.branches, a.Segments, b.Segments)
		if e.segments != nil {
			// The repeat: keep what differed both times.
			e.segments = Intersect(e.segments, s)
			if len(e.segments) > e.maxSegments {
				e.segments, e.res.Truncated = e.segments[:e.maxSegments], true
			}
			e.res.Segments = len(e.segments)
			if len(e.segments) == 0 {
				return e.finish()
			}
			e.step = QueryKeys
			return Query{Kind: QueryKeys, Segments: e.segments}, false
		}
		if len(s) == 0 {
			return e.finish()
		}
		e.segments = s
		e.branches = branchesOf(s)
		return Query{Kind: QuerySegments, Branches: e.branches}, false
	case QueryKeys:
		e.res.Keys = DiffKeys(a.Keys, b.Keys)
		return e.finish()
	}
	return e.finish()
}

func (e *Exchange) finish() (Query, bool) {
	e.step = queryDone
	return Query{}, true
}

// branchesOf lists, ascending, the branches of ascending segments ss.
func branchesOf(ss []int) []int {
	var out []int
	for _, s := range ss {
		if b := BranchOf(s); len(out) == 0 || out[len(out)-1] != b {
			out = append(out, b)
		}
	}
	return out
}

// AnswerFrom answers q from tree t; keys (QueryKeys) come from the shell's segment fold.
func AnswerFrom(t *Tree, q Query) Answer {
	switch q.Kind {
	case QueryRoot:
		return Answer{Root: t.Root()}
	case QueryBranches:
		return Answer{Branches: t.Branches()}
	case QuerySegments:
		return Answer{Segments: t.SegmentsOf(q.Branches)}
	}
	return Answer{}
}
