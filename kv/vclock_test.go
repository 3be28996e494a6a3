package kv

import (
	"errors"
	"math"
	"math/rand"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// vcParse builds a clock from "actor:counter" or "actor:counter@timestamp" words, e.g. "a:1 b:2@30". The words
// must already be sorted; the result is not validated, so tests can build broken clocks on purpose.
func vcParse(t testing.TB, s string) VClock {
	t.Helper()
	var v VClock
	for _, w := range strings.Fields(s) {
		actor, rest, ok := strings.Cut(w, ":")
		if !ok {
			t.Fatalf("vcParse %q: want actor:counter[@ts]", w)
		}
		cs, ts, _ := strings.Cut(rest, "@")
		c, err := strconv.ParseUint(cs, 10, 64)
		if err != nil {
			t.Fatalf("vcParse %q: %v", w, err)
		}
		e := ClockEntry{Actor: actor, Counter: c}
		if ts != "" {
			if e.Timestamp, err = strconv.ParseInt(ts, 10, 64); err != nil {
				t.Fatalf("vcParse %q: %v", w, err)
			}
		}
		v = append(v, e)
	}
	return v
}

func TestVClockOrder(t *testing.T) {
	tests := []struct {
		v, o                                   string
		descends, dominates, equal, concurrent bool
	}{
		{v: "", o: "", descends: true, equal: true},
		{v: "a:1", o: "", descends: true, dominates: true},
		{v: "", o: "a:1", concurrent: false},
		{v: "a:1", o: "a:1", descends: true, equal: true},
		{v: "a:2", o: "a:1", descends: true, dominates: true},
		{v: "a:1", o: "a:2"},
		{v: "a:1 b:1", o: "a:1", descends: true, dominates: true},
		{v: "a:1", o: "b:1", concurrent: true},
		{v: "a:2 b:1", o: "a:1 b:2", concurrent: true},
		{v: "a:2 b:2 c:1", o: "a:1 c:1", descends: true, dominates: true},
		{v: "a:2 c:1", o: "a:1 b:1 c:1", concurrent: true},
		{v: "b:1", o: "a:1 c:1", concurrent: true},
		{v: "a:1@5", o: "a:1@9", descends: true, equal: true}, // timestamps are ignored
	}
	for _, tc := range tests {
		v, o := vcParse(t, tc.v), vcParse(t, tc.o)
		if got := v.Descends(o); got != tc.descends {
			t.Errorf("[%s].Descends([%s]) = %v, want %v", tc.v, tc.o, got, tc.descends)
		}
		if got := v.Dominates(o); got != tc.dominates {
			t.Errorf("[%s].Dominates([%s]) = %v, want %v", tc.v, tc.o, got, tc.dominates)
		}
		if got := v.Equal(o); got != tc.equal {
			t.Errorf("[%s].Equal([%s]) = %v, want %v", tc.v, tc.o, got, tc.equal)
		}
		if got := v.Concurrent(o); got != tc.concurrent {
			t.Errorf("[%s].Concurrent([%s]) = %v, want %v", tc.v, tc.o, got, tc.concurrent)
		}
	}
}

func TestVClockGetCovers(t *testing.T) {
	v := vcParse(t, "a:3 c:1 node1/17:9")
	tests := []struct {
		actor string
		get   uint64
	}{{"a", 3}, {"b", 0}, {"c", 1}, {"node1/17", 9}, {"", 0}, {"zz", 0}}
	for _, tc := range tests {
		if got := v.Get(tc.actor); got != tc.get {
			t.Errorf("Get(%q) = %d, want %d", tc.actor, got, tc.get)
		}
		for _, c := range []uint64{1, tc.get, tc.get + 1} {
			if got, want := v.Covers(Dot{tc.actor, c}), c <= tc.get; got != want {
				t.Errorf("Covers(%s:%d) = %v, want %v", tc.actor, c, got, want)
			}
		}
	}
}

func TestMergeClocks(t *testing.T) {
	tests := []struct{ a, b, want string }{
		{"", "", ""},
		{"a:1@1", "", "a:1@1"},
		{"", "b:2@2", "b:2@2"},
		{"a:1@1 c:5@5", "b:2@2", "a:1@1 b:2@2 c:5@5"},
		{"a:3@10 b:1@1", "a:2@20 b:4@4", "a:3@10 b:4@4"}, // timestamp follows the larger counter
		{"a:3@10", "a:3@20", "a:3@20"},                   // equal counters: larger timestamp
	}
	for _, tc := range tests {
		a, b := vcParse(t, tc.a), vcParse(t, tc.b)
		a0, b0 := a.Clone(), b.Clone()
		for _, got := range []VClock{MergeClocks(a, b), MergeClocks(b, a)} {
			if want := vcParse(t, tc.want); !reflect.DeepEqual(got, want) {
				t.Errorf("MergeClocks(%s, %s) = %v, want %v", tc.a, tc.b, got, want)
			}
		}
		if !reflect.DeepEqual(a, a0) || !reflect.DeepEqual(b, b0) {
			t.Errorf("MergeClocks mutated its arguments")
		}
	}
	// The result never shares a backing array with an argument.
	a := vcParse(t, "a:1")
	m := MergeClocks(a, nil)
	m[0].Counter = 7
	if a[0].Counter != 1 {
		t.Fatalf("MergeClocks(a, nil) aliases a")
	}
}

func TestMergeClocksProperties(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 2000; i++ {
		a, b, c := vcRandom(rng), vcRandom(rng), vcRandom(rng)
		ab := MergeClocks(a, b)
		if !reflect.DeepEqual(ab, MergeClocks(b, a)) {
			t.Fatalf("not commutative: %v %v", a, b)
		}
		if !reflect.DeepEqual(MergeClocks(ab, c), MergeClocks(a, MergeClocks(b, c))) {
			t.Fatalf("not associative: %v %v %v", a, b, c)
		}
		if !reflect.DeepEqual(MergeClocks(a, a), a.Clone()) {
			t.Fatalf("not idempotent: %v", a)
		}
		if !ab.Descends(a) || !ab.Descends(b) || ab.Validate() != nil {
			t.Fatalf("merge %v of %v and %v is not an upper bound", ab, a, b)
		}
		// Descends agrees with a simple definition.
		want := true
		for _, e := range b {
			want = want && a.Get(e.Actor) >= e.Counter
		}
		if a.Descends(b) != want {
			t.Fatalf("%v.Descends(%v) = %v, want %v", a, b, !want, want)
		}
	}
}

// vcRandom returns a valid clock over actors a..e with small counters.
func vcRandom(rng *rand.Rand) VClock {
	var v VClock
	for _, a := range []string{"a", "b", "c", "d", "e"} {
		if rng.Intn(2) == 0 {
			v = append(v, ClockEntry{Actor: a, Counter: uint64(1 + rng.Intn(4)), Timestamp: int64(rng.Intn(3))})
		}
	}
	return v
}

func TestVClockIncrement(t *testing.T) {
	tests := []struct {
		v, actor string
		want     string
		dot      Dot
	}{
		{"", "b", "b:1@99", Dot{"b", 1}},
		{"a:1@1 c:1@1", "b", "a:1@1 b:1@99 c:1@1", Dot{"b", 1}},
		{"a:1@1 b:4@1", "b", "a:1@1 b:5@99", Dot{"b", 5}},
		{"b:4@1", "a", "a:1@99 b:4@1", Dot{"a", 1}},
	}
	for _, tc := range tests {
		v := vcParse(t, tc.v)
		v0 := v.Clone()
		got, dot := v.Increment(tc.actor, 99)
		if want := vcParse(t, tc.want); !reflect.DeepEqual(got, want) || dot != tc.dot {
			t.Errorf("[%s].Increment(%s) = %v %v, want %v %v", tc.v, tc.actor, got, dot, want, tc.dot)
		}
		if !reflect.DeepEqual(v, v0) {
			t.Errorf("Increment mutated its receiver")
		}
	}
}

func TestVClockValidate(t *testing.T) {
	tests := []struct {
		v   VClock
		err string
	}{
		{nil, ""},
		{VClock{{"a", 1, 0}, {"b", 1, 0}}, ""},
		{VClock{{"", 1, 0}}, "empty actor"},
		{VClock{{"a", 0, 0}}, "zero counter"},
		{VClock{{"b", 1, 0}, {"a", 1, 0}}, "not sorted"},
		{VClock{{"a", 1, 0}, {"a", 2, 0}}, "not sorted"},
	}
	for _, tc := range tests {
		err := tc.v.Validate()
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%v.Validate() = %v, want %q", tc.v, err, tc.err)
		}
	}
}

func TestVClockPrune(t *testing.T) {
	const s = int64(time.Second)
	now := 100_000 * s
	small := PruneConfig{SmallVClock: 2, BigVClock: 3, YoungVClock: 20 * time.Second, OldVClock: 1000 * time.Second}
	// Timestamps are written as seconds before now in the clocks below, converted by ago().
	ago := func(spec string) VClock {
		v := vcParse(t, spec)
		for i := range v {
			v[i].Timestamp = now - v[i].Timestamp*s
		}
		return v
	}
	tests := []struct {
		name string
		v    string
		p    PruneConfig
		want string // entries kept
	}{
		{"at most small: keep even ancient entries", "a:1@99999 b:1@99999", small, "a b"},
		{"oldest younger than young: keep even above big", "a:1@19 b:1@10 c:1@5 d:1@1 e:1@0", small, "a b c d e"},
		{"above big: drop oldest down to big", "a:1@30 b:1@40 c:1@50 d:1@60", small, "a b c"},
		{"above big: stop at a young entry", "a:1@5 b:1@10 c:1@15 d:1@19 e:1@70", small, "a b c d"},
		{"between small and big, oldest older than old: drop it", "a:1@1001 b:1@30 c:1@50", small, "b c"},
		{"between small and big, exactly old: keep", "a:1@1000 b:1@30 c:1@50", small, "a b c"},
		{"between small and big, not old: keep", "a:1@500 b:1@30 c:1@50", small, "a b c"},
		{"exactly young is not young", "a:1@20 b:1@20 c:1@20 d:1@20", small, "b c d"},
		{"old entries go down to small, not further", "a:1@5000 b:1@4000 c:1@3000", small, "b c"},
		{"equal timestamps: drop by actor order", "a:1@30 b:1@30 c:1@30 d:1@30", small, "b c d"},
		{"future timestamps count as young", "a:1@-50 b:1@40 c:1@50 d:1@60", small, "a b c"},
		{"zero config means riak defaults", "a:1@99999 b:1@99999", PruneConfig{}, "a b"},
		{"disabled", "a:1@99999 b:1@99999 c:1@99999 d:1@99999", PruneConfig{SmallVClock: math.MaxInt}, "a b c d"},
		{"empty", "", small, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := ago(tc.v)
			v0 := v.Clone()
			got := v.Prune(now, tc.p)
			var actors []string
			for _, e := range got {
				actors = append(actors, e.Actor)
			}
			if strings.Join(actors, " ") != tc.want {
				t.Errorf("Prune(%s) kept %q, want %q", tc.v, actors, tc.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Prune result invalid: %v", err)
			}
			if !reflect.DeepEqual(v, v0) {
				t.Errorf("Prune mutated its receiver")
			}
		})
	}
}

func TestVClockPruneDefaultsAtScale(t *testing.T) {
	const s = int64(time.Second)
	now := int64(1_700_000_000) * s
	// 60 actors, each incremented one hour apart: with riak's defaults (50/50/20s/1d) the 10 oldest go, then the
	// oldest left (50h old) is older than a day but 50 entries is not above small, so pruning stops.
	var v VClock
	for i := 0; i < 60; i++ {
		v = append(v, ClockEntry{Actor: "node" + strconv.Itoa(100+i) + "/0", Counter: 1, Timestamp: now - int64(60-i)*3600*s})
	}
	got := v.Prune(now, DefaultPruneConfig())
	if len(got) != 50 || got[0].Actor != "node110/0" {
		t.Fatalf("kept %d entries starting at %v, want 50 starting at node110/0", len(got), got[0])
	}
}

func TestPruneConfigValidate(t *testing.T) {
	if err := DefaultPruneConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		p    PruneConfig
		want string
	}{
		{PruneConfig{SmallVClock: -1}, "SmallVClock = -1"},
		{PruneConfig{BigVClock: -2}, "BigVClock = -2"},
		{PruneConfig{YoungVClock: -time.Second}, "YoungVClock = -1s"},
		{PruneConfig{OldVClock: -time.Second}, "OldVClock = -1s"},
	}
	for _, tc := range tests {
		if err := tc.p.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.p, err, tc.want)
		}
	}
}

func TestAgeSaturates(t *testing.T) {
	tests := []struct{ now, ts, want int64 }{
		{100, 40, 60},
		{100, 140, -40},
		{math.MaxInt64, math.MinInt64, math.MaxInt64},
		{math.MinInt64, math.MaxInt64, math.MinInt64},
		{0, math.MinInt64 + 1, math.MaxInt64},
	}
	for _, tc := range tests {
		if got := ageNS(tc.now, tc.ts); got != tc.want {
			t.Errorf("ageNS(%d, %d) = %d, want %d", tc.now, tc.ts, got, tc.want)
		}
	}
}

func TestVClockHash(t *testing.T) {
	// Golden values: the hash is a cas unique handed to clients and must not change between releases.
	golden := []struct {
		v    string
		want uint64
	}{
		{"", 0xefd01f60ba992926},
		{"node1/17:1", 0xd6d0b5e59322e9db},
		{"node1/17:2 node2/3:1", 0xb39a5391bdbfdb78},
	}
	for _, g := range golden {
		got := vcParse(t, g.v).Hash()
		if got != g.want {
			t.Errorf("Hash(%s) = %#x, want %#x (golden)", g.v, got, g.want)
		}
	}
	if vcParse(t, "a:1@5").Hash() != vcParse(t, "a:1@9").Hash() {
		t.Errorf("Hash depends on timestamps")
	}
	// Distinct clocks hash apart, including the ones a naive concatenation would confuse.
	seen := map[uint64]string{}
	for _, s := range []string{"", "a:1", "a:2", "b:1", "a:1 b:1", "ab:1", "a:11", "a:1 b:11", "a:11 b:1", "a:257", "a:1 c:1"} {
		h := vcParse(t, s).Hash()
		if h == 0 {
			t.Errorf("Hash(%s) = 0", s)
		}
		if prev, dup := seen[h]; dup {
			t.Errorf("Hash(%s) == Hash(%s)", s, prev)
		}
		seen[h] = s
	}
}

func TestVClockMarshalRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 500; i++ {
		v := objRandomClock(rng)
		b, err := v.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalVClock(b)
		if err != nil {
			t.Fatalf("UnmarshalVClock(Marshal(%v)): %v", v, err)
		}
		if !reflect.DeepEqual(got, v.Clone()) {
			t.Fatalf("round trip: got %v, want %v", got, v)
		}
		b2, _ := got.MarshalBinary()
		if string(b2) != string(b) {
			t.Fatalf("re-encoding differs")
		}
	}
	if b, _ := VClock(nil).MarshalBinary(); len(b) != 0 {
		t.Fatalf("empty clock encodes as %x, want no bytes", b)
	}
	if v, err := UnmarshalVClock(nil); v != nil || err != nil {
		t.Fatalf("UnmarshalVClock(nil) = %v, %v", v, err)
	}
	if _, err := (VClock{{"b", 1, 0}, {"a", 1, 0}}).MarshalBinary(); err == nil {
		t.Fatalf("MarshalBinary of an unsorted clock succeeded")
	}
}

func TestUnmarshalVClockRejects(t *testing.T) {
	tests := []struct {
		name, hex, want string
	}{
		{"array32 of 4 billion", "ddffffffff", "exceeds limit"},
		{"not an array", "c0", "non-canonical array header"},
		{"wrong arity", "9101", "want a 2-element array"},
		{"unknown format", "920290", "unknown format version 2"},
		{"empty clock", "920190", "zero bytes"},
		{"truncated", "92 01 91 93 a2 6161 01", "truncated"},
		{"trailing bytes", "92019193a1610101c0", "trailing"},
		{"zero counter", "92019193a1610001", "zero counter"},
		{"unsorted", "92019293a162010193a1610101", "not sorted"},
		{"duplicate", "92019293a161010193a1610101", "not sorted"},
		{"empty actor", "92 01 91 93 a0 01 cd0100", "empty actor"},
		{"actor as bin", "92019193c4016101", "want str"},
		{"non-canonical counter", "92019193a161cc0101", "non-canonical unsigned"},
		{"non-canonical str8", "92019193d901610101", "non-canonical str"},
		{"entry arity", "92 01 91 92 a2 6161 01", "want 3 fields"},
		{"huge actor", "92019193db7fffffff", "exceeds limit"},
		{"negative counter", "92019193a161ff01", "non-canonical unsigned"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := UnmarshalVClock(objHex(t, tc.hex))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "kv: decode vclock: ") {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T is not a *DecodeError", err)
			}
		})
	}
}

func BenchmarkMergeClocks(b *testing.B) {
	x := VClock{{"node1/17", 12, 1}, {"node2/17", 3, 1}, {"node3/17", 40, 1}}
	y := VClock{{"node1/17", 10, 1}, {"node3/17", 41, 1}, {"node4/17", 1, 1}}
	b.ReportAllocs()
	for b.Loop() {
		_ = MergeClocks(x, y)
	}
}

func BenchmarkVClockHash(b *testing.B) {
	x := VClock{{"node1/17", 12, 1}, {"node2/17", 3, 1}, {"node3/17", 40, 1}}
	b.ReportAllocs()
	for b.Loop() {
		_ = x.Hash()
	}
}
