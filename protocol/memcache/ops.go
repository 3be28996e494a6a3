package memcache

import (
	"bytes"
	"math"
	"strconv"
)

// The operations every face (text, meta, binary) carries out over the Store, apart from how each encodes
// requests and replies: one place decides what a command reads, what it supersedes and which stats it
// counts (semantics in doc.go). They run on the connection's goroutine and use its clock reading.

// outcome is what an operation did, for the face to answer in its own words.
type outcome uint8

const (
	outDone       outcome = iota // STORED, DELETED, TOUCHED, a counter's new value
	outNotStored                 // the mode's condition failed (add over a value; replace, append or prepend on a miss)
	outExists                    // a cas unique that does not name the key's sibling set
	outNotFound                  // no live value (cas, delete, touch, incr/decr without vivify)
	outNonNumeric                // incr/decr of a value that is not a decimal uint64
	outTooLarge                  // append/prepend would pass MaxValueBytes
	outNoMemory                  // the memory budget has no room for the joined value
	outFailed                    // the Store failed: see the error
)

// storeMode is what a storage request does with the key's current value.
type storeMode uint8

const (
	storeSet     storeMode = iota // a blind write (memcached's set)
	storeAdd                      // only if the key has no live value
	storeReplace                  // only if it has one
	storeAppend                   // the new data after the chosen sibling's
	storePrepend                  // the new data before it
	storeCas                      // only if the unique names the sibling set read
)

// storeReq is one storage request. key and data belong to the request (fresh copies the Store may keep).
type storeReq struct {
	mode   storeMode
	key    []byte
	data   []byte
	flags  uint32
	expiry int64 // absolute unix seconds, 0 = never (ExpiryAt)
	// cas is compared by storeCas always (0 never matches), by append and prepend when checkCas.
	cas      uint64
	checkCas bool
	// stale (meta ms I): with storeCas, a unique that does not match stores the value anyway, marked stale,
	// keeping the current expiry and win token (memcached accepts a unique older than the item's; gokai's
	// uniques are hashes, not ordered, so any other unique counts as older).
	stale bool
}

// store carries out a storage request and returns what it did and, when done, the new cas unique.
func (c *conn) store(r storeReq) (outcome, uint64, error) {
	c.s.stats.cmdSet.Add(1)
	c.s.detail.record(r.key, detailSet, false)
	v := Value{Data: r.data, Flags: r.flags, Expiry: r.expiry, LastMod: c.now().UnixNano()}
	if r.mode == storeSet {
		cas, err := c.s.store.Set(c.s.ctx, r.key, v, Supersede{Blind: true})
		if err != nil {
			return outFailed, 0, err
		}
		return outDone, cas, nil
	}
	e, err := c.get(r.key, Read{Context: true})
	if err != nil {
		return outFailed, 0, err
	}
	markStale := false
	switch r.mode {
	case storeAdd:
		if e.Found {
			return outNotStored, 0, nil
		}
	case storeReplace:
		if !e.Found {
			return outNotStored, 0, nil
		}
	case storeCas:
		switch {
		case !e.Found:
			c.s.stats.casMisses.Add(1)
			return outNotFound, 0, nil
		case e.Cas != r.cas && r.stale:
			markStale = true
			v.Expiry = e.Siblings[e.Chosen].Expiry
		case e.Cas != r.cas:
			c.s.stats.casBadval.Add(1)
			return outExists, 0, nil
		}
		c.s.stats.casHits.Add(1)
	case storeAppend, storePrepend:
		if !e.Found {
			return outNotStored, 0, nil
		}
		if r.checkCas && r.cas != e.Cas {
			return outExists, 0, nil
		}
		cur := e.Siblings[e.Chosen]
		n := len(cur.Data) + len(r.data)
		if n > c.s.cfg.MaxValueBytes {
			return outTooLarge, 0, nil
		}
		if !c.acct.Reserve(n) {
			c.noMemory("an append")
			return outNoMemory, 0, nil
		}
		defer c.acct.Release(n)
		joined := make([]byte, 0, n)
		if r.mode == storeAppend {
			joined = append(append(joined, cur.Data...), r.data...)
		} else {
			joined = append(append(joined, r.data...), cur.Data...)
		}
		// append/prepend keep the existing flags and expiry (protocol.txt).
		v = Value{Data: joined, Flags: cur.Flags, Expiry: cur.Expiry, LastMod: v.LastMod}
	}
	// add passes the context of a miss too: empty when the read found nothing (the write then supersedes
	// nothing, so an add racing another write becomes its sibling), or the context of tombstones the read
	// found, which the add supersedes.
	cas, err := c.s.store.Set(c.s.ctx, r.key, v, Supersede{Context: e.Context})
	if err != nil {
		return outFailed, 0, err
	}
	if markStale {
		sent := c.s.states.get(r.key, e.Cas).tokenSent
		c.s.states.update(r.key, cas, func(b *itemBits) { b.stale, b.tokenSent = true, sent })
	}
	return outDone, cas, nil
}

// removeOversized carries out the other half of a set whose value is over MaxValueBytes: like memcached
// (which unlinks the old item so that a stale value does not outlive a failed set) it deletes what the key
// holds, superseding exactly what a read finds. key is the request's own copy.
func (c *conn) removeOversized(key []byte) {
	e, err := c.get(key, Read{Context: true})
	if err == nil && e.Found {
		err = c.s.store.Delete(c.s.ctx, key, Supersede{Context: e.Context})
	}
	if err != nil {
		c.s.stats.storeErrors.Add(1)
		code := storeErrorCode(err)
		c.s.logStore.Of(code).Warn(c.s.log, "memcache: store error removing the value of a too-large set",
			"remote", c.remote, "code", code, "err", err)
	}
}

// remove deletes key (read for the context, then delete exactly the siblings seen). With checkCas, cas must
// name the sibling set read (binary DELETE with a cas, meta md C).
func (c *conn) remove(key []byte, cas uint64, checkCas bool) (outcome, error) {
	c.s.detail.record(key, detailDel, false)
	e, err := c.get(key, Read{Context: true})
	if err != nil {
		return outFailed, err
	}
	if !e.Found {
		c.s.stats.deleteMisses.Add(1)
		return outNotFound, nil
	}
	if checkCas && cas != e.Cas {
		c.s.stats.deleteMisses.Add(1) // memcached counts a cas mismatch as a delete miss
		return outExists, nil
	}
	if err := c.s.store.Delete(c.s.ctx, key, Supersede{Context: e.Context}); err != nil {
		return outFailed, err
	}
	c.s.stats.deleteHits.Add(1)
	return outDone, nil
}

// invalidate marks key stale instead of deleting it (meta md I): the chosen sibling is rewritten over the
// read's context (a new cas unique), with a new expiry if setExpiry, and its win token is cleared so the
// next reader wins the right to recache it. With checkCas, cas must name the sibling set read.
func (c *conn) invalidate(key []byte, cas uint64, checkCas, setExpiry bool, expiry int64) (outcome, error) {
	e, err := c.get(key, Read{Context: true})
	if err != nil {
		return outFailed, err
	}
	if !e.Found {
		c.s.stats.deleteMisses.Add(1)
		return outNotFound, nil
	}
	if checkCas && cas != e.Cas {
		c.s.stats.deleteMisses.Add(1)
		return outExists, nil
	}
	v := e.Siblings[e.Chosen]
	if setExpiry {
		v.Expiry = expiry
	}
	v.LastMod = c.now().UnixNano()
	newCas, err := c.s.store.Set(c.s.ctx, key, v, Supersede{Context: e.Context})
	if err != nil {
		return outFailed, err
	}
	c.s.states.move(key, e.Cas, newCas, func(b *itemBits) { b.stale, b.tokenSent = true, false })
	return outDone, nil
}

// touched is the result of touch: the entry read, the value written, its cas unique.
type touched struct {
	e   Entry
	v   Value
	cas uint64
}

// touch rewrites the chosen sibling of key with a new expiry over the read's context (which resolves
// siblings) and keeps the item's meta bits. outNotFound on a miss.
func (c *conn) touch(key []byte, expiry int64) (touched, outcome, error) {
	c.s.stats.cmdTouch.Add(1)
	e, err := c.get(key, Read{Context: true})
	if err != nil {
		return touched{}, outFailed, err
	}
	if !e.Found {
		c.s.stats.touchMisses.Add(1)
		return touched{e: e}, outNotFound, nil
	}
	v := e.Siblings[e.Chosen]
	v.Expiry, v.LastMod = expiry, c.now().UnixNano()
	cas, err := c.s.store.Set(c.s.ctx, key, v, Supersede{Context: e.Context})
	if err != nil {
		return touched{}, outFailed, err
	}
	c.s.stats.touchHits.Add(1)
	c.s.states.move(key, e.Cas, cas, nil)
	return touched{e: e, v: v, cas: cas}, outDone, nil
}

// arithReq is an incr or decr.
type arithReq struct {
	key   []byte
	incr  bool
	delta uint64
	// With checkCas, cas must name the sibling set read.
	cas      uint64
	checkCas bool
	// vivify creates a missing key with the value initial and expiry vivifyExpiry (binary INCR with an
	// expiration other than 0xffffffff, meta ma N).
	vivify       bool
	initial      uint64
	vivifyExpiry int64
	// setExpiry gives an existing value the expiry expiry (meta ma T); else it keeps its own. A created
	// value has vivifyExpiry.
	setExpiry bool
	expiry    int64
}

// arithRes is what an incr or decr did.
type arithRes struct {
	value   uint64
	cas     uint64
	expiry  int64
	created bool
}

// arith carries out incr and decr on the chosen sibling, memcached's rules: the value must be a decimal
// uint64 (spaces around it allowed), incr wraps at 2^64, decr stops at 0; flags and expiry are kept.
func (c *conn) arith(r arithReq) (arithRes, outcome, error) {
	hits, misses := &c.s.stats.decrHits, &c.s.stats.decrMisses
	if r.incr {
		hits, misses = &c.s.stats.incrHits, &c.s.stats.incrMisses
	}
	e, err := c.get(r.key, Read{Context: true})
	if err != nil {
		return arithRes{}, outFailed, err
	}
	now := c.now()
	if !e.Found {
		if !r.vivify {
			misses.Add(1)
			return arithRes{}, outNotFound, nil
		}
		data := strconv.AppendUint(make([]byte, 0, 20), r.initial, 10)
		v := Value{Data: data, Expiry: r.vivifyExpiry, LastMod: now.UnixNano()}
		cas, err := c.s.store.Set(c.s.ctx, r.key, v, Supersede{Context: e.Context})
		if err != nil {
			return arithRes{}, outFailed, err
		}
		return arithRes{value: r.initial, cas: cas, expiry: v.Expiry, created: true}, outDone, nil
	}
	if r.checkCas && r.cas != e.Cas {
		return arithRes{}, outExists, nil
	}
	cur := e.Siblings[e.Chosen]
	n, ok := parseCounter(cur.Data)
	if !ok {
		return arithRes{}, outNonNumeric, nil
	}
	switch {
	case r.incr:
		n += r.delta // wraps, as in memcached
	case r.delta > n:
		n = 0
	default:
		n -= r.delta
	}
	v := Value{Data: strconv.AppendUint(make([]byte, 0, 20), n, 10), Flags: cur.Flags, Expiry: cur.Expiry,
		LastMod: now.UnixNano()}
	if r.setExpiry {
		v.Expiry = r.expiry
	}
	cas, err := c.s.store.Set(c.s.ctx, r.key, v, Supersede{Context: e.Context})
	if err != nil {
		return arithRes{}, outFailed, err
	}
	hits.Add(1)
	return arithRes{value: n, cas: cas, expiry: v.Expiry}, outDone, nil
}

// parseCounter reads a value as a decimal uint64. Like memcached (strtoull) it allows spaces around the
// digits; anything else, or an overflow, is not a number.
func parseCounter(b []byte) (uint64, bool) {
	b = bytes.Trim(b, " ")
	return parseUint(b, math.MaxUint64)
}

// fetch is a read by a retrieval command (get, gets, gat, binary GET, mg): it counts a get, a hit or a
// miss, and records the read in the item's meta bits (unless bump is false: mg u). before holds the bits
// as they were before this read. want is what the caller needs of the read (Read.Context when it writes
// over it).
func (c *conn) fetch(key []byte, bump bool, want Read) (e Entry, before itemBits, err error) {
	c.s.stats.cmdGet.Add(1)
	e, err = c.get(key, want)
	if err != nil {
		return Entry{}, itemBits{}, err
	}
	c.s.detail.record(key, detailGet, e.Found)
	if !e.Found {
		c.s.stats.getMisses.Add(1)
		return e, itemBits{}, nil
	}
	c.s.stats.getHits.Add(1)
	if !bump {
		return e, c.s.states.get(key, e.Cas), nil
	}
	return e, c.s.states.markFetched(key, e.Cas, c.now().Unix()), nil
}
