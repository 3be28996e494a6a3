package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Runner tunables. Variables so tests can shorten them.
var (
	hardCapGrace = 5 * time.Second // a run ends at most this long after Duration, in-flight requests or not
	dialTimeout  = 5 * time.Second
	backoffMin   = 50 * time.Millisecond // first wait before redialing; doubles per failed dial
	backoffMax   = time.Second
	maxDials     = 6 // consecutive failed dials before a worker gives up (~1.5s of backoff)
	prefillDepth = 32
)

// longAgo is a deadline that has passed: setting it unblocks any read or write on a connection.
var longAgo = time.Unix(1, 0)

// Stop reasons in Report.Stop.
const (
	StopDuration = "duration" // Duration passed
	StopOps      = "ops"      // Ops operations were issued
	StopHardCap  = "hard-cap" // requests still in flight at Duration+5s were abandoned
	StopCanceled = "canceled" // the caller's context ended
	StopFailed   = "failed"   // every worker gave up reconnecting
)

// ErrWorkerFailed is wrapped by Run's error when workers gave up reconnecting; the report is still returned.
var ErrWorkerFailed = errors.New("bench: workers gave up")

// Run benchmarks cfg.Addr: it dials cfg.Conns connections (connection i to the (i mod n)th of its n
// comma-separated servers; failing fast if one cannot be opened), sets every key once if cfg.Prefill, then drives the workload until cfg.Duration passed or cfg.Ops operations were
// issued, and returns the merged results. A cancelled ctx ends the run early with a partial report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	proto, ok := protocols[cfg.Protocol]
	if !ok {
		return nil, errNoProtocol
	}
	cfg.Addr = cfg.ServerAddr()
	addrs := cfg.ServerAddrs()
	value := fillValue(make([]byte, cfg.ValueSize))
	d := &net.Dialer{Timeout: dialTimeout}
	workers := make([]*worker, cfg.Conns)
	defer func() {
		for _, w := range workers {
			if w != nil {
				w.drop()
			}
		}
	}()
	for i := range workers {
		w := &worker{id: i, cfg: &cfg, addr: addrs[i%len(addrs)], dialer: d, newClient: proto.newClient, value: value,
			wl: NewWorkload(cfg, uint64(i)), keyBuf: make([]byte, 0, len(cfg.KeyPrefix)+20),
			batch: make([]Op, cfg.Pipeline), starts: make([]time.Time, cfg.Pipeline), busy: make([]bool, cfg.Pipeline)}
		workers[i] = w
		if err := w.dial(ctx, ctx); err != nil {
			return nil, fmt.Errorf("bench: connection %d of %d: %w", i+1, cfg.Conns, err)
		}
	}

	rep := &Report{Config: cfg}
	if cfg.Prefill {
		p, err := prefill(ctx, &cfg, workers)
		if err != nil {
			return nil, err
		}
		rep.Prefill = &p
	}

	start := time.Now()
	softEnd := start.Add(cfg.Duration)
	runCtx, cancel := context.WithDeadline(ctx, softEnd.Add(hardCapGrace))
	defer cancel()
	lim := &limiter{limit: cfg.Ops}
	var wg sync.WaitGroup
	for _, w := range workers {
		w.bind(runCtx)
		wg.Go(func() { w.run(runCtx, start, softEnd, lim) })
	}
	wg.Wait()
	rep.Start, rep.Elapsed = start, time.Since(start)

	var failed []error
	for _, w := range workers {
		rep.Counts.add(w.counts)
		rep.Latency.Merge(&w.hist[OpGet])
		rep.Latency.Merge(&w.hist[OpSet])
		rep.GetLatency.Merge(&w.hist[OpGet])
		rep.SetLatency.Merge(&w.hist[OpSet])
		if w.err != nil {
			failed = append(failed, fmt.Errorf("connection %d: %w", w.id+1, w.err))
		}
	}
	if secs := rep.Elapsed.Seconds(); secs > 0 {
		rep.OpsPerSec = float64(rep.Ops) / secs
	}
	switch {
	case ctx.Err() != nil:
		rep.Stop = StopCanceled
	case runCtx.Err() != nil:
		rep.Stop = StopHardCap
	case len(failed) == len(workers):
		rep.Stop = StopFailed
	case lim.exhausted():
		rep.Stop = StopOps
	default:
		rep.Stop = StopDuration
	}
	for _, err := range failed {
		rep.WorkerErrors = append(rep.WorkerErrors, err.Error())
	}
	if len(failed) > 0 {
		return rep, fmt.Errorf("%w: %d of %d: %w", ErrWorkerFailed, len(failed), len(workers), failed[0])
	}
	return rep, nil
}

// limiter hands out the operation budget (cfg.Ops) to workers; limit 0 means unlimited.
type limiter struct {
	limit   int64
	claimed atomic.Int64
}

// claim reserves up to n operations and returns how many were granted (0: budget spent).
func (l *limiter) claim(n int) int {
	if l.limit == 0 {
		return n
	}
	hi := l.claimed.Add(int64(n))
	lo := hi - int64(n)
	switch {
	case lo >= l.limit:
		return 0
	case hi > l.limit:
		return int(l.limit - lo)
	}
	return n
}

func (l *limiter) exhausted() bool { return l.limit > 0 && l.claimed.Load() >= l.limit }

// worker drives one connection. Everything in it belongs to the worker's goroutine.
type worker struct {
	id        int
	cfg       *Config
	addr      string // the server of this connection (one of cfg.ServerAddrs)
	dialer    *net.Dialer
	newClient func(rw io.ReadWriter) Client
	value     []byte
	wl        *Workload

	conn   net.Conn
	client Client
	unbind func() // stops the context hook that unblocks conn

	keyBuf []byte
	batch  []Op        // operations in flight, in send order (window: by slot)
	starts []time.Time // when each one's latency starts
	busy   []bool      // window: which slots are in flight
	freeAt time.Time   // open loop: when the worker last finished a batch

	counts Counts
	hist   [2]Histogram // indexed by OpKind
	err    error        // why the worker gave up, if it did
}

// dial opens the connection and binds it to bindCtx (its end unblocks the connection).
func (w *worker) dial(dialCtx, bindCtx context.Context) error {
	conn, err := w.dialer.DialContext(dialCtx, "tcp", w.addr)
	if err != nil {
		return err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	w.conn, w.client = conn, w.newClient(conn)
	w.bind(bindCtx)
	return nil
}

// bind makes the end of ctx unblock any read or write on the worker's connection, replacing an earlier binding.
func (w *worker) bind(ctx context.Context) {
	w.unbindConn()
	conn := w.conn
	conn.SetDeadline(time.Time{}) // NB: after unbinding, so an earlier binding's hook cannot undo it
	var mu sync.Mutex
	off := false
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !off {
			conn.SetDeadline(longAgo)
		}
	})
	w.unbind = func() {
		stop()
		mu.Lock() // a hook already running finishes before we return; a later one does nothing
		off = true
		mu.Unlock()
	}
}

func (w *worker) unbindConn() {
	if w.unbind != nil {
		w.unbind()
		w.unbind = nil
	}
}

// drop closes the connection.
func (w *worker) drop() {
	w.unbindConn()
	if w.conn != nil {
		w.conn.Close()
		w.conn, w.client = nil, nil
	}
}

// reconnect redials with exponential backoff. It returns nil without a connection if the run ended meanwhile.
func (w *worker) reconnect(ctx context.Context, softEnd time.Time, backoff *time.Duration, timer *time.Timer) error {
	var err error
	for range maxDials {
		wait := min(*backoff, time.Until(softEnd))
		if wait <= 0 {
			return nil
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		*backoff = min(2**backoff, backoffMax)
		if time.Now().After(softEnd) {
			return nil
		}
		w.counts.Reconnects++
		if err = w.dial(ctx, ctx); err == nil || ctx.Err() != nil {
			return nil
		}
	}
	return fmt.Errorf("%d dials failed: %w", maxDials, err)
}

// run is the worker loop: claim a batch, queue it, flush, read the replies, record; repeat until the run ends.
func (w *worker) run(ctx context.Context, start, softEnd time.Time, lim *limiter) {
	cfg := w.cfg
	open := cfg.Rate > 0
	var interval, phase float64 // open loop: ns between this worker's sends, and its offset
	if open {
		interval = float64(time.Second) * float64(cfg.Conns) / cfg.Rate
		phase = interval * float64(w.id) / float64(cfg.Conns)
	}
	intended := func(i int64) time.Time {
		return start.Add(time.Duration(phase + float64(i)*interval))
	}
	var next int64 // open loop: index of the next scheduled operation
	w.freeAt = start
	if open {
		defer func() { // count what the schedule held but the server never got to see
			if scheduled := int64(math.Ceil((float64(cfg.Duration) - phase) / interval)); scheduled > next && !lim.exhausted() {
				w.counts.Unsent += uint64(scheduled - next)
			}
		}()
	}
	backoff := backoffMin
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	_, window := w.client.(windowClient)
	window = window && !open

	for ctx.Err() == nil {
		now := time.Now()
		if !now.Before(softEnd) {
			return
		}
		if w.client == nil {
			if w.err = w.reconnect(ctx, softEnd, &backoff, timer); w.err != nil || w.client == nil {
				return
			}
		}
		if window {
			done, answered := w.window(w.client.(windowClient), softEnd, lim)
			if answered {
				backoff = backoffMin
			}
			if done {
				return
			}
			continue
		}
		n := cfg.Pipeline
		if open {
			due := intended(next)
			if !due.Before(softEnd) {
				return
			}
			if due.After(now) {
				timer.Reset(due.Sub(now))
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
				continue
			}
			n = 1
			for n < cfg.Pipeline {
				t := intended(next + int64(n))
				if t.After(now) || !t.Before(softEnd) {
					break
				}
				n++
			}
		}
		if n = lim.claim(n); n == 0 {
			return
		}
		if w.do(n, open, intended, next) {
			backoff = backoffMin
		}
		next += int64(n)
	}
}

// do sends n operations as one batch and reads their replies. It reports whether the connection survived.
//
// Latency starts at the send (t0). In open loop an operation that was due while the worker was still busy
// with earlier replies (or reconnecting) is also charged the time from its intended send until the worker
// became free: that wait is the server's doing, and leaving it out is coordinated omission. Lateness after
// the worker became free is the load generator's own (Go timers wake up to ~1ms late) and is not charged.
func (w *worker) do(n int, open bool, intended func(int64) time.Time, next int64) bool {
	batch, starts := w.batch[:n], w.starts[:n]
	t0 := time.Now()
	var err error
	for i := range batch {
		op := w.wl.Next()
		batch[i] = op
		starts[i] = t0
		if open {
			if queued := w.freeAt.Sub(intended(next + int64(i))); queued > 0 {
				starts[i] = t0.Add(-queued)
			}
		}
		if err == nil {
			w.keyBuf = AppendKey(w.keyBuf[:0], w.cfg.KeyPrefix, op.Key)
			err = w.client.Queue(op.Kind, w.keyBuf, w.value)
		}
	}
	if err == nil {
		err = w.client.Flush()
	}
	for i, op := range batch {
		w.counts.count(op.Kind)
		if err != nil { // the connection broke earlier in this batch: the rest have no reply
			w.counts.Errors++
			continue
		}
		w.keyBuf = AppendKey(w.keyBuf[:0], w.cfg.KeyPrefix, op.Key)
		out, rerr := w.client.Read(op.Kind, w.keyBuf)
		lat := time.Since(starts[i])
		var re *ReplyError
		switch {
		case rerr == nil:
			w.hist[op.Kind].Record(lat)
			w.counts.outcome(out)
		case errors.As(rerr, &re):
			w.hist[op.Kind].Record(lat) // answered, just not as hoped
			w.counts.Errors++
		default:
			w.counts.Errors++
			err = rerr
		}
	}
	w.freeAt = time.Now()
	if err != nil {
		w.drop()
		return false
	}
	return true
}

// window is the closed loop of a windowClient on the current connection: it sends Pipeline requests, then
// refills each slot as soon as its reply arrives (in whatever order replies come), flushing the refills
// whenever no further reply is already buffered, so Pipeline requests stay in flight instead of batches
// that drain to zero. Latency runs from queueing a request to reading its reply. It returns done when the
// worker is finished (Duration passed or the Ops budget is spent, and every reply is in), and answered when
// at least one request got a reply. Otherwise the connection broke: every request in flight counts as an
// error and the connection is dropped.
func (w *worker) window(c windowClient, softEnd time.Time, lim *limiter) (done, answered bool) {
	ops, starts, busy := w.batch, w.starts, w.busy
	inFlight := 0
	now := time.Now()
	var err error
	if now.Before(softEnd) {
		for slot := range lim.claim(len(ops)) {
			if err != nil { // the connection broke earlier in this window: the rest are lost unsent
				w.counts.count(w.wl.Next().Kind)
				w.counts.Errors++
				continue
			}
			inFlight++
			err = w.send(c, slot, now)
		}
	}
	if err == nil && inFlight > 0 {
		err = c.Flush()
	}
	for err == nil && inFlight > 0 {
		slot, out, rerr := c.Next()
		now = time.Now()
		var re *ReplyError
		switch {
		case rerr != nil && !errors.As(rerr, &re):
			err = rerr
			continue
		case slot < 0 || slot >= len(busy) || !busy[slot]:
			err = fmt.Errorf("%w: reply for slot %d, which is not in flight", ErrProtocol, slot)
			continue
		}
		op := ops[slot]
		busy[slot] = false
		inFlight--
		w.counts.count(op.Kind)
		w.hist[op.Kind].Record(now.Sub(starts[slot])) // answered, if not always as hoped
		if rerr != nil {
			w.counts.Errors++
		} else {
			w.counts.outcome(out)
		}
		answered = true
		if now.Before(softEnd) && lim.claim(1) == 1 {
			inFlight++
			if err = w.send(c, slot, now); err != nil {
				break
			}
		}
		if !c.Buffered() {
			err = c.Flush()
		}
	}
	if err != nil {
		for slot, b := range busy {
			if b {
				busy[slot] = false
				w.counts.count(ops[slot].Kind)
				w.counts.Errors++
			}
		}
		w.drop()
		return false, answered
	}
	return true, answered
}

// send queues the workload's next operation in slot; its latency starts at now.
func (w *worker) send(c windowClient, slot int, now time.Time) error {
	op := w.wl.Next()
	w.batch[slot], w.starts[slot], w.busy[slot] = op, now, true
	w.keyBuf = AppendKey(w.keyBuf[:0], w.cfg.KeyPrefix, op.Key)
	return c.Send(slot, op.Kind, w.keyBuf, w.value)
}

// prefill sets every key once, spreading contiguous key ranges over the connections, pipelined. Any error
// fails the run: measuring against a half-filled key space would mislead.
func prefill(ctx context.Context, cfg *Config, workers []*worker) (Prefill, error) {
	pctx, cancel := context.WithTimeout(ctx, cfg.PrefillTimeout)
	defer cancel()
	start := time.Now()
	errs := make([]error, len(workers))
	var done atomic.Int64
	var wg sync.WaitGroup
	for i, w := range workers {
		w.bind(pctx)
		lo, hi := uint64(i*cfg.Keys/len(workers)), uint64((i+1)*cfg.Keys/len(workers))
		wg.Go(func() {
			for k := lo; k < hi && errs[i] == nil; {
				end := min(k+uint64(prefillDepth), hi)
				for j := k; j < end; j++ {
					w.keyBuf = AppendKey(w.keyBuf[:0], cfg.KeyPrefix, j)
					w.client.Queue(OpSet, w.keyBuf, w.value)
				}
				err := w.client.Flush()
				for j := k; j < end && err == nil; j++ {
					w.keyBuf = AppendKey(w.keyBuf[:0], cfg.KeyPrefix, j)
					_, err = w.client.Read(OpSet, w.keyBuf)
				}
				if err != nil {
					errs[i] = fmt.Errorf("set %s: %w", w.keyBuf, err)
					break
				}
				done.Add(int64(end - k))
				k = end
			}
		})
	}
	wg.Wait()
	p := Prefill{Keys: done.Load(), Elapsed: time.Since(start)}
	for _, err := range errs {
		if err == nil {
			continue
		}
		if pctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("not done within prefill-timeout %v: %w", cfg.PrefillTimeout, err)
		}
		return p, fmt.Errorf("bench: prefill: %d of %d keys set: %w", p.Keys, cfg.Keys, err)
	}
	return p, nil
}
