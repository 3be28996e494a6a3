package memcache

import (
	"bytes"
	"math"
	"strconv"
	"time"
)

// execute carries out a parsed request over the Store (semantics in doc.go). It returns false when the
// connection must close.
func (c *conn) execute() bool {
	switch op := c.cmd.Op; {
	case op.IsStorage():
		return c.storage()
	case op == OpGet || op == OpGets:
		c.retrieve()
	case op == OpGat || op == OpGats:
		c.getAndTouch()
	case op == OpDelete:
		c.delete()
	case op == OpIncr || op == OpDecr:
		c.arith()
	case op == OpTouch:
		c.touch()
	case op == OpStats:
		c.statsCmd()
	case op == OpVersion:
		c.out = append(append(append(c.out[:0], prefixVersion...), c.s.cfg.Version...), crlf...)
		c.bw.Write(c.out)
	case op == OpVerbosity:
		c.write(replyOK)
	case op == OpFlushAll:
		c.flushAll()
	case op == OpQuit:
		c.linger = true
		return false
	}
	return true
}

// get reads key and hides the siblings expired at the request's time (the Store should already have; this is
// the server's own check). The clock is read only if a sibling has an expiry.
func (c *conn) get(key []byte) (Entry, error) {
	e, err := c.s.store.Get(c.s.ctx, key)
	if err != nil {
		return Entry{}, err
	}
	var now int64 // NB: with no expiry among the siblings, nothing is expired at any time
	for _, v := range e.Siblings {
		if v.Expiry != 0 {
			now = c.now().Unix()
			break
		}
	}
	e, expired := liveEntry(e, now)
	if expired {
		c.s.stats.getExpired.Add(1)
	}
	return e, nil
}

// liveEntry drops siblings expired at now and makes sure Chosen indexes a live one. expired reports that a
// found entry became not found.
func liveEntry(e Entry, now int64) (_ Entry, expired bool) {
	if !e.Found || len(e.Siblings) == 0 {
		e.Found, e.Siblings = false, nil
		return e, false
	}
	dead := 0
	for _, v := range e.Siblings {
		if Expired(v.Expiry, now) {
			dead++
		}
	}
	if dead == 0 {
		if e.Chosen < 0 || e.Chosen >= len(e.Siblings) {
			e.Chosen = newest(e.Siblings)
		}
		return e, false
	}
	if dead == len(e.Siblings) {
		e.Found, e.Siblings = false, nil
		return e, true
	}
	live := make([]Value, 0, len(e.Siblings)-dead)
	chosen := -1
	for i, v := range e.Siblings {
		if Expired(v.Expiry, now) {
			continue
		}
		if i == e.Chosen {
			chosen = len(live)
		}
		live = append(live, v)
	}
	if chosen < 0 {
		chosen = newest(live)
	}
	e.Siblings, e.Chosen = live, chosen
	return e, false
}

// newest returns the index of the sibling with the latest LastMod (gokai's rule for a plain get).
func newest(vs []Value) int {
	best := 0
	for i, v := range vs {
		if v.LastMod > vs[best].LastMod {
			best = i
		}
	}
	return best
}

// storeFailed answers a Store error with SERVER_ERROR. The connection keeps serving. Under noreply nothing
// is sent: a client that does not read replies would take the line as the reply to its next request.
func (c *conn) storeFailed(err error) {
	c.s.stats.storeErrors.Add(1)
	code := storeErrorCode(err)
	c.s.logStore.Of(code).Warn(c.s.log, "memcache: store error", "remote", c.remote, "op", c.cmd.Op.String(),
		"code", code, "err", err)
	if !c.cmd.NoReply {
		c.writeError(ReplyServerError, serverErrorText(err))
	}
}

// reserveReply reserves the bytes of the values a reply is about to write; if they do not fit it answers
// "SERVER_ERROR out of memory writing get response", which ends the reply (as a store error does), and
// reports false. The caller releases n once the values are written.
func (c *conn) reserveReply(n int) bool {
	if c.acct.Reserve(n) {
		return true
	}
	c.noMemory("a reply")
	c.writeError(ReplyServerError, msgNoMemWriting)
	return false
}

// valueBytes is what writing e's values holds: the chosen one, or all of them for gets.
func valueBytes(e Entry, all bool) int {
	if !all {
		return len(e.Siblings[e.Chosen].Data)
	}
	n := 0
	for _, v := range e.Siblings {
		n += len(v.Data)
	}
	return n
}

// writeValue writes one "VALUE <key> <flags> <bytes> [<cas>]" item with its data block.
func (c *conn) writeValue(key []byte, v Value, cas uint64, withCas bool) {
	b := append(c.out[:0], prefixValue...)
	b = append(b, key...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(v.Flags), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(v.Data)), 10)
	if withCas {
		b = append(b, ' ')
		b = strconv.AppendUint(b, cas, 10)
	}
	b = append(b, crlf...)
	c.out = b
	c.bw.Write(b)
	c.bw.Write(v.Data)
	c.bw.Write(crlf)
}

// writeSiblings writes every sibling of e as its own VALUE item, all with cas e.Cas. The chosen sibling comes
// last, so a client that keeps the last item per key (most do: results go into a map) sees what get returns.
func (c *conn) writeSiblings(key []byte, e Entry) {
	for i, v := range e.Siblings {
		if i != e.Chosen {
			c.writeValue(key, v, e.Cas, true)
		}
	}
	c.writeValue(key, e.Siblings[e.Chosen], e.Cas, true)
}

// retrieve: get and gets.
func (c *conn) retrieve() {
	for _, key := range c.cmd.Keys {
		c.s.stats.cmdGet.Add(1)
		e, err := c.get(bytes.Clone(key))
		if err != nil {
			c.storeFailed(err) // ends the reply: the client stops reading at the error line
			return
		}
		if !e.Found {
			c.s.stats.getMisses.Add(1)
			continue
		}
		c.s.stats.getHits.Add(1)
		n := valueBytes(e, c.cmd.Op == OpGets)
		if !c.reserveReply(n) {
			return
		}
		if c.cmd.Op == OpGets {
			c.writeSiblings(key, e)
		} else {
			c.writeValue(key, e.Siblings[e.Chosen], 0, false)
		}
		c.acct.Release(n)
	}
	c.bw.Write(replyEnd)
}

// getAndTouch: gat and gats. Each found key is touched (its chosen sibling rewritten with the new expiry over
// the entry's context, which resolves siblings) and returned like get; gats reads the key again so the cas it
// returns names the new sibling set.
func (c *conn) getAndTouch() {
	t := c.now()
	now := t.Unix()
	expiry := ExpiryAt(c.cmd.Exptime, now)
	for _, key := range c.cmd.Keys {
		c.s.stats.cmdTouch.Add(1)
		k := bytes.Clone(key)
		e, err := c.get(k)
		if err != nil {
			c.storeFailed(err)
			return
		}
		if !e.Found {
			c.s.stats.touchMisses.Add(1)
			continue
		}
		v := e.Siblings[e.Chosen]
		v.Expiry, v.LastMod = expiry, t.UnixNano()
		if err := c.s.store.Set(c.s.ctx, k, v, Supersede{Context: e.Context}); err != nil {
			c.storeFailed(err)
			return
		}
		c.s.stats.touchHits.Add(1)
		if c.cmd.Op == OpGat {
			if !c.reserveReply(len(v.Data)) {
				return
			}
			c.writeValue(key, v, 0, false)
			c.acct.Release(len(v.Data))
			continue
		}
		e, err = c.get(k)
		if err != nil {
			c.storeFailed(err)
			return
		}
		if e.Found {
			n := valueBytes(e, true)
			if !c.reserveReply(n) {
				return
			}
			c.writeSiblings(key, e)
			c.acct.Release(n)
		}
	}
	c.bw.Write(replyEnd)
}

// storage: set, add, replace, append, prepend, cas. The data block is reserved from the memory budget
// before it is read, and held until the command is done; a block the budget has no room for is read and
// dropped and answered "SERVER_ERROR out of memory storing object" (memcached's text and behaviour).
func (c *conn) storage() bool {
	cmd := &c.cmd
	held := len(cmd.Key()) + cmd.Bytes + 2
	if !c.acct.Reserve(held) {
		c.noMemory("a data block")
		if _, err := c.br.Discard(cmd.Bytes + 2); err != nil {
			c.ioDone(err)
			return false
		}
		c.s.stats.cmdSet.Add(1)
		if !cmd.NoReply {
			c.writeError(ReplyServerError, msgNoMemStoring)
		}
		return true
	}
	defer c.acct.Release(held)
	key, data, chunkOK, ok := c.readBlock(cmd.Key(), cmd.Bytes)
	if !ok {
		return false
	}
	c.s.stats.cmdSet.Add(1)
	if !chunkOK {
		c.s.stats.protocolErrors.Add(1)
		if !cmd.NoReply {
			c.writeError(ReplyClientError, msgBadDataChunk)
		}
		return true
	}
	t := c.now()
	now := t.Unix()
	v := Value{Data: data, Flags: cmd.Flags, Expiry: ExpiryAt(cmd.Exptime, now), LastMod: t.UnixNano()}
	if cmd.Op == OpSet {
		if err := c.s.store.Set(c.s.ctx, key, v, Supersede{Blind: true}); err != nil {
			c.storeFailed(err)
			return true
		}
		c.write(replyStored)
		return true
	}

	e, err := c.get(key)
	if err != nil {
		c.storeFailed(err)
		return true
	}
	switch cmd.Op {
	case OpAdd:
		if e.Found {
			c.write(replyNotStored)
			return true
		}
	case OpReplace:
		if !e.Found {
			c.write(replyNotStored)
			return true
		}
	case OpAppend, OpPrepend:
		if !e.Found {
			c.write(replyNotStored)
			return true
		}
		cur := e.Siblings[e.Chosen]
		if len(cur.Data)+len(data) > c.s.cfg.MaxValueBytes {
			if !cmd.NoReply {
				c.writeError(ReplyServerError, msgTooLarge)
			}
			return true
		}
		if !c.acct.Reserve(len(cur.Data) + len(data)) {
			c.noMemory("an append")
			if !cmd.NoReply {
				c.writeError(ReplyServerError, msgNoMemStoring)
			}
			return true
		}
		defer c.acct.Release(len(cur.Data) + len(data))
		joined := make([]byte, 0, len(cur.Data)+len(data))
		if cmd.Op == OpAppend {
			joined = append(append(joined, cur.Data...), data...)
		} else {
			joined = append(append(joined, data...), cur.Data...)
		}
		// append/prepend keep the existing flags and expiry (protocol.txt).
		v = Value{Data: joined, Flags: cur.Flags, Expiry: cur.Expiry, LastMod: v.LastMod}
	case OpCas:
		switch {
		case !e.Found:
			c.s.stats.casMisses.Add(1)
			c.write(replyNotFound)
			return true
		case e.Cas != cmd.CasUnique:
			c.s.stats.casBadval.Add(1)
			c.write(replyExists)
			return true
		}
		c.s.stats.casHits.Add(1)
	}
	// add passes the context of a miss too: empty when the read found nothing (the write then supersedes
	// nothing, so an add racing another write becomes its sibling), or the context of tombstones the read
	// found, which the add supersedes.
	if err := c.s.store.Set(c.s.ctx, key, v, Supersede{Context: e.Context}); err != nil {
		c.storeFailed(err)
		return true
	}
	c.write(replyStored)
	return true
}

// delete: read for the context, then delete exactly the siblings seen.
func (c *conn) delete() {
	k := bytes.Clone(c.cmd.Key())
	e, err := c.get(k)
	if err != nil {
		c.storeFailed(err)
		return
	}
	if !e.Found {
		c.s.stats.deleteMisses.Add(1)
		c.write(replyNotFound)
		return
	}
	if err := c.s.store.Delete(c.s.ctx, k, Supersede{Context: e.Context}); err != nil {
		c.storeFailed(err)
		return
	}
	c.s.stats.deleteHits.Add(1)
	c.write(replyDeleted)
}

// arith: incr and decr on the chosen sibling, memcached's rules (incr wraps at 2^64, decr stops at 0).
func (c *conn) arith() {
	incr := c.cmd.Op == OpIncr
	hits, misses := &c.s.stats.decrHits, &c.s.stats.decrMisses
	if incr {
		hits, misses = &c.s.stats.incrHits, &c.s.stats.incrMisses
	}
	k := bytes.Clone(c.cmd.Key())
	t := c.now()
	e, err := c.get(k)
	if err != nil {
		c.storeFailed(err)
		return
	}
	if !e.Found {
		misses.Add(1)
		c.write(replyNotFound)
		return
	}
	cur := e.Siblings[e.Chosen]
	n, ok := parseCounter(cur.Data)
	if !ok {
		c.s.stats.protocolErrors.Add(1)
		if !c.cmd.NoReply {
			c.writeError(ReplyClientError, msgNonNumeric)
		}
		return
	}
	switch {
	case incr:
		n += c.cmd.Delta // wraps, as in memcached
	case c.cmd.Delta > n:
		n = 0
	default:
		n -= c.cmd.Delta
	}
	data := strconv.AppendUint(make([]byte, 0, 20), n, 10)
	v := Value{Data: data, Flags: cur.Flags, Expiry: cur.Expiry, LastMod: t.UnixNano()}
	if err := c.s.store.Set(c.s.ctx, k, v, Supersede{Context: e.Context}); err != nil {
		c.storeFailed(err)
		return
	}
	hits.Add(1)
	c.out = append(strconv.AppendUint(c.out[:0], n, 10), crlf...)
	c.write(c.out)
}

// parseCounter reads a value as a decimal uint64. Like memcached (strtoull) it allows spaces around the
// digits; anything else, or an overflow, is not a number.
func parseCounter(b []byte) (uint64, bool) {
	b = bytes.Trim(b, " ")
	return parseUint(b, math.MaxUint64)
}

// touch rewrites the chosen sibling with a new expiry over the entry's context.
func (c *conn) touch() {
	k := bytes.Clone(c.cmd.Key())
	t := c.now()
	now := t.Unix()
	c.s.stats.cmdTouch.Add(1)
	e, err := c.get(k)
	if err != nil {
		c.storeFailed(err)
		return
	}
	if !e.Found {
		c.s.stats.touchMisses.Add(1)
		c.write(replyNotFound)
		return
	}
	v := e.Siblings[e.Chosen]
	v.Expiry, v.LastMod = ExpiryAt(c.cmd.Exptime, now), t.UnixNano()
	if err := c.s.store.Set(c.s.ctx, k, v, Supersede{Context: e.Context}); err != nil {
		c.storeFailed(err)
		return
	}
	c.s.stats.touchHits.Add(1)
	c.write(replyTouched)
}

// statsCmd: "stats", "stats settings", "stats reset"; the slab/item listings are empty (END); anything else
// is ERROR, as in memcached.
func (c *conn) statsCmd() {
	var lines []Stat
	if len(c.cmd.Args) > 0 {
		switch string(c.cmd.Args[0]) {
		case "settings":
			lines = c.s.settingsStats()
		case "reset":
			c.s.stats.reset()
			c.bw.Write(replyReset)
			return
		case "items", "slabs", "sizes", "conns":
		default:
			c.bw.Write(replyError)
			return
		}
	} else {
		lines = c.s.generalStats()
	}
	for _, st := range lines {
		c.out = appendStat(c.out[:0], st)
		c.bw.Write(c.out)
	}
	c.bw.Write(replyEnd)
}

// maxDelaySeconds keeps a flush_all delay within time.Duration.
const maxDelaySeconds = int64(math.MaxInt64 / time.Second)

// flushAll runs Store.FlushAll now, or after the delay (an exptime: relative up to 30 days, else absolute).
func (c *conn) flushAll() {
	if !c.s.cfg.FlushAllEnabled {
		if !c.cmd.NoReply {
			c.writeError(ReplyClientError, msgFlushDisabled)
		}
		return
	}
	c.s.stats.cmdFlush.Add(1)
	now := c.now().Unix()
	if at := ExpiryAt(c.cmd.Exptime, now); at > now {
		c.s.scheduleFlush(time.Duration(min(at-now, maxDelaySeconds)) * time.Second)
		c.write(replyOK)
		return
	}
	if err := c.s.store.FlushAll(c.s.ctx); err != nil {
		c.storeFailed(err)
		return
	}
	c.write(replyOK)
}
