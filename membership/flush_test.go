package membership

import (
	"errors"
	"fmt"
	"testing"
)

func TestFlushAfterAndCutoff(t *testing.T) {
	const now = 1_000
	for _, tc := range []struct {
		name    string
		f       Flush
		at, now int64
		want    Flush
	}{
		{"first immediate flush", Flush{}, now, now, Flush{Epoch: now}},
		{"an immediate flush dated in the past", Flush{}, now - 10, now, Flush{Epoch: now - 10}},
		{"epoch only moves forward", Flush{Epoch: now}, now - 5, now, Flush{Epoch: now}},
		{"a later immediate flush", Flush{Epoch: 10}, now, now, Flush{Epoch: now}},
		{"delayed flush keeps the epoch", Flush{Epoch: 10}, now + 50, now, Flush{Epoch: 10, Pending: now + 50}},
		{"the later delayed flush is kept", Flush{Pending: now + 50}, now + 20, now, Flush{Pending: now + 50}},
		{"a later delayed flush replaces", Flush{Pending: now + 20}, now + 50, now, Flush{Pending: now + 50}},
		{"immediate flush under a pending one", Flush{Pending: now + 50}, now, now, Flush{Epoch: now, Pending: now + 50}},
		{"a passed pending flush becomes the epoch", Flush{Epoch: 5, Pending: now - 1}, now + 9, now, Flush{Epoch: now - 1, Pending: now + 9}},
		{"a passed pending flush under a newer immediate one", Flush{Pending: now - 1}, now, now, Flush{Epoch: now}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.f.After(tc.at, tc.now)
			if got != tc.want || !got.Valid() {
				t.Fatalf("%+v.After(%d, %d) = %+v, want %+v", tc.f, tc.at, tc.now, got, tc.want)
			}
		})
	}

	f := Flush{Epoch: 100, Pending: 200}
	for _, c := range []struct{ now, want int64 }{{0, 100}, {199, 100}, {200, 200}, {1 << 40, 200}} {
		if got := f.Cutoff(c.now); got != c.want {
			t.Errorf("%+v.Cutoff(%d) = %d, want %d", f, c.now, got, c.want)
		}
	}
	if got := (Flush{}).Cutoff(1 << 40); got != 0 {
		t.Errorf("zero Flush hides up to %d", got)
	}
}

// TestFlushNeverUncovers: whatever sequence of flushes arrives, at whatever clock, a value hidden at some
// moment stays hidden at every later moment (the cutoff never goes back), and every flush's own values are
// hidden once its time came.
func TestFlushNeverUncovers(t *testing.T) {
	var f Flush
	var r uint64 = 12345
	rnd := func(n int64) int64 { r = r*6364136223846793005 + 1442695040888963407; return int64(r>>33) % n }
	clock, lastCutoff, maxImmediate := int64(1000), int64(0), int64(0)
	var issued []int64
	for i := 0; i < 5000; i++ {
		clock += rnd(20)
		at := clock - 30 + rnd(100) // some immediate (past or now), some delayed
		f = f.After(at, clock)
		issued = append(issued, at)
		if at <= clock {
			maxImmediate = max(maxImmediate, at)
		}
		if !f.Valid() {
			t.Fatalf("step %d: %+v breaks the invariant", i, f)
		}
		c := f.Cutoff(clock)
		if c < lastCutoff {
			t.Fatalf("step %d: cutoff went back from %d to %d (%+v at %d)", i, lastCutoff, c, f, clock)
		}
		if c < maxImmediate {
			t.Fatalf("step %d: cutoff %d uncovers the immediate flush at %d", i, c, maxImmediate)
		}
		lastCutoff = c
		// A delayed flush is covered once due, unless a later delayed flush replaced it (still pending).
		for _, a := range issued {
			if a <= clock && c < a && (f.Pending == 0 || f.Pending <= clock) {
				t.Fatalf("step %d: the flush at %d is due at %d but the cutoff is %d (%+v)", i, a, clock, c, f)
			}
		}
		if len(issued) > 64 {
			issued = issued[1:]
		}
	}
}

func TestSetFlush(t *testing.T) {
	s := pendingState(t)
	s1, err := s.SetFlush("kv", 500, 500)
	if err != nil {
		t.Fatal(err)
	}
	if s1.Version != s.Version+1 || s1.FlushOf("kv") != (Flush{Epoch: 500}) || s.Flushes != nil {
		t.Fatalf("SetFlush: version %d, flush %+v; old state's flushes %v", s1.Version, s1.FlushOf("kv"), s.Flushes)
	}
	checkState(t, s1)
	if same, err := s1.SetFlush("kv", 400, 600); err != nil || same != s1 {
		t.Fatalf("an older flush made a new state (%v)", err)
	}
	s2, err := s1.SetFlush("counter", 900, 600)
	if err != nil {
		t.Fatal(err)
	}
	if s2.FlushOf("counter") != (Flush{Pending: 900}) || s2.FlushOf("kv") != (Flush{Epoch: 500}) || len(s1.Flushes) != 1 {
		t.Fatalf("flushes %v; the older state's %v", s2.Flushes, s1.Flushes)
	}
	checkState(t, s2)
	// Later transitions carry the flushes.
	s3, err := s2.ClearStaged()
	if err != nil {
		t.Fatal(err)
	}
	if s3.FlushOf("kv") != (Flush{Epoch: 500}) {
		t.Fatalf("ClearStaged dropped the flush epoch: %v", s3.Flushes)
	}
	for _, bad := range []struct {
		name string
		at   int64
	}{{"", 1}, {string(make([]byte, MaxFlushNameBytes+1)), 1}, {"kv", -1}} {
		if _, err := s.SetFlush(bad.name, bad.at, 10); !errors.Is(err, ErrInvalidState) {
			t.Errorf("SetFlush(%q, %d) = %v", bad.name, bad.at, err)
		}
	}
	full := s
	for i := range MaxFlushes {
		if full, err = full.SetFlush(fmt.Sprintf("s%d", i), 1, 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := full.SetFlush("one_more", 1, 1); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("flush of a service past MaxFlushes: %v", err)
	}
	checkState(t, full)
}

// TestHashWithoutFlushesUnchanged: a state with no flush epoch hashes as before flush epochs existed, so
// nodes of both builds pick the same winner of two states.
func TestHashWithoutFlushesUnchanged(t *testing.T) {
	s := pendingState(t)
	if got := s.Hash(); got != 0x619f730862cd550e {
		t.Fatalf("hash %#x: the hash of a state without flushes changed", got)
	}
	f, err := s.SetFlush("kv", 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	g, err := s.SetFlush("kv", 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != g.Version || f.Hash() == g.Hash() {
		t.Fatal("two states that differ only in their flush epoch hash alike")
	}
}

func TestUnmarshalClusterStateFlushErrors(t *testing.T) {
	good, err := pendingState(t).SetFlush("kv", 5, 5)
	if err != nil {
		t.Fatal(err)
	}
	for name, flushes := range map[string]any{
		"listed twice":      []any{[]any{"kv", 1, 0}, []any{"kv", 2, 0}},
		"pending not after": []any{[]any{"kv", 9, 9}},
		"negative epoch":    []any{[]any{"kv", -1, 0}},
		"empty name":        []any{[]any{"", 1, 0}},
		"too many":          manyFlushes(MaxFlushes + 1),
	} {
		t.Run(name, func(t *testing.T) {
			m := stateFields(t, good)
			m["flushes"] = flushes
			if _, err := UnmarshalClusterState(encodeFields(t, m)); !errors.Is(err, ErrMalformedState) {
				t.Fatalf("err = %v, want ErrMalformedState", err)
			}
		})
	}
	m := stateFields(t, good)
	m["flushes"] = manyFlushes(MaxFlushes)
	s, err := UnmarshalClusterState(encodeFields(t, m))
	if err != nil || len(s.Flushes) != MaxFlushes {
		t.Fatalf("MaxFlushes flush epochs: %v", err)
	}
}

func manyFlushes(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = []any{fmt.Sprintf("s%d", i), i + 1, 0}
	}
	return out
}
