package storage

import (
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// Deferred compaction of dropped partitions (see doc.go, "Dropping a partition").
//
// goleveldb has no range tombstones: DropPartition writes one tombstone per key, and the space of the
// deleted values and of the tombstones comes back only when a compaction rewrites the tables that hold
// them. Compacting each dropped range at once made a node that gives many partitions away (a join) spend
// most of its CPU on compactions, each flushing the memtable and rewriting every level-0 table that
// overlaps the range, that is all of them when keys arrived in any order. The drop now only records its
// partition; the LevelDB's compactor compacts the recorded ranges together once drops have stopped for
// DropCompactQuiet, or DropCompactMaxDelay after the first one that is pending, whichever comes first.

const (
	defaultDropCompactQuiet    = 5 * time.Second
	defaultDropCompactMaxDelay = time.Minute

	// maxDropRanges is how many separate ranges one deferred compaction compacts one by one; more than
	// that and it compacts one range from the lowest dropped partition to the highest instead (each range
	// compaction flushes the memtable and rewrites the level-0 tables overlapping it, so many small ranges
	// cost more than one pass over their span).
	maxDropRanges = 4
)

// dropSchedule is the pure core of the compactor: the partitions dropped and not yet compacted, and when
// to compact them. It holds no clock: callers pass now.
type dropSchedule struct {
	quiet, maxDelay time.Duration
	pending         map[uint32]struct{}
	first, last     time.Time // the first and the latest drop pending
}

// add records that partition was dropped at now.
func (s *dropSchedule) add(partition uint32, now time.Time) {
	if s.pending == nil {
		s.pending = make(map[uint32]struct{})
	}
	if len(s.pending) == 0 {
		s.first = now
	}
	s.pending[partition] = struct{}{}
	s.last = now
}

// due reports when the pending ranges are to be compacted, and false when nothing is pending: quiet after
// the latest drop, but no later than maxDelay after the first one pending.
func (s *dropSchedule) due() (time.Time, bool) {
	if len(s.pending) == 0 {
		return time.Time{}, false
	}
	at := s.last.Add(s.quiet)
	if limit := s.first.Add(s.maxDelay); limit.Before(at) {
		at = limit
	}
	return at, true
}

// take returns the pending partitions, sorted, and forgets them.
func (s *dropSchedule) take() []uint32 {
	ps := make([]uint32, 0, len(s.pending))
	for p := range s.pending {
		ps = append(ps, p)
	}
	clear(s.pending)
	slices.Sort(ps)
	return ps
}

// dropRanges returns the stored-key ranges that cover the sorted, distinct partitions ps: runs of
// consecutive partitions merge into one range, and more than maxRanges runs become one range from the first
// partition to the last. A range whose last partition is 0xFFFFFFFF has no limit.
func dropRanges(ps []uint32, maxRanges int) []util.Range {
	if len(ps) == 0 {
		return nil
	}
	type run struct{ lo, hi uint32 }
	runs := []run{{ps[0], ps[0]}}
	for _, p := range ps[1:] {
		if r := &runs[len(runs)-1]; p == r.hi+1 {
			r.hi = p
			continue
		}
		runs = append(runs, run{p, p})
	}
	if len(runs) > maxRanges {
		runs = []run{{ps[0], ps[len(ps)-1]}}
	}
	out := make([]util.Range, len(runs))
	for i, r := range runs {
		out[i].Start = partitionPrefix(r.lo)
		if r.hi != ^uint32(0) {
			out[i].Limit = partitionPrefix(r.hi + 1)
		}
	}
	return out
}

// dropCompactor runs the deferred compactions of one LevelDB on a goroutine of its own, started by the
// first drop and stopped by Close.
type dropCompactor struct {
	mu       sync.Mutex
	sched    dropSchedule // REQUIRES: mu held
	running  bool         // the goroutine was started
	stopped  bool         // Close ran: no goroutine starts any more
	kick     chan struct{}
	done     sync.WaitGroup
	passes   uint64 // compactions done (each of one or more ranges); REQUIRES: mu held
	now      func() time.Time
	newTimer func(time.Duration) (<-chan time.Time, func() bool)
}

// DropCompactions returns how many deferred compactions of dropped partitions completed and how many
// dropped partitions wait for one.
func (l *LevelDB) DropCompactions() (done uint64, pending int) {
	c := &l.dropc
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.passes, len(c.sched.pending)
}

// scheduleDropCompaction records that partition was dropped and wakes (or starts) the compactor.
func (l *LevelDB) scheduleDropCompaction(partition uint32) {
	c := &l.dropc
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.sched.add(partition, c.now())
	if !c.running {
		c.running = true
		c.done.Add(1)
		go l.runDropCompactor()
	}
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// stopDropCompactor makes sure no compactor starts any more and waits for the one running to return; the
// caller has closed closedC and the DB (which cuts a compaction in progress short).
func (l *LevelDB) stopDropCompactor() {
	c := &l.dropc
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.done.Wait()
}

// runDropCompactor waits until the pending drops are due, compacts them, and starts again, until Close.
// A compaction that fails (the DB was reopened after a full disk, or a compaction error) puts its
// partitions back, to be compacted a quiet delay later.
func (l *LevelDB) runDropCompactor() {
	c := &l.dropc
	defer c.done.Done()
	for {
		c.mu.Lock()
		at, ok := c.sched.due()
		now := c.now()
		var ps []uint32
		if ok && !now.Before(at) {
			ps = c.sched.take()
		}
		c.mu.Unlock()

		if ps == nil {
			var fire <-chan time.Time
			stop := func() bool { return false }
			if ok {
				fire, stop = c.newTimer(at.Sub(now))
			}
			select {
			case <-l.closedC:
				stop()
				return
			case <-c.kick:
			case <-fire:
			}
			stop()
			continue
		}

		err := l.compactDropped(ps)
		c.mu.Lock()
		switch {
		case err == nil:
			c.passes++
		case !l.closed.Load():
			now := c.now()
			for _, p := range ps {
				c.sched.add(p, now)
			}
			c.sched.first = now // NB: a failing compaction retries a quiet delay later, not at once
		}
		c.mu.Unlock()
		if err != nil {
			if l.closed.Load() {
				return
			}
			// NB: a full disk and a reopen have their own log lines (Heal); the retry follows them quietly.
			if !errors.Is(err, ErrDiskFull) && !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrClosed) {
				l.log.Warn("storage: compacting dropped partitions failed; retrying later", "err", err,
					"partitions", len(ps))
			}
		}
	}
}

// compactDropped compacts the ranges of the dropped partitions ps. It holds no lock while goleveldb
// compacts: Close (or a reopen) closes the DB under it, which cuts the compaction short with an error.
func (l *LevelDB) compactDropped(ps []uint32) error {
	db, err := l.acquire("drop: compact", ps[0])
	if err != nil {
		return err
	}
	ro := l.ro
	l.mu.RUnlock()
	if ro {
		return opError("drop: compact", ps[0], ErrDiskFull)
	}
	for _, r := range dropRanges(ps, maxDropRanges) {
		if err := db.CompactRange(r); err != nil {
			if errors.Is(err, leveldb.ErrClosed) || l.closed.Load() {
				return opError("drop: compact", ps[0], ErrClosed)
			}
			return l.fail("drop: compact", ps[0], err)
		}
	}
	return nil
}

// realTimer is dropCompactor.newTimer outside tests.
func realTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}
