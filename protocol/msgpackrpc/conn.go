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
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gokai-kv/gokai/internal/mpscan"
	"github.com/gokai-kv/gokai/internal/netserve"
)

const (
	// readBufferSize is a connection's initial read buffer, which is not charged to the memory budget (the
	// connection limit bounds it). A message that does not fit makes it grow to the size the message
	// declares (doubling while that is under keepReadBuffer), after reserving the growth; a buffer over
	// keepReadBuffer goes back to this size once the messages in it are handled.
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
	bufRes     int  // bytes reserved from acct for buf beyond readBufferSize: >= len(buf) - readBufferSize
	need       int  // Scan's lower bound on the message at start, when it is incomplete; else 0
	start, end int  // buf[start:end]: bytes received and not yet handled
	skipping   bool // the message at start is refused (over the budget): sc.Skip passes over its bytes
	draining   bool // Shutdown: start no call; answer buffered requests CodeShuttingDown
	dec        requestDecoder
	// Read deadlines: msgArmed says msgDeadline (ReadTimeout from the first wait for the rest of the
	// message being read) is set; deadline is the one last set on nc.
	msgArmed    bool
	msgDeadline time.Time
	deadline    time.Time

	// acct holds the connection's share of the memory budget: buf beyond readBufferSize, each call's
	// request while it runs, each response until it is written or dropped.
	acct *netserve.Account

	// slots holds one token per request in flight, from before its call starts until its response is
	// written or dropped; reading stops while it is full.
	slots chan struct{}

	// The window bounds a connection's calls by bytes as slots do by count: a call starts only while the
	// bytes the connection holds (acct) plus the estimated responses of its running calls (running), plus
	// its own estimate, fit in MaxConnBytes (or when no call runs). A call's estimate is the largest of
	// the connection's last len(recent) responses: MaxMessageBytes until it has sent that many, so a
	// new connection that pipelines big gets runs a few at a time, and one whose responses are small runs
	// as many as slots allow. wake is signalled when running or acct falls.
	wmuEst  sync.Mutex
	recent  [4]int // sizes of the last responses, a ring. REQUIRES: wmuEst held.
	nrecent int    // responses recorded in recent. REQUIRES: wmuEst held.
	running atomic.Int64
	wake    chan struct{}
	calls   sync.WaitGroup // call goroutines

	mu      sync.Mutex
	stopped bool // Shutdown asked the reader to stop. REQUIRES: mu held.

	wmu     sync.Mutex
	writing bool     // a goroutine is writing the queue. REQUIRES: wmu held.
	broken  bool     // a write failed; responses are dropped. REQUIRES: wmu held.
	wq      []outMsg // encoded responses waiting for the writer. REQUIRES: wmu held.
	wspare  []outMsg // owned by the writer: the queue it swaps in
	iov     [][]byte // owned by the writer
}

// outMsg is an encoded response and the bytes it holds of the connection's budget.
type outMsg struct {
	buf *bytes.Buffer
	res int
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		s:      s,
		nc:     nc,
		remote: nc.RemoteAddr().String(),
		sc:     *mpscan.NewScanner(s.cfg.limits()),
		slots:  make(chan struct{}, s.cfg.MaxInFlightPerConn),
		acct:   netserve.NewAccount(s.mem, int64(s.cfg.MaxConnBytes)),
		wake:   make(chan struct{}, 1),
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
	c.setBuf(nil) // NB: at once, not when the calls are done: a stalled message's buffer goes now
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
	if n := c.acct.Held(); n != 0 {
		// INVARIANT: every reservation is released by the path that made it. A leak shrinks the budget of
		// every later connection, so it is shouted about rather than papered over.
		c.s.log.Error("msgpackrpc: BUG: a closed connection still holds budget bytes", "remote", c.remote, "bytes", n)
	}
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
	c.setBuf(make([]byte, readBufferSize))
	for {
		for c.start < c.end {
			if c.skipping {
				n, err := c.sc.Skip(c.buf[c.start:c.end])
				if err == mpscan.ErrIncomplete {
					c.start = c.end
					break
				}
				if err != nil {
					c.badFrame(nil, err)
					return endProtocol
				}
				c.start += n
				c.skipping, c.msgArmed = false, false
				continue
			}
			n, err := c.sc.Scan(c.buf[c.start:c.end])
			if err == mpscan.ErrIncomplete {
				if c.fit(n) {
					break
				}
				if r, ok := c.refuse(n); !ok {
					return r
				}
				continue
			}
			if err != nil {
				c.badFrame(c.buf[c.start:c.end], err)
				return endProtocol
			}
			frame := c.buf[c.start : c.start+n]
			c.start += n
			c.msgArmed = false
			if r, ok := c.handle(frame); !ok {
				return r
			}
		}
		if c.draining {
			return endStopped
		}
		c.room()
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
			if c.start < c.end || c.skipping {
				c.s.stats.readTimeouts.Add(1)
				c.s.logBadInput.Debug(c.s.log, "msgpackrpc: the rest of a message did not come within the read timeout; closing",
					"remote", c.remote, "buffered", c.end-c.start, "read_timeout", c.s.cfg.ReadTimeout)
				return endIO
			}
			if len(c.slots) > 0 {
				continue // not idle: requests in flight
			}
			c.s.log.Debug("msgpackrpc: idle connection closed", "remote", c.remote)
			return endIO
		case errors.Is(err, io.EOF):
			if c.start < c.end || c.skipping {
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

// setBuf replaces the read buffer with b, which must fit in what is reserved for it; nil releases the
// reservation.
func (c *conn) setBuf(b []byte) {
	if b == nil {
		c.acct.Release(c.bufRes)
		c.buf, c.bufRes = nil, 0
		return
	}
	if len(b)-readBufferSize > c.bufRes {
		panic("msgpackrpc: read buffer larger than its reservation") // INVARIANT: fit reserves before room grows
	}
	c.buf = b
}

// fit reserves the read buffer's room for the message at start, whose bytes Scan says are at least need
// (its declared lengths; each value still to come counted as one byte), before any of it is buffered. It
// reports false, changing nothing, if that does not fit in the connection's share of the budget. The
// buffer itself grows only as bytes arrive (room), so a header declaring 16 MiB costs a reservation, not an
// allocation.
func (c *conn) fit(need int) bool {
	c.need = need
	want := need
	if need > keepReadBuffer {
		want = need + readBufferSize // NB: slack for the values Scan's bound counts as one byte
	}
	want = min(want, c.s.cfg.MaxMessageBytes)
	extra := want - readBufferSize - c.bufRes
	if extra <= 0 {
		return true
	}
	if !c.acct.Reserve(extra) {
		return false
	}
	c.bufRes += extra
	return true
}

// room makes room in buf for the next Read: it rewinds an empty buffer (giving a big one and its whole
// reservation back), moves a partial message to the front (into a small buffer if it sits in a big one it
// no longer needs), or grows a full buffer, doubling, within what fit reserved.
func (c *conn) room() {
	switch {
	case c.start == c.end:
		c.start, c.end, c.need = 0, 0, 0
		if len(c.buf) > keepReadBuffer {
			c.buf = make([]byte, readBufferSize)
		}
		c.acct.Release(c.bufRes - (len(c.buf) - readBufferSize))
		c.bufRes = len(c.buf) - readBufferSize
	case len(c.buf) > keepReadBuffer && c.need <= keepReadBuffer/2 && c.end-c.start <= readBufferSize:
		// The head of a small message left in a big buffer (pipelined after a big one): move it to a small
		// buffer and give the big one back.
		nb := make([]byte, readBufferSize)
		c.end = copy(nb, c.buf[c.start:c.end])
		c.start = 0
		c.buf = nb
		c.acct.Release(c.bufRes)
		c.bufRes = 0
		if !c.fit(c.need) {
			c.need = 0 // NB: the next Scan asks again, and refuses the message if there is still no room
		}
	case c.end < len(c.buf):
	case c.start > 0:
		c.end = copy(c.buf, c.buf[c.start:c.end])
		c.start = 0
	default:
		size := min(2*len(c.buf), readBufferSize+c.bufRes)
		if size <= len(c.buf) {
			panic("msgpackrpc: a full read buffer with no reserved room") // INVARIANT: Scan's bound > bytes present
		}
		nb := make([]byte, size)
		copy(nb, c.buf[:c.end])
		c.setBuf(nb)
	}
}

// refuse answers the message at start, which the budget has no room for (it declares at least need
// bytes), with overload, and switches to skipping its bytes without keeping them, so the connection stays
// in sync and usable. A notification is dropped silently. It reports false, with the reason, when the
// message has no msgid to answer and is not a notification: the connection must end.
func (c *conn) refuse(need int) (endReason, bool) {
	env, _ := parseEnvelope(c.buf[c.start:c.end])
	c.s.stats.overloads.Add(1)
	c.s.logOverload.Warn(c.s.log, "msgpackrpc: a message over the memory budget refused", "remote", c.remote,
		"bytes", need, "held", c.acct.Held())
	switch {
	case env.hasID:
		if !c.reply(env.msgid, overloadError()) {
			return endIO, false
		}
	case env.typ == typeNotification:
	default:
		c.s.stats.badFrames.Add(1)
		c.s.logBadInput.Debug(c.s.log, "msgpackrpc: a message over the memory budget without a msgid; closing",
			"remote", c.remote, "bytes", need)
		return endProtocol, false
	}
	c.start += c.sc.Scanned()
	c.skipping = true
	return 0, true
}

// armRead prepares a Read: it reports false if Shutdown asked to stop, and sets the deadline. While a
// message is partly read (or skipped), the rest must come within ReadTimeout of the first wait for it;
// between messages, IdleTimeout applies.
func (c *conn) armRead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return false
	}
	var want time.Time
	if c.start < c.end || c.skipping {
		if !c.msgArmed {
			c.msgArmed, c.msgDeadline = true, time.Time{}
			if d := c.s.cfg.ReadTimeout; d > 0 {
				c.msgDeadline = time.Now().Add(d)
			}
		}
		want = c.msgDeadline
	} else if d := c.s.cfg.IdleTimeout; d > 0 {
		want = time.Now().Add(d)
	}
	if !want.Equal(c.deadline) {
		c.nc.SetReadDeadline(want)
		c.deadline = want
	}
	return true
}

// badFrame answers bytes that mpscan rejected (b starts at the rejected message) if a msgid can be read
// from their head. b is nil for a message rejected while it was skipped (its head is gone).
func (c *conn) badFrame(b []byte, err error) {
	c.s.stats.badFrames.Add(1)
	env, _ := parseEnvelope(b)
	c.s.logBadInput.Debug(c.s.log, "msgpackrpc: bad message; closing", "remote", c.remote, "err", err,
		"msgid", env.msgid, "has_msgid", env.hasID)
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
	// The decoded params are a copy of the frame's values: reserve for them before decoding, and keep the
	// reservation while the call runs.
	if !c.acct.Reserve(len(frame)) {
		env, _ := parseEnvelope(frame)
		c.s.stats.overloads.Add(1)
		c.s.logOverload.Warn(c.s.log, "msgpackrpc: a request over the memory budget refused", "remote", c.remote,
			"bytes", len(frame), "held", c.acct.Held())
		switch {
		case env.hasID:
			return endIO, c.reply(env.msgid, overloadError())
		case env.typ == typeNotification:
			return 0, true
		}
		c.s.stats.badFrames.Add(1) // NB: what decode says of a message without a msgid
		return endProtocol, false
	}
	m, env, perr := c.dec.decode(frame)
	if perr != nil || m.typ == typeNotification {
		c.acct.Release(len(frame))
	}
	if perr != nil {
		c.s.stats.badFrames.Add(1)
		if !env.hasID {
			c.s.logBadInput.Debug(c.s.log, "msgpackrpc: bad message without a msgid; closing", "remote", c.remote,
				"err", perr.Message)
			return endProtocol, false
		}
		c.s.logBadInput.Debug(c.s.log, "msgpackrpc: bad message", "remote", c.remote, "msgid", env.msgid,
			"err", perr.Message)
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
	est := c.estimate()
	for !c.draining && !c.windowAllows(est) {
		select {
		case <-c.wake:
		case <-c.s.conns.Stopping():
			c.draining = true
		case <-c.ctx.Done():
			c.acct.Release(len(frame))
			return endIO, false
		}
	}
	if !c.draining {
		select {
		case c.slots <- struct{}{}:
			c.s.stats.inFlight.Add(1)
			c.s.stats.requests.Add(1)
			c.calls.Add(1)
			c.running.Add(int64(est))
			go c.run(m, len(frame), est)
			return 0, true
		case <-c.s.conns.Stopping():
			c.draining = true
		case <-c.ctx.Done():
			c.acct.Release(len(frame))
			return endIO, false
		}
	}
	c.acct.Release(len(frame))
	return endIO, c.reply(m.msgid, &Error{Code: CodeShuttingDown, Message: "the server is shutting down"})
}

// panicMessage is the message of the error answering a call whose handler panicked (the panic value and
// stack go to the log only).
const panicMessage = "the handler failed; the details are in the server's log"

// estimate is what a call about to start is expected to hold: the largest of the last responses (a
// result refused for the budget counts at its size: the call cost that much before it was refused).
func (c *conn) estimate() int {
	c.wmuEst.Lock()
	defer c.wmuEst.Unlock()
	if c.nrecent < len(c.recent) {
		return c.s.cfg.MaxMessageBytes
	}
	return slices.Max(c.recent[:])
}

// record notes the size of a response for estimate.
func (c *conn) record(n int) {
	c.wmuEst.Lock()
	defer c.wmuEst.Unlock()
	c.recent[c.nrecent%len(c.recent)] = n
	c.nrecent++
}

// windowAllows reports whether a call estimated at est may start now (see the window).
func (c *conn) windowAllows(est int) bool {
	r := c.running.Load()
	return r == 0 || c.acct.Held()+r+int64(est) <= int64(c.s.cfg.MaxConnBytes)
}

// signal wakes the reader if it waits for the window.
func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// overloadError is the answer to a request or response the memory budget has no room for.
func overloadError() *Error {
	return &Error{Code: CodeOverload, Message: "the server's memory for requests in flight is full; retry later"}
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

// run runs one call and sends its response. The caller holds a slot for it, reserved held bytes for its
// request, which run releases once the call returns, and counted est in running, which run takes back
// once the response is queued.
func (c *conn) run(m message, held, est int) {
	defer c.calls.Done()
	result, err, panicked := c.call(m)
	m.params = nil
	c.acct.Release(held)
	defer func() {
		c.running.Add(-int64(est))
		c.signal()
	}()
	var rerr *Error
	if err != nil {
		rerr = errorFor(err)
		if rerr.Code == CodeInternal && !panicked {
			args := []any{"remote", c.remote, "method", truncate(m.method, 64), "msgid", m.msgid, "err", err}
			if rerr.Cause != nil {
				args = append(args, "cause", rerr.Cause)
			}
			c.s.logInternal.Warn(c.s.log, "msgpackrpc: internal error", args...)
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
			result, err = nil, &Error{Code: CodeInternal, Message: panicMessage}
		}
	}()
	result, err = c.s.h.Call(c.ctx, m.method, m.params)
	return result, err, false
}

// respond encodes a response and sends it, releasing its slot once written. A result's bytes are
// reserved before it is encoded (after, for result types whose size sizeHint cannot tell); if they do not
// fit, the response is overload instead. Error responses are small and always sent.
func (c *conn) respond(msgid uint32, rerr *Error, result any) {
	res := 0
	refused := 0 // the size of a result refused for the budget: what the call cost, for the estimate
	known := false
	if rerr == nil {
		var n int
		if n, known = sizeHint(result); known {
			n += responseHeadroom
			if c.acct.Reserve(n) {
				res = n
			} else {
				rerr, result, refused = c.overloaded(n), nil, n
			}
		}
	}
	buf := responsePool.Get().(*bytes.Buffer)
	buf.Reset()
	if err := encodeSafely(buf, msgid, rerr, result); err != nil {
		c.s.logInternal.Warn(c.s.log, "msgpackrpc: cannot encode response", "remote", c.remote, "msgid", msgid, "err", err)
		rerr = &Error{Code: CodeInternal}
	}
	if rerr == nil && !known {
		if c.acct.Reserve(buf.Len()) {
			res = buf.Len()
		} else {
			rerr, refused = c.overloaded(buf.Len()), buf.Len()
			c.drop(buf)
			buf = responsePool.Get().(*bytes.Buffer)
			buf.Reset()
			encodeResponse(nil, buf, msgid, rerr, nil)
		}
	}
	// Settle the reservation on the bytes encoded.
	switch n := buf.Len(); {
	case n > res:
		c.acct.Force(n - res)
	case n < res:
		c.acct.Release(res - n)
	}
	if rerr != nil {
		c.s.stats.errors.Add(1)
	}
	c.s.stats.answered.Add(1)
	c.record(max(buf.Len(), refused))
	c.send(outMsg{buf: buf, res: buf.Len()})
}

// responseHeadroom covers a response's envelope around its result: [1, msgid, nil, result].
const responseHeadroom = 16

// overloaded counts and logs a response of n bytes refused by the budget, and returns its error.
func (c *conn) overloaded(n int) *Error {
	c.s.stats.overloads.Add(1)
	c.s.logOverload.Warn(c.s.log, "msgpackrpc: a response over the memory budget refused", "remote", c.remote,
		"bytes", n, "held", c.acct.Held())
	return overloadError()
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
func (c *conn) send(m outMsg) {
	c.wmu.Lock()
	if c.broken {
		c.wmu.Unlock()
		c.done(m)
		return
	}
	c.wq = append(c.wq, m)
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
		for i, m := range batch {
			c.done(m)
			batch[i] = outMsg{}
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
	for i, m := range c.wq { // broken: drop the rest
		c.done(m)
		c.wq[i] = outMsg{}
	}
	c.wq = c.wq[:0]
	c.writing = false
	c.wmu.Unlock()
}

// write writes a batch of responses in one system call where it can.
func (c *conn) write(batch []outMsg) error {
	if d := c.s.cfg.WriteTimeout; d > 0 {
		if err := c.nc.SetWriteDeadline(time.Now().Add(d)); err != nil {
			return err
		}
	}
	if len(batch) == 1 {
		_, err := c.nc.Write(batch[0].buf.Bytes())
		return err
	}
	iov := c.iov[:0]
	for _, m := range batch {
		iov = append(iov, m.buf.Bytes())
	}
	c.iov = iov
	bufs := net.Buffers(iov)
	_, err := bufs.WriteTo(c.nc)
	clear(c.iov)
	return err
}

// done returns a response buffer to the pool and releases its reservation and its slot.
func (c *conn) done(m outMsg) {
	c.drop(m.buf)
	c.acct.Release(m.res)
	<-c.slots
	c.s.stats.inFlight.Add(-1)
	c.signal()
}

// drop returns a response buffer to the pool unless it is big (a big one is left to the collector, so the
// pool never keeps a large response's memory).
func (c *conn) drop(buf *bytes.Buffer) {
	if buf.Cap() <= keepResponseBuffer {
		responsePool.Put(buf)
	}
}
