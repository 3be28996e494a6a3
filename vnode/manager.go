package vnode

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
	"github.com/gokai-kv/gokai/storage"
)

// ErrUnknownPartition is returned for a partition this node holds no vnode for.
var ErrUnknownPartition = errors.New("vnode: no vnode for partition")

// ManagerConfig configures the vnode supervisor.
type ManagerConfig struct {
	Name       string          // the supervisor's actor name; default actors.VnodeSupervisorName
	Node       string          // this node's id (required)
	Partitions []int           // partitions to start vnodes for
	Factory    Factory         // the behaviour every vnode runs (required)
	Store      storage.Backend // the node's storage backend (required)
	Logger     *slog.Logger    // default slog.Default()
	Now        func() time.Time

	// MaxRestarts is how many times one vnode may restart within RestartWindow before the supervisor gives
	// up on it and escalates (the node shuts down rather than serve without the partition). Default 10.
	MaxRestarts int
	// RestartWindow: default 10s.
	RestartWindow time.Duration
	// OnEscalate is called (once) when a vnode exceeded its restart limits. Must not block.
	OnEscalate func(err error)
	// Dispatcher runs the vnodes' mailboxes; nil means protoactor's default (a goroutine per run).
	Dispatcher actor.Dispatcher

	// Workers is how many goroutines at most run the vnodes' async work (Async, coverage streams), shared
	// by every vnode of the manager (riak_core_vnode_worker_pool). Default 4, range 1..1024.
	Workers int
	// WorkQueue is how many jobs at most wait for a worker; beyond it async work is refused (the
	// behaviour's IfBusy reply). Default 1024, range 0..1<<20 (0 means the default).
	WorkQueue int

	// Observe, when not nil, is told of every command a vnode took (handled by its behaviour, or forwarded
	// to its handoff target). One command in every ObserveEvery of each vnode is timed (two reads of Now):
	// for it took is how long the vnode spent on it; for the others took is -1. Called inside the vnode
	// actor, concurrently for different vnodes: it must be safe for concurrent use and must not block.
	// Default nil (commands are neither counted nor timed).
	Observe func(cmd any, took time.Duration)
	// ObserveEvery: see Observe. Default 1 (every command is timed); range 1..1<<20.
	ObserveEvery int
	// AAE configures the hash trees of behaviours that implement AAEHasher; its zero value (Q 0) keeps
	// them off.
	AAE AAEConfig
}

func (c *ManagerConfig) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Name == "" {
		c.Name = actors.VnodeSupervisorName
	}
	if c.MaxRestarts == 0 {
		c.MaxRestarts = 10
	}
	if c.RestartWindow == 0 {
		c.RestartWindow = 10 * time.Second
	}
	if c.Workers == 0 {
		c.Workers = 4
	}
	if c.WorkQueue == 0 {
		c.WorkQueue = 1024
	}
	if c.ObserveEvery == 0 {
		c.ObserveEvery = 1
	}
	c.AAE.setDefaults()
}

// Validate reports the first invalid field.
func (c *ManagerConfig) Validate() error {
	switch {
	case c.Node == "":
		return errors.New("vnode: ManagerConfig.Node is empty")
	case c.Factory == nil:
		return errors.New("vnode: ManagerConfig.Factory is nil")
	case c.Store == nil:
		return errors.New("vnode: ManagerConfig.Store is nil")
	case c.MaxRestarts < 0:
		return fmt.Errorf("vnode: ManagerConfig.MaxRestarts %d < 0", c.MaxRestarts)
	case c.Workers < 0 || c.Workers > 1024:
		return fmt.Errorf("vnode: ManagerConfig.Workers %d out of range 1..1024", c.Workers)
	case c.ObserveEvery < 0 || c.ObserveEvery > 1<<20:
		return fmt.Errorf("vnode: ManagerConfig.ObserveEvery %d out of range 1..%d", c.ObserveEvery, 1<<20)
	case c.WorkQueue < 0 || c.WorkQueue > 1<<20:
		return fmt.Errorf("vnode: ManagerConfig.WorkQueue %d out of range 0..%d", c.WorkQueue, 1<<20)
	}
	if err := c.AAE.validate(); err != nil {
		return err
	}
	for _, p := range c.Partitions {
		if p < 0 {
			return fmt.Errorf("vnode: ManagerConfig.Partitions has negative partition %d", p)
		}
	}
	return nil
}

// Metrics counts vnode lifecycle events; safe for concurrent use.
type Metrics struct {
	starts       atomic.Int64
	restarts     atomic.Int64
	handoffItems atomic.Int64
	asyncRefused atomic.Int64
}

// AsyncRefused counts async work and coverage streams refused because the worker pool's queue was full.
func (m *Metrics) AsyncRefused() int64 { return m.asyncRefused.Load() }

// HandoffItemsReceived counts items merged from handoff batches.
func (m *Metrics) HandoffItemsReceived() int64 { return m.handoffItems.Load() }

// Restarts is the number of vnode restarts since the manager started.
func (m *Metrics) Restarts() int64 { return m.restarts.Load() }

// Starts counts vnode inits, first starts and restarts alike.
func (m *Metrics) Starts() int64 { return m.starts.Load() }

// Manager is the vnode supervisor: an actor whose children are the vnode actors, one per partition, under a
// one-for-one strategy with explicit restart limits. Its methods are safe for concurrent use.
type Manager struct {
	cfg      ManagerConfig
	system   *actor.ActorSystem
	pid      *actor.PID
	pids     atomic.Pointer[map[int]*actor.PID]
	metrics  Metrics
	strategy *limitStrategy
	shared   *shared
	// counters holds each partition's counters (handoff items taken since the manager started, async work
	// running), kept across vnode restarts and retirements. Stored by the manager actor only.
	counters sync.Map // int -> *partitionCounters
	stopped  chan struct{}
	once     sync.Once
}

// spawnVnodes is sent to the manager actor to start vnodes; the reply is a map of the new PIDs.
type spawnVnodes struct {
	partitions []int
	done       chan map[int]*actor.PID
}

type managerActor struct {
	m        *Manager
	stopping bool
	retiring map[string]bool // vnode ids being retired: their Terminated is expected
	parts    map[string]int  // vnode id -> partition, for respawning a vnode that stopped unexplained
}

// limitStrategy is one-for-one with restart limits (protoactor's OneForOneStrategy), recording which
// children it stopped for exceeding their limit, so the manager can tell that stop (escalate: the node must
// not serve without the partition) from a stop nobody explained (a stray Stop: restart the vnode).
type limitStrategy struct {
	max    int
	within time.Duration
	gaveUp sync.Map // vnode id -> struct{}
	log    func(reason any)
}

func (s *limitStrategy) HandleFailure(system *actor.ActorSystem, sup actor.Supervisor, child *actor.PID,
	rs *actor.RestartStatistics, reason, message any) {
	s.log(reason)
	if s.max == 0 {
		s.gaveUp.Store(child.Id, struct{}{})
		sup.StopChildren(child)
		return
	}
	rs.Fail()
	if rs.NumberOfFailures(s.within) > s.max {
		rs.Reset()
		s.gaveUp.Store(child.Id, struct{}{})
		sup.StopChildren(child)
		return
	}
	sup.RestartChildren(child)
}

func (a *managerActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *spawnVnodes:
		msg.done <- a.spawn(ctx, msg.partitions)
	case *actor.Stopping:
		a.stopping = true
	case *retireVnode:
		if msg.keep {
			delete(a.retiring, msg.pid.Id)
			return
		}
		if a.retiring == nil {
			a.retiring = map[string]bool{}
		}
		a.retiring[msg.pid.Id] = true
		ctx.Respond(struct{}{})
	case *actor.Terminated:
		if a.stopping || a.retiring[msg.Who.Id] {
			delete(a.retiring, msg.Who.Id)
			delete(a.parts, msg.Who.Id)
			return
		}
		if _, ok := a.m.strategy.gaveUp.LoadAndDelete(msg.Who.Id); ok {
			// The strategy stopped it: its restart limit was exceeded.
			err := fmt.Errorf("vnode: %s exceeded its restart limit (%d in %s)", msg.Who.Id, a.m.cfg.MaxRestarts, a.m.cfg.RestartWindow)
			a.m.cfg.Logger.Error("vnode supervisor escalates", "err", err)
			if a.m.cfg.OnEscalate != nil {
				a.m.cfg.OnEscalate(err)
			}
			return
		}
		// Stopped, and neither by its manager nor by its supervisor: start it again, like a crash.
		p, ok := a.parts[msg.Who.Id]
		if !ok {
			return
		}
		a.m.metrics.restarts.Add(1)
		a.m.cfg.Logger.Warn("vnode stopped unexplained, starting it again", "partition", p)
		a.m.publish(a.spawn(ctx, []int{p}))
	case *actor.Stopped:
		close(a.m.stopped)
	}
}

// spawn starts the vnodes of partitions as children of the manager.
func (a *managerActor) spawn(ctx actor.Context, partitions []int) map[int]*actor.PID {
	out := make(map[int]*actor.PID, len(partitions))
	for _, p := range partitions {
		env := Env{
			Node:      a.m.cfg.Node,
			Partition: p,
			Store:     storage.Partition{Backend: a.m.cfg.Store, ID: uint32(p)},
			Logger:    partitionLogger(a.m.cfg.Logger, a.m.cfg.Node, p),
			Now:       a.m.cfg.Now,
		}
		pc := a.m.partitionCounters(p)
		props := newVnodeProps(env, a.m.cfg.Factory, a.m.shared, pc)
		// The mailbox is protoactor's default (unbounded), kept where MailboxDepth can read it.
		props.Configure(actor.WithMailbox(func() actor.Mailbox {
			mb := actor.Unbounded()()
			pc.mailbox.Store(&mb)
			return mb
		}))
		if a.m.cfg.Dispatcher != nil {
			props.Configure(actor.WithDispatcher(a.m.cfg.Dispatcher))
		}
		pid, err := ctx.SpawnNamed(props, actors.VnodeName(p))
		if err != nil {
			a.m.cfg.Logger.Error("vnode: spawn failed", "partition", p, "err", err)
			continue
		}
		if a.parts == nil {
			a.parts = map[string]int{}
		}
		a.parts[pid.Id] = p
		out[p] = pid
	}
	return out
}

// publish adds got to the PIDs that PID and Partitions report.
func (m *Manager) publish(got map[int]*actor.PID) {
	for {
		old := m.pids.Load()
		next := make(map[int]*actor.PID, len(*old)+len(got))
		for p, pid := range *old {
			next[p] = pid
		}
		for p, pid := range got {
			next[p] = pid
		}
		if m.pids.CompareAndSwap(old, &next) {
			return
		}
	}
}

// StartManager spawns the vnode supervisor and one vnode per configured partition, and returns once all are
// spawned (their Init runs asynchronously, before their first command).
func StartManager(system *actor.ActorSystem, cfg ManagerConfig) (*Manager, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, system: system, stopped: make(chan struct{})}
	m.shared = &shared{aae: cfg.AAE, aaeSlots: make(chan struct{}, max(1, cfg.AAE.RebuildConcurrency)), metrics: &m.metrics, observe: cfg.Observe, observeEvery: uint32(cfg.ObserveEvery), now: cfg.Now, pool: newWorkerPool(cfg.Workers, cfg.WorkQueue, cfg.Logger.With("node", cfg.Node))}
	empty := map[int]*actor.PID{}
	m.pids.Store(&empty)
	m.strategy = &limitStrategy{max: cfg.MaxRestarts, within: cfg.RestartWindow, log: func(reason any) {
		cfg.Logger.Warn("vnode crashed, restarting", "node", cfg.Node, "reason", fmt.Sprint(reason))
	}}
	props := actor.PropsFromProducer(func() actor.Actor { return &managerActor{m: m} },
		actor.WithSupervisor(m.strategy))
	pid, err := system.Root.SpawnNamed(props, cfg.Name)
	if err != nil {
		_ = m.shared.pool.close(context.Background())
		return nil, fmt.Errorf("vnode: spawn supervisor: %w", err)
	}
	m.pid = pid
	if err := m.Start(context.Background(), cfg.Partitions); err != nil {
		system.Root.Stop(pid)
		_ = m.shared.pool.close(context.Background())
		return nil, err
	}
	return m, nil
}

// Start spawns vnodes for partitions not yet running.
func (m *Manager) Start(ctx context.Context, partitions []int) error {
	cur := *m.pids.Load()
	var todo []int
	for _, p := range partitions {
		if _, ok := cur[p]; !ok {
			todo = append(todo, p)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	done := make(chan map[int]*actor.PID, 1)
	m.system.Root.Send(m.pid, &spawnVnodes{partitions: todo, done: done})
	select {
	case got := <-done:
		m.publish(got)
		if len(got) != len(todo) {
			return fmt.Errorf("vnode: started %d of %d vnodes", len(got), len(todo))
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("vnode: start vnodes: %w", ctx.Err())
	}
}

// PID returns the vnode actor of partition p, or nil if this node runs none. The PID stays valid across
// restarts of the vnode.
func (m *Manager) PID(p int) *actor.PID {
	return (*m.pids.Load())[p]
}

// Partitions lists the partitions with a running vnode.
func (m *Manager) Partitions() []int {
	cur := *m.pids.Load()
	out := make([]int, 0, len(cur))
	for p := range cur {
		out = append(out, p)
	}
	return out
}

// retireVnode tells the manager actor that a vnode is about to stop on purpose (keep: it is not, after all).
type retireVnode struct {
	pid  *actor.PID
	keep bool
}

// ErrNotEmpty: Retire found the vnode holding data (it arrived after the caller saw it empty); nothing was
// deleted and the vnode runs on.
var ErrNotEmpty = errNotEmpty

// Retire stops partition p's vnode if it holds no data (a node that is no longer a member), deleting what
// is left of its partition (metadata). The emptiness check and the delete happen together inside the vnode:
// when data arrived meanwhile it fails with ErrNotEmpty and changes nothing. Commands queued behind the
// retire are refused, never applied.
func (m *Manager) Retire(ctx context.Context, p int) error {
	pid := m.PID(p)
	if pid == nil {
		return nil
	}
	if _, err := actors.Request(ctx, m.system, m.pid, &retireVnode{pid: pid}, 5*time.Second); err != nil {
		return fmt.Errorf("vnode: retire %d: %w", p, err)
	}
	res, err := actors.Request(ctx, m.system, pid, &retire{}, 5*time.Minute)
	if err == nil {
		err, _ = res.(error)
	}
	if err != nil {
		m.system.Root.Send(m.pid, &retireVnode{pid: pid, keep: true})
		return fmt.Errorf("vnode: retire %d: %w", p, err)
	}
	// NB: wait until the actor is gone (its name free again), so a later Start of p can spawn it anew.
	if err := m.system.Root.StopFuture(pid).Wait(); err != nil {
		return fmt.Errorf("vnode: retire %d: stop: %w", p, err)
	}
	for {
		cur := m.pids.Load()
		next := make(map[int]*actor.PID, len(*cur))
		for q, pd := range *cur {
			if q != p {
				next[q] = pd
			}
		}
		if m.pids.CompareAndSwap(cur, &next) {
			return nil
		}
	}
}

// partitionCounters are partition p's counters, created on first use.
func (m *Manager) partitionCounters(p int) *partitionCounters {
	c, _ := m.counters.LoadOrStore(p, new(partitionCounters))
	return c.(*partitionCounters)
}

// HandoffReceived is how many handoff items (ownership or hinted transfers, forwards, re-homed keys)
// partition p's vnode took since the manager started, across restarts of the vnode. It only grows: a
// change means data arrived that was placed by another node's ring.
func (m *Manager) HandoffReceived(p int) int64 {
	if c, ok := m.counters.Load(p); ok {
		return c.(*partitionCounters).received.Load()
	}
	return 0
}

// MailboxDepth is the number of messages waiting in the mailboxes of this manager's running vnodes
// (summed) and in the fullest one. A snapshot for metrics: mailboxes change as it reads them.
func (m *Manager) MailboxDepth() (total, deepest int) {
	for p := range *m.pids.Load() {
		c, ok := m.counters.Load(p)
		if !ok {
			continue
		}
		if mb := c.(*partitionCounters).mailbox.Load(); mb != nil {
			d := (*mb).UserMessageCount()
			total += d
			deepest = max(deepest, d)
		}
	}
	return total, deepest
}

// Metrics returns the lifecycle counters.
func (m *Manager) Metrics() *Metrics { return &m.metrics }

// Crash makes partition p's vnode panic (fault injection).
func (m *Manager) Crash(p int, reason string) error {
	pid := m.PID(p)
	if pid == nil {
		return fmt.Errorf("%w %d", ErrUnknownPartition, p)
	}
	m.system.Root.Send(pid, &Crash{Reason: reason})
	return nil
}

// Stop stops every vnode (each finishes the message it is handling) and the supervisor, then the worker
// pool (queued async work is dropped, running work sees its context end), and waits for them or ctx.
func (m *Manager) Stop(ctx context.Context) error {
	m.once.Do(func() { m.system.Root.Stop(m.pid) })
	select {
	case <-m.stopped:
	case <-ctx.Done():
		return fmt.Errorf("vnode: stop: %w", ctx.Err())
	}
	return m.shared.pool.close(ctx)
}

// AAEStatus is the state of partition p's hash trees; false when its vnode has none (anti-entropy off, a
// behaviour without AAEHasher, or no vnode started yet).
func (m *Manager) AAEStatus(p int) (AAEStatus, bool) {
	if c, ok := m.counters.Load(p); ok {
		pc := c.(*partitionCounters)
		if st := pc.aae.Load(); st != nil {
			out := *st
			out.Items = pc.aaeItems.Load()
			return out, true
		}
	}
	return AAEStatus{}, false
}

// AAE is the hash-tree configuration the manager runs with (Q 0: off).
func (m *Manager) AAE() AAEConfig { return m.cfg.AAE }
