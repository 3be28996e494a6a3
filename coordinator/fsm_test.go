package coordinator

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
)

func targets3() []Target {
	return []Target{{Partition: 1, Node: "a", Primary: true}, {Partition: 2, Node: "a", Primary: true}, {Partition: 3, Node: "a", Primary: true}}
}

// set is the FSM tests' value type, standing in for a service's: a grow-only set of strings, sorted, nil
// when a replica holds nothing. Two concurrent writes give two elements, as two KV siblings would.
type set []string

// setValues is Values[set]: nil is missing, equal means the same elements, merge is the union.
type setValues struct{}

func (setValues) Missing(v set) bool  { return v == nil }
func (setValues) Equal(a, b set) bool { return slices.Equal(a, b) }
func (setValues) Merge(a, b set) set {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

var vals Values[set] = setValues{}

// obj is a replica's value holding the one element val.
func obj(val string) set { return set{val} }

func newGet(p GetParams, ts []Target) *GetFSM[set] { return NewGetFSM(vals, p, ts) }

func newPut(p PutParams, ts []Target, coord int) *PutFSM[set] { return NewPutFSM(vals, p, ts, coord) }

// kinds summarises effects as short strings for scenario assertions.
func kinds(effs []Effect) []string {
	var out []string
	for _, e := range effs {
		switch e := e.(type) {
		case SendGet:
			out = append(out, fmt.Sprintf("get %d", e.Target))
		case SendPut[set]:
			if e.Coordinate {
				out = append(out, fmt.Sprintf("coord %d", e.Target))
			} else {
				out = append(out, fmt.Sprintf("put %d", e.Target))
			}
		case Answer[set]:
			if e.Err != nil {
				out = append(out, "answer err")
			} else if e.Value == nil {
				out = append(out, "answer notfound")
			} else {
				out = append(out, "answer ok")
			}
		case Repair[set]:
			out = append(out, fmt.Sprintf("repair %d", e.Target))
		case StartTimer:
			out = append(out, fmt.Sprintf("timer %d", e.Timer))
		case SendReap[set]:
			out = append(out, "reap")
		case Done:
			out = append(out, "done")
		case NeedFallback:
			out = append(out, fmt.Sprintf("fallback %d", e.Target))
		case Silent:
			out = append(out, fmt.Sprintf("silent %d", e.Target))
		}
	}
	return out
}

func expect(t *testing.T, step string, got []Effect, want ...string) {
	t.Helper()
	if k := kinds(got); !reflect.DeepEqual(k, want) && !(len(k) == 0 && len(want) == 0) {
		t.Fatalf("%s: effects %v, want %v", step, k, want)
	}
}

func answerOf(t *testing.T, effs []Effect) Answer[set] {
	t.Helper()
	for _, e := range effs {
		if a, ok := e.(Answer[set]); ok {
			return a
		}
	}
	t.Fatalf("no answer in %v", kinds(effs))
	return Answer[set]{}
}

func TestGetFSMAnswersAtRAndRepairsLateStaleReplica(t *testing.T) {
	f := newGet(GetParams{R: 2, Timeout: time.Second, Linger: time.Second}, targets3())
	expect(t, "start", f.Start(), "get 0", "get 1", "get 2", "timer 1")
	o := obj("v1")
	expect(t, "first reply", f.Reply(0, o, nil))
	effs := f.Reply(1, o, nil)
	expect(t, "second reply", effs, "answer ok", "timer 2")
	if a := answerOf(t, effs); !slices.Equal(a.Value, o) {
		t.Fatalf("answer %v, want %v", a.Value, o)
	}
	// The third replica answers late, with nothing: it is repaired with the reconciled object.
	effs = f.Reply(2, nil, nil)
	expect(t, "late not-found reply", effs, "repair 2", "done")
	if f.Repairs() != 1 {
		t.Fatalf("repairs %d", f.Repairs())
	}
	expect(t, "linger after done", f.Fire(TimerLinger))
}

func TestGetFSMReconcilesConcurrentVersionsAndRepairsBoth(t *testing.T) {
	f := newGet(GetParams{R: 2, Timeout: time.Second, Linger: time.Second}, targets3())
	f.Start()
	a, b := obj("va"), obj("vb")
	f.Reply(0, a, nil)
	effs := f.Reply(1, b, nil)
	ans := answerOf(t, effs)
	if got := len(ans.Value); got != 2 {
		t.Fatalf("siblings %d, want 2", got)
	}
	// Replica 2 never answers: the linger timer ends the wait (and reports it silent); replicas 0 and 1 each
	// lack the other's sibling.
	expect(t, "linger", f.Fire(TimerLinger), "silent 2", "repair 0", "repair 1", "done")
}

func TestGetFSMNotFoundEverywhereNeedsNoRepair(t *testing.T) {
	// notfound_ok: R "not found" replies answer.
	f := newGet(GetParams{R: 2, Timeout: time.Second, Linger: time.Second, NotFoundOK: true}, targets3())
	f.Start()
	f.Reply(0, nil, nil)
	expect(t, "quorum of not found", f.Reply(1, nil, nil), "answer notfound", "timer 2")
	expect(t, "last", f.Reply(2, nil, nil), "done")
	// Default: "not found" waits for every replica.
	g := newGet(GetParams{R: 2, Timeout: time.Second, Linger: time.Second}, targets3())
	g.Start()
	g.Reply(0, nil, nil)
	expect(t, "R not found", g.Reply(1, nil, nil))
	expect(t, "the last not found", g.Reply(2, nil, nil), "answer notfound", "timer 2", "done")
}

// TestGetFSMHearsTheReplicaThatHasTheKey: with notfound_ok off, R replicas that lack the key do not answer
// "not found" while another that holds it has not replied: its reply is the answer, and the others get it
// by read repair. A deadline with R "not found" in and the rest silent answers "not found", not an error.
func TestGetFSMHearsTheReplicaThatHasTheKey(t *testing.T) {
	f := newGet(GetParams{R: 2, Timeout: time.Second, Linger: time.Second}, targets3())
	f.Start()
	f.Reply(0, nil, nil)
	expect(t, "R not found", f.Reply(1, nil, nil))
	o := obj("v")
	eff := f.Reply(2, o, nil)
	if a := answerOf(t, eff); a.Err != nil || !slices.Equal(a.Value, o) {
		t.Fatalf("answer %+v, want the late replica's object", a)
	}
	expect(t, "found late", eff, "answer ok", "timer 2", "repair 0", "repair 1", "done")

	g := newGet(GetParams{R: 2, Timeout: time.Second, Linger: time.Second}, targets3())
	g.Start()
	g.Reply(0, nil, nil)
	g.Reply(1, nil, nil)
	expect(t, "deadline", g.Fire(TimerRequest), "answer notfound", "timer 2", "silent 2")
	// A failure of the last replica ends the wait too.
	h := newGet(GetParams{R: 2, Timeout: time.Second, Linger: time.Second}, targets3())
	h.Start()
	h.Reply(0, nil, nil)
	h.Reply(1, nil, nil)
	expect(t, "last fails", h.Reply(2, nil, errors.New("boom")), "answer notfound", "timer 2", "done")
}

func TestGetFSMFailsFastWhenQuorumUnreachable(t *testing.T) {
	f := newGet(GetParams{R: 2, Timeout: time.Second, Linger: time.Second}, targets3())
	f.Start()
	f.Reply(0, nil, errors.New("disk on fire"))
	effs := f.Reply(1, nil, errors.New("disk on fire"))
	a := answerOf(t, effs)
	var qe *QuorumError
	if !errors.As(a.Err, &qe) || qe.Timeout || qe.Need != 2 || qe.Got != 0 || !errors.Is(a.Err, ErrQuorum) {
		t.Fatalf("err %v", a.Err)
	}
}

func TestGetFSMTimeout(t *testing.T) {
	f := newGet(GetParams{R: 2, Timeout: time.Second, Linger: time.Second}, targets3())
	f.Start()
	f.Reply(0, nil, nil)
	a := answerOf(t, f.Fire(TimerRequest))
	if !errors.Is(a.Err, ErrTimeout) {
		t.Fatalf("err %v, want timeout", a.Err)
	}
	if want := "coordinator: get timed out: need 2 replies, got 1"; a.Err.Error() != want {
		t.Fatalf("message %q, want %q", a.Err.Error(), want)
	}
}

// TestFSMsReportSilentReplicas: a replica that has not answered by the deadline, or by the end of the
// linger, is reported (failure suspicion), whether or not the request succeeded; one that answered, even
// with an error, is not reported again.
func TestFSMsReportSilentReplicas(t *testing.T) {
	// A read that times out: the two silent replicas are reported with the answer.
	f := newGet(GetParams{R: 2, Timeout: time.Second, Linger: time.Second}, targets3())
	f.Start()
	f.Reply(0, nil, nil)
	expect(t, "get deadline", f.Fire(TimerRequest), "answer err", "timer 2", "silent 1", "silent 2")
	expect(t, "get linger", f.Fire(TimerLinger), "silent 1", "silent 2", "done")

	// A replica that answered with an error is not silent.
	g := newGet(GetParams{R: 2, Timeout: time.Second, Linger: time.Second}, targets3())
	g.Start()
	g.Reply(0, nil, nil)
	expect(t, "get replica error", g.Reply(2, nil, errors.New("boom")))
	expect(t, "get deadline after an error", g.Fire(TimerRequest), "answer err", "timer 2", "silent 1")
	// A read answered at R: the replica still silent when the linger ends is reported.
	h := newGet(GetParams{R: 2, Timeout: time.Second, Linger: time.Second, NotFoundOK: true}, targets3())
	h.Start()
	h.Reply(0, nil, nil)
	expect(t, "get at R", h.Reply(1, nil, nil), "answer notfound", "timer 2")
	expect(t, "get linger", h.Fire(TimerLinger), "silent 2", "done")

	// A write whose replicas are silent at the deadline: reported at once, then given fallbacks at the
	// linger; a fallback silent through the second linger is reported too.
	p := newPut(PutParams{W: 3, Timeout: time.Second, Linger: time.Second}, targets3(), 0)
	p.Start()
	p.Reply(0, obj("v"), nil)
	expect(t, "put deadline", p.Fire(TimerRequest), "answer err", "timer 2", "silent 1", "silent 2")
	expect(t, "put linger", p.Fire(TimerLinger), "fallback 1", "fallback 2", "timer 2")
	p.AddFallback(Target{Partition: 2, Node: "b"})
	p.NoFallback()
	expect(t, "put second linger", p.Fire(TimerLinger), "silent 3", "done")
}

func TestGetFSMStrictQuorumCountsPrimariesOnly(t *testing.T) {
	ts := []Target{{Partition: 1, Node: "a", Primary: true}, {Partition: 2, Node: "b", Primary: true}, {Partition: 3, Node: "c", Primary: false}}
	f := newGet(GetParams{R: 2, PR: 2, Timeout: time.Second, Linger: time.Second}, ts)
	f.Start()
	expect(t, "fallback reply", f.Reply(2, nil, nil))
	expect(t, "one primary: R met, PR not yet", f.Reply(0, nil, nil))
	a := answerOf(t, f.Reply(1, nil, errors.New("down")))
	var qe *QuorumError
	if !errors.As(a.Err, &qe) || !qe.Primary || qe.Need != 2 || qe.Got != 1 {
		t.Fatalf("err %v, want primary quorum error", a.Err)
	}

	// With one primary in the preference list, PR=2 cannot be met: the FSM fails at start.
	g := newGet(GetParams{R: 2, PR: 2, Timeout: time.Second}, []Target{ts[0], ts[2], {Partition: 4, Node: "d"}})
	expect(t, "start", g.Start(), "answer err", "done")
}

func TestGetFSMIgnoresDuplicateAndUnknownReplies(t *testing.T) {
	f := newGet(GetParams{R: 2, Timeout: time.Second, Linger: time.Second}, targets3())
	f.Start()
	f.Reply(0, nil, nil)
	expect(t, "duplicate", f.Reply(0, nil, nil))
	expect(t, "out of range", f.Reply(7, nil, nil))
	expect(t, "negative", f.Reply(-1, nil, nil))
}

func TestPutFSMCoordinatesThenReplicates(t *testing.T) {
	f := newPut(PutParams{W: 2, Timeout: time.Second, Linger: time.Second}, targets3(), 0)
	expect(t, "start", f.Start(), "coord 0", "timer 1")
	o := obj("v")
	effs := f.Reply(0, o, nil)
	expect(t, "coordinator stored", effs, "put 1", "put 2")
	for _, e := range effs {
		if sp := e.(SendPut[set]); !slices.Equal(sp.Value, o) {
			t.Fatal("replicas must get the coordinator's object")
		}
	}
	effs = f.Reply(2, nil, nil)
	expect(t, "w met", effs, "answer ok", "timer 2")
	expect(t, "late ack", f.Reply(1, nil, nil), "done")
}

func TestPutFSMW1AnswersAfterCoordinator(t *testing.T) {
	f := newPut(PutParams{W: 1, Timeout: time.Second, Linger: time.Second}, targets3(), 1)
	f.Start()
	expect(t, "coord", f.Reply(1, obj("v"), nil), "put 0", "put 2", "answer ok", "timer 2")
	f.Reply(0, nil, nil)
	// Replica 2 never answered: at the end of the linger it gets a fallback and one more linger.
	expect(t, "linger", f.Fire(TimerLinger), "fallback 2", "timer 2")
	expect(t, "fallback added", f.AddFallback(Target{Partition: 3, Node: "b"}), "put 3")
	expect(t, "fallback acked", f.Reply(3, nil, nil), "done")
}

func TestPutFSMFailedReplicaGetsAFallbackThatCountsTowardW(t *testing.T) {
	f := newPut(PutParams{W: 3, PW: 2, Timeout: time.Second, Linger: time.Second}, targets3(), 0)
	f.Start()
	f.Reply(0, obj("v"), nil)
	f.Reply(1, nil, nil)
	expect(t, "replica 2 down", f.Reply(2, nil, errors.New("unreachable")), "fallback 2")
	effs := f.AddFallback(Target{Partition: 3, Node: "b", Primary: true})
	expect(t, "send to fallback", effs, "put 3")
	if f.Targets()[3].Primary {
		t.Fatal("a fallback never counts as a primary")
	}
	expect(t, "fallback acked: W=3 met (PW=2 by the primaries)", f.Reply(3, nil, nil), "answer ok", "timer 2", "done")

	// Without a stand-in the quorum fails as soon as that is known.
	g := newPut(PutParams{W: 3, Timeout: time.Second, Linger: time.Second}, targets3(), 0)
	g.Start()
	g.Reply(0, obj("v"), nil)
	g.Reply(1, nil, nil)
	expect(t, "replica 2 down", g.Reply(2, nil, errors.New("unreachable")), "fallback 2")
	effs = g.NoFallback()
	if a := answerOf(t, effs); !errors.Is(a.Err, ErrQuorum) {
		t.Fatalf("want a quorum error, got %v", a.Err)
	}
}

func TestPutFSMCoordinatorFailure(t *testing.T) {
	f := newPut(PutParams{W: 2, Timeout: time.Second, Linger: time.Second}, targets3(), 0)
	f.Start()
	errTooMany := errors.New("too many siblings")
	effs := f.Reply(0, nil, errTooMany)
	expect(t, "coord failed", effs, "answer err", "done")
	if !errors.Is(answerOf(t, effs).Err, errTooMany) {
		t.Fatal("coordinator error must reach the client")
	}
}

func TestPutFSMQuorumFailureAndTimeout(t *testing.T) {
	f := newPut(PutParams{W: 3, Timeout: time.Second, Linger: time.Second}, targets3(), 0)
	f.Start()
	f.Reply(0, obj("v"), nil)
	expect(t, "replica failed", f.Reply(1, nil, errors.New("boom")), "fallback 1")
	a := answerOf(t, f.NoFallback())
	if !errors.Is(a.Err, ErrQuorum) || errors.Is(a.Err, ErrTimeout) {
		t.Fatalf("err %v", a.Err)
	}
	g := newPut(PutParams{W: 2, Timeout: time.Second, Linger: time.Second}, targets3(), 0)
	g.Start()
	if a := answerOf(t, g.Fire(TimerRequest)); !errors.Is(a.Err, ErrTimeout) {
		t.Fatalf("err %v", a.Err)
	}
}

func TestPutFSMTooFewTargets(t *testing.T) {
	f := newPut(PutParams{W: 2, Timeout: time.Second}, targets3()[:1], 0)
	effs := f.Start()
	expect(t, "start", effs, "answer err", "done")
}

func TestDeleteReapsOnlyWhenEveryReplicaStoredTheTombstone(t *testing.T) {
	p := PutParams{W: 2, Timeout: time.Second, Linger: time.Second, Reap: true, ReapDelay: time.Second}
	f := newPut(p, targets3(), 0)
	f.Start()
	f.Reply(0, obj(""), nil)
	f.Reply(1, nil, nil)
	expect(t, "all in", f.Reply(2, nil, nil), "timer 3")
	expect(t, "linger ignored while reaping", f.Fire(TimerLinger))
	expect(t, "reap", f.Fire(TimerReap), "reap", "done")

	g := newPut(p, targets3(), 0)
	g.Start()
	g.Reply(0, obj(""), nil)
	g.Reply(1, nil, nil)
	expect(t, "one replica failed", g.Reply(2, nil, errors.New("down")), "fallback 2")
	expect(t, "no fallback found", g.NoFallback(), "done")
}
