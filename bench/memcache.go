package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// Memcache text protocol tokens.
var (
	mcGet      = []byte("get ")
	mcSet      = []byte("set ")
	mcSetFlags = []byte(" 0 0 ") // flags 0, exptime 0
	mcCRLF     = []byte("\r\n")

	mcEnd         = []byte("END\r\n")
	mcStored      = []byte("STORED\r\n")
	mcValue       = []byte("VALUE ")
	mcServerError = []byte("SERVER_ERROR")
	mcNotStored   = []byte("NOT_STORED\r\n")
	mcExists      = []byte("EXISTS\r\n")
	mcNotFound    = []byte("NOT_FOUND\r\n")
)

const (
	mcBufSize = 16 << 10
	// mcMaxData bounds a VALUE data block we are willing to skip; larger means we are out of step.
	mcMaxData = 64 << 20
	// mcMaxValues bounds VALUE lines in one get reply (a server may return siblings).
	mcMaxValues = 1024
)

// memcacheClient is the memcache text protocol client: get and set, replies parsed in place from the
// bufio.Reader's buffer, data blocks skipped without copying.
type memcacheClient struct {
	r   *bufio.Reader
	w   *bufio.Writer
	num [20]byte
}

var _ Client = (*memcacheClient)(nil)

func newMemcacheClient(rw io.ReadWriter) *memcacheClient {
	return &memcacheClient{r: bufio.NewReaderSize(rw, mcBufSize), w: bufio.NewWriterSize(rw, mcBufSize)}
}

func (c *memcacheClient) Queue(kind OpKind, key, value []byte) error {
	switch kind {
	case OpGet:
		c.w.Write(mcGet)
		c.w.Write(key)
		_, err := c.w.Write(mcCRLF) // bufio.Writer errors are sticky: the last write reports any
		return err
	case OpSet:
		c.w.Write(mcSet)
		c.w.Write(key)
		c.w.Write(mcSetFlags)
		c.w.Write(strconv.AppendInt(c.num[:0], int64(len(value)), 10))
		c.w.Write(mcCRLF)
		c.w.Write(value)
		_, err := c.w.Write(mcCRLF)
		return err
	}
	return fmt.Errorf("bench: memcache: unsupported operation %v", kind)
}

func (c *memcacheClient) Flush() error { return c.w.Flush() }

func (c *memcacheClient) Read(kind OpKind, key []byte) (Outcome, error) {
	switch kind {
	case OpGet:
		return c.readGet(key)
	case OpSet:
		line, err := c.readLine()
		if err != nil {
			return 0, err
		}
		if bytes.Equal(line, mcStored) {
			return Stored, nil
		}
		return 0, replyErr(line)
	}
	return 0, fmt.Errorf("bench: memcache: unsupported operation %v", kind)
}

// readGet reads VALUE blocks (zero, one, or several siblings) up to END.
func (c *memcacheClient) readGet(key []byte) (Outcome, error) {
	for values := 0; ; values++ {
		line, err := c.readLine()
		if err != nil {
			return 0, err
		}
		if bytes.Equal(line, mcEnd) {
			if values > 0 {
				return Hit, nil
			}
			return Miss, nil
		}
		if !bytes.HasPrefix(line, mcValue) || values >= mcMaxValues {
			return 0, replyErr(line)
		}
		n, err := parseValueLine(line[len(mcValue):len(line)-2], key)
		if err != nil {
			return 0, err
		}
		if _, err := c.r.Discard(n); err != nil {
			return 0, err
		}
		cr, err1 := c.r.ReadByte()
		lf, err2 := c.r.ReadByte()
		if err := errors.Join(err1, err2); err != nil {
			return 0, err
		}
		if cr != '\r' || lf != '\n' {
			return 0, fmt.Errorf("%w: data block of %q not terminated by CRLF", ErrProtocol, key)
		}
	}
}

// readLine returns the next line including its CRLF, valid until the next read.
func (c *memcacheClient) readLine() ([]byte, error) { return readReplyLine(c.r) }

// readReplyLine returns the next line of r including its CRLF, valid until the next read.
func readReplyLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, fmt.Errorf("%w: reply line longer than %d bytes", ErrProtocol, mcBufSize)
	case err != nil:
		return nil, err
	case len(line) < 2 || line[len(line)-2] != '\r':
		return nil, fmt.Errorf("%w: reply line %q not terminated by CRLF", ErrProtocol, quoteLine(line))
	}
	return line, nil
}

// parseValueLine parses "<key> <flags> <bytes>[ <cas>]" (after "VALUE ", without CRLF) and returns <bytes>.
func parseValueLine(rest, key []byte) (int, error) {
	k, tail, _ := bytes.Cut(rest, []byte{' '})
	flags, tail, _ := bytes.Cut(tail, []byte{' '})
	size, cas, hasCas := bytes.Cut(tail, []byte{' '})
	n, okSize := parseDecimal(size)
	_, okFlags := parseDecimal(flags)
	_, okCas := parseDecimal(cas)
	switch {
	case !bytes.Equal(k, key):
		return 0, fmt.Errorf("%w: VALUE for %q, want %q", ErrProtocol, quoteLine(k), key)
	case !okFlags || !okSize || hasCas && !okCas:
		return 0, fmt.Errorf("%w: bad VALUE line %q", ErrProtocol, quoteLine(rest))
	case n > mcMaxData:
		return 0, fmt.Errorf("%w: VALUE of %d bytes", ErrProtocol, n)
	}
	return int(n), nil
}

// parseDecimal parses an unsigned decimal of at most 20 digits without allocating.
func parseDecimal(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		if n > (math.MaxUint64-9)/10 {
			return 0, false
		}
		n = n*10 + uint64(d-'0')
	}
	return n, true
}

// replyErr classifies an unexpected reply line: replies after which the server is still in step become
// *ReplyError; anything else (ERROR, CLIENT_ERROR, garbage) is a protocol error.
func replyErr(line []byte) error {
	if bytes.HasPrefix(line, mcServerError) || bytes.Equal(line, mcNotStored) ||
		bytes.Equal(line, mcExists) || bytes.Equal(line, mcNotFound) {
		return &ReplyError{Line: quoteLine(line[:len(line)-2])}
	}
	return fmt.Errorf("%w: unexpected reply %q", ErrProtocol, quoteLine(line))
}
