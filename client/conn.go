package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/gokai-kv/gokai/internal/mpscan"
	"github.com/vmihailenco/msgpack/v5"
)

// Read buffer sizes of a connection.
const (
	initialReadBuf = 16 << 10
	minRead        = 4 << 10
	// maxIdleReadBuf: a buffer grown past this for a large reply is dropped once it is drained.
	maxIdleReadBuf = 1 << 20
)

// conn is one multiplexed connection to a node: many requests in flight, matched to replies by msgid.
//
// Writers serialize on wmu and write whole requests. One reader goroutine (readLoop) frames replies with
// mpscan, decodes each on its own goroutine and completes its call. A failure of either side breaks the
// connection for good: every call in flight fails, and the pool dials a new one.
type conn struct {
	addr    string
	nc      net.Conn
	maxResp int

	wmu sync.Mutex // held while writing one request

	mu      sync.Mutex
	pending map[uint32]*call // REQUIRES: mu held
	nextID  uint32           // REQUIRES: mu held
	err     error            // first failure; non-nil means broken. REQUIRES: mu held

	done chan struct{} // closed when readLoop has exited
}

// call is one request waiting for its reply.
type call struct {
	decode resultFunc
	// done is closed by whoever removed the call from pending (the reader, or fail) after setting err.
	done chan struct{}
	err  error
}

// dialFunc is Config.Dial.
type dialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

func dialConn(ctx context.Context, addr string, timeout time.Duration, dial dialFunc, maxResp int, tlsCfg *tls.Config) (*conn, error) {
	if dial == nil {
		d := net.Dialer{}
		dial = d.DialContext
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	nc, err := dial(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return nil, &opError{addr: addr, op: "dial", err: err}
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if tlsCfg != nil {
		tc := tls.Client(nc, tlsCfg)
		hctx, cancel := context.WithTimeout(ctx, timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, &opError{addr: addr, op: "tls handshake", err: err}
		}
		nc = tc
	}
	c := &conn{addr: addr, nc: nc, maxResp: maxResp, pending: make(map[uint32]*call), done: make(chan struct{})}
	go c.readLoop()
	return c, nil
}

// ok reports whether the connection is usable.
func (c *conn) ok() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err == nil
}

// close breaks the connection with cause (ErrClosed when the client closes) and waits for the reader.
func (c *conn) close(cause error) {
	c.fail(cause)
	<-c.done
}

// fail breaks the connection (the first cause wins) and fails every call in flight.
func (c *conn) fail(cause error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = cause
	}
	cause = c.err
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	_ = c.nc.Close()
	for _, ca := range pending {
		ca.err = &opError{addr: c.addr, op: "read", err: cause, sent: true}
		close(ca.done)
	}
}

// forget removes call id from pending; false means the reader (or fail) already took it and will complete
// it soon.
func (c *conn) forget(id uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[id]; ok {
		delete(c.pending, id)
		return true
	}
	return false
}

// roundTrip sends one request and waits for its reply, for ctx, or for the connection to break. decode
// runs on the reader goroutine before roundTrip returns. Errors: *Error from the node, *opError for the
// transport (sent=false when the node cannot have seen the request), context.Cause(ctx) when ctx ended.
func (c *conn) roundTrip(ctx context.Context, method string, params paramsFunc, decode resultFunc) error {
	ca := &call{decode: decode, done: make(chan struct{})}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return &opError{addr: c.addr, op: "write", err: err}
	}
	id := c.nextID
	for c.pending[id] != nil { // a msgid still waiting after 2^32 requests: skip it
		id++
	}
	c.nextID = id + 1
	c.pending[id] = ca
	c.mu.Unlock()

	e := getEncoder()
	if err := encodeRequest(e, id, method, params); err != nil {
		putEncoder(e)
		c.forget(id)
		return fmt.Errorf("client: encode %s request: %w", method, err)
	}
	c.wmu.Lock()
	dl, _ := ctx.Deadline() // zero: no deadline
	_ = c.nc.SetWriteDeadline(dl)
	n, err := c.nc.Write(e.buf.Bytes())
	c.wmu.Unlock()
	putEncoder(e)
	if err != nil {
		// A partial write desynchronizes the stream: the connection is done for everyone.
		c.forget(id)
		c.fail(fmt.Errorf("write: %w", err))
		return &opError{addr: c.addr, op: "write", err: err, sent: n > 0}
	}

	select {
	case <-ca.done:
		return ca.err
	case <-ctx.Done():
		if c.forget(id) {
			return context.Cause(ctx)
		}
		<-ca.done // the reply is being decoded right now
		return ca.err
	}
}

// readLoop frames and dispatches replies until the connection breaks.
func (c *conn) readLoop() {
	defer close(c.done)
	sc := mpscan.NewScanner(mpscan.Limits{MaxBytes: c.maxResp})
	var (
		br  bytes.Reader
		dec = msgpack.NewDecoder(&br)
		buf = make([]byte, 0, initialReadBuf) // unread bytes are buf[start:]
	)
	start := 0
	for {
		need := 0
		for start < len(buf) {
			n, err := sc.Scan(buf[start:])
			if errors.Is(err, mpscan.ErrIncomplete) {
				need = n
				break
			}
			if err != nil {
				c.fail(fmt.Errorf("%w: reply framing: %w", ErrProtocol, err))
				return
			}
			if err := c.dispatch(buf[start:start+n], &br, dec); err != nil {
				c.fail(err)
				return
			}
			start += n
		}
		if start == len(buf) {
			start, buf = 0, buf[:0]
			if cap(buf) > maxIdleReadBuf {
				buf = make([]byte, 0, initialReadBuf)
			}
		}
		// Room for the rest of the current message (need bytes from start, a lower bound) and a read.
		unread := len(buf) - start
		want := max(need, unread+minRead)
		if start+want > cap(buf) {
			if want <= cap(buf) {
				copy(buf, buf[start:])
			} else {
				nb := make([]byte, unread, max(want, min(2*cap(buf), c.maxResp)))
				copy(nb, buf[start:])
				buf = nb
			}
			buf, start = buf[:unread], 0
		}
		n, err := c.nc.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil && n == 0 {
			c.fail(err)
			return
		}
	}
}

// dispatch decodes one complete reply frame (checked by mpscan) and completes its call. An error is a
// frame that is not a MessagePack-RPC reply: the peer is not speaking the protocol and the connection is
// dropped. A reply whose error or result does not decode fails only its own call.
func (c *conn) dispatch(frame []byte, br *bytes.Reader, d *msgpack.Decoder) error {
	br.Reset(frame)
	d.ResetReader(br)
	n, err := d.DecodeArrayLen()
	if err != nil {
		return fmt.Errorf("%w: reply is not an array: %w", ErrProtocol, err)
	}
	typ, err := d.DecodeInt64()
	if err != nil {
		return fmt.Errorf("%w: reply type: %w", ErrProtocol, err)
	}
	switch {
	case typ == msgNotification && n == 3:
		return nil // the API defines none from the node; ignore
	case typ != msgResponse || n != 4:
		return protoErr("message type %d with %d elements from the node, want a response [1, msgid, error, result]", typ, n)
	}
	id, err := d.DecodeInt64()
	if err != nil || id < 0 || id > 1<<32-1 {
		return protoErr("reply msgid %d (%v)", id, err)
	}
	c.mu.Lock()
	ca := c.pending[uint32(id)]
	delete(c.pending, uint32(id))
	c.mu.Unlock()
	if ca == nil {
		return nil // its caller gave up
	}
	if isNilErr, err := isNil(d); err != nil {
		ca.err = fmt.Errorf("%w: reply error field: %w", ErrProtocol, err)
	} else if !isNilErr {
		ca.err = decodeError(d)
	} else if ca.decode != nil {
		if err := ca.decode(d); err != nil {
			if !errors.Is(err, ErrProtocol) {
				err = fmt.Errorf("%w: %w", ErrProtocol, err)
			}
			ca.err = err
		}
	}
	close(ca.done)
	return nil
}
