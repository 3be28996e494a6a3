package handoff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/vnode"
)

// Move is one service's vnode of a partition changing hands. An ownership move (Hinted false) is one
// service's part of a partition's transfer: once every service of Config.Services completed its part, the
// partition's transfer is reported to the claimant (Report); a hinted move (data a fallback holds for a
// partition it does not own, sent to the owner) ends by dropping the data at the source.
type Move struct {
	Service   string // the service whose vnode moves ("" in a Report: the partition, every service)
	Partition int
	From, To  ring.NodeID
	Hinted    bool
}

func (m Move) String() string {
	kind := "ownership"
	if m.Hinted {
		kind = "hinted"
	}
	return fmt.Sprintf("%s %s/%d %s->%s", kind, m.Service, m.Partition, m.From, m.To)
}

// Slot names one service's vnode of one partition.
type Slot struct {
	Service   string
	Partition int
}

func (m Move) slot() Slot { return Slot{m.Service, m.Partition} }

// Resolver finds vnode actors.
type Resolver interface {
	// LocalVnode is this node's vnode of partition p of service svc (nil if none).
	LocalVnode(svc string, p int) *actor.PID
	// VnodePID is node's vnode of partition p of service svc, reachable over the transport (nil if unknown
	// or down).
	VnodePID(svc string, node ring.NodeID, p int) *actor.PID
}

// Config configures a node's handoff manager.
type Config struct {
	Self ring.NodeID
	// Services are the services whose vnodes every ownership move of a partition carries (required): the
	// partition's transfer is reported done once each of them completed its Move.
	Services    []string
	Concurrency int           // transfers at once; default 2
	BatchItems  int           // items per batch; default 256
	BatchBytes  int           // bytes per batch; default 1 MiB
	Timeout     time.Duration // per batch and per step; default 30s
	RetryAfter  time.Duration // first retry backoff, doubling to 1 min; default 1s
	Resolver    Resolver
	System      *actor.ActorSystem // the node's actor system (required)
	// Report tells the cluster that partition m.Partition moved from m.From to m.To, every service's data
	// with it (m.Service is ""): the claimant then moves ownership. It may block (it runs on the goroutine of
	// the transfer that completed last) and must return an error if the report did not get through.
	Report func(ctx context.Context, m Move) error
	Logger *slog.Logger
	Now    func() time.Time
}

func (c *Config) setDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = 2
	}
	if c.BatchItems == 0 {
		c.BatchItems = 256
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = 1 << 20
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Self == "":
		return errors.New("handoff: Config.Self is empty")
	case c.Resolver == nil || c.Report == nil || c.System == nil:
		return errors.New("handoff: Config.Resolver, Config.Report and Config.System are required")
	case len(c.Services) == 0:
		return errors.New("handoff: Config.Services is empty")
	case c.Concurrency < 1 || c.Concurrency > 64:
		return fmt.Errorf("handoff: Config.Concurrency %d out of range 1..64", c.Concurrency)
	case c.BatchItems < 1 || c.BatchBytes < 1:
		return fmt.Errorf("handoff: Config.BatchItems %d / BatchBytes %d must be >= 1", c.BatchItems, c.BatchBytes)
	}
	return nil
}

// State of a transfer.
type State string

const (
	StateQueued   State = "queued"
	StateCounting State = "counting"
	StateSending  State = "sending"
	StateFlushing State = "flushing"
	StateRetrying State = "retrying"
	StateDone     State = "done"
)

// Progress is a snapshot of one transfer for `gokai transfers`.
type Progress struct {
	Move
	State      State
	Keys       int64 // items sent (this attempt)
	TotalKeys  int64 // items in the partition when the attempt started (0 while counting)
	Bytes      int64
	Forwarded  int // writes forwarded during the fold
	Attempts   int
	LastError  string
	Started    time.Time
	RatePerSec float64 // items per second this attempt
	ETA        time.Duration
}

// Manager runs this node's outgoing transfers: a supervisor actor (handoff-sup) with one transfer actor per
// move; each transfer actor owns the goroutine that folds and sends.
type Manager struct {
	cfg Config
	sup *actor.PID

	hinted   atomic.Int64  // keys delivered by hinted handoff
	attempts atomic.Int64  // attempts that put a vnode in handoff mode
	rounds   atomic.Int64  // hinted handoffs that delivered data and dropped it
	ring     atomic.Uint64 // the node's cluster-state version, stamped on every batch (SetRing)

	// Items and bytes sent in acknowledged batches since start, by kind (0 ownership, 1 hinted).
	sentKeys, sentBytes [2]atomic.Int64

	mu        sync.Mutex
	transfers map[Move]*transfer   // REQUIRES: mu held
	completed map[Slot]completion  // a service's completed part of an ownership move; REQUIRES: mu held
	hints     map[Slot]*hintWindow // a vnode's recent hinted handoffs (logging); REQUIRES: mu held
	running   int                  // REQUIRES: mu held
	closed    bool                 // REQUIRES: mu held
	wg        sync.WaitGroup
}

// transfer is one move's state, shared by its goroutine and snapshots under Manager.mu.
// SetRing records the node's current cluster-state version; batches sent from then on carry it, so a
// receiver on an older state knows not to hand the data back as hints (vnode.IsEmptyReply.Ring).
func (m *Manager) SetRing(version uint64) {
	for {
		cur := m.ring.Load()
		if version <= cur || m.ring.CompareAndSwap(cur, version) {
			return
		}
	}
}

// completion is one service's completed part of an ownership move: the vnode stays in handoff mode in
// session, forwarding to the new owner, until the node drops its leftover or cancels the session.
type completion struct {
	move    Move
	session uint64
}

type transfer struct {
	p      Progress
	pid    *actor.PID // the transfer actor; nil until started
	active bool
}

// spawnTransfer asks the handoff supervisor to start a transfer actor.
type spawnTransfer struct {
	t    *transfer
	done chan *actor.PID
}

type supervisorActor struct{ m *Manager }

func (a *supervisorActor) Receive(ctx actor.Context) {
	if msg, ok := ctx.Message().(*spawnTransfer); ok {
		msg.done <- ctx.Spawn(actor.PropsFromProducer(func() actor.Actor { return &transferActor{m: a.m, t: msg.t} }))
	}
}

// transferActor owns one attempt loop: it starts the goroutine on Started and cancels it when stopped.
type transferActor struct {
	m      *Manager
	t      *transfer
	cancel context.CancelFunc
}

type transferEnded struct{}

func (a *transferActor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		var c context.Context
		c, a.cancel = context.WithCancel(context.Background())
		self, sys := ctx.Self(), ctx.ActorSystem()
		a.m.wg.Add(1)
		go func() {
			a.m.run(c, a.t)
			sys.Root.Send(self, &transferEnded{})
		}()
	case *transferEnded:
		ctx.Stop(ctx.Self())
	case *actor.Stopping:
		a.cancel()
	}
}

// New makes a manager.
func New(cfg Config) (*Manager, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, transfers: map[Move]*transfer{}, completed: map[Slot]completion{}, hints: map[Slot]*hintWindow{}}
	strategy := actor.NewOneForOneStrategy(0, time.Second, func(reason any) actor.Directive {
		cfg.Logger.Error("handoff transfer crashed", "reason", fmt.Sprint(reason))
		return actor.StopDirective
	})
	pid, err := cfg.System.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &supervisorActor{m: m} },
		actor.WithSupervisor(strategy)), actors.HandoffSupervisorName)
	if err != nil {
		return nil, fmt.Errorf("handoff: spawn supervisor: %w", err)
	}
	m.sup = pid
	return m, nil
}

// Sync makes the running ownership transfers match pending: the moves of the cluster state that this node
// must send, one per service and partition (hinted moves in pending are ignored: SyncHinted manages them).
// New moves start (within the concurrency limit), moves no longer pending are cancelled, and so is a hinted
// handoff of a partition that now has an ownership move (it would fight the move for the vnode's handoff
// session).
func (m *Manager) Sync(pending []Move) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	want := map[Move]bool{}
	moving := map[int]bool{}
	for _, mv := range pending {
		if mv.From != m.cfg.Self || mv.Hinted {
			continue
		}
		want[mv] = true
		moving[mv.Partition] = true
		if _, ok := m.transfers[mv]; !ok {
			m.transfers[mv] = &transfer{p: Progress{Move: mv, State: StateQueued}}
		}
	}
	for mv, t := range m.transfers {
		if (!mv.Hinted && !want[mv]) || (mv.Hinted && moving[mv.Partition]) {
			m.stopLocked(t)
			delete(m.transfers, mv)
		}
	}
	m.startLocked()
}

// SyncHinted makes the hinted handoffs match hinted, the result of a hint scan: partitions this node does
// not own that hold data, each to its owner. A new move starts (within the concurrency limit); a move that
// completed before runs again, because the scan found data there after its drop (new hints); a move the scan
// no longer lists is cancelled. Call it only with a scan's findings: a move runs again only when a scan saw
// data.
func (m *Manager) SyncHinted(hinted []Move) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	moving := map[int]bool{}
	for mv := range m.transfers {
		if !mv.Hinted {
			moving[mv.Partition] = true
		}
	}
	want := map[Move]bool{}
	for _, mv := range hinted {
		if mv.From != m.cfg.Self || !mv.Hinted || moving[mv.Partition] {
			continue
		}
		want[mv] = true
		t, ok := m.transfers[mv]
		switch {
		case !ok:
			m.transfers[mv] = &transfer{p: Progress{Move: mv, State: StateQueued}}
		case !t.active && t.p.State == StateDone:
			t.p = Progress{Move: mv, State: StateQueued}
		}
	}
	for mv, t := range m.transfers {
		if mv.Hinted && !want[mv] {
			m.stopLocked(t)
			delete(m.transfers, mv)
		}
	}
	m.startLocked()
}

// startLocked starts queued transfers up to the limit, in partition order.
// REQUIRES: mu held.
func (m *Manager) startLocked() {
	var queued []Move
	for mv, t := range m.transfers {
		if !t.active && t.p.State == StateQueued {
			queued = append(queued, mv)
		}
	}
	sort.Slice(queued, func(i, j int) bool { return queued[i].Partition < queued[j].Partition })
	for _, mv := range queued {
		if m.running >= m.cfg.Concurrency {
			return
		}
		t := m.transfers[mv]
		t.active = true
		m.running++
		// NB: the supervisor answers at once (it only spawns); mu is held briefly.
		done := make(chan *actor.PID, 1)
		m.cfg.System.Root.Send(m.sup, &spawnTransfer{t: t, done: done})
		t.pid = <-done
	}
}

// stopLocked stops t's actor (which cancels its goroutine). REQUIRES: mu held.
func (m *Manager) stopLocked(t *transfer) {
	if t.pid != nil {
		m.cfg.System.Root.Stop(t.pid)
	}
}

// OwnershipDone reports whether this node completed its part of an ownership move of service svc's vnode of
// partition p (since start), and the vnode's handoff session of that move: the vnode stays in handoff mode
// (forwarding the writes that still reach it to the new owner) until the node drops the leftover data
// (vnode.HandoffDrop) or, when the partition comes back to this node, cancels the session
// (vnode.CancelHandoff). A service's part completes before the partition's transfer is reported when other
// services are still moving theirs.
func (m *Manager) OwnershipDone(svc string, p int) (session uint64, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.completed[Slot{svc, p}]
	return c.session, ok
}

// Completed lists the slots OwnershipDone reports, with their sessions.
func (m *Manager) Completed() map[Slot]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[Slot]uint64, len(m.completed))
	for s, c := range m.completed {
		out[s] = c.session
	}
	return out
}

// ForgetOwnership clears OwnershipDone(svc, p) (the vnode's leftover data was dropped, or the partition came
// back).
func (m *Manager) ForgetOwnership(svc string, p int) {
	m.mu.Lock()
	delete(m.completed, Slot{svc, p})
	m.mu.Unlock()
}

// partitionDoneLocked reports whether every service completed its part of the ownership move mv's
// partition makes (the same partition, from and to). REQUIRES: mu held.
func (m *Manager) partitionDoneLocked(mv Move) bool {
	for _, svc := range m.cfg.Services {
		c, ok := m.completed[Slot{svc, mv.Partition}]
		if !ok || c.move.From != mv.From || c.move.To != mv.To {
			return false
		}
	}
	return true
}

// HintedKeys is the number of keys delivered to their owners by hinted handoff since start.
func (m *Manager) HintedKeys() int64 { return m.hinted.Load() }

// Sent is what this node's transfers delivered since start, in acknowledged batches (every attempt's,
// so a retried transfer counts its items again): items and bytes of ownership moves and of hinted ones.
func (m *Manager) Sent() (ownershipKeys, ownershipBytes, hintedKeys, hintedBytes int64) {
	return m.sentKeys[0].Load(), m.sentBytes[0].Load(), m.sentKeys[1].Load(), m.sentBytes[1].Load()
}

// HintedRounds is the number of hinted handoffs since start that delivered data and dropped it.
func (m *Manager) HintedRounds() int64 { return m.rounds.Load() }

// Attempts is the number of transfer attempts since start that put a vnode in handoff mode (ownership and
// hinted; a hinted move whose vnode turned out empty does not count).
func (m *Manager) Attempts() int64 { return m.attempts.Load() }

// Progress snapshots every transfer, in partition order.
func (m *Manager) Progress() []Progress {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Progress, 0, len(m.transfers))
	for _, t := range m.transfers {
		p := t.p
		if !p.Started.IsZero() && p.State != StateDone {
			if secs := m.cfg.Now().Sub(p.Started).Seconds(); secs > 0 {
				p.RatePerSec = float64(p.Keys) / secs
				if p.RatePerSec > 0 && p.TotalKeys > p.Keys {
					p.ETA = time.Duration(float64(p.TotalKeys-p.Keys) / p.RatePerSec * float64(time.Second))
				}
			}
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Service < out[j].Service
	})
	return out
}

// Cancel stops the transfers of partition p, every service's (they are retried if still pending at the next
// Sync).
func (m *Manager) Cancel(p int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	found := false
	for mv, t := range m.transfers {
		if mv.Partition == p {
			m.stopLocked(t)
			delete(m.transfers, mv)
			found = true
		}
	}
	return found
}

// Close cancels every transfer and waits for their goroutines.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	// Stopping the supervisor stops every transfer actor, which cancels its goroutine.
	_ = m.cfg.System.Root.StopFuture(m.sup).Wait()
	m.wg.Wait()
}

func (m *Manager) update(t *transfer, f func(p *Progress)) {
	m.mu.Lock()
	f(&t.p)
	m.mu.Unlock()
}

// run drives one move to completion, retrying with backoff, until it is done or cancelled.
func (m *Manager) run(ctx context.Context, t *transfer) {
	defer m.wg.Done()
	defer func() {
		if r := recover(); r != nil {
			m.cfg.Logger.Error("handoff transfer panicked", "service", t.p.Service, "partition", t.p.Partition, "panic", fmt.Sprint(r))
			m.update(t, func(p *Progress) { p.State, p.LastError = StateQueued, fmt.Sprint(r) })
			m.mu.Lock()
			t.active = false
			m.running--
			m.mu.Unlock()
		}
	}()
	mv := t.p.Move
	log := m.cfg.Logger.With("service", mv.Service, "partition", mv.Partition, "from", mv.From, "to", mv.To, "kind", mv.kind())
	backoff := m.cfg.RetryAfter
	quick := false // the last retry was a quick one (see below)
	for attempt := 1; ; attempt++ {
		m.update(t, func(p *Progress) {
			p.Attempts, p.Keys, p.Bytes, p.TotalKeys, p.Forwarded = attempt, 0, 0, 0, 0
			p.Started, p.State = m.cfg.Now(), StateCounting
		})
		err := m.attempt(ctx, t, log)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			log.Info("handoff cancelled")
			break
		}
		// NB: a dead letter past awaitTarget means the target vnode answered and then went away: it is being
		// replaced (a joining node adopting the cluster's state restarts its vnodes), so the next attempt starts
		// at once and waits for the new one (awaitTarget). Only once in a row: a vnode that keeps going away
		// gets the backoff.
		wait := backoff
		if quick = errors.Is(err, actor.ErrDeadLetter) && !quick; quick {
			wait = targetPoll
		}
		// NB: a move that keeps failing (a peer down for long) retries for as long as it is pending: warn on
		// attempts 1, 2, 4, 8, ... only, not once per attempt.
		level := slog.LevelDebug
		if attempt&(attempt-1) == 0 && !quick {
			level = slog.LevelWarn
		}
		log.Log(ctx, level, "handoff failed, retrying", "attempt", attempt, "after", wait, "err", err)
		m.update(t, func(p *Progress) { p.State, p.LastError = StateRetrying, err.Error() })
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		if ctx.Err() != nil {
			break
		}
		if !quick {
			backoff = min(2*backoff, time.Minute)
		}
	}
	m.mu.Lock()
	t.active = false
	m.running--
	if !m.closed {
		m.startLocked()
	}
	m.mu.Unlock()
}

func (mv Move) kind() string {
	if mv.Hinted {
		return "hinted"
	}
	return "ownership"
}

// attempt is one try: begin handoff at the local vnode, count, send every item, flush forwards, then record
// the service's part done and report the partition if every service's is (ownership), or drop the data
// (hinted).
func (m *Manager) attempt(ctx context.Context, t *transfer, log *slog.Logger) (err error) {
	mv := t.p.Move
	src := m.cfg.Resolver.LocalVnode(mv.Service, mv.Partition)
	if src == nil {
		return fmt.Errorf("handoff: no local vnode for partition %d of %s", mv.Partition, mv.Service)
	}
	sys := m.cfg.System
	if mv.Hinted {
		// The hints may be gone already (handed off by the previous round, which raced with the scan that
		// queued this one): then there is nothing to start.
		res, err := actors.Request(ctx, sys, src, &vnode.IsEmptyRequest{}, m.cfg.Timeout)
		if err != nil {
			return fmt.Errorf("handoff: is-empty: %w", err)
		}
		if e, ok := res.(*vnode.IsEmptyReply); ok && e.Err == "" && e.Empty {
			log.Debug("hinted handoff: nothing to send")
			m.update(t, func(p *Progress) { p.State = StateDone })
			return nil
		}
	}
	dst := m.cfg.Resolver.VnodePID(mv.Service, mv.To, mv.Partition)
	if dst == nil {
		return fmt.Errorf("handoff: %s unreachable", mv.To)
	}
	if err := m.awaitTarget(ctx, dst); err != nil {
		return err
	}
	res, err := actors.Request(ctx, sys, src, &vnode.BeginHandoff{Target: dst, Node: string(mv.To), Hinted: mv.Hinted}, m.cfg.Timeout)
	if err != nil {
		return fmt.Errorf("handoff: begin: %w", err)
	}
	st, ok := res.(*vnode.HandoffStarted)
	if !ok {
		return fmt.Errorf("handoff: begin: unexpected reply %T", res)
	}
	if st.Refused != "" {
		// The behaviour is not ready (vnode.HandoffStarter): no session began; retry later.
		return fmt.Errorf("handoff: begin: %s", st.Refused)
	}
	m.attempts.Add(1)
	if !mv.Hinted {
		// NB: the new session supersedes a completion of an earlier move of this vnode: it must not count
		// towards this move's report.
		m.mu.Lock()
		delete(m.completed, mv.slot())
		m.mu.Unlock()
	}
	defer func() {
		if err != nil {
			// NB: names the session, so it cannot end a later attempt's (or another move's) session.
			sys.Root.Send(src, &vnode.CancelHandoff{Session: st.Session})
		}
	}()
	var total int64
	if err := st.Fold(func(_, _ []byte) error { total++; return ctx.Err() }); err != nil {
		return fmt.Errorf("handoff: count: %w", err)
	}
	if total == 0 && mv.Hinted {
		sys.Root.Send(src, &vnode.CancelHandoff{Session: st.Session})
		log.Debug("hinted handoff: nothing to send")
		m.update(t, func(p *Progress) { p.State = StateDone })
		return nil
	}
	m.update(t, func(p *Progress) { p.TotalKeys, p.State = total, StateSending })

	var (
		batch [][]byte
		size  int
		seq   uint64
	)
	send := func() error {
		seq++
		res, err := actors.Request(ctx, sys, dst, &vnode.HandoffBatch{V: 1, Seq: seq, Items: batch, Ring: m.ring.Load(), From: string(m.cfg.Self)}, m.cfg.Timeout)
		if err != nil {
			return fmt.Errorf("handoff: batch %d: %w", seq, err)
		}
		ack, ok := res.(*vnode.HandoffAck)
		switch {
		case !ok:
			return fmt.Errorf("handoff: batch %d: unexpected reply %T", seq, res)
		case ack.Err != "":
			return fmt.Errorf("handoff: batch %d: %s", seq, ack.Err)
		case ack.Seq != seq:
			return fmt.Errorf("handoff: batch %d acked as %d", seq, ack.Seq)
		}
		n, b := int64(len(batch)), int64(size)
		m.update(t, func(p *Progress) { p.Keys += n; p.Bytes += b })
		kind := 0
		if t.p.Hinted {
			kind = 1
		}
		m.sentKeys[kind].Add(n)
		m.sentBytes[kind].Add(b)
		batch, size = batch[:0], 0
		return nil
	}
	err = st.Fold(func(k, v []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		item, err := st.Encode(k, v)
		if err != nil {
			return err
		}
		batch = append(batch, item)
		size += len(item)
		if len(batch) >= m.cfg.BatchItems || size >= m.cfg.BatchBytes {
			return send()
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = send()
	}
	if err != nil {
		return err
	}
	m.update(t, func(p *Progress) { p.State = StateFlushing })
	// NB: a forward not acknowledged within half the step timeout fails the flush with a clear error, before
	// the request itself times out; the retry then starts a new session from scratch.
	ackTimeout := m.cfg.Timeout / 2
	res, err = actors.Request(ctx, sys, src, &vnode.FinishHandoff{Session: st.Session, AckTimeout: ackTimeout}, m.cfg.Timeout)
	if err != nil {
		return fmt.Errorf("handoff: flush: %w", err)
	}
	fl, ok := res.(*vnode.HandoffFlushed)
	if !ok || fl.Err != "" {
		return fmt.Errorf("handoff: flush: %v", res)
	}
	m.update(t, func(p *Progress) { p.Forwarded = fl.Forwarded })
	keys, bytes := t.snapshotKeys(m)
	if mv.Hinted {
		// The owner has everything: drop the hints (atomically with any write still arriving).
		res, err := actors.Request(ctx, sys, src, &vnode.HandoffDrop{Session: st.Session, AckTimeout: ackTimeout}, m.cfg.Timeout)
		if err != nil {
			return fmt.Errorf("handoff: drop: %w", err)
		}
		d, ok := res.(*vnode.HandoffDropped)
		if !ok || d.Err != "" {
			return fmt.Errorf("handoff: drop: %v", res)
		}
		m.hinted.Add(keys)
		m.rounds.Add(1)
		m.logHinted(log, mv.slot(), t.p.Attempts, keys, bytes, d.Arrived)
	} else {
		// NB: recorded and checked under one lock: of several services finishing the partition at once,
		// exactly the last one sees every part done and reports.
		m.mu.Lock()
		m.completed[mv.slot()] = completion{move: mv, session: st.Session}
		all := m.partitionDoneLocked(mv)
		m.mu.Unlock()
		if !all {
			log.Info("handoff done; the partition is reported once every service moved it", "keys", keys, "bytes", bytes,
				"forwarded", fl.Forwarded, "attempts", t.p.Attempts)
		} else if err := m.cfg.Report(ctx, Move{Partition: mv.Partition, From: mv.From, To: mv.To}); err != nil {
			// NB: the deferred CancelHandoff ends this session: it no longer counts as done.
			m.mu.Lock()
			delete(m.completed, mv.slot())
			m.mu.Unlock()
			return fmt.Errorf("handoff: report: %w", err)
		} else {
			log.Info("handoff done; partition reported", "keys", keys, "bytes", bytes, "forwarded", fl.Forwarded, "attempts", t.p.Attempts)
		}
	}
	m.update(t, func(p *Progress) { p.State = StateDone })
	return nil
}

// targetPoll is how often awaitTarget asks again for a target vnode that does not run yet.
const targetPoll = 50 * time.Millisecond

// awaitTarget waits until the target vnode answers an empty batch, at most the step timeout. Right after a
// commit the new owner's node may not have seen the cluster state that makes it start the vnode: the batch
// is then a dead letter, and waiting for the vnode here, before a session begins, spares the attempt's
// failure and its backoff (1 s at first). Any other failure ends the attempt as a failed batch does.
func (m *Manager) awaitTarget(ctx context.Context, dst *actor.PID) error {
	for polls := int(m.cfg.Timeout / targetPoll); ; polls-- {
		// NB: Seq 0 and no items: the receiver stores nothing and acks; Ring 0 leaves its IsEmptyReply.Ring.
		res, err := actors.Request(ctx, m.cfg.System, dst, &vnode.HandoffBatch{V: 1, From: string(m.cfg.Self)}, m.cfg.Timeout)
		if err == nil {
			if ack, ok := res.(*vnode.HandoffAck); !ok || ack.Err != "" {
				return fmt.Errorf("handoff: target: unexpected reply %v", res)
			}
			return nil
		}
		if !errors.Is(err, actor.ErrDeadLetter) {
			return fmt.Errorf("handoff: target: %w", err)
		}
		if polls <= 0 {
			// NB: %v, not %w: a target that never came is not one that went away (run's quick retry).
			return fmt.Errorf("handoff: target: no vnode answers: %v", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(targetPoll):
		}
	}
}

// snapshotKeys reads the keys and bytes sent so far.
func (t *transfer) snapshotKeys(m *Manager) (keys, bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return t.p.Keys, t.p.Bytes
}

// hintWindowLength is the period over which repeated hinted handoffs of one partition are summarised in one
// log line.
const hintWindowLength = time.Minute

// hintWindow is one partition's hinted handoffs in the current window.
type hintWindow struct {
	start   time.Time
	rounds  int
	keys    int64
	arrived vnode.Arrivals
	quiet   bool // the previous window repeated: its summary stands for this one's first rounds too
}

// hintNote is what one hinted round should log.
type hintNote int

const (
	hintNoteDebug   hintNote = iota // part of a repeat that the window's summary reports
	hintNoteDone                    // an ordinary hinted handoff
	hintNoteAgain                   // the same partition again within the window: say why data keeps coming
	hintNoteSummary                 // the previous window repeated: summarise it (in *prev)
)

// note records a round at now and says what to log. prev receives the finished window for a summary.
func (w *hintWindow) note(now time.Time, keys int64, arr vnode.Arrivals, prev *hintWindow) hintNote {
	if w.rounds == 0 || now.Sub(w.start) >= hintWindowLength {
		old := *w
		*w = hintWindow{start: now, rounds: 1, keys: keys, arrived: arr, quiet: old.rounds > 1}
		if old.rounds > 1 {
			*prev = old
			return hintNoteSummary
		}
		return hintNoteDone
	}
	w.rounds++
	w.keys += keys
	w.arrived.Requests += arr.Requests
	w.arrived.Items += arr.Items
	if w.rounds == 2 && !w.quiet {
		return hintNoteAgain
	}
	return hintNoteDebug
}

// hintReason explains, from what reached a vnode before its drop, why hints keep appearing there.
func hintReason(a vnode.Arrivals) string {
	var why []string
	if a.Requests > 0 {
		why = append(why, fmt.Sprintf("%d coordinator requests (this node stands in for the owner: coordinators saw the owner down, suspected or silent past the linger, or route on an older ring)", a.Requests))
	}
	if a.Items > 0 {
		why = append(why, fmt.Sprintf("%d handoff items (transfers from nodes on an older ring)", a.Items))
	}
	if len(why) == 0 {
		return "no requests or handoff items arrived since the previous drop (data from before a restart)"
	}
	return strings.Join(why, "; ")
}

// logHinted logs a completed hinted round: the first of a partition at Info; a second within a minute at
// Info with the reason data keeps arriving; later ones at Debug, summarised once the minute is over.
func (m *Manager) logHinted(log *slog.Logger, sl Slot, attempts int, keys, bytes int64, arr vnode.Arrivals) {
	m.mu.Lock()
	w := m.hints[sl]
	if w == nil {
		w = &hintWindow{}
		m.hints[sl] = w
	}
	var prev hintWindow
	note := w.note(m.cfg.Now(), keys, arr, &prev)
	m.mu.Unlock()
	switch note {
	case hintNoteDone:
		log.Info("handoff done", "keys", keys, "bytes", bytes, "attempts", attempts, "arrived-requests", arr.Requests, "arrived-items", arr.Items)
	case hintNoteAgain:
		log.Info("hinted handoff of the partition again: new data keeps arriving (further rounds are summarised once a minute)",
			"keys", keys, "why", hintReason(arr))
	case hintNoteSummary:
		log.Info("hinted handoff repeated", "rounds", prev.rounds, "keys", prev.keys,
			"over", m.cfg.Now().Sub(prev.start).Round(time.Second), "why", hintReason(prev.arrived))
		log.Debug("handoff done", "keys", keys, "bytes", bytes, "attempts", attempts, "arrived-requests", arr.Requests, "arrived-items", arr.Items)
	default:
		log.Debug("handoff done", "keys", keys, "bytes", bytes, "attempts", attempts, "arrived-requests", arr.Requests, "arrived-items", arr.Items)
	}
}
