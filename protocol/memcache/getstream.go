package memcache

import (
	"bufio"
	"bytes"
)

// Retrieval lines longer than the read buffer (a multi-get of thousands of keys) are served key by key as
// they arrive, as memcached serves them: no line buffer grows, so their length needs no limit (the whole
// line must still arrive within Config.ReadTimeout).

// maxLeadingSpaces is how many spaces may come before a retrieval command that is streamed (memcached's).
const maxLeadingSpaces = 100

// isRetrievalStart reports whether s, the start of a line, begins with a retrieval command and a space:
// get, gets, gat or gats, after at most maxLeadingSpaces spaces.
func isRetrievalStart(s []byte) bool {
	i := 0
	for i < len(s) && s[i] == ' ' {
		if i++; i > maxLeadingSpaces {
			return false
		}
	}
	rest := s[i:]
	for _, p := range [...]string{"get ", "gets ", "gat ", "gats "} {
		if bytes.HasPrefix(rest, []byte(p)) {
			return true
		}
	}
	return false
}

// tokenSplitter cuts a line that arrives in chunks into space-separated tokens without gathering the line:
// only a token that runs across a chunk boundary is kept, in carry, and at most max bytes of it; a longer
// token is reported as overlong, without its bytes. Pure: it does no I/O.
type tokenSplitter struct {
	carry []byte // the partial token, len <= max (cap max+1 given by the caller)
	over  bool   // the partial token is already longer than max
	max   int
}

// feed passes each token that ends in chunk (or at chunk's end when last) to emit, in order; a token cut
// by chunk's end is kept for the next chunk. emit returns false to stop; feed then returns false.
func (t *tokenSplitter) feed(chunk []byte, last bool, emit func(tok []byte, overlong bool) bool) bool {
	for i := 0; i < len(chunk); {
		if chunk[i] == ' ' {
			if (len(t.carry) > 0 || t.over) && !t.flush(emit) {
				return false
			}
			i++
			continue
		}
		j := i
		for j < len(chunk) && chunk[j] != ' ' {
			j++
		}
		tok := chunk[i:j]
		i = j
		switch {
		case j == len(chunk) && !last:
			t.add(tok) // cut by the chunk's end
		case len(t.carry) > 0 || t.over:
			t.add(tok)
			if !t.flush(emit) {
				return false
			}
		case len(tok) > t.max:
			if !emit(nil, true) {
				return false
			}
		default:
			if !emit(tok, false) {
				return false
			}
		}
	}
	if last && (len(t.carry) > 0 || t.over) {
		return t.flush(emit)
	}
	return true
}

func (t *tokenSplitter) add(tok []byte) {
	if t.over {
		return
	}
	if len(t.carry)+len(tok) > t.max {
		t.over, t.carry = true, t.carry[:0]
		return
	}
	t.carry = append(t.carry, tok...)
}

func (t *tokenSplitter) flush(emit func([]byte, bool) bool) bool {
	tok, over := t.carry, t.over
	t.carry, t.over = t.carry[:0], false
	if over {
		return emit(nil, true)
	}
	return emit(tok, false)
}

// trimCarriedCR drops a '\r' that ended the previous chunk when the line's last chunk is just its "\n".
func (t *tokenSplitter) trimCarriedCR() {
	if n := len(t.carry); n > 0 && t.carry[n-1] == '\r' {
		t.carry = t.carry[:n-1]
	}
}

// streamRetrieval serves a get, gets, gat or gats line whose first chunk (no newline in it) is first:
// each key is looked up and answered as soon as it is complete. A bad key or exptime ends the reply with
// its error line (VALUE items already sent stay sent) and the rest of the line is dropped. It returns false
// when the connection must close.
func (c *conn) streamRetrieval(first []byte) bool {
	ts := tokenSplitter{carry: c.carry[:0], max: MaxKeyLength}
	c.cmd = Command{Bytes: -1, Keys: c.cmd.Keys[:0], Args: c.cmd.Args[:0]}
	const (
		wantName = iota
		wantExptime
		wantKeys
	)
	state, keys := wantName, 0
	var failed *ProtocolError
	ended := false // the reply ended with an error line already
	emit := func(tok []byte, overlong bool) bool {
		switch state {
		case wantName:
			c.cmd.Op = lookupOp(tok) // NB: isRetrievalStart checked it is get, gets, gat or gats
			state = wantKeys
			if c.cmd.Op == OpGat || c.cmd.Op == OpGats {
				state = wantExptime
			}
			return true
		case wantExptime:
			var ok bool
			if c.cmd.Exptime, ok = parseInt(tok); overlong || !ok {
				failed = clientError(ErrBadNumber, msgBadExptime)
				return false
			}
			state = wantKeys
			return true
		}
		keys++
		if overlong {
			failed = clientError(ErrKeyTooLong, msgKeyTooLong)
			return false
		}
		if e := keyError(tok); e != nil {
			failed = e
			return false
		}
		var ok bool
		if c.cmd.Op == OpGat || c.cmd.Op == OpGats {
			ok = c.getAndTouchKey(tok)
		} else {
			ok = c.retrieveKey(tok)
		}
		ended = !ok
		return ok
	}
	chunk, last := first, false
	for ts.feed(chunk, last, emit) && !last {
		s, err := c.br.ReadSlice('\n')
		switch err {
		case nil:
			chunk, last = trimEOL(s), true
			if len(s) == 1 {
				ts.trimCarriedCR()
			}
		case bufio.ErrBufferFull:
			chunk = s
		default:
			c.ioDone(err)
			return false
		}
	}
	if !last {
		if err := c.lr.discardLine(); err != nil {
			c.ioDone(err)
			return false
		}
	}
	switch {
	case failed != nil:
		c.s.stats.protocolErrors.Add(1)
		c.writeError(failed.Kind, failed.Msg)
	case ended:
	case state != wantKeys || (keys == 0 && (c.cmd.Op == OpGet || c.cmd.Op == OpGets)):
		c.bw.Write(replyError) // a get without keys, a gat without its exptime
	default:
		c.bw.Write(replyEnd)
	}
	return true
}
