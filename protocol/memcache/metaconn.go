package memcache

import (
	"bytes"
	"encoding/base64"
	"strconv"
)

// Meta reply tokens.
var (
	replyMN   = []byte("MN\r\n")
	replyEN   = []byte("EN\r\n")
	metaVA    = []byte("VA ")
	metaHD    = []byte("HD")
	metaNS    = []byte("NS")
	metaEX    = []byte("EX")
	metaNF    = []byte("NF")
	metaEN    = []byte("EN")
	metaME    = []byte("ME ")
	metaFlagB = []byte(" b")
)

// handleMeta executes one meta command line (semantics in doc.go). It returns false when the connection
// must close. Errors are always answered, q or not (protocol.txt).
func (c *conn) handleMeta(line []byte) bool {
	m := &c.meta
	c.cmd.Op, c.cmd.NoReply = OpMeta, false
	if pe := m.Parse(line, c.mkey[:], c.s.cfg.MaxValueBytes); pe != nil {
		return c.metaRejected(pe)
	}
	switch m.Code {
	case metaNoop:
		c.bw.Write(replyMN)
	case metaGet:
		c.metaGet()
	case metaSet:
		return c.metaSet()
	case metaDelete:
		c.metaDelete()
	case metaArith:
		c.metaArith()
	case metaDebug:
		c.metaDebug()
	}
	return true
}

// metaRejected answers a meta line the parser refused and discards ms's data block when its length was
// read. An ms over MaxValueBytes in set mode also removes the key's old value, as the text set does.
func (c *conn) metaRejected(pe *ProtocolError) bool {
	c.s.stats.protocolErrors.Add(1)
	m := &c.meta
	var key []byte
	if m.Code == metaSet && pe.Err == ErrValueTooLarge {
		c.s.stats.cmdSet.Add(1)
		c.s.stats.storeTooLarge.Add(1)
		if m.Mode == 0 || m.Mode == 'S' {
			key = bytes.Clone(m.Key) // NB: before the discard moves the read buffer under it
		}
	}
	if pe.Swallow > 0 {
		if _, err := c.br.Discard(int(pe.Swallow)); err != nil {
			c.ioDone(err)
			return false
		}
	}
	if key != nil {
		c.removeOversized(key)
	}
	c.writeError(pe.Kind, pe.Msg)
	return true
}

// appendMetaKey appends " k<key>", the key base64 again (followed by " b") when it came so.
func (c *conn) appendMetaKey(dst []byte) []byte {
	dst = append(dst, " k"...)
	m := &c.meta
	if !m.Base64 {
		return append(dst, m.Key...)
	}
	dst = base64.StdEncoding.AppendEncode(dst, m.Key)
	return append(dst, metaFlagB...)
}

// appendMetaEcho appends the flags every reply echoes, in request order: O (the opaque token) and k.
func (c *conn) appendMetaEcho(dst []byte) []byte {
	for _, f := range c.meta.FlagList() {
		switch f.Flag {
		case 'O':
			dst = append(append(dst, ' '), c.meta.Opaque...)
		case 'k':
			dst = c.appendMetaKey(dst)
		}
	}
	return dst
}

// metaStoreFailed answers a Store failure (always, q or not).
func (c *conn) metaStoreFailed(err error) {
	c.storeFailed(err) // NB: c.cmd.NoReply is false for meta commands
}

// metaGet: mg. A hit answers "VA <size> <flags>" and the value (v), or "HD <flags>"; a miss "EN" (not with
// q). The value is the sibling get returns; c is the cas unique of the whole sibling set (as gets shows
// it), so an ms with C supersedes every sibling. T rewrites the value with a new expiry (a new cas), N
// creates a missing key empty (the creating client wins: W), R and a stale item hand the first client W
// and the others Z.
func (c *conn) metaGet() {
	m := &c.meta
	key := bytes.Clone(m.Key)
	want := Read{Context: m.HasTTL} // NB: T rewrites the value over the read's context
	e, before, err := c.fetch(key, !m.NoBump, want)
	if err != nil {
		c.metaStoreFailed(err)
		return
	}
	now := c.now()
	nowSec := now.Unix()
	created := false
	if !e.Found && m.HasVivify {
		if c.s.states.claim(key) {
			exp := ExpiryAt(m.VivifyTTL, nowSec)
			for _, f := range m.FlagList() { // NB: memcached applies T and N in request order
				switch f.Flag {
				case 'T':
					exp = ExpiryAt(m.TTL, nowSec)
				case 'N':
					exp = ExpiryAt(m.VivifyTTL, nowSec)
				}
			}
			out, cas, err := c.store(storeReq{mode: storeAdd, key: key, data: []byte{}, expiry: exp})
			switch out {
			case outDone:
				c.s.states.settle(key, cas, true)
				created = true
				e = Entry{Found: true, Siblings: []Value{{Data: []byte{}, Expiry: exp, LastMod: now.UnixNano()}},
					Cas: cas}
				before = itemBits{}
			case outFailed:
				c.s.states.settle(key, 0, false)
				c.metaStoreFailed(err)
				return
			default: // someone created it first: read what they made
				c.s.states.settle(key, 0, false)
			}
		}
		if !created {
			if e, before, err = c.fetch(key, !m.NoBump, want); err != nil {
				c.metaStoreFailed(err)
				return
			}
		}
	}
	if !e.Found {
		if !m.Quiet {
			c.out = c.appendMetaEcho(append(c.out[:0], metaEN...))
			c.bw.Write(append(c.out, crlf...))
		}
		return
	}
	v, cas := e.Siblings[e.Chosen], e.Cas
	oldExpiry := v.Expiry
	if m.HasTTL && !created {
		v.Expiry, v.LastMod = ExpiryAt(m.TTL, nowSec), now.UnixNano()
		c.s.stats.cmdTouch.Add(1)
		newCas, err := c.s.store.Set(c.s.ctx, key, v, Supersede{Context: e.Context})
		if err != nil {
			c.metaStoreFailed(err)
			return
		}
		c.s.stats.touchHits.Add(1)
		c.s.states.move(key, cas, newCas, nil)
		cas = newCas
	}
	// The win token: the creator of the item has it; else a client wins it when the item is stale or its
	// TTL is below R, if no one has it yet. NB: tested and taken under the table's lock, so of racing
	// readers on this node exactly one wins.
	won, tokenSent := created, before.tokenSent
	recache := m.HasRecache && v.Expiry != 0 && v.Expiry < ExpiryAt(m.Recache, nowSec)
	if !created && (recache || before.stale) {
		c.s.states.update(key, cas, func(b *itemBits) {
			if b.tokenSent {
				tokenSent = true
				return
			}
			b.tokenSent, won = true, true
		})
	}

	b := c.out[:0]
	if m.Value {
		b = strconv.AppendInt(append(b, metaVA...), int64(len(v.Data)), 10)
	} else {
		b = append(b, metaHD...)
	}
	exp := oldExpiry
	if created {
		exp = v.Expiry
	}
	for _, f := range m.FlagList() {
		switch f.Flag {
		case 'T':
			exp = v.Expiry
		case 's':
			b = strconv.AppendInt(append(b, " s"...), int64(len(v.Data)), 10)
		case 't':
			b = appendTTL(append(b, " t"...), exp, nowSec)
		case 'c':
			b = strconv.AppendUint(append(b, " c"...), cas, 10)
		case 'f':
			b = strconv.AppendUint(append(b, " f"...), uint64(v.Flags), 10)
		case 'l':
			b = strconv.AppendInt(append(b, " l"...), sinceAccess(before, v, nowSec), 10)
		case 'h':
			if before.fetched {
				b = append(b, " h1"...)
			} else {
				b = append(b, " h0"...)
			}
		case 'O':
			b = append(append(b, ' '), m.Opaque...)
		case 'k':
			b = c.appendMetaKey(b)
		}
	}
	if tokenSent {
		b = append(b, " Z"...)
	}
	if before.stale {
		b = append(b, " X"...)
	}
	if won {
		b = append(b, " W"...)
	}
	c.out = append(b, crlf...)
	if !m.Value {
		c.bw.Write(c.out)
		return
	}
	if !c.reserveReply(len(v.Data)) {
		return
	}
	c.bw.Write(c.out)
	c.bw.Write(v.Data)
	c.bw.Write(crlf)
	c.acct.Release(len(v.Data))
}

// appendTTL appends the remaining time to live of an expiry at now: -1 for none.
func appendTTL(dst []byte, expiry, now int64) []byte {
	if expiry == 0 {
		return append(dst, "-1"...)
	}
	return strconv.AppendInt(dst, expiry-now, 10)
}

// sinceAccess is mg's l: seconds since the last read through this node before this request, or since the
// value was written if none was seen.
func sinceAccess(b itemBits, v Value, now int64) int64 {
	last := b.lastAccess
	if last == 0 {
		last = v.LastMod / 1e9
	}
	return max(now-last, 0)
}

// metaSet: ms. The mode (M) picks set (default, S), add (E), append (A), prepend (P) or replace (R); C
// turns set and replace into a cas and is checked by append and prepend; with I, a C that does not match
// stores the value anyway, marked stale. Answers HD (not with q), NS, EX or NF, with the O, k and c flags
// in request order (c: the new cas unique, 0 when nothing was stored).
func (c *conn) metaSet() bool {
	m := &c.meta
	held := len(m.Key) + m.DataLen + 2
	if !c.acct.Reserve(held) {
		c.noMemory("a data block")
		c.s.stats.cmdSet.Add(1)
		if _, err := c.br.Discard(m.DataLen + 2); err != nil {
			c.ioDone(err)
			return false
		}
		c.writeError(ReplyServerError, msgNoMemStoring)
		return true
	}
	defer c.acct.Release(held)
	key, data, chunkOK, ok := c.readBlock(m.Key, m.DataLen)
	if !ok {
		return false
	}
	if !chunkOK {
		c.s.stats.cmdSet.Add(1)
		c.s.stats.protocolErrors.Add(1)
		c.writeError(ReplyClientError, msgBadDataChunk)
		return true
	}
	r := storeReq{key: key, data: data, flags: m.ClientFlags}
	if m.HasTTL {
		r.expiry = ExpiryAt(m.TTL, c.now().Unix())
	}
	switch m.Mode {
	case 'E':
		r.mode = storeAdd
	case 'A':
		r.mode = storeAppend
	case 'P':
		r.mode = storePrepend
	case 'R':
		r.mode = storeReplace
	default:
		r.mode = storeSet
	}
	if m.HasCas {
		switch r.mode {
		case storeSet, storeReplace:
			r.mode, r.cas, r.stale = storeCas, m.Cas, m.Invalidate
		case storeAppend, storePrepend:
			r.cas, r.checkCas = m.Cas, true
		}
	}
	out, cas, err := c.store(r)
	var code []byte
	switch out {
	case outDone:
		if m.Quiet {
			return true
		}
		code = metaHD
	case outNotStored:
		code = metaNS
	case outExists:
		code = metaEX
	case outNotFound:
		code = metaNF
	case outTooLarge:
		c.writeError(ReplyServerError, msgTooLarge)
		return true
	case outNoMemory:
		c.writeError(ReplyServerError, msgNoMemStoring)
		return true
	default:
		c.metaStoreFailed(err)
		return true
	}
	if out != outDone {
		cas = 0
	}
	b := append(c.out[:0], code...)
	for _, f := range m.FlagList() {
		switch f.Flag {
		case 'O':
			b = append(append(b, ' '), m.Opaque...)
		case 'k':
			b = c.appendMetaKey(b)
		case 'c':
			b = strconv.AppendUint(append(b, " c"...), cas, 10)
		}
	}
	c.out = append(b, crlf...)
	c.bw.Write(c.out)
	return true
}

// metaDelete: md. Deletes the key (exactly the siblings read), or with I marks it stale: rewritten with a
// new cas unique (and the T expiry, if given), its win token cleared. C must name the sibling set. Answers
// HD (not with q), NF or EX, with O and k.
func (c *conn) metaDelete() {
	m := &c.meta
	key := bytes.Clone(m.Key)
	var out outcome
	var err error
	if m.Invalidate {
		out, err = c.invalidate(key, m.Cas, m.HasCas, m.HasTTL, ExpiryAt(m.TTL, c.now().Unix()))
	} else {
		out, err = c.remove(key, m.Cas, m.HasCas)
	}
	var code []byte
	switch out {
	case outDone:
		if m.Quiet {
			return
		}
		code = metaHD
	case outNotFound:
		code = metaNF
	case outExists:
		code = metaEX
	default:
		c.metaStoreFailed(err)
		return
	}
	c.out = c.appendMetaEcho(append(c.out[:0], code...))
	c.bw.Write(append(c.out, crlf...))
}

// metaArith: ma. Increments (M I or +, the default) or decrements (M D or -) by D (default 1); N creates a
// missing key with J (default 0); T sets the expiry; C must name the sibling set. Answers HD, or "VA
// <size>" and the new value with v (neither with q, unless the key was created), NF, or EX; flags t, c,
// O, k in request order.
func (c *conn) metaArith() {
	m := &c.meta
	nowSec := c.now().Unix()
	r := arithReq{
		key:      bytes.Clone(m.Key),
		incr:     m.Mode != 'D' && m.Mode != '-',
		delta:    m.Delta,
		cas:      m.Cas,
		checkCas: m.HasCas,
	}
	if m.HasVivify {
		r.vivify, r.initial = true, m.Initial
		for _, f := range m.FlagList() { // NB: memcached applies T and N to a created item in request order
			switch f.Flag {
			case 'T':
				r.vivifyExpiry = ExpiryAt(m.TTL, nowSec)
			case 'N':
				r.vivifyExpiry = ExpiryAt(m.VivifyTTL, nowSec)
			}
		}
	}
	if m.HasTTL {
		r.setExpiry, r.expiry = true, ExpiryAt(m.TTL, nowSec)
	}
	res, out, err := c.arith(r)
	switch out {
	case outDone:
	case outNotFound, outExists:
		code := metaNF
		if out == outExists {
			code = metaEX
		}
		c.out = c.appendMetaEcho(append(c.out[:0], code...))
		c.bw.Write(append(c.out, crlf...))
		return
	case outNonNumeric:
		c.writeError(ReplyClientError, msgNonNumeric)
		return
	default:
		c.metaStoreFailed(err)
		return
	}
	if m.Quiet && !res.created {
		return
	}
	var num [20]byte
	val := strconv.AppendUint(num[:0], res.value, 10)
	b := c.out[:0]
	if m.Value {
		b = strconv.AppendInt(append(b, metaVA...), int64(len(val)), 10)
	} else {
		b = append(b, metaHD...)
	}
	for _, f := range m.FlagList() {
		switch f.Flag {
		case 'c':
			b = strconv.AppendUint(append(b, " c"...), res.cas, 10)
		case 't':
			b = appendTTL(append(b, " t"...), res.expiry, nowSec)
		case 'O':
			b = append(append(b, ' '), m.Opaque...)
		case 'k':
			b = c.appendMetaKey(b)
		}
	}
	b = append(b, crlf...)
	if m.Value {
		b = append(append(b, val...), crlf...)
	}
	c.out = b
	c.bw.Write(b)
}

// metaDebug: me. "ME <key> exp=<n> la=<n> cas=<n> fetch=<yes|no> size=<n> siblings=<n>" for a live key
// (memcached's fields: exp is now minus the expiry, -1 for none; la the seconds since the last read through
// this node, or since the write; size the chosen value's bytes; gokai adds the sibling count and has no
// slab class), else EN. The read does not count as one.
func (c *conn) metaDebug() {
	m := &c.meta
	key := bytes.Clone(m.Key)
	e, err := c.get(key, Read{}) // NB: me writes nothing
	if err != nil {
		c.metaStoreFailed(err)
		return
	}
	if !e.Found {
		c.bw.Write(replyEN)
		return
	}
	v := e.Siblings[e.Chosen]
	bits := c.s.states.get(key, e.Cas)
	now := c.now().Unix()
	b := append(c.out[:0], metaME...)
	if m.Base64 {
		b = base64.StdEncoding.AppendEncode(b, key)
	} else {
		b = append(b, key...)
	}
	b = append(b, " exp="...)
	if v.Expiry == 0 {
		b = append(b, "-1"...)
	} else {
		b = strconv.AppendInt(b, now-v.Expiry, 10)
	}
	b = strconv.AppendInt(append(b, " la="...), sinceAccess(bits, v, now), 10)
	b = strconv.AppendUint(append(b, " cas="...), e.Cas, 10)
	if bits.fetched {
		b = append(b, " fetch=yes"...)
	} else {
		b = append(b, " fetch=no"...)
	}
	b = strconv.AppendInt(append(b, " size="...), int64(len(v.Data)), 10)
	b = strconv.AppendInt(append(b, " siblings="...), int64(len(e.Siblings)), 10)
	c.out = append(b, crlf...)
	c.bw.Write(c.out)
}
