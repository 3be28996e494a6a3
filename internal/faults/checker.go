package faults

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// The checker: pure functions over a recorded history and the reads taken after the cluster quiesced.

// FinalRead is one read of a key after quiescence: a normal get through a node, or one replica read
// directly (vnode_get).
type FinalRead struct {
	Source string   // "get@n1", "replica n2/p17", ...
	Key    string   //
	Values [][]byte // live siblings; empty when the key was not found
	Err    string   // the read failed (its Values say nothing)
}

// ElemRef is one element of a set, with the operation that wrote it.
type ElemRef struct {
	Key  string
	Elem string
	Op   *Op // nil for an element no operation of the history wrote
}

func (e ElemRef) String() string {
	if e.Op == nil {
		return fmt.Sprintf("%s/%s (never written)", e.Key, e.Elem)
	}
	return fmt.Sprintf("%s/%s (%s via %s at %s, %s%s)", e.Key, e.Elem, e.Op.Kind, e.Op.Node,
		e.Op.Invoke.Format("15:04:05.000"), e.Op.Outcome, map[bool]string{true: ", context-less"}[e.Op.Blind])
}

// StaleRead is a final read that misses acknowledged elements that other reads have.
type StaleRead struct {
	Source  string
	Key     string
	Missing int
	Example string
}

// SetReport is the verdict on a set workload (rpc-rmw, mc-cas, mc-add).
type SetReport struct {
	Keys int // keys written
	// Acked, Indeterminate and Failed count the elements by their write's outcome.
	Acked, Indeterminate, Failed int
	// IndeterminatePresent: indeterminate elements found in the final state (they were applied).
	IndeterminatePresent int
	// Lost: acknowledged elements in no final read of their key (the union of every node's get and every
	// replica). Must be empty.
	Lost []ElemRef
	// Unexpected: elements in a final read that no operation of the history sent, or whose write the
	// server refused (a definite Fail). Must be empty.
	Unexpected []ElemRef
	// Stale: final reads (after quiescence) that miss acknowledged elements the union holds.
	Stale []StaleRead
	// BlindWrites counts the context-less writes sent per key (a write after a miss).
	BlindWrites map[string]int
	// ReadErrors lists final reads that failed.
	ReadErrors []string
}

// CheckSets checks the set workloads of ops (kinds rpc-rmw, mc-cas and mc-add; others are ignored)
// against the final reads: every acknowledged element must be in the final state, every element there
// must have been sent.
func CheckSets(ops []Op, finals []FinalRead) SetReport {
	r := SetReport{BlindWrites: map[string]int{}}
	byElem := map[[2]string]*Op{} // (key, elem) → the op that wrote it
	keys := map[string]bool{}
	for i := range ops {
		op := &ops[i]
		if !isSetKind(op.Kind) {
			continue
		}
		keys[op.Key] = true
		byElem[[2]string{op.Key, op.Elem}] = op
		if op.Sent && op.Blind {
			r.BlindWrites[op.Key]++
		}
		switch {
		case op.Outcome == OK && op.Sent:
			r.Acked++
		case op.Outcome == Indeterminate && op.Sent:
			r.Indeterminate++
		default:
			r.Failed++
		}
	}
	r.Keys = len(keys)

	union := map[string]map[string]bool{} // key → elements in any final read
	perRead := make([]map[string]bool, len(finals))
	for i, f := range finals {
		if !keys[f.Key] {
			continue
		}
		if f.Err != "" {
			r.ReadErrors = append(r.ReadErrors, fmt.Sprintf("%s %s: %s", f.Source, f.Key, f.Err))
			continue
		}
		if union[f.Key] == nil {
			union[f.Key] = map[string]bool{}
		}
		perRead[i] = map[string]bool{}
		for _, e := range UnionValues(f.Values) {
			union[f.Key][e] = true
			perRead[i][e] = true
		}
	}

	var ackedKeys []string
	for k := range keys {
		ackedKeys = append(ackedKeys, k)
	}
	sort.Strings(ackedKeys)
	for _, k := range ackedKeys {
		for _, e := range sortedSet(union[k]) {
			op := byElem[[2]string{k, e}]
			switch {
			case op == nil || !op.Sent || op.Outcome == Fail:
				// Never sent, or refused by the server (EXISTS, NOT_STORED, overload): it must not exist.
				r.Unexpected = append(r.Unexpected, ElemRef{Key: k, Elem: e, Op: op})
			case op.Outcome == Indeterminate:
				r.IndeterminatePresent++
			}
		}
	}
	for i := range ops {
		op := &ops[i]
		if isSetKind(op.Kind) && op.Outcome == OK && op.Sent && !union[op.Key][op.Elem] {
			r.Lost = append(r.Lost, ElemRef{Key: op.Key, Elem: op.Elem, Op: op})
		}
	}
	sortRefs(r.Lost)
	sortRefs(r.Unexpected)

	for i, f := range finals {
		if perRead[i] == nil {
			continue
		}
		missing, example := 0, ""
		for j := range ops {
			op := &ops[j]
			if op.Key == f.Key && isSetKind(op.Kind) && op.Outcome == OK && op.Sent && union[op.Key][op.Elem] && !perRead[i][op.Elem] {
				if missing == 0 {
					example = op.Elem
				}
				missing++
			}
		}
		if missing > 0 {
			r.Stale = append(r.Stale, StaleRead{Source: f.Source, Key: f.Key, Missing: missing, Example: example})
		}
	}
	sort.Slice(r.Stale, func(i, j int) bool {
		a, b := r.Stale[i], r.Stale[j]
		return a.Key < b.Key || a.Key == b.Key && a.Source < b.Source
	})
	sort.Strings(r.ReadErrors)
	return r
}

func isSetKind(k Kind) bool { return k == RPCReadModifyWrite || k == MemcacheCas || k == MemcacheAdd }

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for e := range m {
		out = append(out, e)
	}
	sort.Strings(out)
	return out
}

func sortRefs(rs []ElemRef) {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Key < rs[j].Key || rs[i].Key == rs[j].Key && rs[i].Elem < rs[j].Elem })
}

// LostByKey summarises the lost elements by key: how many keys lost elements, how many of those keys had
// context-less writes (a write without context after a miss may supersede what the coordinating replica
// holds: the suspect in a loss), and the first few keys.
func (r SetReport) LostByKey() string {
	if len(r.Lost) == 0 {
		return ""
	}
	counts := map[string]int{}
	for _, l := range r.Lost {
		counts[l.Key]++
	}
	keys := sortedKeys(counts)
	blind := 0
	var parts []string
	for i, k := range keys {
		if r.BlindWrites[k] > 0 {
			blind++
		}
		if i < 5 {
			parts = append(parts, fmt.Sprintf("%s: %d lost, %d context-less writes", k, counts[k], r.BlindWrites[k]))
		}
	}
	if len(keys) > 5 {
		parts = append(parts, "...")
	}
	return fmt.Sprintf("%d lost on %d keys, %d of those keys had context-less writes (%s)", len(r.Lost), len(keys), blind,
		strings.Join(parts, "; "))
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// --- replicas -------------------------------------------------------------------------------------------

// ReplicaRead is one primary replica of a key read directly (vnode_get on the node that owns it).
type ReplicaRead struct {
	Key       string
	Node      string
	Partition int
	Found     bool
	Values    [][]byte
	Context   []byte
	Err       string
}

// DifferingKeys lists the keys whose replicas are not all identical: same found-ness, the same sibling
// values (as a multiset) and the same context. A failed read counts as a difference. Sorted.
func DifferingKeys(reads []ReplicaRead) []string {
	first := map[string]*ReplicaRead{}
	differ := map[string]bool{}
	for i := range reads {
		r := &reads[i]
		if r.Err != "" {
			differ[r.Key] = true
			continue
		}
		f := first[r.Key]
		if f == nil {
			first[r.Key] = r
			continue
		}
		if !sameReplica(f, r) {
			differ[r.Key] = true
		}
	}
	if len(differ) == 0 {
		return nil
	}
	return sortedKeys(differ)
}

func sameReplica(a, b *ReplicaRead) bool {
	if a.Found != b.Found || !bytes.Equal(a.Context, b.Context) || len(a.Values) != len(b.Values) {
		return false
	}
	as, bs := sortedValues(a.Values), sortedValues(b.Values)
	for i := range as {
		if !bytes.Equal(as[i], bs[i]) {
			return false
		}
	}
	return true
}

func sortedValues(vs [][]byte) [][]byte {
	out := slices.Clone(vs)
	slices.SortFunc(out, bytes.Compare)
	return out
}

// --- availability ----------------------------------------------------------------------------------------

// Side is a group of nodes whose requests are counted together (one side of a partition, a killed node).
type Side struct {
	Name  string
	Nodes []string
}

// Avail is the availability of one side over a window.
type Avail struct {
	Side                           string
	Ops, OK, Fail, Indet, Answered int
}

// Ratio is Answered/Ops (1 when there were no ops, so an empty window cannot pass a bound by accident:
// check Ops too).
func (a Avail) Ratio() float64 {
	if a.Ops == 0 {
		return 1
	}
	return float64(a.Answered) / float64(a.Ops)
}

func (a Avail) String() string {
	return fmt.Sprintf("%s: %d ops, %d ok, %d fail, %d indeterminate, %.1f%% answered", a.Side, a.Ops, a.OK, a.Fail,
		a.Indet, 100*a.Ratio())
}

// Availability counts, per side, the operations sent to its nodes that were invoked in [from, to).
// An operation is answered when the server gave a definite answer (Op.Answered).
func Availability(ops []Op, sides []Side, from, to time.Time) []Avail {
	out := make([]Avail, len(sides))
	for i, s := range sides {
		out[i].Side = s.Name
	}
	for _, op := range ops {
		if op.Invoke.Before(from) || !op.Invoke.Before(to) {
			continue
		}
		for i, s := range sides {
			if !slices.Contains(s.Nodes, op.Node) {
				continue
			}
			a := &out[i]
			a.Ops++
			switch op.Outcome {
			case OK:
				a.OK++
			case Fail:
				a.Fail++
			default:
				a.Indet++
			}
			if op.Answered {
				a.Answered++
			}
		}
	}
	return out
}

// Counts are the outcomes of one kind of operation.
type Counts struct {
	Kind                         Kind
	Ops, OK, Fail, Indeterminate int
}

// CountByKind counts outcomes per kind, in the order kinds first appear.
func CountByKind(ops []Op) []Counts {
	var out []Counts
	idx := map[Kind]int{}
	for _, op := range ops {
		i, ok := idx[op.Kind]
		if !ok {
			i = len(out)
			idx[op.Kind] = i
			out = append(out, Counts{Kind: op.Kind})
		}
		c := &out[i]
		c.Ops++
		switch op.Outcome {
		case OK:
			c.OK++
		case Fail:
			c.Fail++
		default:
			c.Indeterminate++
		}
	}
	return out
}
