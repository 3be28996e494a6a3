package memcache

import (
	"bufio"
	"errors"

	"github.com/gokai-kv/gokai/internal/netserve"
)

// errStreamRetrieval: the line is a retrieval command (get, gets, gat, gats) longer than the read buffer;
// readLine returns its first chunk, and the caller reads the rest key by key (streamRetrieval).
var errStreamRetrieval = errors.New("memcache: retrieval line to stream")

// errLineNoMemory: a request line longer than the read buffer did not fit in the memory budget; the line
// has been read to its end and dropped, so the stream stays in sync.
var errLineNoMemory = errors.New("memcache: out of memory reading request")

// lineReader reads request lines from a buffered stream, apart from the connection loop that acts on them.
// A line that fits the bufio buffer is returned in place, without copying; a longer one is gathered in buf,
// never beyond max plus one buffer. buf starts as base (a pooled buffer of at most keepLineBuf bytes);
// growth beyond keepLineBuf is reserved from acct first (nil: not accounted), and given back when the
// next line is read.
type lineReader struct {
	r    *bufio.Reader
	max  int // longest line, terminator included
	buf  []byte
	base []byte
	acct *netserve.Account
	res  int // bytes reserved from acct for buf beyond keepLineBuf
}

// readLine returns the next line without its "\r\n" (a bare "\n" is accepted, as memcached does). The slice is
// valid until the next read from r. A line longer than max is read to its end, dropped, and reported as
// ErrLineTooLong: the stream stays in sync. So is a long line the memory budget has no room for
// (errLineNoMemory). A line cut off by EOF is dropped with the read error.
//
// A retrieval line longer than r's buffer is not gathered: readLine returns its first chunk (the whole
// buffer, no newline in it) with errStreamRetrieval, and the rest is still to be read.
func (l *lineReader) readLine() ([]byte, error) {
	l.shrink()
	s, err := l.r.ReadSlice('\n')
	if err == nil {
		if len(s) > l.max {
			return nil, ErrLineTooLong
		}
		return trimEOL(s), nil
	}
	if err != bufio.ErrBufferFull {
		return nil, err
	}
	if isRetrievalStart(s) {
		return s, errStreamRetrieval
	}
	if !l.add(s) {
		return nil, l.drop(errLineNoMemory)
	}
	for {
		if len(l.buf) > l.max {
			return nil, l.drop(ErrLineTooLong)
		}
		s, err = l.r.ReadSlice('\n')
		if !l.add(s) {
			if err == nil {
				return nil, errLineNoMemory
			}
			if err != bufio.ErrBufferFull {
				return nil, err
			}
			return nil, l.drop(errLineNoMemory)
		}
		switch {
		case err == nil:
			if len(l.buf) > l.max {
				return nil, ErrLineTooLong
			}
			return trimEOL(l.buf), nil
		case err != bufio.ErrBufferFull:
			return nil, err
		}
	}
}

// add appends s to buf, reserving any growth past keepLineBuf first; it reports false (buf unchanged) if
// the reservation fails.
func (l *lineReader) add(s []byte) bool {
	if n := len(l.buf) + len(s); n > cap(l.buf) {
		size := max(2*cap(l.buf), n)
		if extra := max(size-keepLineBuf, 0) - l.res; extra > 0 {
			if !l.acct.Reserve(extra) {
				return false
			}
			l.res += extra
		}
		nb := make([]byte, len(l.buf), size)
		copy(nb, l.buf)
		l.buf = nb
	}
	l.buf = append(l.buf, s...)
	return true
}

// drop discards the rest of the current line and returns err, or the read error that stopped it.
func (l *lineReader) drop(err error) error {
	if rerr := l.discardLine(); rerr != nil {
		return rerr
	}
	return err
}

// shrink gives back a buffer grown past keepLineBuf, and its reservation: the line in it is no longer used.
func (l *lineReader) shrink() {
	if cap(l.buf) > keepLineBuf {
		l.buf = l.base[:0]
	}
	l.buf = l.buf[:0]
	if l.res > 0 {
		l.acct.Release(l.res)
		l.res = 0
	}
}

// discardLine drops input up to and including the next '\n'.
func (l *lineReader) discardLine() error {
	for {
		_, err := l.r.ReadSlice('\n')
		if err != bufio.ErrBufferFull {
			return err
		}
	}
}

// trimEOL removes a trailing "\n" and the "\r" before it, if any.
func trimEOL(s []byte) []byte {
	if n := len(s); n > 0 && s[n-1] == '\n' {
		s = s[:n-1]
		if n := len(s); n > 0 && s[n-1] == '\r' {
			s = s[:n-1]
		}
	}
	return s
}
