package coverage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/vnode"
)

// Cluster is what coverage requests need from the node: the current ring, which nodes are up, and how to
// reach a service's vnode. Implementations must be safe for concurrent use and must not block.
type Cluster interface {
	// Ring is the node's current ring.
	Ring() *ring.Ring
	// Up reports whether node counts as up (membership and failure suspicion).
	Up(node ring.NodeID) bool
	// VnodePID is the service's vnode of partition p on node, or nil when it cannot be reached.
	VnodePID(node ring.NodeID, p int) *actor.PID
	// ReportFailure tells the node that a vnode on node failed or went silent (failure suspicion).
	ReportFailure(node ring.NodeID)
}

// Config configures the coverage requests of one service on one node.
type Config struct {
	N int // replicas per key (the ring's N); required, 1..16
	// MaxInFlight bounds the coverage requests running at once; one more fails with ErrOverload. Default 64.
	MaxInFlight int
	Logger      *slog.Logger
}

// Errors of coverage requests.
var (
	ErrOverload = errors.New("coverage: too many coverage requests running")
	ErrCrashed  = errors.New("coverage: request actor stopped before the request ended")
	ErrCanceled = errors.New("coverage: request closed")
)

// VnodeError reports the vnode that made a request fail: it could not be reached, it ended its stream with an
// error, it sent something out of sequence, or it stayed silent for the request's Idle while it owed a chunk.
// A vnode that could not be reached or stayed silent had its node reported to the Cluster (failure
// suspicion), so a plan made after it avoids that node while it is suspected; one that answered with an
// error (its worker pool was busy, it restarted) did not: its node is alive.
type VnodeError struct {
	Vnode Vnode
	Err   error
}

func (e *VnodeError) Error() string {
	return fmt.Sprintf("coverage: partition %d on %s: %v", e.Vnode.Partition, e.Vnode.Node, e.Err)
}

func (e *VnodeError) Unwrap() error { return e.Err }

// Service starts coverage requests for one service's vnodes. Methods are safe for concurrent use.
type Service struct {
	cfg     Config
	system  *actor.ActorSystem
	cluster Cluster
	root    *actor.RootContext
	active  atomic.Int64

	started, failures atomic.Int64
}

// Stats are a Service's counters since it was made.
type Stats struct {
	Started  int64 // requests started (planned and sent)
	Active   int64 // requests running now
	Failures int64 // requests a vnode failed (VnodeError)
}

// Stats returns the counters.
func (s *Service) Stats() Stats {
	return Stats{Started: s.started.Load(), Active: s.active.Load(), Failures: s.failures.Load()}
}

// NewService makes the coverage requests of one service. Request actors are temporary children of a
// guardian (as coordinators are): a crash stops the request alone, and its caller gets ErrCrashed.
func NewService(system *actor.ActorSystem, cluster Cluster, cfg Config) (*Service, error) {
	if cluster == nil {
		return nil, errors.New("coverage: no Cluster")
	}
	if cfg.N < 1 || cfg.N > 16 {
		return nil, fmt.Errorf("coverage: Config.N %d out of range 1..16", cfg.N)
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 64
	}
	if cfg.MaxInFlight < 1 {
		return nil, fmt.Errorf("coverage: Config.MaxInFlight %d must be >= 1", cfg.MaxInFlight)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	strategy := actor.NewOneForOneStrategy(0, time.Second, func(reason any) actor.Directive {
		cfg.Logger.Error("coverage request crashed", "reason", fmt.Sprint(reason))
		return actor.StopDirective
	})
	return &Service{cfg: cfg, system: system, cluster: cluster,
		root: actor.NewRootContext(system, nil).WithGuardian(strategy)}, nil
}

// Active is the number of coverage requests running.
func (s *Service) Active() int64 { return s.active.Load() }

// Request is one coverage request: which hash partitions, which command, how the vnodes stream.
type Request struct {
	// Want lists the hash partitions to cover (nil: all of them).
	Want []int
	// Offset rotates the plan's choice of vnodes (NewPlan), to spread requests over the replicas.
	Offset int
	// MaxVnodes, when > 0, asks only the plan's first MaxVnodes vnodes (in the plan's order, which walks
	// the ring); Stream.Plan then lists those, and the hash partitions they cover are all that is answered.
	// A paged listing asks a few vnodes at a time.
	MaxVnodes int
	// Cmd makes the command sent to one planned vnode (a registered wire message of the service). It is
	// called in Start, once per vnode of the plan.
	Cmd func(v Vnode) any
	// Streams' chunking and flow control, per vnode (vnode.CoverageRequest; 0: the vnode's default).
	MaxItems, MaxBytes, Window int
	// AckTimeout is how long a vnode keeps a chunk unacknowledged before it ends its stream (0: the vnode's
	// default, 30s): how long the caller may take between Next and Ack.
	AckTimeout time.Duration
	// Idle is how long a vnode may stay silent while it owes the request a chunk or a reply (default 10s):
	// a vnode on a node that died fails the request after Idle.
	Idle time.Duration
}

// Result is one part of the answer: the items of one chunk of a vnode's stream, or a vnode's single
// reply (for a command its behaviour answers with one message).
type Result struct {
	Vnode Vnode
	Items [][]byte
	Reply any  // the behaviour's reply; nil for a stream's chunk
	Done  bool // the vnode's part is complete: nothing more comes from it
	idx   int
	seq   uint64
	ack   bool // Ack sends an acknowledgement
}

// Stream is a running coverage request. Next returns its results as the vnodes send them; Ack tells the
// vnode a result was consumed, which lets it send more: at most Window chunks per vnode are sent ahead, so a
// caller that reads slowly slows the vnodes' folds, and the request holds at most (Window+1) chunks per
// vnode. Close ends the request (the vnodes' folds are cancelled). A Stream is for one goroutine.
type Stream struct {
	Plan   Plan
	system *actor.ActorSystem
	pid    *actor.PID
	events chan event
	closed bool
	err    error
	left   int // vnodes whose part is not complete yet
}

// event is what the request actor passes to its caller: a result, or the end of the request (err).
type event struct {
	res Result
	err error
}

// Start plans the request on the current ring around the nodes that are down, and sends every planned
// vnode its command. It fails with *UncoveredError when some hash partition has no primary up, ErrOverload
// past MaxInFlight. The caller must Close the stream (after the last result, Close only frees the actor).
func (s *Service) Start(req Request) (*Stream, error) {
	if req.Cmd == nil {
		return nil, errors.New("coverage: request without a command")
	}
	plan, err := NewPlan(s.cluster.Ring(), s.cfg.N, s.cluster.Up, req.Want, req.Offset)
	if err != nil {
		return nil, err
	}
	if req.MaxVnodes > 0 && len(plan.Vnodes) > req.MaxVnodes {
		plan.Vnodes = plan.Vnodes[:req.MaxVnodes]
	}
	if s.active.Add(1) > int64(s.cfg.MaxInFlight) {
		s.active.Add(-1)
		return nil, ErrOverload
	}
	s.started.Add(1)
	cr := vnode.CoverageRequest{MaxItems: req.MaxItems, MaxBytes: req.MaxBytes, Window: req.Window, AckTimeout: req.AckTimeout}
	window := cr.Window
	if window <= 0 {
		window = vnode.DefaultCoverageWindow
	}
	window = min(window, vnode.MaxCoverageWindow)
	idle := req.Idle
	if idle <= 0 {
		idle = 10 * time.Second
	}
	a := &requestActor{svc: s, plan: plan, idle: idle, window: window, id: rand.Uint64() | 1}
	a.streams = make([]streamState, len(plan.Vnodes))
	for i, v := range plan.Vnodes {
		r := cr
		r.V, r.ID, r.Cmd = 1, a.id, req.Cmd(v)
		f, err := vnode.NewFilter(plan.Q, v.Covers...)
		if err != nil {
			s.active.Add(-1)
			return nil, err
		}
		r.Filter = f
		a.streams[i].req = &r
	}
	// NB: room for every vnode's window of chunks plus its last one, and the end: the actor never blocks.
	a.events = make(chan event, len(plan.Vnodes)*(window+1)+1)
	st := &Stream{Plan: plan, system: s.system, events: a.events, left: len(plan.Vnodes)}
	props := actors.WireProps(actor.PropsFromProducer(func() actor.Actor { return a }))
	// NB: under vnode.CoverageReceiverPrefix, so that chunks from another node's vnodes pass the transport's
	// guard (the per-vnode receivers are its children, under the same prefix).
	st.pid = s.root.SpawnPrefix(props, vnode.CoverageReceiverPrefix)
	return st, nil
}

// Next returns the next result, io.EOF once every vnode's part is complete, or the request's error: a
// *VnodeError, ErrCrashed, or ctx's error (the request is then closed). Results that arrived before a
// failure are returned first; each is a correct part of its vnode's answer.
func (st *Stream) Next(ctx context.Context) (Result, error) {
	if st.err != nil {
		return Result{}, st.err
	}
	if st.left == 0 {
		return Result{}, io.EOF
	}
	select {
	case ev, ok := <-st.events:
		if !ok {
			st.err = ErrCrashed
			return Result{}, st.err
		}
		if ev.err != nil {
			st.err = ev.err
			return Result{}, st.err
		}
		if ev.res.Done {
			st.left--
		}
		return ev.res, nil
	case <-ctx.Done():
		st.Close()
		st.err = ctx.Err()
		return Result{}, st.err
	}
}

// Ack tells r's vnode that r was consumed (it may send another chunk). Results that need none (replies,
// last chunks) are ignored.
func (st *Stream) Ack(r Result) {
	if r.ack && !st.closed {
		st.system.Root.Send(st.pid, &ackMsg{idx: r.idx, seq: r.seq})
	}
}

// Close ends the request: the vnodes still streaming are cancelled and the actor stops. Idempotent.
func (st *Stream) Close() {
	if !st.closed {
		st.closed = true
		st.system.Root.Stop(st.pid)
		if st.err == nil {
			st.err = ErrCanceled
		}
	}
}

// ackMsg: the caller consumed chunk seq of stream idx.
type ackMsg struct {
	idx int
	seq uint64
}

// fromVnode is a message one of the per-vnode receivers got.
type fromVnode struct {
	idx int
	msg any
}

// tick makes the actor check for silent vnodes.
type tick struct{}

type streamState struct {
	req      *vnode.CoverageRequest
	pid      *actor.PID
	next     uint64    // the chunk sequence number expected next
	acked    uint64    // chunks the caller acknowledged
	done     bool      // the vnode's part is complete
	lastSeen time.Time // when the vnode last sent something, or last got an ack
}

// requestActor is one coverage request: it sends every planned vnode its command through a receiver child
// per vnode, checks the chunks' sequence, forwards them to the caller through a channel with room for all
// that the windows allow (so it never blocks), passes the caller's acknowledgements on, and fails the
// request when a vnode fails or stays silent while it owes something.
type requestActor struct {
	svc     *Service
	plan    Plan
	id      uint64
	idle    time.Duration
	window  int
	streams []streamState
	events  chan event
	left    int
	ended   bool
	timer   *time.Timer
}

func (a *requestActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.start(ctx)
	case *fromVnode:
		a.fromVnode(ctx, m.idx, m.msg)
	case *ackMsg:
		st := &a.streams[m.idx]
		if a.ended || st.done || m.seq != st.acked+1 {
			return
		}
		st.acked = m.seq
		st.lastSeen = time.Now()
		ctx.Send(st.pid, &vnode.CoverageAck{V: 1, ID: a.id, Seq: m.seq})
	case tick:
		a.checkSilent(ctx)
	case *actor.Stopped:
		if a.timer != nil {
			a.timer.Stop()
		}
		if !a.ended {
			a.cancelAll(ctx)
			a.end(ErrCrashed)
		}
		a.svc.active.Add(-1)
	}
}

// start spawns the receivers and sends the requests.
func (a *requestActor) start(ctx actor.Context) {
	a.left = len(a.streams)
	if a.left == 0 {
		a.end(nil)
		ctx.Stop(ctx.Self())
		return
	}
	now := time.Now()
	self := ctx.Self()
	for i := range a.streams {
		st := &a.streams[i]
		v := a.plan.Vnodes[i]
		st.next, st.lastSeen = 1, now
		st.pid = a.svc.cluster.VnodePID(v.Node, v.Partition)
		if st.pid == nil {
			a.fail(ctx, i, errors.New("vnode unreachable"), true)
			return
		}
		idx := i
		recv := actors.WireProps(actor.PropsFromFunc(func(c actor.Context) {
			switch m := c.Message().(type) {
			case actor.SystemMessage, actor.AutoReceiveMessage:
			default:
				c.Send(self, &fromVnode{idx: idx, msg: m})
			}
		}))
		rpid := ctx.Spawn(recv)
		ctx.RequestWithCustomSender(st.pid, st.req, rpid)
	}
	a.armTimer(ctx)
}

func (a *requestActor) armTimer(ctx actor.Context) {
	system, self := ctx.ActorSystem(), ctx.Self()
	a.timer = time.AfterFunc(max(a.idle/4, 10*time.Millisecond), func() { system.Root.Send(self, tick{}) })
}

// fromVnode handles what vnode idx sent.
func (a *requestActor) fromVnode(ctx actor.Context, idx int, msg any) {
	st := &a.streams[idx]
	if a.ended || st.done {
		return
	}
	st.lastSeen = time.Now()
	v := a.plan.Vnodes[idx]
	switch m := msg.(type) {
	case *vnode.CoverageChunk:
		switch {
		case m.ID != a.id:
			return
		case m.Seq != st.next:
			a.fail(ctx, idx, fmt.Errorf("chunk %d, want %d", m.Seq, st.next), false)
			return
		case m.Done && m.Err != "":
			a.fail(ctx, idx, errors.New(m.Err), false)
			return
		}
		st.next++
		res := Result{Vnode: v, Items: m.Items, Done: m.Done, idx: idx, seq: m.Seq, ack: !m.Done}
		if !a.forward(ctx, idx, res) {
			return
		}
	case *actor.DeadLetterResponse:
		a.fail(ctx, idx, fmt.Errorf("vnode not running: %w", actor.ErrDeadLetter), true)
		return
	default:
		if !a.forward(ctx, idx, Result{Vnode: v, Reply: m, Done: true, idx: idx}) {
			return
		}
	}
	if a.left == 0 {
		a.end(nil)
		ctx.Stop(ctx.Self())
	}
}

// forward passes res to the caller; false when the request failed instead.
func (a *requestActor) forward(ctx actor.Context, idx int, res Result) bool {
	select {
	case a.events <- event{res: res}:
	default:
		// NB: cannot happen while the vnode keeps to its window; one that does not is broken.
		a.fail(ctx, idx, errors.New("more chunks than the window allows"), false)
		return false
	}
	if res.Done {
		a.streams[idx].done = true
		a.left--
	}
	return true
}

// checkSilent fails the request when a vnode owes a chunk (its window is not full, its part not complete)
// and has sent nothing for idle.
func (a *requestActor) checkSilent(ctx actor.Context) {
	if a.ended {
		return
	}
	now := time.Now()
	for i := range a.streams {
		st := &a.streams[i]
		owes := !st.done && (st.next-1)-st.acked < uint64(a.window)
		if owes && now.Sub(st.lastSeen) > a.idle {
			a.fail(ctx, i, fmt.Errorf("silent for %v", a.idle), true)
			return
		}
	}
	a.armTimer(ctx)
}

// fail ends the request with vnode idx's failure; report makes its node suspected (it could not be reached
// or went silent: not when the vnode answered with an error, such as a busy worker pool or a restart).
func (a *requestActor) fail(ctx actor.Context, idx int, err error, report bool) {
	v := a.plan.Vnodes[idx]
	a.svc.failures.Add(1)
	a.svc.cfg.Logger.Info("coverage request failed", "partition", v.Partition, "vnode_node", string(v.Node), "err", err)
	if report {
		a.svc.cluster.ReportFailure(v.Node)
	}
	a.streams[idx].done = true
	a.cancelAll(ctx)
	a.end(&VnodeError{Vnode: v, Err: err})
	ctx.Stop(ctx.Self())
}

// cancelAll cancels every stream still running.
func (a *requestActor) cancelAll(ctx actor.Context) {
	for i := range a.streams {
		st := &a.streams[i]
		if !st.done && st.pid != nil {
			ctx.Send(st.pid, &vnode.CoverageCancel{V: 1, ID: a.id})
			st.done = true
		}
	}
}

// end sends the caller the end of the request (nil: complete; the caller counts Done results instead).
func (a *requestActor) end(err error) {
	if a.ended {
		return
	}
	a.ended = true
	if err != nil {
		// NB: the channel keeps a slot for the end (see Start).
		select {
		case a.events <- event{err: err}:
		default:
		}
	}
}
