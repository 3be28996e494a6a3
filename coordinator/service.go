package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/ring"
)

// Router is what coordinators need from the rest of the node: where a key's replicas are and how to reach
// them. Implementations must be safe for concurrent use and must not block.
type Router interface {
	// Preflist returns the key's preference list for n replicas (primaries, then fallbacks), in a new slice
	// the caller owns: a request keeps it as its targets and appends fallbacks to it.
	Preflist(key []byte, n int) []ring.PrefEntry
	// VnodePID returns the actor of partition p on node, or nil if it cannot be reached.
	VnodePID(node ring.NodeID, p int) *actor.PID
	// Fallback returns a node to stand in for failed as the replica of partition p of key (sloppy quorum),
	// or false when there is none.
	Fallback(key []byte, p int, failed ring.NodeID) (ring.PrefEntry, bool)
	// ReportFailure tells the router a replica on node failed or did not answer (failure detection uses
	// it besides membership's view).
	ReportFailure(node ring.NodeID)
}

// Config configures the coordinators of one node.
type Config struct {
	Node ring.NodeID // this node (required)

	N int // replicas per key; default 3, range 1..16
	R int // default read quorum; default 2, range 1..N
	W int // default write quorum; default 2, range 1..N

	// PR and PW: default number of replies that must come from primaries (strict quorum); default 0.
	PR, PW int

	// Timeout is the default deadline for a request's answer. Default 5s.
	Timeout time.Duration
	// Linger is how long a coordinator waits after answering for the remaining replicas before it
	// read-repairs and stops. Default 1s.
	Linger time.Duration
	// MaxInFlight bounds concurrent coordinators (answered-but-lingering ones included); a request over the
	// bound fails at once with ErrOverload. Default 10000.
	MaxInFlight int

	// NotFoundOK lets a read answer "not found" once R replicas said so (riak's notfound_ok). Default false:
	// "not found" only when every replica answered, or at the deadline (GetParams.NotFoundOK).
	NotFoundOK bool

	// Dispatcher runs the request actors' mailboxes; nil means protoactor's default.
	Dispatcher actor.Dispatcher

	// Observer, when not nil, is told of every request Read and Write finished (metrics). Default nil.
	Observer Observer

	Logger *slog.Logger
	Now    func() time.Time
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig(node ring.NodeID) Config {
	return Config{Node: node, N: 3, R: 2, W: 2, Timeout: 5 * time.Second, Linger: time.Second,
		MaxInFlight: 10000}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Node == "":
		return errors.New("coordinator: Config.Node is empty")
	case c.N < 1 || c.N > 16:
		return fmt.Errorf("coordinator: Config.N %d out of range 1..16", c.N)
	case c.R < 1 || c.R > c.N:
		return fmt.Errorf("coordinator: Config.R %d out of range 1..N(%d)", c.R, c.N)
	case c.W < 1 || c.W > c.N:
		return fmt.Errorf("coordinator: Config.W %d out of range 1..N(%d)", c.W, c.N)
	case c.PR < 0 || c.PR > c.R:
		return fmt.Errorf("coordinator: Config.PR %d out of range 0..R(%d)", c.PR, c.R)
	case c.PW < 0 || c.PW > c.W:
		return fmt.Errorf("coordinator: Config.PW %d out of range 0..W(%d)", c.PW, c.W)
	case c.Timeout <= 0:
		return fmt.Errorf("coordinator: Config.Timeout %s must be > 0", c.Timeout)
	case c.Linger < 0:
		return fmt.Errorf("coordinator: Config.Linger %s must be >= 0", c.Linger)
	case c.MaxInFlight < 1:
		return fmt.Errorf("coordinator: Config.MaxInFlight %d must be >= 1", c.MaxInFlight)
	}
	return nil
}

// ReadOptions override the node defaults for one read; zero fields keep the default.
type ReadOptions struct {
	R, PR   int
	Timeout time.Duration
	// NotFoundOK overrides Config.NotFoundOK when not nil.
	NotFoundOK *bool
}

// WriteOptions override the node defaults for one write or delete; zero fields keep the default.
type WriteOptions struct {
	W, PW   int
	Timeout time.Duration
	// ReapAfter, when > 0, sends the op's Reap command to every replica ReapAfter after all of them
	// acknowledged the write, provided the preference list held N primaries and all of them stored it (a
	// replica that missed a tombstone could otherwise bring the deleted value back by read repair). Set by
	// a service (KV: deletes in reap mode), never from a client's options.
	ReapAfter time.Duration
}

// Observer is told of every request a Service finished: answered, refused (overload, shutting down, bad
// request) or abandoned by its caller's context. op is the op's name: an op whose pointer has an
// OpName() string method names itself (it is called while the request actor may still run, so it must
// read only what was set before Read or Write); others are "read" or "write". took runs from the call of
// Read or Write to its return (Config.Now). Done is called on the caller's goroutine, concurrently for
// different requests: it must be safe for concurrent use and must not block.
type Observer interface {
	Done(op string, took time.Duration, err error)
}

// namedOp is implemented by ops that name themselves for an Observer (KV: get, put, delete).
type namedOp interface{ OpName() string }

// observe tells the Observer that a request of op, started at start, ended with err.
func (s *Service) observe(op any, kind string, start time.Time, err error) {
	if nm, ok := op.(namedOp); ok {
		kind = nm.OpName()
	}
	s.cfg.Observer.Done(kind, s.cfg.Now().Sub(start), err)
}

// Stats are the coordinators' counters since start, for every service's requests.
type Stats struct {
	ReadRepairs    int64 // repair writes sent to stale or missing replicas
	Timeouts       int64 // requests answered with a timeout
	QuorumFailures int64 // requests answered with a quorum error (timeouts excluded)
	Overloads      int64 // requests refused with ErrOverload
	Fallbacks      int64 // writes sent to a fallback because a replica failed or did not answer
	Active         int64 // coordinators alive now (answered-but-lingering included)
}

// Service runs the per-request coordinators of one node. Each request spawns a coordinator actor,
// supervised by the coordinator supervisor (a protoactor guardian whose strategy stops a crashed
// coordinator and fails its request). Methods are safe for concurrent use.
type Service struct {
	cfg    Config
	system *actor.ActorSystem
	router Router
	// root spawns request actors as children of the coordinator supervisor. The spawning goroutine is
	// the caller's, so there is no hop through a supervisor mailbox, and no parent's child set to update
	// (a guardian keeps none): at tens of thousands of requests a second both showed in profiles.
	root *actor.RootContext
	// live lists the admitted requests whose coordinator has not stopped yet, for Stop: an intrusive
	// list, so tracking costs no allocation. A request joins it at admission, before its actor is
	// spawned, under the same lock that Stop takes to set closing: a request is either refused or seen
	// by Stop, whatever the interleaving.
	liveMu   sync.Mutex
	liveHead *liveEntry // REQUIRES: liveMu held
	// props is the template of every request actor's props (wire middleware built once); each spawn
	// copies it and sets the producer and dispatcher.
	props actor.Props

	active  atomic.Int64 // admitted requests whose coordinator has not stopped yet
	pending atomic.Int64 // requests not yet answered
	// closing refuses admissions from Drain or Stop on. Written under liveMu, and read under it by admit
	// (so that Stop sees every request admitted before it); a lock-free load is only a hint.
	closing  atomic.Bool
	stopOnce sync.Once

	repairs, timeouts, quorumFails, overloads, fallbacks atomic.Int64
}

// coordinatorPrefix starts every request actor's name; replicas on other nodes answer to it.
const coordinatorPrefix = "coord"

func init() { actors.AllowRemoteTarget(coordinatorPrefix) }

// Start makes the coordinator supervisor.
func Start(system *actor.ActorSystem, cfg Config, router Router) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, system: system, router: router}
	// Coordinators are temporary children: a crashed one is stopped (its Stopped handler fails the request),
	// never restarted, so a bug fails one request and not the node.
	strategy := actor.NewOneForOneStrategy(0, time.Second, func(reason any) actor.Directive {
		cfg.Logger.Error("coordinator crashed", "reason", fmt.Sprint(reason))
		return actor.StopDirective
	})
	s.root = actor.NewRootContext(system, nil).WithGuardian(strategy)
	// NB: the sender middleware only: a receiver middleware would cost every request three envelopes (its
	// Started, Stopping and Stopped); Receive decodes wire replies itself.
	s.props = *actors.WireSenderProps(actor.PropsFromProducer(func() actor.Actor { return nil }))
	return s, nil
}

// Config returns the effective configuration.
func (s *Service) Config() Config { return s.cfg }

// Stats returns a snapshot of the counters.
func (s *Service) Stats() Stats {
	return Stats{ReadRepairs: s.repairs.Load(), Timeouts: s.timeouts.Load(),
		QuorumFailures: s.quorumFails.Load(), Overloads: s.overloads.Load(), Fallbacks: s.fallbacks.Load(),
		Active: s.active.Load()}
}

// admit lets request a in, or refuses it with ErrShuttingDown (after Drain or Stop) or ErrOverload. An
// admitted request is on the live list from here on, before its actor exists: Stop stops it (see
// requestActor's Started handler), and run must spawn it or unlink it.
func (s *Service) admit(a *liveEntry) error {
	if s.closing.Load() {
		return ErrShuttingDown
	}
	if s.active.Add(1) > int64(s.cfg.MaxInFlight) {
		s.active.Add(-1)
		s.overloads.Add(1)
		return ErrOverload
	}
	s.liveMu.Lock()
	if s.closing.Load() {
		s.liveMu.Unlock()
		s.active.Add(-1)
		return ErrShuttingDown
	}
	a.next = s.liveHead
	if a.next != nil {
		a.next.prev = a
	}
	s.liveHead = a
	s.liveMu.Unlock()
	s.pending.Add(1)
	return nil
}

// targets is key's preference list for N replicas: the request's own (Router.Preflist returns a new slice),
// which a write may extend with fallbacks.
func (s *Service) targets(key []byte) []Target { return s.router.Preflist(key, s.cfg.N) }

// run spawns req's actor and waits for its answer, or ctx. req was admitted; its FSM and op are set.
func run[V, O any, PO OpPtr[V, O]](ctx context.Context, s *Service, req *requestActor[V, O, PO]) (V, error) {
	var none V
	req.svc = s
	req.props = s.props
	req.props.Configure(actor.WithProducer(func() actor.Actor { return req }),
		actor.WithMailbox(func() actor.Mailbox { return &req.mailbox }))
	if s.cfg.Dispatcher != nil {
		req.disp.Pool = s.cfg.Dispatcher
		req.props.Configure(actor.WithDispatcher(&req.disp))
		for _, t := range req.targets {
			if t.Node != s.cfg.Node {
				// Replies from other nodes run the actor on the transport's goroutine (actors.InlineFirst).
				req.mailbox.RunPeerMessagesInline(&req.disp)
				break
			}
		}
	}
	if _, err := s.root.SpawnNamed(&req.props, coordinatorPrefix+s.system.ProcessRegistry.NextId()); err != nil {
		s.untrack(&req.live)
		s.active.Add(-1)
		s.pending.Add(-1)
		return none, fmt.Errorf("coordinator: spawn: %w", err)
	}
	req.mu.Lock()
	if req.settled {
		// Answered during the first run, inline: no channel needed.
		o := req.result
		req.mu.Unlock()
		s.count(o.err)
		return o.v, o.err
	}
	ch := make(chan outcome[V], 1)
	req.waiter = ch
	req.mu.Unlock()
	select {
	case o := <-ch:
		s.count(o.err)
		return o.v, o.err
	case <-ctx.Done():
		// The coordinator carries on (and repairs); only this caller stops waiting.
		return none, fmt.Errorf("coordinator: %w", ctx.Err())
	}
}

// untrack removes a stopped (or never spawned) coordinator from the live list.
func (s *Service) untrack(a *liveEntry) {
	s.liveMu.Lock()
	if a.prev != nil {
		a.prev.next = a.next
	} else if s.liveHead == a {
		s.liveHead = a.next
	}
	if a.next != nil {
		a.next.prev = a.prev
	}
	a.prev, a.next = nil, nil
	s.liveMu.Unlock()
}

func (s *Service) count(err error) {
	if err == nil {
		return // NB: before qe, whose address errors.As takes: it would cost every request an allocation
	}
	var qe *QuorumError
	if errors.As(err, &qe) {
		if qe.Timeout {
			s.timeouts.Add(1)
		} else {
			s.quorumFails.Add(1)
		}
	}
}

func pick(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func pickDur(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

// Read sends op's command to every replica of key: the key's preference list for N replicas (the
// primaries, and fallbacks standing in for primaries that are down), each command tagged with the replica's
// index. It answers once R replicas replied (PR of them primaries, for a strict quorum), with the Merge of
// their values that are not missing (the zero V when none holds the key: with notfound_ok off, only once
// every replica answered), or with a *QuorumError as soon as R is out of reach or at the deadline. The
// request's actor then lingers for the late replies (until all are in or Linger passed) and sends op's
// Replicate command, with the merged value, to every replica that answered with less (read repair). Replicas
// that fail or stay silent are reported to the Router.
//
// opts may override R, PR, Timeout and NotFoundOK; the others come from the Service's Config. It blocks
// until the answer or ctx (the request carries on without its caller). Errors: ErrBadRequest (R or PR out of
// range), ErrOverload, ErrShuttingDown, ErrCoordinatorCrashed, *QuorumError, or ctx's error.
func Read[V, O any, PO OpPtr[V, O]](ctx context.Context, s *Service, proto Protocol[V], key []byte, opts ReadOptions, op O) (V, error) {
	req := &requestActor[V, O, PO]{key: key, proto: proto, op: op}
	if s.cfg.Observer != nil {
		start := s.cfg.Now()
		v, err := read(ctx, s, req, opts)
		// NB: req is on the heap already: naming the op through it allocates nothing.
		s.observe(PO(&req.op), "read", start, err)
		return v, err
	}
	return read(ctx, s, req, opts)
}

func read[V, O any, PO OpPtr[V, O]](ctx context.Context, s *Service, req *requestActor[V, O, PO], opts ReadOptions) (V, error) {
	var none V
	key, proto := req.key, req.proto
	r, pr := pick(opts.R, s.cfg.R), pick(opts.PR, s.cfg.PR)
	if r < 1 || r > s.cfg.N || pr < 0 || pr > r {
		return none, fmt.Errorf("%w: r=%d pr=%d with n=%d", ErrBadRequest, r, pr, s.cfg.N)
	}
	if err := s.admit(&req.live); err != nil {
		return none, err
	}
	ts := s.targets(key)
	req.targets = ts
	nfOK := s.cfg.NotFoundOK
	if opts.NotFoundOK != nil {
		nfOK = *opts.NotFoundOK
	}
	req.getFSM.init(proto, GetParams{R: r, PR: pr, Timeout: pickDur(opts.Timeout, s.cfg.Timeout), Linger: s.cfg.Linger,
		NotFoundOK: nfOK}, ts)
	req.get = &req.getFSM
	return run(ctx, s, req)
}

// Write sends op's command to a coordinating replica of key (the first replica of the key's preference list
// on this node if its vnode runs, else the first the Router can reach), which applies it and answers with the value written; that value is then
// sent, with op's Replicate command, to the other replicas of the list. It answers with the written value
// once W replicas acknowledged (PW of them primaries, for a strict quorum; the coordinating one counts), or
// with an error as soon as W is out of reach (the coordinating replica's own error when it failed) or at the
// deadline. A replica that fails, or is still silent when the linger ends, is replaced by a fallback
// (Router.Fallback) which gets the value too and counts toward W, never toward PW (sloppy quorum). With
// opts.ReapAfter, op's Reap command follows once every replica stored the value.
//
// opts may override W, PW and Timeout; the others come from the Service's Config. It blocks until the answer
// or ctx. Errors as for Read.
func Write[V, O any, PO OpPtr[V, O]](ctx context.Context, s *Service, proto Protocol[V], key []byte, opts WriteOptions, op O) (V, error) {
	req := &requestActor[V, O, PO]{key: key, proto: proto, op: op}
	if s.cfg.Observer != nil {
		start := s.cfg.Now()
		v, err := write(ctx, s, req, opts)
		s.observe(PO(&req.op), "write", start, err)
		return v, err
	}
	return write(ctx, s, req, opts)
}

func write[V, O any, PO OpPtr[V, O]](ctx context.Context, s *Service, req *requestActor[V, O, PO], opts WriteOptions) (V, error) {
	var none V
	key, proto := req.key, req.proto
	w, pw := pick(opts.W, s.cfg.W), pick(opts.PW, s.cfg.PW)
	if w < 1 || w > s.cfg.N || pw < 0 || pw > w {
		return none, fmt.Errorf("%w: w=%d pw=%d with n=%d", ErrBadRequest, w, pw, s.cfg.N)
	}
	if err := s.admit(&req.live); err != nil {
		return none, err
	}
	ts := s.targets(key)
	// The local replica if it runs, else the first replica the router can reach. NB: one it cannot reach
	// (a remote one down, or this node's own vnode not started yet, as right after a join) would fail the
	// write, applied nowhere, where another replica could have taken it.
	coord := -1
	for i, t := range ts {
		if t.Node == s.cfg.Node && s.router.VnodePID(t.Node, t.Partition) != nil {
			coord = i
			break
		}
	}
	for i := 0; coord < 0 && i < len(ts); i++ {
		if s.router.VnodePID(ts[i].Node, ts[i].Partition) != nil {
			coord = i
		}
	}
	if coord < 0 && len(ts) > 0 {
		coord = 0
	}
	p := PutParams{W: w, PW: pw, Timeout: pickDur(opts.Timeout, s.cfg.Timeout), Linger: s.cfg.Linger}
	if opts.ReapAfter > 0 && len(ts) == s.cfg.N {
		p.Reap, p.ReapDelay = true, opts.ReapAfter
	}
	req.targets, req.put = ts, NewPutFSM(proto, p, ts, coord)
	return run(ctx, s, req)
}

// Drain stops taking requests and waits until every admitted request was answered and every coordinator
// finished (lingering ones included), or ctx ends.
func (s *Service) Drain(ctx context.Context) error {
	s.liveMu.Lock()
	s.closing.Store(true)
	s.liveMu.Unlock()
	return s.waitIdle(ctx, "drain")
}

// Stop stops the coordinator of every admitted request (callers not yet answered get
// ErrCoordinatorCrashed, or ErrShuttingDown when their coordinator had not started) and waits until they
// are gone, or ctx ends. New requests are refused from the first call on.
func (s *Service) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		var pids []*actor.PID
		s.liveMu.Lock()
		s.closing.Store(true)
		for a := s.liveHead; a != nil; a = a.next {
			// NB: a Dekker pair with the Started handler, which stores its pid and then loads stopReq:
			// either Stop sees the pid here and stops the actor, or the actor sees stopReq and stops
			// itself (or both: stopping twice is harmless). An actor not yet spawned sees stopReq.
			a.stopReq.Store(true)
			if pid := a.pid.Load(); pid != nil {
				pids = append(pids, pid)
			}
		}
		s.liveMu.Unlock()
		for _, pid := range pids {
			s.system.Root.Stop(pid)
		}
	})
	return s.waitIdle(ctx, "stop")
}

// waitIdle waits until every admitted request's coordinator stopped, or ctx ends.
func (s *Service) waitIdle(ctx context.Context, op string) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.active.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("coordinator: %s: %d requests unanswered, %d coordinators alive: %w",
				op, s.pending.Load(), s.active.Load(), ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}
