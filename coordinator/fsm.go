package coordinator

import (
	"errors"
	"time"

	"github.com/gokai-kv/gokai/ring"
)

// The request FSMs are pure state machines in the style of etcd/raft: no actors, no clock, no I/O. The
// request actor feeds them inputs (Start, a replica's reply, a timer firing) and carries out the Effects they
// return, in order. They are generic over the service's value type V and learn what they need about values
// from a Values[V] (not found, equal, merge), which must be pure too.

// Target is one replica of a request: a vnode (partition on node) from the key's preference list, the
// list's entry itself (Partition, Node, Primary; the FSMs do not read HintFor). NB: an alias, so a request
// takes the Router's preference list as its targets without a copy (an allocation of every request).
type Target = ring.PrefEntry

// Effect is an action the FSM asks its shell to carry out.
type Effect interface{ isEffect() }

// SendGet asks target Target for its copy of the key.
type SendGet struct{ Target int }

// SendPut sends a write to Target: the client's write (the request's command) when Coordinate, else Value,
// which the replica merges with what it holds (replication).
type SendPut[V any] struct {
	Target     int
	Coordinate bool
	Value      V
}

// SendReap sends every target the request's reap command for Value, the written value (KV: drop the key's
// tombstone if it is still what Value's clock describes).
type SendReap[V any] struct{ Value V }

// Answer gives the client its result. Exactly one Answer is emitted per request.
type Answer[V any] struct {
	Value V // get: the merged value (the zero V when no replica holds the key); put: the written value
	Err   error
}

// Repair writes the merged value to a replica that answered with less, or not found (read repair).
type Repair[V any] struct {
	Target int
	Value  V
}

// StartTimer asks for Fire(Timer) after After.
type StartTimer struct {
	Timer Timer
	After time.Duration
}

// NeedFallback asks the shell for a fallback replica standing in for Target, which failed or did not
// answer a write: the shell finds one (sloppy quorum) and hands it to AddFallback.
type NeedFallback struct{ Target int }

// Silent reports that Target has not answered by the request's deadline or the end of its linger: the
// shell counts it as a failure of Target's node (failure suspicion: a node that does not answer is routed
// around until it answers again). It never changes the request's outcome.
type Silent struct{ Target int }

// Done means the FSM is finished: the shell stops.
type Done struct{}

func (SendGet) isEffect()      {}
func (SendPut[V]) isEffect()   {}
func (SendReap[V]) isEffect()  {}
func (Answer[V]) isEffect()    {}
func (Repair[V]) isEffect()    {}
func (StartTimer) isEffect()   {}
func (Done) isEffect()         {}
func (Silent) isEffect()       {}
func (NeedFallback) isEffect() {}

// Timer names the FSM timers.
type Timer uint8

const (
	// TimerRequest fires at the request's deadline: no answer yet means a timeout error.
	TimerRequest Timer = iota + 1
	// TimerLinger ends the wait for late replies after the answer.
	TimerLinger
	// TimerReap fires when a fully acknowledged tombstone may be reaped.
	TimerReap
)

// replyState tracks one target's answer.
type replyState uint8

const (
	pending replyState = iota
	replied
	failed
)

// quorum counts successes and failures against a requirement of Need replies of which NeedPrimary from
// primaries.
type quorum struct {
	targets     []Target
	state       []replyState
	need        int
	needPrimary int
	ok, okPrim  int
	errs        []string
	// extra counts replicas that may still join (fallbacks being looked up): they keep the quorum
	// reachable and the request open.
	extra int
}

func newQuorum(targets []Target, need, needPrimary int) quorum {
	return quorum{targets: targets, state: make([]replyState, len(targets)), need: need, needPrimary: needPrimary}
}

// maxInline is the number of targets a GetFSM tracks without allocating (N is usually 3).
const maxInline = 4

// record notes target i's outcome; it returns false for a duplicate or out-of-range reply.
func (q *quorum) record(i int, err error) bool {
	if i < 0 || i >= len(q.state) || q.state[i] != pending {
		return false
	}
	if err != nil {
		q.state[i] = failed
		if len(q.errs) < 4 {
			q.errs = append(q.errs, err.Error())
		}
		return true
	}
	q.state[i] = replied
	q.ok++
	if q.targets[i].Primary {
		q.okPrim++
	}
	return true
}

func (q *quorum) met() bool { return q.ok >= q.need && q.okPrim >= q.needPrimary }

// unreachable reports whether the requirement can no longer be met, and which part failed.
func (q *quorum) unreachable() (bool, bool) {
	var pend, pendPrim int
	for i, s := range q.state {
		if s == pending {
			pend++
			if q.targets[i].Primary {
				pendPrim++
			}
		}
	}
	if q.ok+pend+q.extra < q.need {
		return true, false
	}
	if q.okPrim+pendPrim < q.needPrimary {
		return true, true
	}
	return false, false
}

// silent returns a Silent effect for every target still pending, appended to eff.
func (q *quorum) silent(eff []Effect) []Effect {
	for i, s := range q.state {
		if s == pending {
			eff = append(eff, Silent{Target: i})
		}
	}
	return eff
}

func (q *quorum) allIn() bool {
	if q.extra > 0 {
		return false
	}
	for _, s := range q.state {
		if s == pending {
			return false
		}
	}
	return true
}

// settle answers once: with v when the quorum is met, with the quorum error as soon as it is out of
// reach; either way the linger starts. It appends those effects to eff (no new slice: a request's FSM
// steps are on every read's and write's path) and does nothing while undecided or after the answer.
func settle[V any](eff []Effect, q *quorum, answered *bool, op string, v V, linger time.Duration) []Effect {
	if *answered {
		return eff
	}
	if q.met() {
		*answered = true
		return append(eff, Answer[V]{Value: v}, StartTimer{Timer: TimerLinger, After: linger})
	}
	if bad, _ := q.unreachable(); bad {
		*answered = true
		return append(eff, Answer[V]{Err: q.failErr(op)}, StartTimer{Timer: TimerLinger, After: linger})
	}
	return eff
}

func (q *quorum) err(op string, timeout bool) *QuorumError {
	e := &QuorumError{Op: op, Need: q.need, Got: q.ok, Timeout: timeout, Errs: q.errs}
	if q.ok >= q.need && q.okPrim < q.needPrimary {
		e.Primary, e.Need, e.Got = true, q.needPrimary, q.okPrim
	}
	return e
}

func (q *quorum) failErr(op string) *QuorumError {
	_, prim := q.unreachable()
	e := &QuorumError{Op: op, Need: q.need, Got: q.ok, Errs: q.errs}
	if prim {
		e.Primary, e.Need, e.Got = true, q.needPrimary, q.okPrim
	}
	return e
}

// Values is what the request FSMs need to know about a service's values. Its methods must be pure (no I/O,
// no clock) and must not modify their arguments: values are shared between replies, the merge and the
// repairs. They are called from request actors, concurrently for different requests.
type Values[V any] interface {
	// Missing reports whether v is a replica's "not found" (KV: a nil object). The FSMs never pass a
	// missing value to Merge.
	Missing(v V) bool
	// Equal reports whether a and b hold the same data; either may be missing. A replica whose value is not
	// Equal to the merged one is repaired.
	Equal(a, b V) bool
	// Merge reconciles two values that are not missing (KV: Sync). It must be commutative, associative and
	// idempotent, so that replies and repairs may be merged in any order, any number of times.
	Merge(a, b V) V
}

// GetParams configures one read.
type GetParams struct {
	R, PR   int           // replies needed, of which primaries
	Timeout time.Duration // deadline for the answer
	Linger  time.Duration // how long after the answer to wait for late replies before repairing
	// NotFoundOK lets R "not found" replies answer "not found" at once (riak's notfound_ok=true). Without
	// it (the default) a read answers "not found" only once every replica answered (or failed), or at the
	// deadline with R replies in: a replica that does hold the key, and answers later than R others that
	// do not (a hint on its way back, a copy a changed preference list has not re-homed yet), is still
	// heard. A read that finds the key answers at R replies either way.
	NotFoundOK bool
}

// GetFSM reads a key from its replicas, answers after R replies, and read-repairs every replica that
// answered stale or not found, late replies included.
//
//	Start ──► waiting ──(R ok)──► answered ──(all in | linger)──► repair ──► Done
//	             │ (quorum unreachable | deadline)                  ▲
//	             └──────────────── answer error ───────────────────┘
//
// The effects a step (Start, Reply, Fire) returns live in the FSM, valid until its next step: the shell
// carries out one step's effects before it feeds the FSM the next input (a read's steps are on every read's
// path, and a slice per step was three of its allocations).
type GetFSM[V any] struct {
	p        GetParams
	vals     Values[V]
	q        quorum
	values   []V // per target, for replied targets (possibly missing)
	merged   V   // the merge of the values that are not missing; valid when found
	found    bool
	answered bool
	done     bool
	repairs  int
	// The per-target slices live here when there are at most maxInline targets.
	valBuf   [maxInline]V
	stateBuf [maxInline]replyState
	// effBuf holds the effects of one step (see GetFSM's steps): with N=3, the fan-out and its timer, or
	// an answer, its timer and Done, or Done and three repairs fit; a longer step appends past it into a new
	// slice. NB: four, not more: the request actor that holds this FSM (and its mailbox) must stay within
	// its size class (TestRequestActorSize).
	effBuf [4]Effect
}

// NewGetFSM makes a read FSM over targets.
func NewGetFSM[V any](vals Values[V], p GetParams, targets []Target) *GetFSM[V] {
	f := &GetFSM[V]{}
	f.init(vals, p, targets)
	return f
}

// init makes f a fresh read FSM over targets (NewGetFSM in place).
func (f *GetFSM[V]) init(vals Values[V], p GetParams, targets []Target) {
	*f = GetFSM[V]{p: p, vals: vals, q: quorum{targets: targets, need: p.R, needPrimary: p.PR}}
	if len(targets) <= maxInline {
		f.values, f.q.state = f.valBuf[:len(targets)], f.stateBuf[:len(targets)]
	} else {
		f.values, f.q.state = make([]V, len(targets)), make([]replyState, len(targets))
	}
}

// effs returns f's effect buffer, emptied: the slice a step returns, valid until its next step.
func (f *GetFSM[V]) effs() []Effect {
	clear(f.effBuf[:]) // NB: drop the last step's values, so the buffer holds no object alive
	return f.effBuf[:0]
}

// Start returns the fan-out.
func (f *GetFSM[V]) Start() []Effect {
	eff := f.effs()
	if bad, _ := f.q.unreachable(); bad {
		f.answered = true
		return append(eff, Answer[V]{Err: f.q.failErr("get")}, Done{})
	}
	for i := range f.q.targets {
		eff = append(eff, SendGet{Target: i})
	}
	return append(eff, StartTimer{Timer: TimerRequest, After: f.p.Timeout})
}

// Reply feeds target i's answer: v (possibly missing: not found) or err.
func (f *GetFSM[V]) Reply(i int, v V, err error) []Effect {
	if f.done || !f.q.record(i, err) {
		return nil
	}
	if err == nil {
		f.values[i] = v
		switch {
		case f.vals.Missing(v):
		case !f.found:
			f.merged, f.found = v, true
		case !f.vals.Equal(f.merged, v):
			// NB: replicas usually agree; Merge (which may allocate) only runs when they differ.
			f.merged = f.vals.Merge(f.merged, v)
		}
	}
	eff := f.effs()
	if f.found || f.p.NotFoundOK || f.q.allIn() || !f.q.met() {
		eff = settle(eff, &f.q, &f.answered, "get", f.merged, f.p.Linger)
	}
	// NB: otherwise R replies said "not found": wait for the others (notfound_ok off).
	if f.answered && f.q.allIn() {
		eff = f.finish(eff)
	}
	if len(eff) == 0 {
		return nil
	}
	return eff
}

// Fire feeds a timer.
func (f *GetFSM[V]) Fire(t Timer) []Effect {
	if f.done {
		return nil
	}
	switch t {
	case TimerRequest:
		if !f.answered {
			f.answered = true
			ans := Answer[V]{Err: f.q.err("get", true)}
			if f.q.met() {
				ans = Answer[V]{Value: f.merged} // R replies, all "not found": the others stayed silent
			}
			return f.q.silent(append(f.effs(), ans, StartTimer{Timer: TimerLinger, After: f.p.Linger}))
		}
	case TimerLinger:
		return f.finish(f.q.silent(f.effs()))
	}
	return nil
}

// finish read-repairs every replica that answered with less than the merged value; it appends its effects
// to eff.
func (f *GetFSM[V]) finish(eff []Effect) []Effect {
	f.done = true
	if f.found {
		for i, s := range f.q.state {
			if s == replied && !f.vals.Equal(f.merged, f.values[i]) {
				eff = append(eff, Repair[V]{Target: i, Value: f.merged})
				f.repairs++
			}
		}
	}
	return append(eff, Done{})
}

// Repairs is the number of read repairs the FSM issued.
func (f *GetFSM[V]) Repairs() int { return f.repairs }

// PutParams configures one write (or delete: a write of a tombstone).
type PutParams struct {
	W, PW   int
	Timeout time.Duration
	Linger  time.Duration
	// Reap asks, once every target acknowledged the tombstone, to reap it after ReapDelay.
	Reap      bool
	ReapDelay time.Duration
}

// PutFSM writes through a coordinating vnode, which applies the write and mints the new version, then
// replicates the result to the other targets and answers after W acknowledgements (the coordinating
// vnode's included).
//
//	Start ─► coordinate ─(coord ok)─► replicate ─(W ok)─► answered ─(all in | linger)─► [reap wait] ─► Done
//	              │ coord failed / quorum unreachable / deadline: answer error ───────────────┘
type PutFSM[V any] struct {
	p        PutParams
	vals     Values[V]
	q        quorum
	coord    int
	value    V    // the coordinating vnode's result, replicated to the others
	written  bool // the coordinating vnode answered with a value (not missing)
	answered bool
	reaping  bool
	lingered bool // the first linger ended: silent replicas were given fallbacks
	done     bool
}

// NewPutFSM makes a write FSM over targets; coord is the index of the coordinating target.
func NewPutFSM[V any](vals Values[V], p PutParams, targets []Target, coord int) *PutFSM[V] {
	return &PutFSM[V]{p: p, vals: vals, q: newQuorum(targets, p.W, p.PW), coord: coord}
}

// Start sends the write to the coordinating vnode.
func (f *PutFSM[V]) Start() []Effect {
	if bad, _ := f.q.unreachable(); bad || f.coord < 0 || f.coord >= len(f.q.targets) {
		f.answered, f.done = true, true
		return []Effect{Answer[V]{Err: f.q.failErr("put")}, Done{}}
	}
	return []Effect{SendPut[V]{Target: f.coord, Coordinate: true}, StartTimer{Timer: TimerRequest, After: f.p.Timeout}}
}

// Reply feeds target i's acknowledgement; v is the coordinating vnode's result.
func (f *PutFSM[V]) Reply(i int, v V, err error) []Effect {
	if f.done || !f.q.record(i, err) {
		return nil
	}
	var eff []Effect
	if err != nil && i != f.coord {
		f.q.extra++
		eff = append(eff, NeedFallback{Target: i})
	}
	if i == f.coord {
		if err != nil {
			// The write was not applied anywhere: nothing to replicate.
			f.answered, f.done = true, true
			return []Effect{Answer[V]{Err: err}, Done{}}
		}
		f.value, f.written = v, !f.vals.Missing(v)
		// NB: room for the replicas' writes, settle's answer and linger, and finish's effect.
		eff = make([]Effect, 0, len(f.q.targets)+2)
		for j := range f.q.targets {
			if j != f.coord {
				eff = append(eff, SendPut[V]{Target: j, Value: v})
			}
		}
	}
	eff = settle(eff, &f.q, &f.answered, "put", f.value, f.p.Linger)
	if f.answered && f.q.allIn() {
		eff = f.finish(eff)
	}
	return eff
}

// Fire feeds a timer.
func (f *PutFSM[V]) Fire(t Timer) []Effect {
	if f.done {
		return nil
	}
	switch t {
	case TimerRequest:
		if !f.answered {
			f.answered = true
			return f.q.silent([]Effect{Answer[V]{Err: f.q.err("put", true)}, StartTimer{Timer: TimerLinger, After: f.p.Linger}})
		}
	case TimerLinger:
		if f.reaping {
			return nil
		}
		if !f.lingered && f.written {
			// Replicas that never answered get a fallback too, and one more linger for its ack.
			f.lingered = true
			var eff []Effect
			for i, st := range f.q.state {
				if st == pending && i != f.coord {
					f.q.record(i, errNoReply)
					f.q.extra++
					eff = append(eff, NeedFallback{Target: i})
				}
			}
			if len(eff) > 0 {
				return append(eff, StartTimer{Timer: TimerLinger, After: f.p.Linger})
			}
		}
		return f.finish(f.q.silent(nil))
	case TimerReap:
		f.done = true
		return []Effect{SendReap[V]{Value: f.value}, Done{}}
	}
	return nil
}

// errNoReply marks a replica that did not answer before the linger ended.
var errNoReply = errors.New("coordinator: replica did not answer")

// AddFallback adds t, a fallback standing in for a failed replica, and sends it the written value; its
// acknowledgement counts toward W (and never toward PW).
func (f *PutFSM[V]) AddFallback(t Target) []Effect {
	if f.done || !f.written {
		return nil
	}
	t.Primary = false
	f.q.extra = max(0, f.q.extra-1)
	f.q.targets = append(f.q.targets, t)
	f.q.state = append(f.q.state, pending)
	return []Effect{SendPut[V]{Target: len(f.q.targets) - 1, Value: f.value}}
}

// NoFallback tells the FSM a NeedFallback found no stand-in.
func (f *PutFSM[V]) NoFallback() []Effect {
	if f.done {
		return nil
	}
	f.q.extra = max(0, f.q.extra-1)
	eff := settle(nil, &f.q, &f.answered, "put", f.value, f.p.Linger)
	if f.answered && f.q.allIn() {
		eff = f.finish(eff)
	}
	return eff
}

// Targets is the FSM's current replica list (fallbacks included).
func (f *PutFSM[V]) Targets() []Target { return f.q.targets }

// finish ends the write, or starts the reap timer of a tombstone every target stored; it appends its
// effect to eff.
func (f *PutFSM[V]) finish(eff []Effect) []Effect {
	// A tombstone is reaped only when every target stored it: a replica that missed it could otherwise
	// resurrect the deleted value through read repair.
	if f.p.Reap && f.written && f.q.ok == len(f.q.targets) && f.q.okPrim == len(f.q.targets) {
		f.reaping = true
		return append(eff, StartTimer{Timer: TimerReap, After: f.p.ReapDelay})
	}
	f.done = true
	return append(eff, Done{})
}
