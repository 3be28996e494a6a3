package memcache

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/gokai-kv/gokai/internal/netserve"
	"github.com/gokai-kv/gokai/internal/ratelog"
)

// Buffer sizes per connection. Lines and blocks longer than the read buffer are handled (see lineReader and
// readBlock); the sizes only trade memory per idle connection against syscalls per batch.
const (
	readBufferSize  = 4 << 10
	writeBufferSize = 4 << 10
	// keepLineBuf is the largest long-line buffer returned to the pool; bigger ones are left to the GC.
	keepLineBuf = 16 << 10
	// keepKeySlots is the largest key list a connection keeps between requests.
	keepKeySlots = 256
)

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufferSize) }}
	linePool   = sync.Pool{New: func() any { return new([]byte) }}
)

// Server serves the memcache protocols (text, meta and binary, chosen per connection by its first byte)
// over a Store. Create it with NewServer, run Serve on one or more
// listeners, and stop it with Shutdown.
type Server struct {
	cfg     Config
	cfgErr  error
	store   Store
	log     *slog.Logger
	started time.Time
	pid     int

	// ctx is passed to Store calls; cancelled when Shutdown gives up waiting.
	ctx    context.Context
	cancel context.CancelFunc

	conns *netserve.Tracker[*conn] // listeners and connections
	curr  *netserve.Gauge          // open connections: conns.Open()
	mem   *netserve.Budget         // Config.Memory, or the server's own
	stats counters
	// detail is "stats detail"; states the meta commands' per-item bits (itemstate.go).
	detail prefixStats
	states *itemStates

	// Warnings a flood repeats go through these: one line per kind per second.
	logStore                    ratelog.Kinds // store errors, per StoreError.Code
	logConns, logNoMem, logAuth ratelog.Limiter
}

// NewServer returns a server over store. Zero Config fields take their defaults; an invalid Config (or a nil
// store) makes Serve return the validation error. A nil logger discards logs.
func NewServer(cfg Config, store Store, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfgErr: cfg.Validate(),
		cfg:    cfg.withDefaults(),
		store:  store,
		log:    logger,
		pid:    os.Getpid(),
		states: newItemStates(defaultItemStateBytes),
	}
	if s.cfgErr == nil && store == nil {
		s.cfgErr = errors.New("memcache: NewServer: nil Store")
	}
	s.conns = netserve.NewTracker[*conn](s.cfg.MaxConns)
	s.curr = s.conns.Open()
	s.mem = s.cfg.Memory
	if s.mem == nil {
		s.mem = netserve.NewBudget(netserve.DefaultBudgetBytes)
	}
	s.started = s.cfg.Now()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Serve accepts connections on ln and serves each on its own goroutine until Shutdown. It always returns a
// non-nil error and closes ln: ErrServerClosed after Shutdown, the Config error if the Config is invalid, or
// the listener's error. Serve may run on several listeners at once.
func (s *Server) Serve(ln net.Listener) error {
	if s.cfgErr != nil {
		ln.Close()
		return s.cfgErr
	}
	if err := s.conns.Serve(ln, "memcache", s.log, s.ctx.Done(), s.accept); err != nil {
		return err
	}
	return ErrServerClosed
}

// accept starts serving nc, or turns it away when the server is full or closing.
func (s *Server) accept(nc net.Conn) {
	if s.conns.Full() {
		s.stats.rejectedConns.Add(1)
		s.logConns.Warn(s.log, "memcache: too many open connections", "remote", nc.RemoteAddr().String(),
			"max_conns", s.cfg.MaxConns)
		// The reply fits any socket buffer; the deadline only guards against a broken peer.
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		nc.Write(replyTooManyConn)
		nc.Close()
		return
	}
	c := newConn(s, nc)
	if !s.conns.Add(c) {
		c.release()
		nc.Close()
		return
	}
	s.stats.totalConns.Add(1)
	go c.serve()
}

// Shutdown stops the server gracefully: it closes the listeners, closes connections that are waiting for a
// request, and lets each connection finish the request it is executing, reply, and close (pipelined
// requests behind it go unanswered). It returns nil once every connection is closed. If ctx ends first, it closes the remaining connections, cancels the context of Store calls still running, and
// returns ctx's error without waiting for them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.conns.Close(func(c *conn) { c.closeIfIdle() })
	err := s.conns.Wait(ctx)
	s.cancel()
	if err != nil {
		s.conns.Each(func(c *conn) { c.nc.Close() })
	}
	return err
}
