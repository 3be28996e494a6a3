package memcache

import "bufio"

// lineReader reads request lines from a buffered stream, apart from the connection loop that acts on them.
// A line that fits the bufio buffer is returned in place, without copying; a longer one is gathered in buf,
// never beyond max plus one buffer.
type lineReader struct {
	r   *bufio.Reader
	max int // longest line, terminator included
	buf []byte
}

// readLine returns the next line without its "\r\n" (a bare "\n" is accepted, as memcached does). The slice is
// valid until the next read from r. A line longer than max is read to its end, dropped, and reported as
// ErrLineTooLong: the stream stays in sync. A line cut off by EOF is dropped with the read error.
func (l *lineReader) readLine() ([]byte, error) {
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
	l.buf = append(l.buf[:0], s...)
	for {
		if len(l.buf) > l.max {
			if err := l.discardLine(); err != nil {
				return nil, err
			}
			return nil, ErrLineTooLong
		}
		s, err = l.r.ReadSlice('\n')
		l.buf = append(l.buf, s...)
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
