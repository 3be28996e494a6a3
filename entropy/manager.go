package entropy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/aae"
	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/ring"
)

// Mode is how much anti-entropy a node runs.
type Mode string

// Modes.
const (
	ModeOn      Mode = "on"      // trees kept, exchanges run
	ModePassive Mode = "passive" // trees kept (peers' exchanges may query them), no exchange started here
	ModeOff     Mode = "off"     // no trees, no exchanges
)

// ParseMode reads a mode name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeOn, ModePassive, ModeOff:
		return m, nil
	}
	return "", fmt.Errorf("entropy: mode %q: want on, passive or off", s)
}

// SupervisorName is the manager's actor name; its exchange actors are its children.
const SupervisorName = "aae-sup"

func init() {
	// Peers' vnodes answer the exchange actors.
	actors.AllowRemoteTarget(SupervisorName + "/")
}

// Config configures a node's anti-entropy.
type Config struct {
	Node ring.NodeID // this node (required)
	N    int         // replicas per key (required, 1..16)
	Mode Mode        // default on
	// Period: every exchange the node plans starts within one period. Default 10m, at least 10ms.
	Period time.Duration
	// Concurrency bounds the exchanges running at once. Default 2, range 1..64.
	Concurrency int
	// RepairRate bounds the keys repaired a second, node-wide (a token bucket with a burst of one second's
	// worth). Default 100; 0 means the default, range 1..1e6.
	RepairRate float64
	// MaxSegments bounds the segments whose keys one exchange fetches (more wait for the next exchange).
	// Default 4096, range 1..aae.Segments.
	MaxSegments int
	// Timeout is how long an exchange waits for an answer from a vnode. Default 10s.
	Timeout time.Duration
	Logger  *slog.Logger
	Now     func() time.Time
	// Name is the manager's actor name: default SupervisorName, the one peers' vnodes may answer (another
	// name serves tests that run several managers in one process).
	Name string
}

func (c *Config) setDefaults() {
	if c.Mode == "" {
		c.Mode = ModeOn
	}
	if c.Period == 0 {
		c.Period = 10 * time.Minute
	}
	if c.Concurrency == 0 {
		c.Concurrency = 2
	}
	if c.RepairRate == 0 {
		c.RepairRate = 100
	}
	if c.MaxSegments == 0 {
		c.MaxSegments = 4096
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Name == "" {
		c.Name = SupervisorName
	}
}

// Validate reports the first invalid field (after defaults).
func (c Config) Validate() error {
	c.setDefaults()
	switch {
	case c.Node == "":
		return errors.New("entropy: Config.Node is empty")
	case c.N < 1 || c.N > 16:
		return fmt.Errorf("entropy: Config.N %d out of range 1..16", c.N)
	case c.Mode != ModeOn && c.Mode != ModePassive && c.Mode != ModeOff:
		return fmt.Errorf("entropy: Config.Mode %q: want on, passive or off", c.Mode)
	case c.Period < 10*time.Millisecond:
		return fmt.Errorf("entropy: Config.Period %s: want at least 10ms", c.Period)
	case c.Concurrency < 1 || c.Concurrency > 64:
		return fmt.Errorf("entropy: Config.Concurrency %d out of range 1..64", c.Concurrency)
	case c.RepairRate < 1 || c.RepairRate > 1e6:
		return fmt.Errorf("entropy: Config.RepairRate %g out of range 1..1e6", c.RepairRate)
	case c.MaxSegments < 1 || c.MaxSegments > aae.Segments:
		return fmt.Errorf("entropy: Config.MaxSegments %d out of range 1..%d", c.MaxSegments, aae.Segments)
	case c.Timeout <= 0:
		return fmt.Errorf("entropy: Config.Timeout %s must be > 0", c.Timeout)
	}
	return nil
}

// Cluster is what the manager needs from the node: the ring and liveness. Safe for concurrent use.
type Cluster interface {
	// Ring is the current ring (nil before there is one).
	Ring() *ring.Ring
	// Up reports whether node is up (exchanges with a down peer are skipped).
	Up(node ring.NodeID) bool
}

// Service is one service whose vnodes keep hash trees.
type Service struct {
	Name string
	// Vnode is the service's vnode of partition p on node (nil when unreachable).
	Vnode func(node ring.NodeID, p int) *actor.PID
	// Repair makes every replica of key hold the merge of all of them (KV: a read of all N replicas with
	// read repair). Called from an exchange's goroutine; must honour ctx.
	Repair func(ctx context.Context, key []byte) error
}

// PartitionStatus is the exchange side of one local vnode's anti-entropy.
type PartitionStatus struct {
	Service   string
	Partition int
	// Exchanges run (finished) with this vnode as the local side, and the last one's end and result
	// ("ok", "ok: N keys differed", "skipped: ...", or the error).
	Exchanges    int64
	LastExchange time.Time
	LastResult   string
	// KeysRepaired counts the keys this vnode's exchanges repaired since the node started.
	KeysRepaired int64
	// NextExchange is when the next exchange of this vnode is due (zero: none planned).
	NextExchange time.Time
}

// Stats are the manager's counters since start.
type Stats struct {
	Exchanges      int64 // exchanges finished (errors included)
	ExchangeErrors int64 // exchanges that failed (a vnode did not answer, or refused)
	Skipped        int64 // exchanges not run: the peer was down
	KeysDiffering  int64 // keys found differing
	KeysRepaired   int64 // keys repaired (Repair returned nil)
	RepairErrors   int64 // repairs that failed
	Running        int64 // exchanges running now
}

// task is one planned exchange.
type task struct {
	svc  int
	pair aae.Pair
	due  time.Time
}

type statusKey struct {
	svc  string
	part int
}

// Manager runs a node's anti-entropy. Its methods are safe for concurrent use.
type Manager struct {
	cfg     Config
	system  *actor.ActorSystem
	cluster Cluster
	svcs    []Service
	pid     *actor.PID
	stopped chan struct{}

	mu          sync.Mutex
	queue       []task                         // REQUIRES: mu held
	periodStart time.Time                      // REQUIRES: mu held
	ringVersion uint64                         // REQUIRES: mu held; the ring the queue was planned on
	status      map[statusKey]*PartitionStatus // REQUIRES: mu held
	bucket      *aae.Bucket                    // REQUIRES: mu held
	running     int                            // REQUIRES: mu held
	xseq        uint64                         // REQUIRES: mu held

	exchanges, exchangeErrors, skipped, differing, repaired, repairErrors atomic.Int64
}

// Start spawns the manager. With Mode off it returns a manager that runs nothing.
func Start(system *actor.ActorSystem, cfg Config, cluster Cluster, svcs []Service) (*Manager, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for _, s := range svcs {
		if s.Vnode == nil || s.Repair == nil {
			return nil, fmt.Errorf("entropy: service %s needs Vnode and Repair", s.Name)
		}
	}
	m := &Manager{cfg: cfg, system: system, cluster: cluster, svcs: svcs, stopped: make(chan struct{}),
		status: map[statusKey]*PartitionStatus{}, bucket: aae.NewBucket(cfg.RepairRate, cfg.RepairRate)}
	if cfg.Mode == ModeOff {
		close(m.stopped)
		return m, nil
	}
	pid, err := system.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &managerActor{m: m} }),
		cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("entropy: spawn %s: %w", cfg.Name, err)
	}
	m.pid = pid
	return m, nil
}

// Stop stops the manager and its exchanges (their repairs are cancelled) and waits for them.
func (m *Manager) Stop(ctx context.Context) error {
	if m.pid == nil {
		return nil
	}
	m.system.Root.Stop(m.pid)
	select {
	case <-m.stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("entropy: stop: %w", ctx.Err())
	}
}

// Config is the configuration the manager runs with (defaults applied).
func (m *Manager) Config() Config { return m.cfg }

// Stats returns the counters.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	running := m.running
	m.mu.Unlock()
	return Stats{Exchanges: m.exchanges.Load(), ExchangeErrors: m.exchangeErrors.Load(), Skipped: m.skipped.Load(),
		KeysDiffering: m.differing.Load(), KeysRepaired: m.repaired.Load(), RepairErrors: m.repairErrors.Load(),
		Running: int64(running)}
}

// Status lists the exchange status of every local vnode that has exchanges planned or run, by service
// (registration order) and partition.
func (m *Manager) Status() []PartitionStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := map[statusKey]time.Time{}
	for _, t := range m.queue {
		k := statusKey{m.svcs[t.svc].Name, t.pair.Local}
		if d, ok := next[k]; !ok || t.due.Before(d) {
			next[k] = t.due
		}
	}
	out := make([]PartitionStatus, 0, len(m.status))
	for k, st := range m.status {
		s := *st
		s.NextExchange = next[k]
		out = append(out, s)
	}
	order := map[string]int{}
	for i, s := range m.svcs {
		order[s.Name] = i
	}
	slices.SortFunc(out, func(a, b PartitionStatus) int {
		if c := order[a.Service] - order[b.Service]; c != 0 {
			return c
		}
		return a.Partition - b.Partition
	})
	return out
}

// statusOfLocked is the status entry of a local vnode. REQUIRES: mu held.
func (m *Manager) statusOfLocked(svc string, p int) *PartitionStatus {
	k := statusKey{svc, p}
	st := m.status[k]
	if st == nil {
		st = &PartitionStatus{Service: svc, Partition: p}
		m.status[k] = st
	}
	return st
}

// planLocked starts a new period: every planned exchange, due at evenly spread times. REQUIRES: mu held.
func (m *Manager) planLocked(now time.Time) {
	m.periodStart = now
	m.queue = nil
	r := m.cluster.Ring()
	if r == nil {
		return
	}
	m.ringVersion = r.Version()
	var ts []task
	for i, s := range m.svcs {
		for _, p := range aae.Plan(r, m.cfg.Node, m.cfg.N) {
			ts = append(ts, task{svc: i, pair: p})
			m.statusOfLocked(s.Name, p.Local)
		}
	}
	// NB: a random rotation, so that nodes started together do not exchange the same sources at once.
	if len(ts) > 0 {
		k := rand.IntN(len(ts))
		ts = append(ts[k:], ts[:k]...)
	}
	step := m.cfg.Period / time.Duration(max(1, len(ts)))
	for i := range ts {
		ts[i].due = now.Add(time.Duration(i) * step)
	}
	m.queue = ts
}

// takeToken takes a repair token and returns how long to wait for it.
func (m *Manager) takeToken() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bucket.Take(m.cfg.Now())
}

// tick is the manager's timer message.
type tick struct{}

// exchangeDone reports an exchange's end to the manager.
type exchangeDone struct {
	t        task
	outcome  aae.Outcome
	repaired int64
	failed   int64
	err      error
	skipped  string
}

// tickEvery is the manager's tick: often enough to start exchanges on time, at most once a second.
func (m *Manager) tickEvery() time.Duration {
	return min(time.Second, max(10*time.Millisecond, m.cfg.Period/100))
}

type managerActor struct {
	m     *Manager
	timer *time.Timer
}

func (a *managerActor) Receive(ctx actor.Context) {
	m := a.m
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		if m.cfg.Mode == ModeOn {
			a.schedule(ctx, 0)
		}
	case *tick:
		a.timer = nil
		a.startDue(ctx)
		a.schedule(ctx, m.tickEvery())
	case *exchangeDone:
		a.done(msg)
		a.startDue(ctx)
	case *actor.Stopping:
		if a.timer != nil {
			a.timer.Stop()
		}
	case *actor.Stopped:
		close(m.stopped)
	}
}

func (a *managerActor) schedule(ctx actor.Context, after time.Duration) {
	sys, self := ctx.ActorSystem(), ctx.Self()
	a.timer = time.AfterFunc(after, func() { sys.Root.Send(self, &tick{}) })
}

// startDue starts the exchanges that are due, while fewer than Concurrency run; a new period begins once
// the last one's queue is empty and the period has passed.
func (a *managerActor) startDue(ctx actor.Context) {
	m := a.m
	now := m.cfg.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.cluster.Ring(); r != nil && r.Version() != m.ringVersion && !m.periodStart.IsZero() {
		// The ring changed: the pairs planned may no longer be replicas of their sources. Plan anew now
		// (the exchanges running finish; their repairs go through the service's current preference lists).
		m.planLocked(now)
	}
	if len(m.queue) == 0 && (m.periodStart.IsZero() || now.Sub(m.periodStart) >= m.cfg.Period) {
		m.planLocked(now)
	}
	for m.running < m.cfg.Concurrency && len(m.queue) > 0 && !m.queue[0].due.After(now) {
		t := m.queue[0]
		m.queue = m.queue[1:]
		if !m.cluster.Up(t.pair.Peer) {
			m.skipped.Add(1)
			st := m.statusOfLocked(m.svcs[t.svc].Name, t.pair.Local)
			st.LastResult = fmt.Sprintf("skipped: peer %s down (source %d)", t.pair.Peer, t.pair.Source)
			continue
		}
		m.running++
		m.xseq++
		x := &exchangeActor{m: m, t: t, svc: m.svcs[t.svc], base: rand.Uint64() &^ 0xffff}
		// NB: WireProps: the queries to a peer's vnode and its answers cross the transport as wire envelopes.
		props := actors.WireProps(actor.PropsFromProducer(func() actor.Actor { return x }))
		if _, err := ctx.SpawnNamed(props, fmt.Sprintf("x-%d", m.xseq)); err != nil {
			m.running--
			m.cfg.Logger.Warn("entropy: spawn exchange", "err", err)
		}
	}
}

// done records an exchange's end.
func (a *managerActor) done(d *exchangeDone) {
	m := a.m
	m.mu.Lock()
	defer m.mu.Unlock()
	m.running--
	st := m.statusOfLocked(m.svcs[d.t.svc].Name, d.t.pair.Local)
	st.LastExchange = m.cfg.Now()
	m.exchanges.Add(1)
	st.Exchanges++
	m.differing.Add(int64(len(d.outcome.Keys)))
	m.repaired.Add(d.repaired)
	m.repairErrors.Add(d.failed)
	st.KeysRepaired += d.repaired
	switch {
	case d.err != nil:
		m.exchangeErrors.Add(1)
		st.LastResult = fmt.Sprintf("error with %s/%d (source %d): %v", d.t.pair.Peer, d.t.pair.Remote, d.t.pair.Source, d.err)
	case len(d.outcome.Keys) == 0:
		st.LastResult = "ok"
	default:
		st.LastResult = fmt.Sprintf("ok: %d keys differed with %s/%d (source %d), %d repaired", len(d.outcome.Keys),
			d.t.pair.Peer, d.t.pair.Remote, d.t.pair.Source, d.repaired)
	}
}
