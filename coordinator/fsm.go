package coordinator

import (
	"errors"
	"time"

	"github.com/gokai-kv/gokai/kv"
	"github.com/gokai-kv/gokai/ring"
)

// The request FSMs are pure state machines in the style of etcd/raft: no actors, no clock, no I/O. The
// request actor feeds them inputs (Start, a replica's reply, a timer firing) and carries out the Effects they
// return, in order.

// Target is one replica of a request: a vnode (partition on node) from the key's preference list.
type Target struct {
	Partition int
	Node      ring.NodeID
	Primary   bool
}

// Effect is an action the FSM asks its shell to carry out.
type Effect interface{ isEffect() }

// SendGet asks target Target for its copy of the key.
type SendGet struct{ Target int }

// SendPut sends a write to Target: the client's write when Coordinate, else Object to merge.
type SendPut struct {
	Target     int
	Coordinate bool
	Object     *kv.Object
}

// SendReap asks every target to drop the key's tombstone if it is still what Clock describes.
type SendReap struct{ Clock kv.VClock }

// Answer gives the client its result. Exactly one Answer is emitted per request.
type Answer struct {
	Object *kv.Object // get: the reconciled object (nil = not found); put: the written object
	Err    error
}

// Repair writes the reconciled object to a replica that answered stale or not found (read repair).
type Repair struct {
	Target int
	Object *kv.Object
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
func (SendPut) isEffect()      {}
func (SendReap) isEffect()     {}
func (Answer) isEffect()       {}
func (Repair) isEffect()       {}
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

// settle answers once: with obj when the quorum is met, with the quorum error as soon as it is out of
// reach; either way the linger starts. It does nothing while undecided or after the answer.
func (q *quorum) settle(answered *bool, op string, obj *kv.Object, linger time.Duration) []Effect {
	if *answered {
		return nil
	}
	if q.met() {
		*answered = true
		return []Effect{Answer{Object: obj}, StartTimer{Timer: TimerLinger, After: linger}}
	}
	if bad, _ := q.unreachable(); bad {
		*answered = true
		return []Effect{Answer{Err: q.failErr(op)}, StartTimer{Timer: TimerLinger, After: linger}}
	}
	return nil
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

// GetParams configures one read.
type GetParams struct {
	R, PR   int           // replies needed, of which primaries
	Timeout time.Duration // deadline for the answer
	Linger  time.Duration // how long after the answer to wait for late replies before repairing
	LWW     bool          // reconcile last-write-wins
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
type GetFSM struct {
	p        GetParams
	q        quorum
	objects  []*kv.Object // per target, for replied targets (nil = not found)
	merged   *kv.Object
	answered bool
	done     bool
	repairs  int
	// The per-target slices live here when there are at most maxInline targets.
	objBuf   [maxInline]*kv.Object
	stateBuf [maxInline]replyState
}

// NewGetFSM makes a read FSM over targets.
func NewGetFSM(p GetParams, targets []Target) *GetFSM {
	f := &GetFSM{}
	f.init(p, targets)
	return f
}

// init makes f a fresh read FSM over targets (NewGetFSM in place).
func (f *GetFSM) init(p GetParams, targets []Target) {
	*f = GetFSM{p: p, q: quorum{targets: targets, need: p.R, needPrimary: p.PR}}
	if len(targets) <= maxInline {
		f.objects, f.q.state = f.objBuf[:len(targets)], f.stateBuf[:len(targets)]
	} else {
		f.objects, f.q.state = make([]*kv.Object, len(targets)), make([]replyState, len(targets))
	}
}

// Start returns the fan-out.
func (f *GetFSM) Start() []Effect {
	eff := make([]Effect, 0, len(f.q.targets)+2)
	if bad, _ := f.q.unreachable(); bad {
		f.answered = true
		return append(eff, Answer{Err: f.q.failErr("get")}, Done{})
	}
	for i := range f.q.targets {
		eff = append(eff, SendGet{Target: i})
	}
	return append(eff, StartTimer{Timer: TimerRequest, After: f.p.Timeout})
}

// Reply feeds target i's answer: obj (nil = not found) or err.
func (f *GetFSM) Reply(i int, obj *kv.Object, err error) []Effect {
	if f.done || !f.q.record(i, err) {
		return nil
	}
	if err == nil {
		f.objects[i] = obj
		switch {
		case obj == nil:
		case f.merged == nil:
			f.merged = obj
		case !f.merged.Equal(obj):
			// NB: replicas usually agree; Sync (which allocates) only runs when they differ.
			f.merged = kv.Sync(f.merged, obj, f.p.LWW)
		}
	}
	var eff []Effect
	if f.merged != nil || f.p.NotFoundOK || f.q.allIn() || !f.q.met() {
		eff = f.q.settle(&f.answered, "get", f.merged, f.p.Linger)
	}
	// NB: otherwise R replies said "not found": wait for the others (notfound_ok off).
	if f.answered && f.q.allIn() {
		eff = append(eff, f.finish()...)
	}
	return eff
}

// Fire feeds a timer.
func (f *GetFSM) Fire(t Timer) []Effect {
	if f.done {
		return nil
	}
	switch t {
	case TimerRequest:
		if !f.answered {
			f.answered = true
			ans := Answer{Err: f.q.err("get", true)}
			if f.q.met() {
				ans = Answer{Object: f.merged} // R replies, all "not found": the others stayed silent
			}
			return f.q.silent([]Effect{ans, StartTimer{Timer: TimerLinger, After: f.p.Linger}})
		}
	case TimerLinger:
		return append(f.q.silent(nil), f.finish()...)
	}
	return nil
}

// finish read-repairs every replica that answered with less than the reconciled object.
func (f *GetFSM) finish() []Effect {
	f.done = true
	var eff []Effect
	if f.merged != nil {
		for i, s := range f.q.state {
			if s == replied && !f.merged.Equal(f.objects[i]) {
				eff = append(eff, Repair{Target: i, Object: f.merged})
				f.repairs++
			}
		}
	}
	return append(eff, Done{})
}

// Repairs is the number of read repairs the FSM issued.
func (f *GetFSM) Repairs() int { return f.repairs }

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
type PutFSM struct {
	p        PutParams
	q        quorum
	coord    int
	obj      *kv.Object
	answered bool
	reaping  bool
	lingered bool // the first linger ended: silent replicas were given fallbacks
	done     bool
}

// NewPutFSM makes a write FSM over targets; coord is the index of the coordinating target.
func NewPutFSM(p PutParams, targets []Target, coord int) *PutFSM {
	return &PutFSM{p: p, q: newQuorum(targets, p.W, p.PW), coord: coord}
}

// Start sends the write to the coordinating vnode.
func (f *PutFSM) Start() []Effect {
	if bad, _ := f.q.unreachable(); bad || f.coord < 0 || f.coord >= len(f.q.targets) {
		f.answered, f.done = true, true
		return []Effect{Answer{Err: f.q.failErr("put")}, Done{}}
	}
	return []Effect{SendPut{Target: f.coord, Coordinate: true}, StartTimer{Timer: TimerRequest, After: f.p.Timeout}}
}

// Reply feeds target i's acknowledgement; obj is the coordinating vnode's result.
func (f *PutFSM) Reply(i int, obj *kv.Object, err error) []Effect {
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
			return []Effect{Answer{Err: err}, Done{}}
		}
		f.obj = obj
		for j := range f.q.targets {
			if j != f.coord {
				eff = append(eff, SendPut{Target: j, Object: obj})
			}
		}
	}
	eff = append(eff, f.q.settle(&f.answered, "put", f.obj, f.p.Linger)...)
	if f.answered && f.q.allIn() {
		eff = append(eff, f.finish()...)
	}
	return eff
}

// Fire feeds a timer.
func (f *PutFSM) Fire(t Timer) []Effect {
	if f.done {
		return nil
	}
	switch t {
	case TimerRequest:
		if !f.answered {
			f.answered = true
			return f.q.silent([]Effect{Answer{Err: f.q.err("put", true)}, StartTimer{Timer: TimerLinger, After: f.p.Linger}})
		}
	case TimerLinger:
		if f.reaping {
			return nil
		}
		if !f.lingered && f.obj != nil {
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
		return append(f.q.silent(nil), f.finish()...)
	case TimerReap:
		f.done = true
		return []Effect{SendReap{Clock: f.obj.Clock}, Done{}}
	}
	return nil
}

// errNoReply marks a replica that did not answer before the linger ended.
var errNoReply = errors.New("coordinator: replica did not answer")

// AddFallback adds t, a fallback standing in for a failed replica, and sends it the written object; its
// acknowledgement counts toward W (and never toward PW).
func (f *PutFSM) AddFallback(t Target) []Effect {
	if f.done || f.obj == nil {
		return nil
	}
	t.Primary = false
	f.q.extra = max(0, f.q.extra-1)
	f.q.targets = append(f.q.targets, t)
	f.q.state = append(f.q.state, pending)
	return []Effect{SendPut{Target: len(f.q.targets) - 1, Object: f.obj}}
}

// NoFallback tells the FSM a NeedFallback found no stand-in.
func (f *PutFSM) NoFallback() []Effect {
	if f.done {
		return nil
	}
	f.q.extra = max(0, f.q.extra-1)
	eff := f.q.settle(&f.answered, "put", f.obj, f.p.Linger)
	if f.answered && f.q.allIn() {
		eff = append(eff, f.finish()...)
	}
	return eff
}

// Targets is the FSM's current replica list (fallbacks included).
func (f *PutFSM) Targets() []Target { return f.q.targets }

func (f *PutFSM) finish() []Effect {
	// A tombstone is reaped only when every target stored it: a replica that missed it could otherwise
	// resurrect the deleted value through read repair.
	if f.p.Reap && f.obj != nil && f.q.ok == len(f.q.targets) && f.q.okPrim == len(f.q.targets) {
		f.reaping = true
		return []Effect{StartTimer{Timer: TimerReap, After: f.p.ReapDelay}}
	}
	f.done = true
	return []Effect{Done{}}
}
