package msgpackrpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/gokai-kv/gokai/internal/mpscan"
)

const (
	// readBufferSize is a connection's initial read buffer; it doubles while a message does not fit, up to
	// MaxMessageBytes, and goes back to this size once a buffer over keepReadBuffer is empty.
	readBufferSize = 4 << 10
	keepReadBuffer = 64 << 10
	// keepResponseBuffer is the largest response buffer returned to the pool.
	keepResponseBuffer = 64 << 10
	// After a protocol error the server half-closes and reads (and discards) for up to lingerTimeout or
	// lingerBytes before closing, so the client receives the error response rather than a reset.
	lingerTimeout = time.Second
	lingerBytes   = 1 << 20
)

var responsePool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// aLongTimeAgo is a read deadline in the past: setting it wakes a blocked Read.
var aLongTimeAgo = time.Unix(1, 0)

// endReason is why a connection stopped reading.
type endReason int

const (
	endEOF      endReason = iota // the client closed (or half-closed): answer the calls in flight, then close
	endStopped                   // Shutdown: same, after answering buffered requests CodeShuttingDown
	endProtocol                  // bad bytes: cancel the calls in flight, close after lingering
	endIO                        // read error, idle timeout or write failure: cancel the calls in flight
)

// conn is one client connection. One goroutine (serve) reads and frames messages and starts a goroutine per
// request; responses are written by whichever goroutine finds the writer free (see send).
type conn struct {
	s      *Server
	nc     net.Conn
	remote string
	ctx    context.Context // the calls' context; cancelled when the connection fails or ends
	cancel context.CancelFunc

	// Reader state, owned by the serve goroutine.
	sc         mpscan.Scanner
	buf        []byte
	start, end int  // buf[start:end]: bytes received and not yet handled
	draining   bool // Shutdown: start no call; answer buffered requests CodeShuttingDown
	dec        requestDecoder

	// slots holds one token per request in flight, from before its call starts until its response is
	// written or dropped; reading stops while it is full.
	slots chan struct{}
	calls sync.WaitGroup // call goroutines

	mu      sync.Mutex
	stopped bool // Shutdown asked the reader to stop. REQUIRES: mu held.

	wmu     sync.Mutex
	writing bool            // a goroutine is writing the queue. REQUIRES: wmu held.
	broken  bool            // a write failed; responses are dropped. REQUIRES: wmu held.
	wq      []*bytes.Buffer // encoded responses waiting for the writer. REQUIRES: wmu held.
	wspare  []*bytes.Buffer // owned by the writer: the queue it swaps in
	iov     [][]byte        // owned by the writer
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		s:      s,
		nc:     nc,
		remote: nc.RemoteAddr().String(),
		sc:     *mpscan.NewScanner(s.cfg.limits()),
		slots:  make(chan struct{}, s.cfg.MaxInFlightPerConn),
	}
	c.ctx, c.cancel = context.WithCancel(context.WithValue(s.ctx, connKey{}, nc))
	return c
}

// stop asks the reader to stop (Shutdown), waking it if it waits in Read.
func (c *conn) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	c.nc.SetReadDeadline(aLongTimeAgo)
}

// serve runs the connection: read until the end, let the calls in flight finish, close.
func (c *conn) serve() {
	defer c.s.conns.Done(c)
	reason := c.readLoop()
	c.buf = nil
	if reason == endProtocol || reason == endIO {
		c.cancel()
	}
	// Every response is written or dropped once the calls are done: a call returns from send only after
	// its response is written, or handed to a writer that writes it before returning.
	c.calls.Wait()
	if reason == endProtocol {
		c.lingeringClose()
	} else {
		c.nc.Close()
	}
	c.cancel()
}

// lingeringClose half-closes the connection and discards what the client still sends for a while, so that
// it reads the error response sent before instead of a connection reset.
func (c *conn) lingeringClose() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
		io.CopyN(io.Discard, c.nc, lingerBytes)
	}
	c.nc.Close()
}

// readLoop reads and handles messages until the connection ends, and says why.
func (c *conn) readLoop() endReason {
	c.buf = make([]byte, readBufferSize)
	for {
		for c.start < c.end {
			n, err := c.sc.Scan(c.buf[c.start:c.end])
			if err == mpscan.ErrIncomplete {
				break
			}
			if err != nil {
				c.badFrame(c.buf[c.start:c.end], err)
				return endProtocol
			}
			frame := c.buf[c.start : c.start+n]
			c.start += n
			if r, ok := c.handle(frame); !ok {
				return r
			}
		}
		if c.draining {
			return endStopped
		}
		if !c.makeRoom() {
			c.badFrame(c.buf[c.start:c.end], mpscan.ErrTooLarge) // NB: unreachable: Scan said it fits
			return endProtocol
		}
		if !c.armRead() {
			c.draining = true
			continue // answer what is buffered
		}
		n, err := c.nc.Read(c.buf[c.end:])
		c.end += n
		if err == nil || n > 0 {
			continue // an error recurs on the next Read
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			c.mu.Lock()
			stopped := c.stopped
			c.mu.Unlock()
			if stopped {
				c.draining = true
				continue
			}
			if len(c.slots) > 0 {
				continue // not idle: requests in flight
			}
			c.s.log.Debug("msgpackrpc: idle connection closed", "remote", c.remote)
			return endIO
		case errors.Is(err, io.EOF):
			if c.start < c.end {
				c.s.log.Debug("msgpackrpc: connection closed in the middle of a message", "remote", c.remote,
					"buffered", c.end-c.start)
			}
			return endEOF
		default:
			if !errors.Is(err, net.ErrClosed) {
				c.s.log.Debug("msgpackrpc: read failed", "remote", c.remote, "err", err)
			}
			return endIO
		}
	}
}

// makeRoom makes room in buf for the next Read: it rewinds an empty buffer (shrinking a large one), moves
// a partial message to the front, or grows the buffer while the message does not fit. It reports false
// if the buffer cannot grow (a message over MaxMessageBytes, which Scan rules out).
func (c *conn) makeRoom() bool {
	switch {
	case c.start == c.end:
		c.start, c.end = 0, 0
		if len(c.buf) > keepReadBuffer {
			c.buf = make([]byte, readBufferSize)
		}
	case c.end < len(c.buf):
	case c.start > 0:
		c.end = copy(c.buf, c.buf[c.start:c.end])
		c.start = 0
	default:
		size := min(2*len(c.buf), c.s.cfg.MaxMessageBytes)
		if size <= len(c.buf) {
			return false
		}
		nb := make([]byte, size)
		copy(nb, c.buf[:c.end])
		c.buf = nb
	}
	return true
}

// armRead prepares a Read: it reports false if Shutdown asked to stop, and sets the idle deadline.
func (c *conn) armRead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return false
	}
	if d := c.s.cfg.IdleTimeout; d > 0 {
		c.nc.SetReadDeadline(time.Now().Add(d))
	}
	return true
}

// badFrame answers bytes that mpscan rejected (b starts at the rejected message) if a msgid can be read
// from their head.
func (c *conn) badFrame(b []byte, err error) {
	c.s.stats.badFrames.Add(1)
	env, _ := parseEnvelope(b)
	c.s.log.Debug("msgpackrpc: bad message; closing", "remote", c.remote, "err", err, "msgid", env.msgid,
		"has_msgid", env.hasID)
	if !env.hasID {
		return
	}
	lim := c.s.cfg
	var rerr *Error
	switch err {
	case mpscan.ErrTooLarge:
		rerr = &Error{Code: CodeTooLarge, Message: fmt.Sprintf("message over %d bytes", lim.MaxMessageBytes),
			Fields: map[string]any{"limit": lim.MaxMessageBytes}}
	case mpscan.ErrTooManyElems:
		rerr = &Error{Code: CodeTooLarge, Message: fmt.Sprintf("message over %d array and map elements",
			lim.MaxElems), Fields: map[string]any{"limit": lim.MaxElems}}
	case mpscan.ErrTooDeep:
		rerr = badRequest("message nested over %d deep", lim.MaxDepth)
	default:
		rerr = badRequest("not msgpack: %v", err)
	}
	c.reply(env.msgid, rerr)
}

// handle handles one framed message. It reports false, with the reason, if the connection must end.
func (c *conn) handle(frame []byte) (endReason, bool) {
	m, env, perr := c.dec.decode(frame)
	if perr != nil {
		c.s.stats.badFrames.Add(1)
		if !env.hasID {
			c.s.log.Debug("msgpackrpc: bad message without a msgid; closing", "remote", c.remote,
				"err", perr.Message)
			return endProtocol, false
		}
		c.s.log.Debug("msgpackrpc: bad message", "remote", c.remote, "msgid", env.msgid, "err", perr.Message)
		return endIO, c.reply(env.msgid, perr)
	}
	if m.typ == typeNotification {
		c.s.stats.notifications.Add(1)
		if m.method != "ping" {
			c.s.log.Debug("msgpackrpc: notification ignored", "remote", c.remote, "method", truncate(m.method, 64))
		}
		return 0, true
	}
	if !c.draining && c.s.conns.Closing() {
		c.draining = true
	}
	if !c.draining {
		select {
		case c.slots <- struct{}{}:
			c.s.stats.inFlight.Add(1)
			c.s.stats.requests.Add(1)
			c.calls.Add(1)
			go c.run(m)
			return 0, true
		case <-c.s.conns.Stopping():
			c.draining = true
		case <-c.ctx.Done():
			return endIO, false
		}
	}
	return endIO, c.reply(m.msgid, &Error{Code: CodeShuttingDown, Message: "the server is shutting down"})
}

// reply sends an error response from the reader. It waits for a slot, so error responses count against
// MaxInFlightPerConn like calls. It reports false if the connection failed meanwhile.
func (c *conn) reply(msgid uint32, rerr *Error) bool {
	select {
	case c.slots <- struct{}{}:
		c.s.stats.inFlight.Add(1)
	case <-c.ctx.Done():
		return false
	}
	c.respond(msgid, rerr, nil)
	return true
}

// run runs one call and sends its response. The caller holds a slot for it.
func (c *conn) run(m message) {
	defer c.calls.Done()
	result, err, panicked := c.call(m)
	var rerr *Error
	if err != nil {
		rerr = errorFor(err)
		if rerr.Code == CodeInternal && !panicked {
			c.s.log.Warn("msgpackrpc: internal error", "remote", c.remote, "method", truncate(m.method, 64),
				"msgid", m.msgid, "err", err)
		}
	}
	c.respond(m.msgid, rerr, result)
}

// call runs the Handler, turning a panic into an internal error.
func (c *conn) call(m message) (result any, err error, panicked bool) {
	defer func() {
		if p := recover(); p != nil {
			panicked = true
			c.s.stats.panics.Add(1)
			c.s.log.Error("msgpackrpc: handler panic", "remote", c.remote, "method", truncate(m.method, 64),
				"msgid", m.msgid, "panic", p, "stack", string(debug.Stack()))
			result, err = nil, &Error{Code: CodeInternal, Message: truncate(fmt.Sprintf("panic: %v", p), 200)}
		}
	}()
	result, err = c.s.h.Call(c.ctx, m.method, m.params)
	return result, err, false
}

// respond encodes a response and sends it, releasing its slot once written.
func (c *conn) respond(msgid uint32, rerr *Error, result any) {
	buf := responsePool.Get().(*bytes.Buffer)
	buf.Reset()
	if err := encodeSafely(buf, msgid, rerr, result); err != nil {
		c.s.log.Warn("msgpackrpc: cannot encode response", "remote", c.remote, "msgid", msgid, "err", err)
		rerr = &Error{Code: CodeInternal}
	}
	if rerr != nil {
		c.s.stats.errors.Add(1)
	}
	c.send(buf)
}

// encodeSafely is encodeResponse that also survives a panicking custom encoder. On error buf holds an
// internal error response.
func encodeSafely(buf *bytes.Buffer, msgid uint32, rerr *Error, result any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
			buf.Reset()
			encodeResponse(nil, buf, msgid, &Error{Code: CodeInternal, Message: "encoding the response: " +
				truncate(err.Error(), 200)}, nil)
		}
	}()
	return encodeResponse(nil, buf, msgid, rerr, result)
}

// send queues an encoded response and, unless another goroutine is writing already, writes the queue until
// it is empty: responses completed while a write is under way go out together in the next one. Each
// response's slot is released once it is written or dropped.
func (c *conn) send(buf *bytes.Buffer) {
	c.wmu.Lock()
	if c.broken {
		c.wmu.Unlock()
		c.done(buf)
		return
	}
	c.wq = append(c.wq, buf)
	if c.writing {
		c.wmu.Unlock()
		return
	}
	c.writing = true
	for len(c.wq) > 0 && !c.broken {
		batch := c.wq
		c.wq = c.wspare[:0]
		c.wmu.Unlock()
		err := c.write(batch)
		for i, b := range batch {
			c.done(b)
			batch[i] = nil
		}
		c.wmu.Lock()
		c.wspare = batch[:0]
		if err != nil {
			c.broken = true
			if !errors.Is(err, net.ErrClosed) {
				c.s.log.Debug("msgpackrpc: write failed; closing", "remote", c.remote, "err", err)
			}
			c.cancel()
			c.nc.Close() // wakes the reader
		}
	}
	for i, b := range c.wq { // broken: drop the rest
		c.done(b)
		c.wq[i] = nil
	}
	c.wq = c.wq[:0]
	c.writing = false
	c.wmu.Unlock()
}

// write writes a batch of responses in one system call where it can.
func (c *conn) write(batch []*bytes.Buffer) error {
	if d := c.s.cfg.WriteTimeout; d > 0 {
		if err := c.nc.SetWriteDeadline(time.Now().Add(d)); err != nil {
			return err
		}
	}
	if len(batch) == 1 {
		_, err := c.nc.Write(batch[0].Bytes())
		return err
	}
	iov := c.iov[:0]
	for _, b := range batch {
		iov = append(iov, b.Bytes())
	}
	c.iov = iov
	bufs := net.Buffers(iov)
	_, err := bufs.WriteTo(c.nc)
	clear(c.iov)
	return err
}

// done returns a response buffer to the pool and releases its slot.
func (c *conn) done(buf *bytes.Buffer) {
	if buf.Cap() <= keepResponseBuffer {
		responsePool.Put(buf)
	}
	<-c.slots
	c.s.stats.inFlight.Add(-1)
}
