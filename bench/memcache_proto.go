package bench

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
)

// The memcache binary protocol and meta commands, for comparing the three memcache faces on one server.

// Binary protocol constants (memcached's protocol_binary.h).
const (
	binReqMagic  = 0x80
	binResMagic  = 0x81
	binOpGet     = 0x00
	binOpSet     = 0x01
	binHeaderLen = 24
	binNotFound  = 0x0001
)

// binaryClient is the memcache binary protocol client: GET, and SET (blind, flags 0, no expiry). Replies
// are matched to requests in order; their bodies are skipped without copying.
type binaryClient struct {
	r   *bufio.Reader
	w   *bufio.Writer
	hdr [binHeaderLen]byte
	ext [8]byte // SET extras: flags 0, expiration 0
}

var _ Client = (*binaryClient)(nil)

func newBinaryClient(rw io.ReadWriter) *binaryClient {
	return &binaryClient{r: bufio.NewReaderSize(rw, mcBufSize), w: bufio.NewWriterSize(rw, mcBufSize)}
}

func (c *binaryClient) Queue(kind OpKind, key, value []byte) error {
	var op byte
	var ext []byte
	switch kind {
	case OpGet:
		op, value = binOpGet, nil
	case OpSet:
		op, ext = binOpSet, c.ext[:]
	default:
		return fmt.Errorf("bench: memcache-binary: unsupported operation %v", kind)
	}
	h := c.hdr[:]
	clear(h)
	h[0], h[1] = binReqMagic, op
	binary.BigEndian.PutUint16(h[2:], uint16(len(key)))
	h[4] = byte(len(ext))
	binary.BigEndian.PutUint32(h[8:], uint32(len(ext)+len(key)+len(value)))
	c.w.Write(h)
	c.w.Write(ext)
	c.w.Write(key)
	_, err := c.w.Write(value) // bufio.Writer errors are sticky: the last write reports any
	return err
}

func (c *binaryClient) Flush() error { return c.w.Flush() }

func (c *binaryClient) Read(kind OpKind, key []byte) (Outcome, error) {
	if _, err := io.ReadFull(c.r, c.hdr[:]); err != nil {
		return 0, err
	}
	h := c.hdr[:]
	want := byte(binOpGet)
	if kind == OpSet {
		want = binOpSet
	}
	status := binary.BigEndian.Uint16(h[6:])
	body := binary.BigEndian.Uint32(h[8:])
	switch {
	case h[0] != binResMagic:
		return 0, fmt.Errorf("%w: memcache-binary: response magic %#x", ErrProtocol, h[0])
	case h[1] != want:
		return 0, fmt.Errorf("%w: memcache-binary: response to opcode %#x, want %#x", ErrProtocol, h[1], want)
	case body > mcMaxData:
		return 0, fmt.Errorf("%w: memcache-binary: body of %d bytes", ErrProtocol, body)
	}
	if kind == OpGet && status == binNotFound {
		if _, err := c.r.Discard(int(body)); err != nil {
			return 0, err
		}
		return Miss, nil
	}
	if status != 0 {
		// The body is the error text: short, read to show it.
		n := min(int(body), 128)
		text := make([]byte, n) // NB: errors only
		if _, err := io.ReadFull(c.r, text); err != nil {
			return 0, err
		}
		if _, err := c.r.Discard(int(body) - n); err != nil {
			return 0, err
		}
		return 0, &ReplyError{Line: fmt.Sprintf("status %#04x %s", status, quoteLine(text))}
	}
	if _, err := c.r.Discard(int(body)); err != nil {
		return 0, err
	}
	if kind == OpSet {
		return Stored, nil
	}
	return Hit, nil
}

// Meta command tokens.
var (
	metaGetCmd = []byte("mg ")
	metaGetV   = []byte(" v\r\n")
	metaSetCmd = []byte("ms ")
	metaHD     = []byte("HD\r\n")
	metaEN     = []byte("EN\r\n")
	metaVA     = []byte("VA ")
)

// metaClient speaks memcached's meta commands: "mg <key> v" and "ms <key> <bytes>" (a set: blind, flags
// 0, no expiry). Replies are parsed in place; values are skipped without copying.
type metaClient struct {
	r   *bufio.Reader
	w   *bufio.Writer
	num [20]byte
}

var _ Client = (*metaClient)(nil)

func newMetaClient(rw io.ReadWriter) *metaClient {
	return &metaClient{r: bufio.NewReaderSize(rw, mcBufSize), w: bufio.NewWriterSize(rw, mcBufSize)}
}

func (c *metaClient) Queue(kind OpKind, key, value []byte) error {
	switch kind {
	case OpGet:
		c.w.Write(metaGetCmd)
		c.w.Write(key)
		_, err := c.w.Write(metaGetV)
		return err
	case OpSet:
		c.w.Write(metaSetCmd)
		c.w.Write(key)
		c.w.WriteByte(' ')
		c.w.Write(strconv.AppendInt(c.num[:0], int64(len(value)), 10))
		c.w.Write(mcCRLF)
		c.w.Write(value)
		_, err := c.w.Write(mcCRLF)
		return err
	}
	return fmt.Errorf("bench: memcache-meta: unsupported operation %v", kind)
}

func (c *metaClient) Flush() error { return c.w.Flush() }

func (c *metaClient) Read(kind OpKind, key []byte) (Outcome, error) {
	line, err := readReplyLine(c.r)
	if err != nil {
		return 0, err
	}
	switch {
	case kind == OpSet && bytes.Equal(line, metaHD):
		return Stored, nil
	case kind == OpGet && bytes.Equal(line, metaEN):
		return Miss, nil
	case kind == OpGet && bytes.HasPrefix(line, metaVA):
		size, _, _ := bytes.Cut(line[len(metaVA):len(line)-2], []byte{' '})
		n, ok := parseDecimal(size)
		if !ok || n > mcMaxData {
			return 0, fmt.Errorf("%w: bad VA line %q", ErrProtocol, quoteLine(line))
		}
		if _, err := c.r.Discard(int(n)); err != nil {
			return 0, err
		}
		cr, err1 := c.r.ReadByte()
		lf, err2 := c.r.ReadByte()
		if err1 != nil || err2 != nil {
			return 0, io.ErrUnexpectedEOF
		}
		if cr != '\r' || lf != '\n' {
			return 0, fmt.Errorf("%w: data block of %q not terminated by CRLF", ErrProtocol, key)
		}
		return Hit, nil
	case bytes.HasPrefix(line, mcServerError), bytes.HasPrefix(line, []byte("NS")),
		bytes.HasPrefix(line, []byte("EX")), bytes.HasPrefix(line, []byte("NF")):
		return 0, &ReplyError{Line: quoteLine(line[:len(line)-2])}
	}
	return 0, fmt.Errorf("%w: unexpected reply %q", ErrProtocol, quoteLine(line))
}
