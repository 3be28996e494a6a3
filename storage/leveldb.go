package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

var _ Backend = (*LevelDB)(nil)

// LevelDBConfig configures the goleveldb backend. Start from
// DefaultLevelDBConfig; in a literal, a zero WriteBufferMiB, BlockCacheMiB or
// OpenFilesCacheCapacity means that field's default, but a zero
// BloomFilterBits disables the bloom filter.
type LevelDBConfig struct {
	// Dir is the directory of the node's one DB. Required; created if missing.
	Dir string
	// Sync fsyncs the journal before every write is acknowledged. Default
	// false: acknowledged writes survive a process crash but not a power loss
	// or kernel crash. True survives power loss at ~100x lower write rate.
	Sync bool
	// WriteBufferMiB is the memtable size in MiB: how much is buffered (and
	// preallocated, per open DB) before a flush to a level-0 table.
	// Default 4 (0 means 4); range 1..1024.
	WriteBufferMiB int
	// BlockCacheMiB is the shared cache of uncompressed table blocks, in MiB.
	// Default 8 (0 means 8); range 1..65536.
	BlockCacheMiB int
	// OpenFilesCacheCapacity is how many table files are kept open.
	// Default 500 (0 means 500); range 1..1000000. Keep it under the
	// process's file descriptor limit.
	OpenFilesCacheCapacity int
	// BloomFilterBits is the bloom filter's bits per key; it saves a disk read
	// for most Gets of absent keys. Default 10 (~1% false positives);
	// range 0..64, 0 disables the filter.
	BloomFilterBits int
	// DropCompactQuiet is how long after the latest DropPartition the dropped partitions' ranges are
	// compacted (their space and tombstones reclaimed), so that the drops of a join or a leave share one
	// compaction. Default 5 s (0 means 5 s); range 1 ms..1 h.
	DropCompactQuiet time.Duration
	// DropCompactMaxDelay bounds how long a dropped partition waits for its compaction while drops keep
	// coming: at most this long after the first drop pending. Default 1 min (0 means 1 min); range
	// DropCompactQuiet..24 h.
	DropCompactMaxDelay time.Duration
	// Logger receives the backend's warnings (a failed deferred compaction). Default (nil): discarded.
	Logger *slog.Logger
}

const (
	defaultWriteBufferMiB         = 4
	defaultBlockCacheMiB          = 8
	defaultOpenFilesCacheCapacity = 500
	defaultBloomFilterBits        = 10

	// dropBatchSize is how many deletes DropPartition puts in one batch.
	dropBatchSize = 1000
)

// DefaultLevelDBConfig returns the default configuration for a DB in dir.
func DefaultLevelDBConfig(dir string) LevelDBConfig {
	return LevelDBConfig{
		Dir:                    dir,
		Sync:                   false,
		WriteBufferMiB:         defaultWriteBufferMiB,
		BlockCacheMiB:          defaultBlockCacheMiB,
		OpenFilesCacheCapacity: defaultOpenFilesCacheCapacity,
		BloomFilterBits:        defaultBloomFilterBits,
	}
}

// Validate reports the first invalid field, naming the field and its value.
func (c LevelDBConfig) Validate() error {
	if c.Dir == "" {
		return errors.New("storage: LevelDBConfig.Dir is empty: a directory is required")
	}
	for _, f := range []struct {
		name     string
		v, lo, h int
		zeroOK   bool
	}{
		{"WriteBufferMiB", c.WriteBufferMiB, 1, 1024, true},
		{"BlockCacheMiB", c.BlockCacheMiB, 1, 65536, true},
		{"OpenFilesCacheCapacity", c.OpenFilesCacheCapacity, 1, 1_000_000, true},
		{"BloomFilterBits", c.BloomFilterBits, 0, 64, false},
	} {
		if (f.v == 0 && f.zeroOK) || (f.v >= f.lo && f.v <= f.h) {
			continue
		}
		return fmt.Errorf("storage: LevelDBConfig.%s = %d: out of range %d..%d", f.name, f.v, f.lo, f.h)
	}
	quiet := orDefaultDuration(c.DropCompactQuiet, defaultDropCompactQuiet)
	if c.DropCompactQuiet != 0 && (quiet < time.Millisecond || quiet > time.Hour) {
		return fmt.Errorf("storage: LevelDBConfig.DropCompactQuiet = %v: out of range 1ms..1h", c.DropCompactQuiet)
	}
	if c.DropCompactMaxDelay != 0 && (c.DropCompactMaxDelay < quiet || c.DropCompactMaxDelay > 24*time.Hour) {
		return fmt.Errorf("storage: LevelDBConfig.DropCompactMaxDelay = %v: out of range %v (DropCompactQuiet)..24h",
			c.DropCompactMaxDelay, quiet)
	}
	return nil
}

// options translates c (already validated) into goleveldb options.
func (c LevelDBConfig) options() *opt.Options {
	o := &opt.Options{
		WriteBuffer:            orDefault(c.WriteBufferMiB, defaultWriteBufferMiB) * opt.MiB,
		BlockCacheCapacity:     orDefault(c.BlockCacheMiB, defaultBlockCacheMiB) * opt.MiB,
		OpenFilesCacheCapacity: orDefault(c.OpenFilesCacheCapacity, defaultOpenFilesCacheCapacity),
	}
	if c.BloomFilterBits > 0 {
		o.Filter = filter.NewBloomFilter(c.BloomFilterBits)
	}
	return o
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func orDefaultDuration(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

// LevelDB is the default Backend: one goleveldb DB per node holding every
// partition, each key prefixed by its partition (see doc.go for the layout).
//
// A full disk is a state it leaves by itself (see doc.go, "A full disk"):
// goleveldb keeps a failed journal write as a sticky error until the DB is
// reopened, so when a write fails for want of space LevelDB turns disk-full
// (writes fail at once with ErrDiskFull, reads go on), and Heal reopens the DB
// in place once space is back. The *LevelDB the vnodes hold stays the same.
type LevelDB struct {
	cfg    LevelDBConfig
	wo     *opt.WriteOptions
	scanRO *opt.ReadOptions
	closed atomic.Bool
	// commit merges concurrent writes into one goleveldb batch (commit.go).
	commit committer

	// open opens the DB (read-only or not) and returns what to close after it (nil: nothing); free
	// reports the bytes free for the DB's files. Tests replace them to inject faults.
	open func(readOnly bool) (*leveldb.DB, io.Closer, error)
	free func() (bytes uint64, known bool)

	// mu is held shared by every operation that uses db, exclusively by reopen and Close, which swap it.
	mu     sync.RWMutex
	db     *leveldb.DB // nil if neither open worked at the last reopen: every call fails with ErrUnavailable
	closer io.Closer   // closed after db
	ro     bool        // db is open read-only: the disk was still full at the last reopen

	// Folds run without mu (their callbacks may call back in); reopen waits for them instead.
	// REQUIRES: fmu held for folds and reopening.
	fmu       sync.Mutex
	fdone     *sync.Cond
	folds     int
	reopening bool // new folds fail with ErrUnavailable

	full       atomic.Bool
	fullErr    atomic.Value  // error: the failure that made the DB disk-full, for Heal's log line
	faults     chan struct{} // 1-buffered: a write found the disk full
	closedC    chan struct{} // closed by Close: Heal and the drop compactor return
	recoveries atomic.Uint64

	// dropc compacts dropped partitions' ranges later, together (dropcompact.go).
	dropc dropCompactor
	log   *slog.Logger
}

// OpenLevelDB opens (creating if needed) the DB in cfg.Dir. Only one process
// may open a directory at a time (goleveldb holds a file lock).
func OpenLevelDB(cfg LevelDBConfig) (*LevelDB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := newLevelDB(cfg)
	l.open = func(readOnly bool) (*leveldb.DB, io.Closer, error) {
		o := cfg.options()
		o.ReadOnly = readOnly
		db, err := leveldb.OpenFile(cfg.Dir, o)
		return db, nil, err
	}
	l.free = func() (uint64, bool) { return freeBytes(cfg.Dir) }
	if err := l.start(); err != nil {
		return nil, err
	}
	return l, nil
}

func newLevelDB(cfg LevelDBConfig) *LevelDB {
	l := &LevelDB{
		cfg:     cfg,
		wo:      &opt.WriteOptions{Sync: cfg.Sync},
		scanRO:  &opt.ReadOptions{DontFillCache: true},
		faults:  make(chan struct{}, 1),
		closedC: make(chan struct{}),
		log:     cfg.Logger,
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	l.fdone = sync.NewCond(&l.fmu)
	l.dropc.sched.quiet = orDefaultDuration(cfg.DropCompactQuiet, defaultDropCompactQuiet)
	l.dropc.sched.maxDelay = max(orDefaultDuration(cfg.DropCompactMaxDelay, defaultDropCompactMaxDelay), l.dropc.sched.quiet)
	l.dropc.kick = make(chan struct{}, 1)
	l.dropc.now = time.Now
	l.dropc.newTimer = realTimer
	return l
}

// start opens the DB for the first time.
func (l *LevelDB) start() error {
	db, closer, err := l.open(false)
	if err != nil {
		return fmt.Errorf("storage: open leveldb %q: %w", l.cfg.Dir, err)
	}
	l.db, l.closer = db, closer
	return nil
}

// ErrDiskFull is returned (wrapped, with the operation, partition and cause) by
// every write while the DB's disk is full; reads go on. See LevelDB.
var ErrDiskFull = errors.New("storage: disk full")

// ErrUnavailable is returned by every call while a DB that had to be reopened
// could not be opened at all, and by a Fold started while it is being reopened.
// Both pass: retry.
var ErrUnavailable = errors.New("storage: unavailable")

// isDiskFull reports whether err is the filesystem running out of space (or of
// the user's quota).
func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// acquire returns the DB for an operation, with mu held shared (the caller
// releases it), or an error for op on partition.
func (l *LevelDB) acquire(op string, partition uint32) (*leveldb.DB, error) {
	if l.closed.Load() {
		return nil, opError(op, partition, ErrClosed)
	}
	l.mu.RLock()
	if l.db == nil {
		l.mu.RUnlock()
		if l.closed.Load() {
			return nil, opError(op, partition, ErrClosed)
		}
		return nil, opError(op, partition, ErrUnavailable)
	}
	return l.db, nil
}

// acquireWrite is acquire for a write: it fails at once with ErrDiskFull while
// the disk is full.
func (l *LevelDB) acquireWrite(op string, partition uint32) (*leveldb.DB, error) {
	if l.full.Load() {
		return nil, opError(op, partition, ErrDiskFull)
	}
	db, err := l.acquire(op, partition)
	if err != nil {
		return nil, err
	}
	if l.ro {
		l.mu.RUnlock()
		return nil, opError(op, partition, ErrDiskFull)
	}
	return db, nil
}

// fail wraps err for op on partition, reporting ErrClosed for anything that
// fails because the DB was closed (goleveldb's own ErrClosed, or an iterator
// cut short by a concurrent Close), and ErrDiskFull (with the cause) when the
// disk is full, which turns the DB disk-full.
func (l *LevelDB) fail(op string, partition uint32, err error) error {
	switch {
	case errors.Is(err, leveldb.ErrClosed) || l.closed.Load():
		err = ErrClosed
	case isDiskFull(err):
		l.markFull(err)
		err = fmt.Errorf("%w (%w)", ErrDiskFull, err)
	}
	return opError(op, partition, err)
}

// markFull turns the DB disk-full and wakes Heal.
func (l *LevelDB) markFull(cause error) {
	if l.full.CompareAndSwap(false, true) {
		l.fullErr.Store(cause)
	}
	select {
	case l.faults <- struct{}{}:
	default:
	}
}

// Stats fills st with goleveldb's counters (levels, compactions, write delays, I/O) for metrics; an error
// while the DB is closed or unavailable.
func (l *LevelDB) Stats(st *leveldb.DBStats) error {
	db, err := l.acquire("stats", 0)
	if err != nil {
		return err
	}
	defer l.mu.RUnlock()
	return db.Stats(st)
}

// DiskFull reports whether writes fail because the disk is full (until Heal
// has reopened the DB).
func (l *LevelDB) DiskFull() bool { return l.full.Load() }

// Recoveries returns how many times Heal brought writes back after the disk
// was full.
func (l *LevelDB) Recoveries() uint64 { return l.recoveries.Load() }

// Get implements Backend.
func (l *LevelDB) Get(partition uint32, key []byte) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, opError("get", partition, err)
	}
	db, err := l.acquire("get", partition)
	if err != nil {
		return nil, err
	}
	defer l.mu.RUnlock()
	v, err := db.Get(encodeKey(partition, key), nil) // NB: does not escape: a short key stays on the stack
	if err != nil {
		if errors.Is(err, leveldb.ErrNotFound) {
			return nil, ErrNotFound
		}
		return nil, l.fail("get", partition, err)
	}
	if v == nil {
		v = []byte{} // NB: goleveldb returns nil for an empty value.
	}
	return v, nil
}

// Put implements Backend.
func (l *LevelDB) Put(partition uint32, key, value []byte) error {
	if err := checkKey(key); err != nil {
		return opError("put", partition, err)
	}
	return l.write("put", partition, nil, Op{Key: key, Value: value})
}

// Delete implements Backend.
func (l *LevelDB) Delete(partition uint32, key []byte) error {
	if err := checkKey(key); err != nil {
		return opError("delete", partition, err)
	}
	return l.write("delete", partition, nil, Op{Key: key, Delete: true})
}

// Write implements Backend.
func (l *LevelDB) Write(partition uint32, ops []Op) error {
	if err := checkOps(ops); err != nil {
		return opError("write", partition, err)
	}
	if len(ops) == 0 {
		if l.closed.Load() {
			return opError("write", partition, ErrClosed)
		}
		return nil
	}
	return l.write("write", partition, ops, Op{})
}

// write stores ops (nil: the one op one) through the group committer.
func (l *LevelDB) write(op string, partition uint32, ops []Op, one Op) error {
	db, err := l.acquireWrite(op, partition)
	if err != nil {
		return err
	}
	defer l.mu.RUnlock()
	w := getPending(partition, ops)
	if ops == nil {
		w.one[0] = one
		w.ops = w.one[:]
	}
	err = l.commit.commit(db, l.wo, w)
	putPending(w)
	if err != nil {
		return l.fail(op, partition, err)
	}
	return nil
}

// iterPartition returns an iterator over the partition's stored keys from
// start on (nil: all of them). A goleveldb iterator reads an implicit
// snapshot taken at creation.
func iterPartition(db *leveldb.DB, partition uint32, start []byte, ro *opt.ReadOptions) iterator.Iterator {
	rg := util.BytesPrefix(partitionPrefix(partition))
	if len(start) > 0 {
		rg.Start = appendKey(nil, partition, start)
	}
	return db.NewIterator(rg, ro)
}

// Fold implements Backend.
func (l *LevelDB) Fold(partition uint32, fn func(key, value []byte) error) error {
	return l.FoldFrom(partition, nil, fn)
}

// FoldFrom implements Backend. It holds no lock while fn runs (fn may call
// back in); a reopen waits for the folds in progress, and a fold started
// during a reopen fails with ErrUnavailable.
func (l *LevelDB) FoldFrom(partition uint32, start []byte, fn func(key, value []byte) error) error {
	l.fmu.Lock()
	if l.reopening {
		l.fmu.Unlock()
		return opError("fold", partition, ErrUnavailable)
	}
	l.folds++
	l.fmu.Unlock()
	defer func() {
		l.fmu.Lock()
		l.folds--
		if l.folds == 0 {
			l.fdone.Broadcast()
		}
		l.fmu.Unlock()
	}()
	db, err := l.acquire("fold", partition)
	if err != nil {
		return err
	}
	it := iterPartition(db, partition, start, l.scanRO)
	l.mu.RUnlock() // NB: the fold count keeps db open until the iterator is released
	defer it.Release()
	for it.Next() {
		if err := fn(it.Key()[prefixLen:], it.Value()); err != nil {
			if errors.Is(err, ErrStopFold) {
				return nil
			}
			return opError("fold", partition, err)
		}
	}
	if err := it.Error(); err != nil {
		return l.fail("fold", partition, err)
	}
	return nil
}

// IsEmpty implements Backend.
func (l *LevelDB) IsEmpty(partition uint32) (bool, error) {
	db, err := l.acquire("is-empty", partition)
	if err != nil {
		return false, err
	}
	defer l.mu.RUnlock()
	it := iterPartition(db, partition, nil, nil)
	defer it.Release()
	if it.First() {
		return false, nil
	}
	if err := it.Error(); err != nil {
		return false, l.fail("is-empty", partition, err)
	}
	return true, nil
}

// DropPartition implements Backend: it deletes the partition's keys in
// batches of dropBatchSize and records the partition for the deferred
// compaction (dropcompact.go), which reclaims the space of the deleted values
// and of their tombstones once drops have stopped for DropCompactQuiet (at
// most DropCompactMaxDelay later). Until then the tombstones are read over
// (and skipped) by folds of the partition. An already empty partition is only
// checked.
func (l *LevelDB) DropPartition(partition uint32) error {
	deleted, err := l.deletePartition(partition)
	if deleted > 0 {
		l.scheduleDropCompaction(partition) // NB: even after an error: the keys deleted so far left tombstones
	}
	return err
}

// deletePartition deletes the partition's keys and returns how many it deleted.
func (l *LevelDB) deletePartition(partition uint32) (int, error) {
	db, err := l.acquireWrite("drop", partition)
	if err != nil {
		return 0, err
	}
	defer l.mu.RUnlock()
	it := iterPartition(db, partition, nil, l.scanRO)
	defer it.Release()
	var b leveldb.Batch
	deleted := 0
	for it.Next() {
		b.Delete(it.Key())
		if b.Len() >= dropBatchSize {
			if err := db.Write(&b, l.wo); err != nil {
				return deleted, l.fail("drop", partition, err)
			}
			deleted += b.Len()
			b.Reset()
		}
	}
	if err := it.Error(); err != nil {
		return deleted, l.fail("drop", partition, err)
	}
	if b.Len() > 0 {
		if err := db.Write(&b, l.wo); err != nil {
			return deleted, l.fail("drop", partition, err)
		}
		deleted += b.Len()
	}
	return deleted, nil
}

// Partitions implements Backend. It skips from one partition's first key to
// the next partition's prefix, so its cost grows with the number of
// partitions, not of keys.
func (l *LevelDB) Partitions() ([]uint32, error) {
	if l.closed.Load() {
		return nil, fmt.Errorf("storage: partitions: %w", ErrClosed)
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.db == nil {
		if l.closed.Load() {
			return nil, fmt.Errorf("storage: partitions: %w", ErrClosed)
		}
		return nil, fmt.Errorf("storage: partitions: %w", ErrUnavailable)
	}
	it := l.db.NewIterator(nil, nil)
	defer it.Release()
	var ps []uint32
	for ok := it.First(); ok; {
		p, valid := decodePartition(it.Key())
		if !valid {
			return nil, fmt.Errorf("storage: partitions: malformed key %q (shorter than the %d-byte partition prefix)", it.Key(), prefixLen)
		}
		ps = append(ps, p)
		if p == ^uint32(0) {
			break
		}
		ok = it.Seek(partitionPrefix(p + 1))
	}
	if err := it.Error(); err != nil {
		if errors.Is(err, leveldb.ErrClosed) || l.closed.Load() {
			err = ErrClosed
		}
		return nil, fmt.Errorf("storage: partitions: %w", err)
	}
	if ps == nil {
		ps = []uint32{}
	}
	return ps, nil
}

// Close implements Backend. It waits for goleveldb's background compaction to
// stop, for a reopen in progress, and for the drop compactor (a deferred
// compaction in progress is cut short; one still pending is not done: see
// doc.go). Folds still running see ErrClosed or finish on their snapshot.
func (l *LevelDB) Close() error {
	if !l.closed.CompareAndSwap(false, true) {
		return fmt.Errorf("storage: close: %w", ErrClosed)
	}
	close(l.closedC)
	l.mu.Lock()
	err := l.closeDBLocked()
	l.mu.Unlock()
	l.stopDropCompactor() // NB: after the DB's close, which cuts its compaction short
	if err != nil && !l.full.Load() {
		return fmt.Errorf("storage: close: %w", err)
	}
	return nil // NB: a disk-full DB's close reports its sticky journal error; nothing is lost by it
}

// closeDBLocked closes db and its closer. REQUIRES: mu held.
func (l *LevelDB) closeDBLocked() error {
	var err error
	if l.db != nil {
		err = l.db.Close()
	}
	if l.closer != nil {
		if cerr := l.closer.Close(); err == nil {
			err = cerr
		}
	}
	l.db, l.closer, l.ro = nil, nil, false
	return err
}

// reopen closes the DB and opens it again, read-write: goleveldb recovers from
// its journal everything it acknowledged, and forgets the sticky error of a
// failed write. If that fails (no space yet), it opens the DB read-only, so
// reads go on, and returns the error. Operations in flight finish first, folds
// included; new ones wait (folds fail with ErrUnavailable) until it is done.
func (l *LevelDB) reopen() error {
	l.fmu.Lock()
	l.reopening = true
	for l.folds > 0 {
		l.fdone.Wait()
	}
	l.fmu.Unlock()
	defer func() {
		l.fmu.Lock()
		l.reopening = false
		l.fmu.Unlock()
	}()

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	_ = l.closeDBLocked() // NB: a full DB's close reports the write that failed; its journal holds every acknowledged one
	db, closer, err := l.open(false)
	if err == nil {
		l.db, l.closer = db, closer
		l.full.Store(false)
		l.recoveries.Add(1)
		return nil
	}
	if rdb, rcloser, rerr := l.open(true); rerr == nil {
		l.db, l.closer, l.ro = rdb, rcloser, true
	}
	return fmt.Errorf("storage: reopen leveldb: %w", err)
}

// Timing of Heal: how often it looks for free space (doubling from healMin to
// healMax while there is none), and how much it wants before reopening.
const (
	healMin = 250 * time.Millisecond
	healMax = 2 * time.Second
)

// needFree is the free space Heal waits for before it reopens the DB: room to
// flush the recovered memtable into a table twice over, plus a journal and
// manifest.
func (l *LevelDB) needFree() uint64 {
	return uint64(2*orDefault(l.cfg.WriteBufferMiB, defaultWriteBufferMiB)+1) << 20
}

// Heal brings writes back after the disk was full, until ctx ends: each time a
// write finds the disk full it logs it, then looks for free space (statfs on
// the DB's directory) every healMin..healMax, and once there is enough reopens
// the DB in place (see reopen), retrying with the same backoff until that
// works. It returns nil when ctx ends or the DB is closed. Run it on its own
// goroutine (the node runs it under its supervisor).
func (l *LevelDB) Heal(ctx context.Context, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.closedC:
			return nil
		case <-l.faults:
		}
		if !l.full.Load() {
			continue
		}
		since := time.Now()
		cause, _ := l.fullErr.Load().(error)
		log.Warn("storage: the disk is full: writes fail until space is freed, reads go on", "err", cause,
			"need_free_bytes", l.needFree())
		backoff := healMin
		for l.full.Load() {
			free, known := l.free()
			if !known || free >= l.needFree() {
				err := l.reopen()
				switch {
				case err == nil:
					log.Info("storage: writes resumed after the disk was full", "free_bytes", free,
						"full_for", time.Since(since).Round(time.Millisecond), "recoveries", l.recoveries.Load())
					continue
				case errors.Is(err, ErrClosed):
					return nil
				}
				log.Warn("storage: reopening after the disk was full failed; retrying", "err", err,
					"read_only", l.readOnly(), "backoff", backoff)
			}
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-l.closedC:
				t.Stop()
				return nil
			case <-t.C:
			}
			backoff = min(2*backoff, healMax)
		}
	}
}

// readOnly reports whether the DB is open read-only.
func (l *LevelDB) readOnly() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.ro
}
