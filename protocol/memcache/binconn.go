package memcache

import (
	"bytes"
	"encoding/binary"
	"io"
	"strconv"
)

// handleBinary reads and executes one binary-protocol request (semantics in doc.go). It returns false
// when the connection must close.
func (c *conn) handleBinary() bool {
	if _, err := io.ReadFull(c.br, c.hdr[:]); err != nil {
		c.ioDone(err)
		return false
	}
	h := parseBinHeader(c.hdr[:])
	v := checkBinRequest(h, c.s.cfg.MaxValueBytes, c.s.cfg.Users != nil, c.authed)
	c.bh, c.bop, c.bquiet = h, v.Op, v.Quiet
	switch v.Action {
	case binClose:
		c.s.stats.protocolErrors.Add(1)
		c.s.log.Debug("memcache: bad binary request", "remote", c.remote, "opcode", h.Opcode, "magic", h.Magic,
			"status", v.Status)
		if v.Reply {
			c.binError(v.Status, "")
		}
		c.linger = true
		return false
	case binReject:
		return c.binReject(h, v)
	}
	n := int(h.ExtLen) + int(h.KeyLen)
	if _, err := io.ReadFull(c.br, c.bbuf[:n]); err != nil {
		c.ioDone(err)
		return false
	}
	ext, key := c.bbuf[:h.ExtLen], c.bbuf[h.ExtLen:n]
	switch c.bop {
	case binGet, binGetK:
		c.binGet(nil, key)
	case binTouch, binGAT, binGATK:
		c.binGet(ext, key)
	case binSet, binAdd, binReplace, binAppend, binPrepend:
		return c.binStore(ext, key)
	case binDelete:
		out, err := c.remove(bytes.Clone(key), h.Cas, h.Cas != 0)
		c.binOutcome(out, err, 0)
	case binIncrement, binDecrement:
		c.binArith(ext, key)
	case binStat:
		c.binStats(key)
	case binVersion:
		c.binReply(nil, nil, []byte(c.s.cfg.Version), 0)
	case binNoop:
		c.binReply(nil, nil, nil, 0)
	case binVerbosity:
		c.binReply(nil, nil, nil, 0)
	case binFlush:
		c.binFlush(ext)
	case binQuit:
		if !c.bquiet {
			c.binReply(nil, nil, nil, 0)
		}
		c.linger = true
		return false
	case binSASLList:
		c.binReply(nil, nil, []byte("PLAIN"), 0)
	case binSASLAuth, binSASLStep:
		return c.binSASL(key, h.valueLen())
	}
	return true
}

// binReject answers a request refused from its header and discards its body: the answer first, since the
// body may be long in coming (or never come, until the read timeout). A set whose value is over
// MaxValueBytes also removes the key's old value, as memcached does (its key is read first for that).
func (c *conn) binReject(h binHeader, v binVerdict) bool {
	swallow := v.Swallow
	var key []byte
	if v.Status == binStatusTooLarge {
		c.s.stats.cmdSet.Add(1)
		c.s.stats.storeTooLarge.Add(1)
		n := int(h.ExtLen) + int(h.KeyLen)
		if _, err := io.ReadFull(c.br, c.bbuf[:n]); err != nil {
			c.ioDone(err)
			return false
		}
		if c.bop == binSet {
			key = bytes.Clone(c.bbuf[h.ExtLen:n])
		}
		swallow -= n
	} else {
		c.s.stats.protocolErrors.Add(1)
	}
	if key != nil {
		c.removeOversized(key)
	}
	c.binError(v.Status, "")
	if _, err := c.br.Discard(swallow); err != nil {
		c.ioDone(err)
		return false
	}
	return true
}

// binReply writes a success response (unless the request was quiet: quiet gets still answer hits, which
// their callers write with binReplyAlways).
func (c *conn) binReply(ext, key, value []byte, cas uint64) {
	if c.bquiet {
		return
	}
	c.binReplyAlways(ext, key, value, cas)
}

// binReplyAlways writes a success response whatever the quiet flag.
func (c *conn) binReplyAlways(ext, key, value []byte, cas uint64) {
	c.out = appendBinHeader(c.out[:0], c.bh.Opcode, binStatusOK, len(key), len(ext), len(ext)+len(key)+len(value),
		c.bh.Opaque, cas)
	c.out = append(append(c.out, ext...), key...)
	c.bw.Write(c.out)
	c.bw.Write(value)
}

// binError writes an error response; errors are sent for quiet requests too (but a quiet get's miss,
// which its caller skips). An empty msg means memcached's text for the status.
func (c *conn) binError(status uint16, msg string) {
	c.out = appendBinError(c.out[:0], c.bh.Opcode, status, c.bh.Opaque, msg)
	c.bw.Write(c.out)
}

// binOutcome answers an operation's outcome; cas goes with a success.
func (c *conn) binOutcome(out outcome, err error, cas uint64) {
	switch out {
	case outDone:
		c.binReply(nil, nil, nil, cas)
	case outNotStored:
		switch c.bop {
		case binAdd:
			c.binError(binStatusKeyExists, "")
		case binReplace:
			c.binError(binStatusKeyNotFound, "")
		default:
			c.binError(binStatusNotStored, "")
		}
	case outExists:
		c.binError(binStatusKeyExists, "")
	case outNotFound:
		c.binError(binStatusKeyNotFound, "")
	case outTooLarge:
		c.binError(binStatusTooLarge, "")
	case outNoMemory:
		c.binError(binStatusNoMemory, "")
	case outNonNumeric:
		c.binError(binStatusNonNumeric, "")
	case outFailed:
		c.binStoreFailed(err)
	}
}

// binStoreFailed answers a Store failure: temporary failure, with the text the text protocol would send
// after SERVER_ERROR.
func (c *conn) binStoreFailed(err error) {
	c.s.stats.storeErrors.Add(1)
	code := storeErrorCode(err)
	c.s.logStore.Of(code).Warn(c.s.log, "memcache: store error", "remote", c.remote, "opcode", c.bop,
		"code", code, "err", err)
	c.binError(binStatusTempFailure, oneLine(serverErrorText(err)))
}

// binGet: GET, GETK, GETQ, GETKQ; with touch, TOUCH, GAT, GATK, GATQ, GATKQ (the chosen sibling rewritten
// with the new expiry, as text touch). A hit answers flags (extras), the key for the K forms, the value
// (not for TOUCH) and the cas unique of the sibling set; a quiet miss answers nothing.
//
// ext holds the expiration of the touching forms; nil for the plain gets.
func (c *conn) binGet(ext, key []byte) {
	k := bytes.Clone(key)
	var (
		e   Entry
		v   Value
		cas uint64
		err error
	)
	if ext != nil {
		exp := int64(binary.BigEndian.Uint32(ext))
		var tc touched
		var out outcome
		tc, out, err = c.touch(k, ExpiryAt(exp, c.now().Unix()))
		if out == outFailed {
			c.binStoreFailed(err)
			return
		}
		e, v, cas = tc.e, tc.v, tc.cas
		if out == outDone {
			c.s.states.markFetched(k, cas, c.now().Unix())
		}
		c.s.detail.record(k, detailGet, out == outDone)
	} else {
		e, _, err = c.fetch(k, true, Read{}) // NB: a get writes nothing over what it read
		if err != nil {
			c.binStoreFailed(err)
			return
		}
		if e.Found {
			v, cas = e.Siblings[e.Chosen], e.Cas
		}
	}
	withKey := c.bop == binGetK || c.bop == binGATK
	if !e.Found {
		if c.bquiet {
			return
		}
		if withKey {
			c.out = appendBinHeader(c.out[:0], c.bh.Opcode, binStatusKeyNotFound, len(key), 0, len(key), c.bh.Opaque, 0)
			c.out = append(c.out, key...)
			c.bw.Write(c.out)
			return
		}
		c.binError(binStatusKeyNotFound, "")
		return
	}
	var flags [4]byte
	binary.BigEndian.PutUint32(flags[:], v.Flags)
	if c.bop == binTouch {
		c.binReplyAlways(flags[:], nil, nil, cas)
		return
	}
	if !c.acct.Reserve(len(v.Data)) {
		c.noMemory("a reply")
		c.binError(binStatusNoMemory, "")
		return
	}
	if withKey {
		c.binReplyAlways(flags[:], key, v.Data, cas)
	} else {
		c.binReplyAlways(flags[:], nil, v.Data, cas)
	}
	c.acct.Release(len(v.Data))
}

// binStore: SET, ADD, REPLACE, APPEND, PREPEND and their quiet forms. The value is reserved from the
// memory budget before it is read (refused: read and dropped, answered ENOMEM). A cas unique in the header
// turns SET, ADD and REPLACE into a cas (as memcached does); APPEND and PREPEND check it.
func (c *conn) binStore(ext, key []byte) bool {
	n := c.bh.valueLen()
	held := len(key) + n
	if !c.acct.Reserve(held) {
		c.noMemory("a binary value")
		c.s.stats.cmdSet.Add(1)
		if _, err := c.br.Discard(n); err != nil {
			c.ioDone(err)
			return false
		}
		c.binError(binStatusNoMemory, "")
		return true
	}
	defer c.acct.Release(held)
	buf := make([]byte, held)
	k, data := buf[:len(key):len(key)], buf[len(key):]
	copy(k, key)
	var flags uint32
	var exptime int64
	if len(ext) == 8 {
		flags = binary.BigEndian.Uint32(ext)
		exptime = int64(binary.BigEndian.Uint32(ext[4:]))
	}
	if _, err := io.ReadFull(c.br, data); err != nil {
		c.ioDone(err)
		return false
	}
	r := storeReq{key: k, data: data, flags: flags, expiry: ExpiryAt(exptime, c.now().Unix()), cas: c.bh.Cas,
		checkCas: c.bh.Cas != 0}
	switch c.bop {
	case binSet:
		r.mode = storeSet
	case binAdd:
		r.mode = storeAdd
	case binReplace:
		r.mode = storeReplace
	case binAppend:
		r.mode = storeAppend
	case binPrepend:
		r.mode = storePrepend
	}
	if r.cas != 0 && (r.mode == storeSet || r.mode == storeAdd || r.mode == storeReplace) {
		r.mode = storeCas
	}
	out, cas, err := c.store(r)
	c.binOutcome(out, err, cas)
	return true
}

// binArith: INCREMENT, DECREMENT and their quiet forms. Extras: delta, initial value, expiration; an
// expiration other than 0xffffffff creates a missing key with the initial value. The reply holds the new
// value (8 bytes) and its cas unique.
func (c *conn) binArith(ext, key []byte) {
	exp := binary.BigEndian.Uint32(ext[16:])
	r := arithReq{
		key:      bytes.Clone(key),
		incr:     c.bop == binIncrement,
		delta:    binary.BigEndian.Uint64(ext),
		cas:      c.bh.Cas,
		checkCas: c.bh.Cas != 0,
	}
	if exp != 0xffffffff {
		r.vivify, r.initial = true, binary.BigEndian.Uint64(ext[8:])
		r.vivifyExpiry = ExpiryAt(int64(exp), c.now().Unix())
	}
	res, out, err := c.arith(r)
	if out != outDone {
		c.binOutcome(out, err, 0)
		return
	}
	var val [8]byte
	binary.BigEndian.PutUint64(val[:], res.value)
	c.binReply(nil, nil, val[:], res.cas)
}

// binFlush: FLUSH and FLUSHQ, with an optional delay (an exptime) in the extras. Refused with an auth
// error when flush_all is not allowed (memcached's status).
func (c *conn) binFlush(ext []byte) {
	if !c.s.cfg.FlushAllEnabled {
		c.binError(binStatusAuthError, "")
		return
	}
	c.s.stats.cmdFlush.Add(1)
	var delay int64
	if len(ext) == 4 {
		delay = int64(binary.BigEndian.Uint32(ext))
	}
	now := c.now()
	at := FlushAt(delay, now)
	if err := c.s.store.FlushAll(c.s.ctx, at); err != nil {
		c.binStoreFailed(err)
		return
	}
	if !at.After(now) {
		c.s.states.reset()
	}
	c.binReply(nil, nil, nil, 0)
}

// binStats: STAT with a group in the key: none (the general stats), settings, reset, detail on|off|dump,
// items|slabs|sizes|conns (empty). Each stat is one response (key: name, value: value), then an empty
// one ends the list. Any other group answers not found.
func (c *conn) binStats(group []byte) {
	var lines []Stat
	switch string(group) {
	case "":
		lines = c.s.generalStats()
	case "settings":
		lines = c.s.settingsStats()
	case "reset":
		c.s.resetStats()
	case "detail on", "detail off":
		c.s.detail.on.Store(string(group) == "detail on")
	case "detail dump":
		// One stat holds the whole dump (memcached's "detailed"): its bytes are reserved first.
		snap := c.s.detail.snapshot()
		n := dumpLen(snap)
		if !c.acct.Reserve(n) {
			c.noMemory("a stats dump")
			c.binError(binStatusNoMemory, "")
			return
		}
		dump := make([]byte, 0, n)
		for _, l := range snap {
			dump = l.appendLine(dump)
		}
		dump = append(dump, replyEnd...)
		c.binReplyAlways(nil, []byte("detailed"), dump, 0)
		c.acct.Release(n)
	case "items", "slabs", "sizes", "conns":
	default:
		c.binError(binStatusKeyNotFound, "")
		return
	}
	for _, st := range lines {
		// NB: binary stats carry any bytes; the name is kept to one token, as in text.
		c.binReplyAlways(nil, appendStatName(nil, st.Name), []byte(st.Value), 0)
	}
	c.binReplyAlways(nil, nil, nil, 0)
}

// binSASL: SASL_AUTH with the PLAIN mechanism (the only one offered) checks the user and password against
// the user file; SASL_STEP has no step to take for PLAIN. A failure answers an auth error and the
// connection stays unauthenticated.
func (c *conn) binSASL(mech []byte, n int) bool {
	msg := make([]byte, n) // NB: at most maxSASLData (checkBinRequest)
	if _, err := io.ReadFull(c.br, msg); err != nil {
		c.ioDone(err)
		return false
	}
	c.s.stats.authCmds.Add(1)
	if c.bop == binSASLAuth && string(mech) == "PLAIN" {
		authz, user, pass, ok := parseSASLPlain(msg)
		if ok && (len(authz) == 0 || bytes.Equal(authz, user)) && c.s.cfg.Users.Check(user, pass) {
			c.authed = true
			c.binReply(nil, nil, []byte("Authenticated"), 0)
			return true
		}
	}
	c.s.stats.authErrors.Add(1)
	c.s.logAuth.Warn(c.s.log, "memcache: authentication failed", "remote", c.remote, "mech", strconv.Quote(string(mech)))
	c.binError(binStatusAuthError, "")
	return true
}
