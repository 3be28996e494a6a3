package counter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
)

// The PN-counter: a state-based CRDT (Shapiro, Preguiça, Baquero, Zawirski, "A comprehensive study of
// Convergent and Commutative Replicated Data Types", 2011, §3.1.2). Every actor (a vnode incarnation) keeps
// two grow-only totals, P of its increments and N of its decrements; only that actor ever raises its own
// entries, so the largest value seen of an entry is the newest. Merge takes the pointwise maximum of every
// entry, which is commutative, associative and idempotent: replicas converge whatever the order, number and
// duplication of merges (replication, read repair, handoff, re-homing). The value is sum(P) - sum(N).
//
// INVARIANT: a State's entries are sorted by Actor, actors are unique and non-empty, and every P and N is at
// most math.MaxInt64. States are values: no function here modifies a State it was given.

// Limits of a State.
const (
	// MaxBy bounds one increment: |by| < 2^53, the integers a float64 (a JavaScript client's number) holds
	// exactly.
	MaxBy = 1<<53 - 1
	// MaxActors is how many actors Add lets one counter have: one per vnode incarnation that ever
	// coordinated an increment of it (a node's vnode of a partition, until its data is dropped).
	MaxActors = 1024
	// maxDecodeActors bounds a decoded state: merges of states that each stayed within MaxActors may exceed
	// it, never by this much in a real cluster.
	maxDecodeActors = 4 * MaxActors
	// MaxActorLen bounds an actor id (node/partition/epoch).
	MaxActorLen = 255
)

// Errors of the counter's state.
var (
	ErrOutOfRange    = errors.New("counter: value out of the int64 range")
	ErrBadIncrement  = errors.New("counter: increment out of range: want |by| < 2^53")
	ErrTooManyActors = fmt.Errorf("counter: more than %d actors", MaxActors)
	ErrMalformed     = errors.New("counter: malformed state")
)

// Entry is one actor's totals.
type Entry struct {
	Actor string
	P, N  uint64 // increments and decrements, each at most math.MaxInt64
}

// State is one counter's replica state. The zero State is the counter no one incremented (value 0).
type State struct {
	Entries []Entry
}

// Empty reports whether s holds no entry (nil included).
func (s *State) Empty() bool { return s == nil || len(s.Entries) == 0 }

// Value is sum(P) - sum(N), or ErrOutOfRange when it does not fit an int64 (Add refuses increments that
// would make it so, but merging concurrent increments of different actors can still get there).
func (s *State) Value() (int64, error) {
	if s == nil {
		return 0, nil
	}
	var p, n, c uint64
	for _, e := range s.Entries {
		if p, c = bits.Add64(p, e.P, 0); c != 0 {
			return 0, ErrOutOfRange
		}
		if n, c = bits.Add64(n, e.N, 0); c != 0 {
			return 0, ErrOutOfRange
		}
	}
	if p >= n {
		if d := p - n; d <= math.MaxInt64 {
			return int64(d), nil
		}
		return 0, ErrOutOfRange
	}
	if d := n - p; d <= 1<<63 {
		return int64(-d), nil // NB: -(1<<63) as uint64 negated wraps to math.MinInt64, which is right
	}
	return 0, ErrOutOfRange
}

// Add returns s with by added to actor's entry (to P when by >= 0, to N when by < 0). It refuses an
// increment out of ±MaxBy, one that would take an entry past math.MaxInt64 or the value out of the int64
// range, and a new actor past MaxActors.
func (s *State) Add(actor string, by int64) (*State, error) {
	if by > MaxBy || by < -MaxBy {
		return nil, ErrBadIncrement
	}
	if actor == "" || len(actor) > MaxActorLen {
		return nil, fmt.Errorf("counter: actor id of %d bytes", len(actor))
	}
	var old []Entry
	if s != nil {
		old = s.Entries
	}
	i, found := slices.BinarySearchFunc(old, actor, func(e Entry, a string) int { return strings.Compare(e.Actor, a) })
	if !found && len(old) >= MaxActors {
		return nil, ErrTooManyActors
	}
	out := &State{Entries: make([]Entry, 0, len(old)+1)}
	out.Entries = append(out.Entries, old[:i]...)
	e := Entry{Actor: actor}
	if found {
		e = old[i]
	}
	if by >= 0 {
		e.P += uint64(by)
		if e.P > math.MaxInt64 {
			return nil, ErrOutOfRange
		}
	} else {
		e.N += uint64(-by)
		if e.N > math.MaxInt64 {
			return nil, ErrOutOfRange
		}
	}
	out.Entries = append(out.Entries, e)
	if found {
		i++
	}
	out.Entries = append(out.Entries, old[i:]...)
	if _, err := out.Value(); err != nil {
		return nil, err
	}
	return out, nil
}

// Merge is the pointwise maximum of a's and b's entries (nil is the empty state). It returns a or b itself
// when that one already holds the merge.
func Merge(a, b *State) *State {
	switch {
	case b.Empty():
		return a
	case a.Empty():
		return b
	}
	ae, be := a.Entries, b.Entries
	out := make([]Entry, 0, max(len(ae), len(be)))
	aWins, bWins := true, true // a (b) holds the merge
	i, j := 0, 0
	for i < len(ae) || j < len(be) {
		var c int
		switch {
		case i == len(ae):
			c = 1
		case j == len(be):
			c = -1
		default:
			c = strings.Compare(ae[i].Actor, be[j].Actor)
		}
		switch {
		case c < 0:
			out = append(out, ae[i])
			bWins = false
			i++
		case c > 0:
			out = append(out, be[j])
			aWins = false
			j++
		default:
			e := Entry{Actor: ae[i].Actor, P: max(ae[i].P, be[j].P), N: max(ae[i].N, be[j].N)}
			if e != ae[i] {
				aWins = false
			}
			if e != be[j] {
				bWins = false
			}
			out = append(out, e)
			i++
			j++
		}
	}
	switch {
	case aWins:
		return a
	case bWins:
		return b
	}
	return &State{Entries: out}
}

// Equal reports whether a and b hold the same entries (nil equals empty).
func Equal(a, b *State) bool {
	if a.Empty() || b.Empty() {
		return a.Empty() && b.Empty()
	}
	return slices.Equal(a.Entries, b.Entries)
}

// Covers reports whether a holds every increment b holds (Merge(a, b) equals a).
func Covers(a, b *State) bool { return Equal(Merge(a, b), a) }

// stateFormat is the first byte of an encoded state.
const stateFormat = 1

// MarshalBinary encodes s: format byte 1, uvarint entry count, then per entry uvarint actor length, actor,
// uvarint P, uvarint N. Entries are in actor order, so equal states encode to equal bytes.
func (s *State) MarshalBinary() ([]byte, error) {
	if s == nil {
		return []byte{stateFormat, 0}, nil
	}
	n := 2
	for _, e := range s.Entries {
		n += 1 + len(e.Actor) + 2*binary.MaxVarintLen64
	}
	out := make([]byte, 0, n)
	out = append(out, stateFormat)
	out = binary.AppendUvarint(out, uint64(len(s.Entries)))
	for _, e := range s.Entries {
		out = binary.AppendUvarint(out, uint64(len(e.Actor)))
		out = append(out, e.Actor...)
		out = binary.AppendUvarint(out, e.P)
		out = binary.AppendUvarint(out, e.N)
	}
	return out, nil
}

// UnmarshalState decodes what MarshalBinary encoded, checking every invariant of a State and every length
// against the bytes present, so bytes from another node or from disk can never make it allocate more than
// they are long or build an invalid state.
func UnmarshalState(b []byte) (*State, error) {
	if len(b) < 2 || b[0] != stateFormat {
		return nil, fmt.Errorf("%w: format", ErrMalformed)
	}
	b = b[1:]
	count, w := uvarint(b)
	// NB: an entry takes at least 4 bytes (length, one actor byte, P, N).
	if w <= 0 || count > maxDecodeActors || count > uint64(len(b)-w)/4 {
		return nil, fmt.Errorf("%w: entry count", ErrMalformed)
	}
	b = b[w:]
	s := &State{Entries: make([]Entry, 0, count)}
	for range count {
		l, w := uvarint(b)
		if w <= 0 || l == 0 || l > MaxActorLen || l > uint64(len(b)-w) {
			return nil, fmt.Errorf("%w: actor", ErrMalformed)
		}
		e := Entry{Actor: string(b[w : w+int(l)])}
		b = b[w+int(l):]
		var w2 int
		if e.P, w2 = uvarint(b); w2 <= 0 || e.P > math.MaxInt64 {
			return nil, fmt.Errorf("%w: P of %q", ErrMalformed, e.Actor)
		}
		b = b[w2:]
		if e.N, w2 = uvarint(b); w2 <= 0 || e.N > math.MaxInt64 {
			return nil, fmt.Errorf("%w: N of %q", ErrMalformed, e.Actor)
		}
		b = b[w2:]
		if k := len(s.Entries); k > 0 && s.Entries[k-1].Actor >= e.Actor {
			return nil, fmt.Errorf("%w: actors out of order", ErrMalformed)
		}
		s.Entries = append(s.Entries, e)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b))
	}
	return s, nil
}

// uvarint is binary.Uvarint that also refuses a non-minimal encoding (a zero last byte), so a state has one
// encoding and equal states are equal bytes (the re-home drop compares stored bytes).
func uvarint(b []byte) (uint64, int) {
	v, w := binary.Uvarint(b)
	if w > 1 && b[w-1] == 0 {
		return 0, 0
	}
	return v, w
}

// UnmarshalBinary replaces s with the state b encodes (UnmarshalState), so a State inside a wire message is
// checked as it arrives.
func (s *State) UnmarshalBinary(b []byte) error {
	d, err := UnmarshalState(b)
	if err != nil {
		return err
	}
	*s = *d
	return nil
}
