package kv

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var objRewrite = flag.Bool("objrewrite", false, "rewrite the expectations in testdata/object_*.txt")

// TestObjectScenarios runs the stories in testdata/object_*.txt. Each step is a command, a "----" line, the
// expected output and a blank line; "#" lines are commentary. Replicas are named by their actor; the fake clock
// advances one second per command (at=SEC overrides it). Commands:
//
//	put R VALUE ctx=CTX [at=SEC] [exp=SEC] [flags=N] [lww] [max=N] [prune=SMALL,BIG,YOUNG,OLD]
//	delete R ctx=CTX [...same options]    write a tombstone
//	get R... as=NAME                     read: Sync the replicas, remember the clock as context NAME
//	sync SRC DST                         DST = Sync(DST, SRC)
//	show R
//	chosen R                             what a plain memcache get returns
//
// CTX is a context NAME, "none" (empty context) or "blind". Run with -objrewrite to regenerate expectations.
func TestObjectScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/object_*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenario files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { objRunScript(t, f) })
	}
}

type objWorld struct {
	replicas map[string]*Object
	ctxs     map[string]VClock
	now      int64 // seconds
}

func objRunScript(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	w := &objWorld{replicas: map[string]*Object{}, ctxs: map[string]VClock{}}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		line++
		return sc.Text(), true
	}
	for {
		l, ok := next()
		if !ok {
			break
		}
		if l == "" || strings.HasPrefix(l, "#") {
			out.WriteString(l + "\n")
			continue
		}
		cmdLine := line
		if sep, ok := next(); !ok || sep != "----" {
			t.Fatalf("%s:%d: want ---- after %q", path, line, l)
		}
		var want []string
		for {
			e, ok := next()
			if !ok || e == "" {
				break
			}
			want = append(want, e)
		}
		got := strings.TrimRight(w.run(t, fmt.Sprintf("%s:%d", path, cmdLine), l), "\n")
		if !*objRewrite && got != strings.Join(want, "\n") {
			t.Errorf("%s:%d: %s\ngot:\n%s\nwant:\n%s", path, cmdLine, l, got, strings.Join(want, "\n"))
		}
		fmt.Fprintf(&out, "%s\n----\n%s\n\n", l, got)
	}
	if *objRewrite {
		if err := os.WriteFile(path, append(bytes.TrimRight(out.Bytes(), "\n"), '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (w *objWorld) run(t *testing.T, pos, l string) string {
	w.now++
	words := strings.Fields(l)
	args, opts := []string{}, map[string]string{}
	for _, x := range words[1:] {
		if k, v, ok := strings.Cut(x, "="); ok {
			opts[k] = v
		} else if x == "lww" {
			opts[x] = "true"
		} else {
			args = append(args, x)
		}
	}
	num := func(k string) int64 {
		if opts[k] == "" {
			return 0
		}
		n, err := strconv.ParseInt(opts[k], 10, 64)
		if err != nil {
			t.Fatalf("%s: %s=%q: %v", pos, k, opts[k], err)
		}
		return n
	}
	if at := num("at"); at != 0 {
		w.now = at
	}
	switch words[0] {
	case "put", "delete":
		r := args[0]
		var value []byte
		meta := Meta{Flags: uint32(num("flags")), Expiry: num("exp")}
		if words[0] == "put" {
			value = []byte(args[1])
		} else {
			meta.Deleted = true
		}
		var ctx VClock
		blind := false
		switch c := opts["ctx"]; c {
		case "blind":
			blind = true
		case "none":
		default:
			var ok bool
			if ctx, ok = w.ctxs[c]; !ok {
				t.Fatalf("%s: unknown context %q", pos, c)
			}
		}
		uo := UpdateOptions{LWW: opts["lww"] != "", MaxSiblings: int(num("max")), Prune: PruneConfig{SmallVClock: math.MaxInt}}
		if p := opts["prune"]; p != "" {
			f := strings.Split(p, ",")
			atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
			uo.Prune = PruneConfig{SmallVClock: atoi(f[0]), BigVClock: atoi(f[1]),
				YoungVClock: time.Duration(atoi(f[2])) * time.Second, OldVClock: time.Duration(atoi(f[3])) * time.Second}
		}
		o, err := Update(w.replicas[r], r, ctx, blind, value, meta, w.now*int64(time.Second), uo)
		if err != nil {
			return "error: " + err.Error()
		}
		w.replicas[r] = o
		return objShow(o, w.now)
	case "get":
		var o *Object
		for _, r := range args {
			o = Sync(o, w.replicas[r], false)
		}
		w.ctxs[opts["as"]] = o.Clock
		return objShow(o, w.now)
	case "sync":
		src, dst := args[0], args[1]
		w.replicas[dst] = Sync(w.replicas[dst], w.replicas[src], opts["lww"] != "")
		return objShow(w.replicas[dst], w.now)
	case "show":
		return objShow(w.replicas[args[0]], w.now)
	case "chosen":
		o := w.replicas[args[0]]
		s, ok := o.Chosen(w.now)
		if !ok {
			return fmt.Sprintf("none (tombstone only: %v)", o.TombstoneOnly(w.now))
		}
		return objShowSibling(s)
	}
	t.Fatalf("%s: unknown command %q", pos, words[0])
	return ""
}

func objShow(o *Object, now int64) string {
	if o == nil {
		return "<nil>"
	}
	if err := o.Validate(); err != nil {
		return "INVALID: " + err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "clock %s", o.Clock)
	for _, s := range o.Siblings {
		b.WriteString("\n  " + objShowSibling(s))
		if !s.Meta.Deleted && !s.Live(now) {
			b.WriteString(" (expired)")
		}
	}
	return b.String()
}

func objShowSibling(s Sibling) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s ", s.Dot)
	if s.Meta.Deleted {
		b.WriteString("<tombstone>")
	} else {
		fmt.Fprintf(&b, "%q", s.Value)
	}
	fmt.Fprintf(&b, " t=%d", s.Meta.LastMod/int64(time.Second))
	if s.Meta.Flags != 0 {
		fmt.Fprintf(&b, " flags=%d", s.Meta.Flags)
	}
	if s.Meta.Expiry != 0 {
		fmt.Fprintf(&b, " exp=%d", s.Meta.Expiry)
	}
	return b.String()
}

func TestUpdateDoesNotMutateArguments(t *testing.T) {
	local := &Object{Clock: VClock{{"A", 2, 1}, {"B", 1, 1}}, Siblings: []Sibling{
		{Value: []byte("a"), Dot: Dot{"A", 2}}, {Value: []byte("b"), Dot: Dot{"B", 1}},
	}}
	ctx := VClock{{"A", 2, 1}, {"C", 4, 1}}
	local0, ctx0 := local.Clone(), ctx.Clone()
	o, err := Update(local, "B", ctx, false, []byte("new"), Meta{}, 10, UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(local, local0) || !reflect.DeepEqual(ctx, ctx0) {
		t.Fatalf("Update mutated its arguments")
	}
	// ctx covers A:2 (dropped) but not B:1 (kept); the new dot is B:max(1, 0)+1.
	want := &Object{Clock: VClock{{"A", 2, 1}, {"B", 2, 10}, {"C", 4, 1}}, Siblings: []Sibling{
		{Value: []byte("b"), Dot: Dot{"B", 1}}, {Value: []byte("new"), Meta: Meta{LastMod: 10}, Dot: Dot{"B", 2}},
	}}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("Update = %v, want %v", o, want)
	}
}

func TestUpdateErrors(t *testing.T) {
	local := &Object{Clock: VClock{{"A", 1, 0}}, Siblings: []Sibling{{Dot: Dot{"A", 1}}}}
	tests := []struct {
		name   string
		actor  string
		ctx    VClock
		opts   UpdateOptions
		want   string
		target error
	}{
		{name: "empty actor", actor: "", want: "empty actor"},
		{name: "long actor", actor: strings.Repeat("x", MaxActorLen+1), want: "exceeds"},
		{name: "bad context", actor: "A", ctx: VClock{{"b", 1, 0}, {"a", 1, 0}}, want: "not sorted"},
		{name: "bad prune", actor: "A", opts: UpdateOptions{Prune: PruneConfig{SmallVClock: -1}}, want: "SmallVClock"},
		{name: "forged counter", actor: "A", ctx: VClock{{"A", math.MaxUint64, 0}}, target: ErrCounterOverflow},
		{name: "max siblings", actor: "B", opts: UpdateOptions{MaxSiblings: 1}, want: "2 > 1", target: ErrTooManySiblings},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := Update(local, tc.actor, tc.ctx, false, nil, Meta{}, 1, tc.opts)
			if err == nil || o != nil {
				t.Fatalf("Update = %v, %v; want an error", o, err)
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if tc.target != nil && !errors.Is(err, tc.target) {
				t.Errorf("error %q is not %v", err, tc.target)
			}
		})
	}
}

// TestUpdatePruneKeepsSiblingActors: pruning never drops the clock entry that names a surviving sibling's
// dot, otherwise a context read later would no longer cover that sibling and could never supersede it.
func TestUpdatePruneKeepsSiblingActors(t *testing.T) {
	const s = int64(time.Second)
	local := &Object{Clock: VClock{{"A", 1, 1 * s}, {"B", 1, 2 * s}, {"C", 1, 3 * s}}, Siblings: []Sibling{
		{Value: []byte("a"), Dot: Dot{"A", 1}},
	}}
	p := PruneConfig{SmallVClock: 1, BigVClock: 1, YoungVClock: 0, OldVClock: 0}
	o, err := Update(local, "D", nil, false, []byte("d"), Meta{}, 100*s, UpdateOptions{Prune: p})
	if err != nil {
		t.Fatal(err)
	}
	if got := o.Clock.String(); got != "[A:1 D:1]" {
		t.Fatalf("clock after prune = %s, want [A:1 D:1] (B and C pruned, A names a sibling)", got)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestObjectReadRules(t *testing.T) {
	const now = 1000
	o := &Object{Clock: VClock{{"A", 5, 0}, {"B", 5, 0}}, Siblings: []Sibling{
		{Value: []byte("old"), Meta: Meta{LastMod: 10}, Dot: Dot{"A", 1}},
		{Value: []byte("expired"), Meta: Meta{LastMod: 90, Expiry: now}, Dot: Dot{"A", 2}},
		{Value: []byte("tie-A"), Meta: Meta{LastMod: 50}, Dot: Dot{"A", 3}},
		{Meta: Meta{LastMod: 99, Deleted: true}, Dot: Dot{"A", 4}},
		{Value: []byte("tie-B"), Meta: Meta{LastMod: 50, Expiry: now + 1}, Dot: Dot{"B", 1}},
	}}
	var live []string
	for _, s := range o.Live(now) {
		live = append(live, string(s.Value))
	}
	if got := strings.Join(live, ","); got != "old,tie-A,tie-B" {
		t.Errorf("Live = %s", got)
	}
	if s, ok := o.Chosen(now); !ok || string(s.Value) != "tie-B" {
		t.Errorf("Chosen = %q, %v; want tie-B (equal LastMod, greater dot)", s.Value, ok)
	}
	if s, ok := o.Chosen(now + 1); !ok || string(s.Value) != "tie-A" {
		t.Errorf("Chosen after tie-B expires = %q, %v; want tie-A", s.Value, ok)
	}
	if o.TombstoneOnly(now) {
		t.Errorf("TombstoneOnly with live siblings")
	}
	tomb := &Object{Clock: o.Clock, Siblings: []Sibling{o.Siblings[1], o.Siblings[3]}}
	if !tomb.TombstoneOnly(now) || len(tomb.Live(now)) != 0 {
		t.Errorf("deleted + expired should be tombstone-only")
	}
	if _, ok := tomb.Chosen(now); ok {
		t.Errorf("Chosen on a tombstone-only object")
	}
	var nilObj *Object
	if !nilObj.TombstoneOnly(now) || nilObj.Live(now) != nil || !nilObj.Equal(nil) || !nilObj.Equal(&Object{}) {
		t.Errorf("nil object rules")
	}
	if _, ok := nilObj.Chosen(now); ok {
		t.Errorf("Chosen on nil")
	}
}

func TestObjectEqual(t *testing.T) {
	a := &Object{Clock: VClock{{"A", 2, 1}}, Siblings: []Sibling{{Value: []byte("x"), Dot: Dot{"A", 2}}}}
	tests := []struct {
		name string
		b    *Object
		want bool
	}{
		{"same", a.Clone(), true},
		{"timestamps and values ignored", &Object{Clock: VClock{{"A", 2, 9}}, Siblings: []Sibling{{Value: []byte("y"), Dot: Dot{"A", 2}}}}, true},
		{"other clock", &Object{Clock: VClock{{"A", 3, 1}}, Siblings: a.Siblings}, false},
		{"other dot", &Object{Clock: a.Clock, Siblings: []Sibling{{Dot: Dot{"A", 1}}}}, false},
		{"fewer siblings", &Object{Clock: a.Clock}, false},
		{"nil", nil, false},
	}
	for _, tc := range tests {
		if got := a.Equal(tc.b); got != tc.want {
			t.Errorf("%s: Equal = %v", tc.name, got)
		}
		if got := tc.b.Equal(a); got != tc.want {
			t.Errorf("%s: reversed Equal = %v", tc.name, got)
		}
	}
}

// objUniverse generates replicas of one key over actors A, B, C: a random clock and a random subset of the dots
// it covers as siblings. A dot's content is a function of the dot (one dot is one write) except, rarely, a
// forged divergent copy, which Sync must still merge deterministically.
func objUniverse(rng *rand.Rand) *Object {
	if rng.Intn(10) == 0 {
		return nil
	}
	o := &Object{}
	for _, a := range []string{"A", "B", "C"} {
		n := rng.Intn(5)
		if n == 0 {
			continue
		}
		o.Clock = append(o.Clock, ClockEntry{Actor: a, Counter: uint64(n), Timestamp: int64(rng.Intn(3))})
		for c := 1; c <= n; c++ {
			if rng.Intn(3) == 0 {
				d := Dot{a, uint64(c)}
				s := Sibling{Value: []byte(d.String()), Meta: Meta{LastMod: int64((c * 7) % 5), Deleted: c == 3}, Dot: d}
				if rng.Intn(30) == 0 {
					s.Value = []byte("forged")
				}
				o.Siblings = append(o.Siblings, s)
			}
		}
	}
	return o
}

func TestSyncProperties(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for i := 0; i < 5000; i++ {
		a, b, c := objUniverse(rng), objUniverse(rng), objUniverse(rng)
		for _, lww := range []bool{false, true} {
			ab := Sync(a, b, lww)
			if !reflect.DeepEqual(ab, Sync(b, a, lww)) {
				t.Fatalf("lww=%v not commutative:\na=%v\nb=%v\nab=%v\nba=%v", lww, a, b, ab, Sync(b, a, lww))
			}
			if !reflect.DeepEqual(Sync(ab, ab, lww), ab) || !reflect.DeepEqual(Sync(ab, b, lww), ab) {
				t.Fatalf("lww=%v not idempotent: a=%v b=%v", lww, a, b)
			}
			if err := ab.Validate(); err != nil {
				t.Fatalf("Sync produced an invalid object: %v", err)
			}
		}
		if a != nil && !reflect.DeepEqual(Sync(a, a, false), a) {
			t.Fatalf("Sync(a, a) != a: %v", a)
		}
		l, r := Sync(Sync(a, b, false), c, false), Sync(a, Sync(b, c, false), false)
		if !reflect.DeepEqual(l, r) {
			t.Fatalf("not associative:\na=%v\nb=%v\nc=%v\n(ab)c=%v\na(bc)=%v", a, b, c, l, r)
		}
	}
	if Sync(nil, nil, false) != nil {
		t.Fatalf("Sync(nil, nil) != nil")
	}
}

// TestSyncKeepsAgreesWithSync: SyncKeeps(a, b) says Sync(a, b) equals b exactly when it does (a false "yes"
// would make a replica store b over siblings it must keep), and says so for a write coordinated on a's copy.
func TestSyncKeepsAgreesWithSync(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	kept := 0
	for i := 0; i < 20000; i++ {
		a, b := objUniverse(rng), objUniverse(rng)
		if b == nil {
			continue
		}
		for _, lww := range []bool{false, true} {
			want := Sync(a, b, lww).Equal(b)
			if got := SyncKeeps(a, b, lww); got != want {
				t.Fatalf("lww=%v: SyncKeeps = %v, Sync(a, b).Equal(b) = %v\na=%v\nb=%v", lww, got, want, a, b)
			}
			if want {
				kept++
			}
		}
		if a == nil {
			continue
		}
		// A write coordinated on a's copy, blind or with a's context, by a's or another actor.
		for _, actor := range []string{"A", "D"} {
			w, err := Update(a, actor, a.Clock, rng.Intn(2) == 0, []byte("w"), Meta{}, 9, UpdateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !SyncKeeps(a, w, false) || !Sync(a, w, false).Equal(w) {
				t.Fatalf("a write coordinated on a is not kept by a's replica:\na=%v\nw=%v", a, w)
			}
		}
	}
	if kept == 0 {
		t.Fatal("the generator never made a pair that Sync keeps")
	}
}

// TestSyncWithUpdate: a replica that receives the coordinator's result ends up with exactly that result.
func TestSyncWithUpdate(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	for i := 0; i < 3000; i++ {
		a := objUniverse(rng)
		var ctx VClock
		if o := objUniverse(rng); o != nil {
			ctx = o.Clock
		}
		actor := []string{"A", "B", "C", "D"}[rng.Intn(4)]
		lww := rng.Intn(4) == 0
		u, err := Update(a, actor, ctx, rng.Intn(3) == 0, []byte("new"), Meta{}, int64(i), UpdateOptions{LWW: lww})
		if err != nil {
			t.Fatal(err)
		}
		if err := u.Validate(); err != nil {
			t.Fatalf("Update produced an invalid object: %v", err)
		}
		if got := Sync(a, u, lww); !reflect.DeepEqual(got, u) {
			t.Fatalf("Sync(a, Update(a)) != Update(a):\na=%v ctx=%v\nu=%v\ngot=%v", a, ctx, u, got)
		}
	}
}

// TestNoAcknowledgedWriteLost plays random histories against three replicas (A, B, C): writes coordinated at a
// random replica with a random context (none, blind, a stale read, a fresh read of one or more replicas),
// one-way and two-way syncs, and reads. After a final anti-entropy round every replica must hold exactly the
// writes that no later write's context covered: nothing acknowledged is lost and nothing superseded comes back.
// With aggressive pruning superseded writes may come back as siblings, but still nothing is lost.
func TestNoAcknowledgedWriteLost(t *testing.T) {
	for _, prune := range []bool{false, true} {
		t.Run(fmt.Sprintf("prune=%v", prune), func(t *testing.T) {
			rng := rand.New(rand.NewSource(5))
			for h := 0; h < 300; h++ {
				objPlayHistory(t, rng, prune)
			}
		})
	}
}

func objPlayHistory(t *testing.T, rng *rand.Rand, prune bool) {
	actors := []string{"A", "B", "C"}
	reps := map[string]*Object{}
	var reads []VClock
	var written []Dot
	var ctxs []VClock // effective context of every write
	opts := UpdateOptions{Prune: PruneConfig{SmallVClock: math.MaxInt}}
	if prune {
		opts.Prune = PruneConfig{SmallVClock: 1, BigVClock: 1}
	}
	read := func() *Object {
		var o *Object
		for _, a := range actors {
			if rng.Intn(2) == 0 {
				o = Sync(o, reps[a], false)
			}
		}
		return o
	}
	steps := 5 + rng.Intn(40)
	for i := 0; i < steps; i++ {
		now := int64(i) * int64(time.Second)
		switch op := rng.Intn(10); {
		case op < 5: // write
			a := actors[rng.Intn(3)]
			var ctx VClock
			blind := false
			switch rng.Intn(4) {
			case 0:
				blind = true
			case 1: // no context
			case 2:
				if len(reads) > 0 {
					ctx = reads[rng.Intn(len(reads))]
				}
			case 3:
				if o := read(); o != nil {
					ctx = o.Clock
				}
			}
			if blind && reps[a] != nil {
				ctxs = append(ctxs, reps[a].Clock)
			} else if !blind {
				ctxs = append(ctxs, ctx)
			}
			o, err := Update(reps[a], a, ctx, blind, []byte(fmt.Sprint(i)), Meta{}, now, opts)
			if err != nil {
				t.Fatal(err)
			}
			reps[a] = o
			written = append(written, Dot{a, o.Clock.Get(a)})
		case op < 8: // sync
			src, dst := actors[rng.Intn(3)], actors[rng.Intn(3)]
			reps[dst] = Sync(reps[dst], reps[src], false)
			if rng.Intn(2) == 0 {
				reps[src] = Sync(reps[src], reps[dst], false)
			}
		default:
			if o := read(); o != nil {
				reads = append(reads, o.Clock)
			}
		}
	}
	var final *Object
	for _, a := range actors {
		final = Sync(final, reps[a], false)
	}
	var want []Dot
	for _, d := range written {
		superseded := false
		for _, c := range ctxs {
			superseded = superseded || c.Covers(d)
		}
		if !superseded {
			want = append(want, d)
		}
	}
	slices.SortFunc(want, CompareDots)
	var got []Dot
	if final != nil {
		if err := final.Validate(); err != nil {
			t.Fatal(err)
		}
		for _, s := range final.Siblings {
			got = append(got, s.Dot)
		}
	}
	for _, d := range want {
		if !slices.Contains(got, d) {
			t.Fatalf("write %s lost: final siblings %v, want %v", d, got, want)
		}
	}
	if !prune && !slices.Equal(got, want) {
		t.Fatalf("final siblings %v, want exactly %v", got, want)
	}
	// Replicas converge: after anti-entropy in both directions every replica holds the same object.
	for _, a := range actors {
		if r := Sync(reps[a], final, false); !r.Equal(final) {
			t.Fatalf("replica %s did not converge: %v vs %v", a, r, final)
		}
	}
}

// TestSameContextTwiceAlwaysSiblings is the DVV property that a plain version vector per key lacks: two
// writes with one context at one vnode never overwrite each other, whatever the history before.
func TestSameContextTwiceAlwaysSiblings(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	for i := 0; i < 2000; i++ {
		local := objUniverse(rng)
		var ctx VClock
		if o := objUniverse(rng); o != nil {
			ctx = o.Clock
		}
		u1, err := Update(local, "B", ctx, false, []byte("one"), Meta{}, 1, UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		u2, err := Update(u1, "B", ctx, false, []byte("two"), Meta{}, 2, UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d1, d2 := u1.Clock.Get("B"), u2.Clock.Get("B")
		if !objHasDot(u2, Dot{"B", d1}) || !objHasDot(u2, Dot{"B", d2}) {
			t.Fatalf("second write with the same context lost the first: %v", u2)
		}
		// A third write with the merged context of what it read supersedes exactly that.
		u3, err := Update(u2, "B", u2.Clock, false, []byte("three"), Meta{}, 3, UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(u3.Siblings) != 1 {
			t.Fatalf("write with the read's context left %d siblings: %v", len(u3.Siblings), u3)
		}
	}
}

func objHasDot(o *Object, d Dot) bool {
	for _, s := range o.Siblings {
		if s.Dot == d {
			return true
		}
	}
	return false
}

// objRandomClock returns a valid clock exercising every msgpack size class.
func objRandomClock(rng *rand.Rand) VClock {
	counters := []uint64{1, 2, 127, 128, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, math.MaxUint64}
	times := []int64{0, 1, -1, -32, -33, -128, -129, 1 << 40, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(), math.MinInt64, math.MaxInt64}
	n := rng.Intn(6)
	if rng.Intn(10) == 0 {
		n = 16 + rng.Intn(10)
	}
	seen := map[string]bool{}
	var v VClock
	for len(v) < n {
		var a string
		switch rng.Intn(4) {
		case 0:
			a = fmt.Sprintf("node%d/%d", rng.Intn(9), rng.Intn(64))
		case 1:
			a = strings.Repeat("ñ", 1+rng.Intn(40))
		default:
			a = string(rune('a' + rng.Intn(26)))
		}
		if seen[a] {
			continue
		}
		seen[a] = true
		v = append(v, ClockEntry{Actor: a, Counter: counters[rng.Intn(len(counters))], Timestamp: times[rng.Intn(len(times))]})
	}
	slices.SortFunc(v, func(x, y ClockEntry) int { return strings.Compare(x.Actor, y.Actor) })
	return v
}

// objRandomObject returns a valid object exercising every size class of the encoding.
func objRandomObject(rng *rand.Rand) *Object {
	o := &Object{Clock: objRandomClock(rng)}
	sizes := []int{0, 1, 31, 32, 100, 255, 256, 1000, 65535, 65536}
	for _, e := range o.Clock {
		for c := uint64(1); c <= e.Counter && c <= 3; c++ {
			if rng.Intn(2) == 0 {
				continue
			}
			cnt := c
			if rng.Intn(2) == 0 {
				cnt = e.Counter - c + 1
			}
			if objHasDot(o, Dot{e.Actor, cnt}) {
				continue
			}
			n := sizes[rng.Intn(len(sizes))]
			if n >= 65535 && rng.Intn(10) != 0 {
				n = 100
			}
			v := make([]byte, n)
			rng.Read(v)
			o.Siblings = append(o.Siblings, Sibling{Value: v, Dot: Dot{e.Actor, cnt}, Meta: Meta{
				Flags:   []uint32{0, 1, 1 << 31, math.MaxUint32}[rng.Intn(4)],
				Expiry:  []int64{0, 1_700_000_000, -5, math.MaxInt64}[rng.Intn(4)],
				LastMod: rng.Int63() - rng.Int63(),
				Deleted: rng.Intn(5) == 0,
			}})
		}
	}
	slices.SortFunc(o.Siblings, func(x, y Sibling) int { return CompareDots(x.Dot, y.Dot) })
	return o
}

// objSame compares objects by content (an empty value equals a nil one).
func objSame(a, b *Object) bool {
	if !reflect.DeepEqual(a.Clock, b.Clock) || len(a.Siblings) != len(b.Siblings) {
		return false
	}
	for i := range a.Siblings {
		x, y := a.Siblings[i], b.Siblings[i]
		if x.Dot != y.Dot || x.Meta != y.Meta || !bytes.Equal(x.Value, y.Value) {
			return false
		}
	}
	return true
}

func TestObjectMarshalRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for i := 0; i < 400; i++ {
		o := objRandomObject(rng)
		b, err := o.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if o.Size() != len(b) {
			t.Fatalf("Size() = %d, encoded %d bytes", o.Size(), len(b))
		}
		got, err := UnmarshalObject(b)
		if err != nil {
			t.Fatalf("UnmarshalObject(Marshal(%v)): %v", o, err)
		}
		if !objSame(got, o) {
			t.Fatalf("round trip:\ngot  %v\nwant %v", got, o)
		}
		b2, _ := got.MarshalBinary()
		if !bytes.Equal(b, b2) {
			t.Fatalf("re-encoding differs")
		}
		// Decoded values do not alias the input.
		if len(got.Siblings) > 0 && len(got.Siblings[0].Value) > 0 {
			clear(b)
			if !bytes.Equal(got.Siblings[0].Value, o.Siblings[0].Value) {
				t.Fatalf("decoded value aliases the input bytes")
			}
		}
	}
	var nilObj *Object
	b, err := nilObj.MarshalBinary()
	if err != nil || hex.EncodeToString(b) != "930190"+"90" {
		t.Fatalf("nil object encodes as %x, %v", b, err)
	}
	bad := &Object{Clock: VClock{{"A", 1, 0}}, Siblings: []Sibling{{Dot: Dot{"A", 2}}}}
	if _, err := bad.MarshalBinary(); err == nil || !strings.Contains(err.Error(), "kv: encode object: ") {
		t.Fatalf("MarshalBinary of an invalid object = %v", err)
	}
}

func objHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// A valid object: clock [A:2@1], one sibling A:2 "hi" flags 0 exp 0 lastmod 5 live.
const objValidHex = "93 01 91 93 a141 02 01 91 97 c4026869 00 02 00 00 05 c2"

func TestUnmarshalObjectRejects(t *testing.T) {
	if _, err := UnmarshalObject(objHex(t, objValidHex)); err != nil {
		t.Fatalf("valid sample rejected: %v", err)
	}
	tests := []struct{ name, hex, want string }{
		{"empty", "", "truncated"},
		{"array32 of 4 billion", "dd ffffffff", "exceeds limit"},
		{"map", "81 01 01", "decoding array length"},
		{"version 2", "93 02 90 90", "unknown format version 2"},
		{"siblings array32 of 4 billion", "93 01 90 dd ffffffff", "exceeds limit 65536"},
		{"siblings array16 beyond input", "93 01 91 93 a141 02 01 dc ffff 00", "cannot fit"},
		{"clock array16 beyond input", "93 01 dc 0100", "cannot fit"},
		{"nested headers", "93 01 91 dd ffffffff", "exceeds limit 3"},
		{"bin32 of 4 GiB", "93 01 91 93 a141 02 01 91 97 c6 ffffffff", "cannot fit"},
		{"value as str", "93 01 91 93 a141 02 01 91 97 a26869 00 02 00 00 05 c2", "want bin"},
		{"value nil", "93 01 91 93 a141 02 01 91 97 c0 00 02 00 00 cd0100 c2", "want bin"},
		{"non-canonical bin16", "93 01 91 93 a141 02 01 91 97 c5 0002 6869 00 02 00 00 05 c2", "non-canonical bin"},
		{"actor index out of range", "93 01 91 93 a141 02 01 91 97 c4026869 01 02 00 00 05 c2", "out of range"},
		{"dot not covered", "93 01 91 93 a141 02 01 91 97 c4026869 00 03 00 00 05 c2", "not covered"},
		{"zero dot", "93 01 91 93 a141 02 01 91 97 c4026869 00 00 00 00 05 c2", "not covered"},
		{"duplicate dot", "93 01 91 93 a141 02 01 92 97 c400 00 02 00 00 05 c2 97 c400 00 02 00 00 05 c2", "not sorted"},
		{"flags overflow", "93 01 91 93 a141 02 01 91 97 c4026869 00 02 cf 0000000100000000 00 05 c2", "overflow uint32"},
		{"non-canonical int", "93 01 91 93 a141 02 01 91 97 c4026869 00 02 00 00 d0 05 c2", "non-canonical integer"},
		{"int64 for uint", "93 01 91 93 a141 02 01 91 97 c4026869 00 d3 0000000000000002 00 00 05 c2", "non-canonical unsigned"},
		{"bool as int", "93 01 91 93 a141 02 01 91 97 c4026869 00 02 00 00 05 00", "want a bool"},
		{"nil as bool", "93 01 91 93 a141 02 01 91 97 c4026869 00 02 00 00 05 c0", "want a bool"},
		{"sibling arity", "93 01 91 93 a141 02 01 91 96 c4026869 00 02 00 00 05", "want 7 fields"},
		{"trailing", objValidHex + " 00", "1 trailing bytes"},
		{"truncated", "93 01 91 93 a141 02 01 91 97 c4026869 00 02 00 00 05", "truncated"},
		{"truncated uint64", "93 01 91 93 a141 cf 0000", "truncated"},
		{"clock unsorted", "93 01 92 93 a142 01 01 93 a141 01 01 90", "not sorted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := UnmarshalObject(objHex(t, tc.hex))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "kv: decode object: ") {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// Every truncation of a valid encoding is rejected.
	b := objHex(t, objValidHex)
	for i := range b {
		if _, err := UnmarshalObject(b[:i]); err == nil {
			t.Fatalf("truncation to %d bytes accepted", i)
		}
	}
}

// TestUnmarshalBoundedAllocation: hostile headers cost at most a small multiple of the input.
func TestUnmarshalBoundedAllocation(t *testing.T) {
	inputs := []string{
		"dd ffffffff",
		"93 01 dd ffffffff",
		"93 01 90 dd ffffffff",
		"93 01 90 dc ffff" + strings.Repeat(" 97", 3000),
		"93 01 dc ffff" + strings.Repeat(" 93", 3000),
		"93 01 91 93 a141 02 01 91 97 c6 ffffffff",
		"93 01 91 93 db ffffffff",
		"92 01 dd ffffffff",
		strings.Repeat("dc ffff ", 1000),
	}
	for _, in := range inputs {
		b := objHex(t, in)
		objCheckAllocBound(t, b, func() { _, _ = UnmarshalObject(b) })
		objCheckAllocBound(t, b, func() { _, _ = UnmarshalVClock(b) })
	}
}

// objCheckAllocBound fails if f allocates more than 64 bytes per input byte plus 64 KiB, measured exactly
// with runtime.ReadMemStats (which stops the world: too slow for the fuzz loop, see objFuzzAllocBound).
func objCheckAllocBound(t testing.TB, in []byte, f func()) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(64*len(in)+64<<10); got > limit {
		t.Fatalf("decoding %d bytes allocated %d bytes (limit %d)", len(in), got, limit)
	}
}

// objFuzzAllocBound is objCheckAllocBound for the fuzz loop: runtime/metrics does not stop the world but
// counts small allocations per span and sees the fuzz engine's own, hence 8 MiB of slack. That still catches
// what matters: an allocation sized by a declared length (gigabytes).
func objFuzzAllocBound(t testing.TB, in []byte, f func()) {
	t.Helper()
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(sample)
	before := sample[0].Value.Uint64()
	f()
	metrics.Read(sample)
	if got, limit := sample[0].Value.Uint64()-before, uint64(64*len(in)+8<<20); got > limit {
		t.Fatalf("decoding %d bytes allocated %d bytes (limit %d)", len(in), got, limit)
	}
}

func objBenchObject() *Object {
	return &Object{
		Clock: VClock{{"node1/17", 3, 1}, {"node2/17", 1, 1}, {"node3/17", 7, 1}},
		Siblings: []Sibling{
			{Value: bytes.Repeat([]byte("x"), 100), Meta: Meta{Flags: 3, LastMod: 1_700_000_000_000_000_000}, Dot: Dot{"node1/17", 3}},
		},
	}
}

func BenchmarkUpdate(b *testing.B) {
	local := objBenchObject()
	value := bytes.Repeat([]byte("y"), 100)
	opts := UpdateOptions{Prune: DefaultPruneConfig()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Update(local, "node2/17", local.Clock, false, value, Meta{}, 1_700_000_001_000_000_000, opts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSync3Siblings(b *testing.B) {
	base := objBenchObject()
	x, _ := Update(base, "node1/17", base.Clock, false, []byte("a"), Meta{}, 2, UpdateOptions{})
	y, _ := Update(base, "node2/17", base.Clock, false, []byte("b"), Meta{}, 2, UpdateOptions{})
	y, _ = Update(y, "node2/17", base.Clock, false, []byte("c"), Meta{}, 3, UpdateOptions{})
	if n := len(Sync(x, y, false).Siblings); n != 3 {
		b.Fatalf("%d siblings, want 3", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = Sync(x, y, false)
	}
}

func BenchmarkMarshalObject100B(b *testing.B) {
	o := objBenchObject()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := o.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendObject100B is MarshalBinary into one reused buffer, as a vnode's store does.
func BenchmarkAppendObject100B(b *testing.B) {
	o := objBenchObject()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = o.AppendBinary(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalObject100B(b *testing.B) {
	enc, _ := objBenchObject().MarshalBinary()
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := UnmarshalObject(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLiveAndLiveCount(t *testing.T) {
	const now = 1700000000
	o := &Object{Clock: VClock{{Actor: "a", Counter: 3}}, Siblings: []Sibling{
		{Value: []byte("x"), Dot: Dot{Actor: "a", Counter: 1}},
		{Value: []byte("expired"), Meta: Meta{Expiry: now - 1}, Dot: Dot{Actor: "a", Counter: 2}},
		{Meta: Meta{Deleted: true}, Dot: Dot{Actor: "a", Counter: 3}},
	}}
	if live := o.Live(now); len(live) != 1 || string(live[0].Value) != "x" || o.LiveCount(now) != 1 {
		t.Fatalf("Live %v, LiveCount %d: want only x", live, o.LiveCount(now))
	}
	all := &Object{Clock: o.Clock, Siblings: o.Siblings[:1]}
	live := all.Live(now)
	if len(live) != 1 || all.LiveCount(now) != 1 {
		t.Fatalf("all live: %v", live)
	}
	// The shared slice is capacity-limited: appending to it never writes into the object.
	_ = append(live, Sibling{Value: []byte("new")})
	if string(o.Siblings[1].Value) != "expired" {
		t.Fatal("append to Live's result wrote into the object")
	}
	var none *Object
	if none.Live(now) != nil || none.LiveCount(now) != 0 {
		t.Fatal("nil object has live siblings")
	}
}

// TestAppendBinaryAppendsMarshalBinary: AppendBinary(dst) is dst followed by MarshalBinary's bytes, and
// leaves dst as it was on an invalid object.
func TestAppendBinaryAppendsMarshalBinary(t *testing.T) {
	o := objBenchObject()
	want, err := o.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, dst := range [][]byte{nil, {}, []byte("prefix"), make([]byte, 3, 1000)} {
		before := bytes.Clone(dst)
		got, err := o.AppendBinary(dst)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[:len(before)], before) || !bytes.Equal(got[len(before):], want) {
			t.Fatalf("AppendBinary(%q) = %x, want the prefix then %x", before, got, want)
		}
	}
	bad := &Object{Siblings: []Sibling{{Dot: Dot{Actor: "nobody", Counter: 1}}}}
	got, err := bad.AppendBinary([]byte("keep"))
	if err == nil || string(got) != "keep" {
		t.Fatalf("invalid object: %q, %v; want \"keep\" and an error", got, err)
	}
}
