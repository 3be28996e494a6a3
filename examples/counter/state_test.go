package counter

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// randomState is a state some actors reached by increments and decrements, drawn from r.
func randomState(r *rand.Rand, actors []string) *State {
	var s *State
	for range r.IntN(12) {
		a := actors[r.IntN(len(actors))]
		by := r.Int64N(2001) - 1000
		next, err := s.Add(a, by)
		if err != nil {
			panic(err)
		}
		s = next
	}
	return s
}

// TestMergeIsASemilattice: merge is commutative, associative and idempotent on random states (and nil is its
// identity), the laws that let replication, read repair, handoff and re-homing merge in any order, any
// number of times.
func TestMergeIsASemilattice(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	actors := []string{"n1/0/aa", "n2/0/bb", "n3/0/cc", "n1/0/dd", "n4/3/ee"}
	for i := range 2000 {
		a, b, c := randomState(r, actors), randomState(r, actors), randomState(r, actors)
		if !Equal(Merge(a, b), Merge(b, a)) {
			t.Fatalf("case %d: not commutative:\n%+v\n%+v", i, a, b)
		}
		if !Equal(Merge(Merge(a, b), c), Merge(a, Merge(b, c))) {
			t.Fatalf("case %d: not associative:\n%+v\n%+v\n%+v", i, a, b, c)
		}
		if !Equal(Merge(a, a), a) || !Equal(Merge(a, nil), a) || !Equal(Merge(nil, a), a) {
			t.Fatalf("case %d: not idempotent, or nil is not the identity: %+v", i, a)
		}
		// The merge covers both sides, and is the least state that does: every entry is one side's.
		m := Merge(a, b)
		if !Covers(m, a) || !Covers(m, b) {
			t.Fatalf("case %d: merge %+v does not cover its inputs", i, m)
		}
		if m.Empty() {
			continue
		}
		for _, e := range m.Entries {
			if !hasEntry(a, e) && !hasEntry(b, e) && !maxOf(a, b, e) {
				t.Fatalf("case %d: entry %+v is no pointwise max", i, e)
			}
		}
	}
}

func entryOf(s *State, actor string) (Entry, bool) {
	if s == nil {
		return Entry{}, false
	}
	for _, e := range s.Entries {
		if e.Actor == actor {
			return e, true
		}
	}
	return Entry{}, false
}

func hasEntry(s *State, e Entry) bool { got, ok := entryOf(s, e.Actor); return ok && got == e }

func maxOf(a, b *State, e Entry) bool {
	ea, _ := entryOf(a, e.Actor)
	eb, _ := entryOf(b, e.Actor)
	return e.P == max(ea.P, eb.P) && e.N == max(ea.N, eb.N)
}

// TestConcurrentIncrementsAddUp: replicas that start from a common state and take increments concurrently,
// each under its own actor, merge (in any order, with repeats) to a value that counts every increment once.
// A max-wins merge of values would keep only the largest replica's.
func TestConcurrentIncrementsAddUp(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 500 {
		base := randomState(r, []string{"a", "b", "c"})
		want, err := base.Value()
		if err != nil {
			t.Fatal(err)
		}
		replicas := []string{"a", "b", "c", "d"}
		states := make([]*State, len(replicas))
		for k := range states {
			states[k] = base
		}
		for range r.IntN(40) {
			k := r.IntN(len(replicas))
			by := r.Int64N(MaxBy/1000) - MaxBy/2000
			next, err := states[k].Add(replicas[k], by)
			if err != nil {
				t.Fatal(err)
			}
			states[k], want = next, want+by
		}
		// Merge all, in a random order, some twice.
		var m *State
		for range 2 * len(states) {
			m = Merge(m, states[r.IntN(len(states))])
		}
		for _, s := range states {
			m = Merge(s, m)
		}
		if got, err := m.Value(); err != nil || got != want {
			t.Fatalf("case %d: merged value %d (%v), want %d", i, got, err, want)
		}
	}
}

func TestAddBounds(t *testing.T) {
	var s *State
	if _, err := s.Add("a", MaxBy+1); !errors.Is(err, ErrBadIncrement) {
		t.Fatalf("by 2^53: %v", err)
	}
	if _, err := s.Add("a", -MaxBy-1); !errors.Is(err, ErrBadIncrement) {
		t.Fatalf("by -2^53: %v", err)
	}
	if _, err := s.Add("", 1); err == nil {
		t.Fatal("an empty actor id was taken")
	}
	// An entry near the top: one more increment would pass MaxInt64.
	top := &State{Entries: []Entry{{Actor: "a", P: math.MaxInt64 - 5}}}
	if _, err := top.Add("a", 6); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("entry past MaxInt64: %v", err)
	}
	if _, err := top.Add("b", 6); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("sum past MaxInt64: %v", err)
	}
	got, err := top.Add("a", 5)
	if v, _ := got.Value(); err != nil || v != math.MaxInt64 {
		t.Fatalf("up to MaxInt64: %d %v", v, err)
	}
	// Down to MinInt64 is in range, one past it is not.
	low := &State{Entries: []Entry{{Actor: "a", N: math.MaxInt64}}}
	got, err = low.Add("b", -1)
	if v, _ := got.Value(); err != nil || v != math.MinInt64 {
		t.Fatalf("down to MinInt64: %d %v", v, err)
	}
	if _, err := got.Add("c", -1); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("past MinInt64: %v", err)
	}
	// Merges of concurrent increments can leave the range; Value says so rather than wrapping.
	m := Merge(&State{Entries: []Entry{{Actor: "a", P: math.MaxInt64}}}, &State{Entries: []Entry{{Actor: "b", P: 1}}})
	if _, err := m.Value(); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("merged past MaxInt64: %v", err)
	}
	// Actors are bounded.
	s = nil
	for i := range MaxActors {
		if s, err = s.Add(fmt.Sprintf("actor%04d", i), 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Add("one-more", 1); !errors.Is(err, ErrTooManyActors) {
		t.Fatalf("actor %d: %v", MaxActors+1, err)
	}
	if _, err := s.Add("actor0001", 1); err != nil {
		t.Fatalf("an existing actor past the bound: %v", err)
	}
}

// TestAddLeavesItsInputAlone: states are values; a replica's stored state is never changed under it.
func TestAddLeavesItsInputAlone(t *testing.T) {
	s := &State{Entries: []Entry{{Actor: "a", P: 1}, {Actor: "c", N: 2}}}
	before, _ := s.MarshalBinary()
	for _, a := range []string{"a", "b", "c", "d"} {
		if _, err := s.Add(a, 7); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Add(a, -7); err != nil {
			t.Fatal(err)
		}
	}
	Merge(s, &State{Entries: []Entry{{Actor: "a", P: 9}, {Actor: "b", P: 1}}})
	if after, _ := s.MarshalBinary(); !bytes.Equal(before, after) {
		t.Fatal("Add or Merge modified its input")
	}
}

func TestStateEncodingRoundTrips(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 500 {
		s := randomState(r, []string{"n1/3/0011223344556677", "n2/3/8899aabbccddeeff", "x"})
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalState(b)
		if err != nil || !Equal(got, s) {
			t.Fatalf("round trip of %+v: %+v %v", s, got, err)
		}
		if b2, _ := got.MarshalBinary(); !bytes.Equal(b, b2) {
			t.Fatal("the encoding is not canonical")
		}
	}
}

func TestUnmarshalStateRefusesMalformed(t *testing.T) {
	good, _ := (&State{Entries: []Entry{{Actor: "a", P: 1}, {Actor: "b", N: 2}}}).MarshalBinary()
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"format", append([]byte{2}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing", append(append([]byte{}, good...), 0)},
		{"count past the bytes", []byte{1, 0xff, 0xff, 0x03, 1, 'a', 0, 0}},
		{"out of order", []byte{1, 2, 1, 'b', 0, 0, 1, 'a', 0, 0}},
		{"duplicate actor", []byte{1, 2, 1, 'a', 0, 0, 1, 'a', 0, 0}},
		{"empty actor", []byte{1, 1, 0, 0, 0, 0}},
		{"P past MaxInt64", append([]byte{1, 1, 1, 'a'}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0)},
	} {
		if s, err := UnmarshalState(tc.b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %+v %v, want ErrMalformed", tc.name, s, err)
		}
	}
}

// FuzzUnmarshalState: no input panics or allocates past its length; what decodes re-encodes to itself and
// keeps every invariant.
func FuzzUnmarshalState(f *testing.F) {
	good, _ := (&State{Entries: []Entry{{Actor: "n1/0/ab", P: 5, N: 3}, {Actor: "n2/0/cd", P: 1 << 40}}}).MarshalBinary()
	f.Add(good)
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := UnmarshalState(b)
		if err != nil {
			return
		}
		out, _ := s.MarshalBinary()
		if !bytes.Equal(out, b) {
			t.Fatalf("%x decodes to a state that encodes as %x", b, out)
		}
		for i, e := range s.Entries {
			if e.Actor == "" || e.P > math.MaxInt64 || e.N > math.MaxInt64 || (i > 0 && s.Entries[i-1].Actor >= e.Actor) {
				t.Fatalf("invariant broken: %+v", s.Entries)
			}
		}
		if !Equal(Merge(s, s), s) {
			t.Fatal("merge with itself changed it")
		}
	})
}
