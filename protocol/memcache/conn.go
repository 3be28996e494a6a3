package memcache

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/gokai-kv/gokai/internal/netserve"
)

// Connection states, for Shutdown: only an idle connection (waiting for the first byte of a request) may be
// closed under the server's feet.
const (
	stateActive int32 = iota
	stateIdle
	stateClosed
)

// Protocols a connection speaks, chosen by the first byte it sends (memcached's -B auto).
const (
	protoUnknown uint8 = iota
	protoText          // text and meta commands
	protoBinary        // binary packets (first byte 0x80)
)

// conn is one client connection. Everything but state is owned by the connection's goroutine.
type conn struct {
	s      *Server
	nc     net.Conn
	remote string
	br     *bufio.Reader
	bw     *bufio.Writer
	lr     lineReader
	lineP  *[]byte // pooled long-line buffer behind lr.base
	// acct holds the connection's share of the memory budget: a long line's growth, a data block while its
	// command runs, the values of a reply while they are written.
	acct *netserve.Account
	cmd  Command
	out  []byte // scratch for formatting reply lines

	proto  uint8 // protoUnknown until the first byte arrives
	authed bool  // logged in (only checked when Config.Users is set)

	// Binary protocol: the request being served.
	hdr    [binHeaderLen]byte
	bbuf   [binMaxExtLen + MaxKeyLength]byte // its extras and key
	bh     binHeader
	bop    uint8 // opcode, quiet form folded into the loud one
	bquiet bool

	// Meta commands: the command being served and its base64-decoded key.
	meta MetaCommand
	mkey [MaxKeyLength]byte

	// carry holds the partial token at the end of a chunk of a streamed retrieval line.
	carry [MaxKeyLength + 1]byte
	// reqTime is the request's reading of Config.Now, taken on first use (see now); haveTime says it is.
	reqTime  time.Time
	haveTime bool
	state    atomic.Int32
	// linger asks for a lingering close: the server ends the conversation (quit, a stream it cannot
	// resynchronise) while the client may still be sending.
	linger bool

	// Read deadline bookkeeping: the deadline is set lazily by rawIO.Read, only when the connection actually
	// waits for bytes, so a pipelined batch that is already buffered costs no deadline syscalls.
	waitingIdle  bool      // between requests: IdleTimeout applies
	armed        bool      // the deadline for the current wait phase is set
	readDeadline time.Time // the deadline last set on nc
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, remote: nc.RemoteAddr().String(), acct: netserve.NewAccount(s.mem, 0)}
	c.br = readerPool.Get().(*bufio.Reader)
	c.bw = writerPool.Get().(*bufio.Writer)
	c.br.Reset(rawIO{c})
	c.bw.Reset(rawIO{c})
	c.lineP = linePool.Get().(*[]byte)
	c.lr = lineReader{r: c.br, max: s.cfg.MaxLineBytes, buf: (*c.lineP)[:0], base: (*c.lineP)[:0], acct: c.acct}
	c.authed = s.cfg.Users == nil
	c.state.Store(stateActive)
	return c
}

// release returns the pooled buffers. The connection must not be used afterwards.
func (c *conn) release() {
	c.br.Reset(nil)
	c.bw.Reset(nil)
	readerPool.Put(c.br)
	writerPool.Put(c.bw)
	c.lr.shrink() // NB: a long line's buffer is never pooled
	if cap(c.lr.buf) <= keepLineBuf {
		*c.lineP = c.lr.buf[:0]
	} else {
		*c.lineP = nil
	}
	linePool.Put(c.lineP)
	c.br, c.bw, c.lineP, c.lr.buf, c.lr.base = nil, nil, nil, nil, nil
	if n := c.acct.Held(); n != 0 {
		// INVARIANT: every reservation is released by the path that made it.
		c.s.log.Error("memcache: BUG: a closed connection still holds budget bytes", "remote", c.remote, "bytes", n)
	}
}

// Lingering close: closing a TCP socket with unread input makes the kernel send RST, which can destroy the
// replies still in flight to the client (the error line that explains the close). So: send FIN, drain input
// for a moment, then close.
const (
	lingerTimeout  = 250 * time.Millisecond
	lingerMaxBytes = 256 << 10
)

func (c *conn) lingeringClose() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
		io.CopyN(io.Discard, c.nc, lingerMaxBytes)
	}
	c.nc.Close()
}

// closeIfIdle closes the connection if it is waiting for a request (Shutdown).
func (c *conn) closeIfIdle() {
	if c.state.CompareAndSwap(stateIdle, stateClosed) {
		c.nc.Close()
	}
}

// serve is the connection's I/O loop: read a request, execute it, repeat. Replies accumulate in bw and are
// flushed once the input of a pipelined batch is used up (before any read that may wait).
func (c *conn) serve() {
	defer func() {
		if c.linger {
			c.lingeringClose()
		} else {
			c.nc.Close()
		}
		c.release()
		c.s.conns.Done(c)
	}()
	for {
		if c.br.Buffered() == 0 {
			if err := c.bw.Flush(); err != nil {
				c.ioDone(err)
				return
			}
			c.state.Store(stateIdle)
			if c.s.conns.Closing() {
				return
			}
			c.waitingIdle, c.armed = true, false
			if _, err := c.br.Peek(1); err != nil {
				c.ioDone(err)
				return
			}
			if !c.state.CompareAndSwap(stateIdle, stateActive) {
				return // Shutdown closed us as the request arrived
			}
		}
		c.waitingIdle, c.armed = false, false
		ok := c.handle()
		c.lr.shrink() // NB: a long line's buffer and reservation are not kept between requests
		if !ok {
			c.ioDone(c.bw.Flush())
			return
		}
		if c.s.conns.Closing() && c.br.Buffered() > 0 {
			c.linger = true // pipelined requests remain unanswered; let the reply get through
			c.ioDone(c.bw.Flush())
			return
		}
		if cap(c.cmd.Keys) > keepKeySlots {
			c.cmd.Keys = nil
		}
	}
}

// ioDone logs why a connection ends, unless it is the ordinary end (EOF, closed, idle timeout).
func (c *conn) ioDone(err error) {
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case errors.Is(err, os.ErrDeadlineExceeded):
		if c.waitingIdle {
			c.s.stats.idleKicks.Add(1)
		}
		c.s.log.Debug("memcache: connection timed out", "remote", c.remote, "idle", c.waitingIdle)
	default:
		c.s.log.Debug("memcache: connection error", "remote", c.remote, "err", err)
	}
}

// rawIO is the connection's byte stream under bufio: it counts bytes, sets deadlines, and flushes pending
// replies before waiting for input.
type rawIO struct{ c *conn }

func (r rawIO) Read(p []byte) (int, error) {
	c := r.c
	if c.bw.Buffered() > 0 {
		// About to wait for the rest of a request: the client may be waiting for earlier replies first.
		if err := c.bw.Flush(); err != nil {
			return 0, err
		}
	}
	if !c.armed {
		c.armed = true
		var want time.Time
		if c.waitingIdle {
			if d := c.s.cfg.IdleTimeout; d > 0 {
				want = time.Now().Add(d)
			}
		} else if d := c.s.cfg.ReadTimeout; d > 0 {
			want = time.Now().Add(d)
		}
		if !want.Equal(c.readDeadline) {
			if err := c.nc.SetReadDeadline(want); err != nil {
				return 0, err
			}
			c.readDeadline = want
		}
	}
	n, err := c.nc.Read(p)
	c.s.stats.bytesRead.Add(uint64(n))
	return n, err
}

func (r rawIO) Write(p []byte) (int, error) {
	c := r.c
	if d := c.s.cfg.WriteTimeout; d > 0 {
		if err := c.nc.SetWriteDeadline(time.Now().Add(d)); err != nil {
			return 0, err
		}
	}
	n, err := c.nc.Write(p)
	c.s.stats.bytesWritten.Add(uint64(n))
	return n, err
}

// now returns the time of the request being handled: Config.Now, read once per request, when first needed
// (a get of values without expiry needs no clock).
func (c *conn) now() time.Time {
	if !c.haveTime {
		c.reqTime, c.haveTime = c.s.cfg.Now(), true
	}
	return c.reqTime
}

// handle reads and executes one request. It returns false when the connection must close. The first
// request picks the connection's protocol (Config.Protocols): binary if its first byte is the binary
// magic, else text.
func (c *conn) handle() bool {
	c.haveTime = false
	if c.proto == protoUnknown {
		switch c.s.cfg.Protocols {
		case "ascii":
			c.proto = protoText
		case "binary":
			c.proto = protoBinary // NB: a first byte other than the magic fails the header check: closed
		default:
			c.proto = protoText
			if b, err := c.br.Peek(1); err == nil && b[0] == binReqMagic {
				c.proto = protoBinary
			}
		}
	}
	if c.proto == protoBinary {
		return c.handleBinary()
	}
	return c.handleText()
}

// handleText reads and executes one text or meta request.
func (c *conn) handleText() bool {
	line, err := c.lr.readLine()
	if err != nil {
		switch {
		case errors.Is(err, errStreamRetrieval) && c.authed:
			return c.streamRetrieval(line)
		case errors.Is(err, errStreamRetrieval):
			// NB: not logged in: the line is not served; drop it and refuse.
			if err := c.lr.discardLine(); err != nil {
				c.ioDone(err)
				return false
			}
			c.writeError(ReplyClientError, msgUnauthenticated)
			return true
		case errors.Is(err, ErrLineTooLong):
			c.s.stats.protocolErrors.Add(1)
			c.writeError(ReplyClientError, msgLineTooLong)
			return true
		case errors.Is(err, errLineNoMemory):
			c.noMemory("a request line")
			c.writeError(ReplyServerError, msgNoMemReading)
			return true
		}
		c.ioDone(err)
		return false
	}
	if !c.authed {
		return c.textLogin(line)
	}
	if IsMetaLine(line) {
		return c.handleMeta(line)
	}
	if err := c.cmd.Parse(line, c.s.cfg.MaxValueBytes); err != nil {
		return c.rejected(err.(*ProtocolError))
	}
	return c.execute()
}

// textLogin serves a text connection that has not logged in (Config.Users set): memcached's -Y token, a
// set command whose data block is "user password". Anything else is "CLIENT_ERROR unauthenticated".
func (c *conn) textLogin(line []byte) bool {
	var t [6][]byte
	n := 0
	for i := 0; n < len(t); n++ {
		if t[n], i = nextToken(line, i); t[n] == nil {
			break
		}
	}
	size, ok := uint64(0), false
	if n >= 5 && string(t[0]) == "set" {
		size, ok = parseUint(t[4], maxDataBlock)
	}
	if !ok {
		c.s.stats.protocolErrors.Add(1)
		c.writeError(ReplyClientError, msgUnauthenticated)
		return true
	}
	c.s.stats.authCmds.Add(1)
	if size > maxAuthToken {
		c.s.stats.authErrors.Add(1)
		if _, err := c.br.Discard(int(size) + 2); err != nil {
			c.ioDone(err)
			return false
		}
		c.writeError(ReplyClientError, msgBadAuthToken)
		return true
	}
	var buf [maxAuthToken + 2]byte
	block := buf[:size+2]
	if _, err := io.ReadFull(c.br, block); err != nil {
		c.ioDone(err)
		return false
	}
	if block[size] != '\r' || block[size+1] != '\n' {
		c.s.stats.authErrors.Add(1)
		c.writeError(ReplyClientError, msgBadAuthEnd)
		return true
	}
	user, pass, ok := parseAuthToken(block[:size])
	if !ok {
		c.s.stats.authErrors.Add(1)
		c.writeError(ReplyClientError, msgBadAuthToken)
		return true
	}
	if !c.s.cfg.Users.Check(user, pass) {
		c.s.stats.authErrors.Add(1)
		c.s.logAuth.Warn(c.s.log, "memcache: authentication failed", "remote", c.remote)
		c.writeError(ReplyClientError, msgAuthFailed)
		return true
	}
	c.authed = true
	c.bw.Write(replyStored)
	return true
}

// rejected answers a line the parser refused and brings the stream back in sync: it discards the data block
// of a storage command, or closes the connection when the block's length is unknown.
func (c *conn) rejected(pe *ProtocolError) bool {
	c.s.stats.protocolErrors.Add(1)
	c.s.log.Debug("memcache: bad request", "remote", c.remote, "op", c.cmd.Op.String(), "err", pe)
	var key []byte
	if errors.Is(pe, ErrValueTooLarge) {
		c.s.stats.cmdSet.Add(1)
		c.s.stats.storeTooLarge.Add(1)
		if c.cmd.Op == OpSet {
			key = bytes.Clone(c.cmd.Key()) // NB: before the discard moves the read buffer under it
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
	if !c.cmd.NoReply || pe.Close {
		c.writeError(pe.Kind, pe.Msg)
	}
	c.linger = pe.Close
	return !pe.Close
}

// noMemory counts and logs a request refused because the memory budget had no room for what.
func (c *conn) noMemory(what string) {
	c.s.stats.noMemory.Add(1)
	c.s.logNoMem.Warn(c.s.log, "memcache: a request over the memory budget refused", "remote", c.remote,
		"op", c.cmd.Op.String(), "for", what, "budget_used", c.s.mem.Used())
}

// readBlock reads the data block of a storage command into a fresh buffer that also holds a copy of the key
// (one allocation, handed to the Store). ok is false if the connection must close; chunkOK is false if the
// block was not followed by CRLF, in which case the rest of that line has been discarded.
func (c *conn) readBlock(key []byte, n int) (k, data []byte, chunkOK, ok bool) {
	buf := make([]byte, len(key)+n+2)
	k = buf[:len(key):len(key)]
	copy(k, key) // NB: before reading on; key points into the read buffer.
	block := buf[len(key):]
	if _, err := io.ReadFull(c.br, block); err != nil {
		c.ioDone(err)
		return nil, nil, false, false
	}
	if block[n] == '\r' && block[n+1] == '\n' {
		return k, block[:n:n], true, true
	}
	// The client sent more (or less) than it announced. Resynchronise on the next newline: for the common
	// "too many bytes" case that is the end of the block the client meant to send.
	if block[n+1] != '\n' {
		if err := c.lr.discardLine(); err != nil {
			c.ioDone(err)
			return nil, nil, false, false
		}
	}
	return nil, nil, false, true
}

// write appends b to the replies unless the request asked for noreply.
func (c *conn) write(b []byte) {
	if !c.cmd.NoReply {
		c.bw.Write(b)
	}
}

// writeError writes an error reply regardless of noreply (callers decide).
func (c *conn) writeError(kind ReplyKind, msg string) {
	c.out = appendErrorReply(c.out[:0], kind, msg)
	c.bw.Write(c.out)
}
