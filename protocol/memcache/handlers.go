package memcache

import (
	"bytes"
	"strconv"
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
		c.arithCmd()
	case op == OpTouch:
		c.touchCmd()
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
// the server's own check). The clock is read only if a sibling has an expiry. want says whether the caller
// writes over what it reads (Read.Context).
func (c *conn) get(key []byte, want Read) (Entry, error) {
	e, err := c.s.store.Get(c.s.ctx, key, want)
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
		if !c.retrieveKey(key) {
			return
		}
	}
	c.bw.Write(replyEnd)
}

// retrieveKey writes the VALUE items of one key of a get or gets (none on a miss). It reports false when
// the reply ended with an error line (a Store failure, the memory budget).
func (c *conn) retrieveKey(key []byte) bool {
	e, _, err := c.fetch(bytes.Clone(key), true, Read{}) // NB: get and gets show values and cas only
	if err != nil {
		c.storeFailed(err) // ends the reply: the client stops reading at the error line
		return false
	}
	if !e.Found {
		return true
	}
	all := c.cmd.Op == OpGets
	n := valueBytes(e, all)
	if !c.reserveReply(n) {
		return false
	}
	if all {
		c.writeSiblings(key, e)
	} else {
		c.writeValue(key, e.Siblings[e.Chosen], 0, false)
	}
	c.acct.Release(n)
	return true
}

// getAndTouch: gat and gats.
func (c *conn) getAndTouch() {
	for _, key := range c.cmd.Keys {
		if !c.getAndTouchKey(key) {
			return
		}
	}
	c.bw.Write(replyEnd)
}

// getAndTouchKey touches one key of a gat or gats (its chosen sibling rewritten with the new expiry over
// the entry's context, which resolves siblings) and writes it like get; gats shows the cas unique of the
// write. It reports false when the reply ended with an error line.
func (c *conn) getAndTouchKey(key []byte) bool {
	k := bytes.Clone(key)
	tc, out, err := c.touch(k, ExpiryAt(c.cmd.Exptime, c.now().Unix()))
	switch out {
	case outFailed:
		c.storeFailed(err)
		return false
	case outNotFound:
		c.s.detail.record(k, detailGet, false)
		return true
	}
	c.s.detail.record(k, detailGet, true)
	c.s.states.markFetched(k, tc.cas, c.now().Unix())
	if !c.reserveReply(len(tc.v.Data)) {
		return false
	}
	c.writeValue(key, tc.v, tc.cas, c.cmd.Op == OpGats)
	c.acct.Release(len(tc.v.Data))
	return true
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
	if !chunkOK {
		c.s.stats.cmdSet.Add(1)
		c.s.stats.protocolErrors.Add(1)
		if !cmd.NoReply {
			c.writeError(ReplyClientError, msgBadDataChunk)
		}
		return true
	}
	r := storeReq{key: key, data: data, flags: cmd.Flags, expiry: ExpiryAt(cmd.Exptime, c.now().Unix())}
	switch cmd.Op {
	case OpSet:
		r.mode = storeSet
	case OpAdd:
		r.mode = storeAdd
	case OpReplace:
		r.mode = storeReplace
	case OpAppend:
		r.mode = storeAppend
	case OpPrepend:
		r.mode = storePrepend
	case OpCas:
		// NB: a unique of 0 matches nothing (no read returns it): EXISTS, as memcached answers.
		r.mode, r.cas = storeCas, cmd.CasUnique
	}
	out, _, err := c.store(r)
	c.writeOutcome(out, err, replyStored)
	return true
}

// writeOutcome answers a storage, delete or touch outcome in the text protocol; done is the success line.
func (c *conn) writeOutcome(out outcome, err error, done []byte) {
	switch out {
	case outDone:
		c.write(done)
	case outNotStored:
		c.write(replyNotStored)
	case outExists:
		c.write(replyExists)
	case outNotFound:
		c.write(replyNotFound)
	case outTooLarge:
		if !c.cmd.NoReply {
			c.writeError(ReplyServerError, msgTooLarge)
		}
	case outNoMemory:
		if !c.cmd.NoReply {
			c.writeError(ReplyServerError, msgNoMemStoring)
		}
	case outNonNumeric:
		c.s.stats.protocolErrors.Add(1)
		if !c.cmd.NoReply {
			c.writeError(ReplyClientError, msgNonNumeric)
		}
	case outFailed:
		c.storeFailed(err)
	}
}

// delete: read for the context, then delete exactly the siblings seen.
func (c *conn) delete() {
	out, err := c.remove(bytes.Clone(c.cmd.Key()), 0, false)
	c.writeOutcome(out, err, replyDeleted)
}

// arithCmd: incr and decr on the chosen sibling.
func (c *conn) arithCmd() {
	res, out, err := c.arith(arithReq{key: bytes.Clone(c.cmd.Key()), incr: c.cmd.Op == OpIncr, delta: c.cmd.Delta})
	if out != outDone {
		c.writeOutcome(out, err, nil)
		return
	}
	c.out = append(strconv.AppendUint(c.out[:0], res.value, 10), crlf...)
	c.write(c.out)
}

// touchCmd rewrites the chosen sibling with a new expiry over the entry's context.
func (c *conn) touchCmd() {
	_, out, err := c.touch(bytes.Clone(c.cmd.Key()), ExpiryAt(c.cmd.Exptime, c.now().Unix()))
	c.writeOutcome(out, err, replyTouched)
}

// statsCmd: "stats", "stats settings", "stats reset", "stats detail on|off|dump"; the slab and item listings
// are empty (END); anything else is ERROR, as in memcached.
func (c *conn) statsCmd() {
	var lines []Stat
	if len(c.cmd.Args) > 0 {
		switch string(c.cmd.Args[0]) {
		case "settings":
			lines = c.s.settingsStats()
		case "reset":
			c.s.resetStats()
			c.bw.Write(replyReset)
			return
		case "detail":
			c.statsDetail()
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

// statsDetail: "stats detail on|off|dump" (memcached's texts).
func (c *conn) statsDetail() {
	var sub string
	if len(c.cmd.Args) == 2 {
		sub = string(c.cmd.Args[1])
	}
	switch sub {
	case "on", "off":
		c.s.detail.on.Store(sub == "on")
		c.bw.Write(replyOK)
	case "dump":
		// NB: line by line: a dump of many prefixes is never held whole.
		for _, l := range c.s.detail.snapshot() {
			c.out = l.appendLine(c.out[:0])
			c.bw.Write(c.out)
		}
		c.bw.Write(replyEnd)
	default:
		c.writeError(ReplyClientError, msgDetailUsage)
	}
}

// flushAll asks the Store to flush now, or from the delay on (FlushAt: an exptime, relative up to 30 days,
// else absolute). The Store records it at once either way (a delayed flush is part of the cluster state,
// not a timer of this server).
//
// NB: cmd_flush counts a refused flush_all too, as memcached's text protocol does.
func (c *conn) flushAll() {
	c.s.stats.cmdFlush.Add(1)
	if !c.s.cfg.FlushAllEnabled {
		if !c.cmd.NoReply {
			c.writeError(ReplyClientError, msgFlushDisabled)
		}
		return
	}
	now := c.now()
	at := FlushAt(c.cmd.Exptime, now)
	if err := c.s.store.FlushAll(c.s.ctx, at); err != nil {
		c.storeFailed(err)
		return
	}
	if !at.After(now) {
		c.s.states.reset()
	}
	c.write(replyOK)
}
