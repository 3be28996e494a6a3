package storage

import (
	"errors"
	"runtime"
	"sync"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
)

// Group commit of the goleveldb backend: the writes of concurrent callers (Put, Delete, Write, from the
// vnodes of different partitions) go to goleveldb as one batch, one journal record and one write system
// call, and each caller returns once that batch is written, as if it had been alone.
//
// Why: a KV set stores N replicas, on one node N vnodes, each its own goleveldb write. goleveldb merges a
// writer into another's batch only when it is already blocked on the write lock; with the journal write as
// short as it is without fsync, that almost never happens (measured: 2.94 journal writes per set against
// 3 with no merge at all), and each write pays the journal's system call and goleveldb's locking. Here the
// first writer of a group (its leader) yields its processor once before it collects the group
// (runtime.Gosched), so the writers that were runnable reach the committer and join; it does so only while
// one of the last yieldCredit groups merged several writers, so concurrent writers, once two of them met,
// keep meeting, and a writer alone soon pays nothing for it.
//
// Semantics are those of a write alone: a caller returns after goleveldb wrote the batch that holds its
// operations (with LevelDBConfig.Sync, fsynced), or with the error that batch failed with; the batch is
// atomic, so a caller's operations are stored all or none. The callers of one group are concurrent, so
// their order in the batch is any order; operations of one caller keep theirs.
//
// Lock order: every caller holds LevelDB.mu shared (acquireWrite) for as long as it is in the committer,
// leader and followers alike, so they all write to the same *leveldb.DB and a reopen waits for the group.
// The committer's own mu is taken inside LevelDB.mu and never held while waiting.

// maxGroupBytes bounds the keys and values a leader merges into its batch (goleveldb's own merge limit is
// 1 MiB): a caller's own write is never split, followers beyond it wait for the next group.
const maxGroupBytes = 1 << 20

// yieldCredit is how many groups in a row may find no company before leaders stop yielding.
const yieldCredit = 16

// errLead tells a waiting writer that the group before it is done and it leads the next one.
var errLead = errors.New("storage: lead the next group")

// pendingWrite is one caller's write waiting in (or leading) a group.
type pendingWrite struct {
	partition uint32
	ops       []Op
	one       [1]Op      // ops of a Put or Delete, without an allocation
	done      chan error // 1-buffered: the group's result, or errLead
}

func (w *pendingWrite) size() int {
	n := 0
	for i := range w.ops {
		n += prefixLen + len(w.ops[i].Key) + len(w.ops[i].Value)
	}
	return n
}

var pendingWrites = sync.Pool{New: func() any { return &pendingWrite{done: make(chan error, 1)} }}

// getPending returns a pendingWrite of ops for partition; putPending gives it back once its caller returns.
func getPending(partition uint32, ops []Op) *pendingWrite {
	w := pendingWrites.Get().(*pendingWrite)
	w.partition, w.ops = partition, ops
	return w
}

func putPending(w *pendingWrite) {
	w.ops, w.one[0] = nil, Op{}
	pendingWrites.Put(w)
}

var groupBatches = sync.Pool{New: func() any { return new(leveldb.Batch) }}

// committer merges concurrent writes into groups.
type committer struct {
	mu      sync.Mutex
	leading bool            // a leader is collecting or writing a group. REQUIRES: mu held
	queue   []*pendingWrite // writers waiting for the next group, in arrival order. REQUIRES: mu held
	// yields is how many more leaders yield before they collect: set to yieldCredit by a group that merged
	// writers, counted down by one that did not, so writers that came together keep meeting while a writer
	// alone soon stops giving its processor away for nothing. REQUIRES: mu held
	yields int
	spare  []*pendingWrite // the last group's slice, for the next. REQUIRES: mu held

	// Test hooks (nil in production): hookCollect runs as a leader is about to collect its group,
	// hookGroup once it has, with the group's size.
	hookCollect func()
	hookGroup   func(size int)
}

// commit writes w to db, merged with the writes of concurrent callers, and returns goleveldb's error for
// the batch that held it. REQUIRES: the caller holds LevelDB.mu shared and db is the DB it got there.
func (c *committer) commit(db *leveldb.DB, wo *opt.WriteOptions, w *pendingWrite) error {
	c.mu.Lock()
	if c.leading {
		c.queue = append(c.queue, w)
		c.mu.Unlock()
		if err := <-w.done; err != errLead {
			return err
		}
		// The leader before handed us the next group: the writers queued behind us are in it already.
	} else {
		c.leading = true
		yield := c.yields > 0
		c.mu.Unlock()
		if yield {
			// NB: writers came together last time: let the goroutines that are runnable reach their
			// writes and queue behind this one.
			runtime.Gosched()
		}
	}
	return c.lead(db, wo, w)
}

// lead writes w and the queued writes that fit in one batch, answers the followers and hands the lead to
// the first writer still queued (or ends leadership).
func (c *committer) lead(db *leveldb.DB, wo *opt.WriteOptions, w *pendingWrite) (err error) {
	if c.hookCollect != nil {
		c.hookCollect()
	}
	c.mu.Lock()
	group := append(c.spare[:0], w)
	budget := maxGroupBytes - w.size()
	n := 0
	for ; n < len(c.queue); n++ {
		s := c.queue[n].size()
		if s > budget {
			break
		}
		budget -= s
		group = append(group, c.queue[n])
	}
	rest := copy(c.queue, c.queue[n:])
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
	c.spare = nil
	if len(group) > 1 {
		c.yields = yieldCredit
	} else if c.yields > 0 {
		c.yields--
	}
	c.mu.Unlock()
	if c.hookGroup != nil {
		c.hookGroup(len(group))
	}

	answered := false
	defer func() {
		if !answered {
			// NB: only a panic in goleveldb gets here: the followers must not wait for ever.
			for _, f := range group[1:] {
				f.done <- errors.New("storage: group commit: leader panicked")
			}
		}
		c.handOver(group)
	}()

	b := groupBatches.Get().(*leveldb.Batch)
	b.Reset()
	var kb []byte
	for _, g := range group {
		for i := range g.ops {
			kb = appendKey(kb[:0], g.partition, g.ops[i].Key)
			if g.ops[i].Delete {
				b.Delete(kb)
			} else {
				b.Put(kb, g.ops[i].Value)
			}
		}
	}
	err = db.Write(b, wo)
	if b.Len() <= 4096 {
		groupBatches.Put(b)
	}
	for _, f := range group[1:] {
		f.done <- err
	}
	answered = true
	return err
}

// handOver ends a group: the first writer still queued leads the next one, or nobody leads.
func (c *committer) handOver(group []*pendingWrite) {
	clear(group)
	c.mu.Lock()
	c.spare = group[:0]
	if len(c.queue) == 0 {
		c.leading = false
		c.mu.Unlock()
		return
	}
	next := c.queue[0]
	rest := copy(c.queue, c.queue[1:])
	c.queue[rest] = nil
	c.queue = c.queue[:rest]
	c.mu.Unlock()
	next.done <- errLead
}
