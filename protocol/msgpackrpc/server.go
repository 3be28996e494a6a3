package msgpackrpc

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"

	"github.com/gokai-kv/gokai/internal/netserve"
	"github.com/gokai-kv/gokai/internal/ratelog"
)

// Handler runs the requests of a Server.
type Handler interface {
	// Call runs one request and returns its result or error. It is called on its own goroutine,
	// concurrently with other calls, also of the same connection. ctx ends when the connection fails or is
	// closed by a protocol error, or when Shutdown gives up waiting; a graceful Shutdown lets calls finish.
	//
	// params are the elements of the request's params array, decoded by vmihailenco/msgpack into any: str
	// as string, bin as []byte (use Bytes/OptBytes to accept both), maps as map[string]any (str or bin
	// keys; other keys make the request a bad_request before Call), arrays as []any, integers as the
	// narrowest Go type (int8..int64, uint8..uint64; use Int), floats as float32/float64, nil as nil,
	// timestamps as time.Time. Call owns params and may keep them.
	//
	// The result is encoded as vmihailenco/msgpack encodes it: map[string]any, []any, structs (by their
	// msgpack tags), []byte as bin, string as str. An error that is (or wraps) an *Error is sent as is; other errors are
	// sent as CodeInternal (CodeTimeout for context.DeadlineExceeded). A method it does not serve should
	// return ErrUnknownMethod(method). A panic is recovered, logged and answered CodeInternal.
	Call(ctx context.Context, method string, params []any) (result any, err error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, method string, params []any) (any, error)

// Call calls f.
func (f HandlerFunc) Call(ctx context.Context, method string, params []any) (any, error) {
	return f(ctx, method, params)
}

// Server serves MessagePack-RPC over a Handler. Create it with NewServer, run Serve on one or more
// listeners, and stop it with Shutdown.
type Server struct {
	cfg    Config
	cfgErr error
	h      Handler
	log    *slog.Logger

	// ctx is the parent of every connection's context; cancelled when Shutdown gives up waiting.
	ctx    context.Context
	cancel context.CancelFunc

	conns *netserve.Tracker[*conn] // listeners and connections; its Stopping channel stops their reading
	mem   *netserve.Budget         // Config.Memory, or the server's own
	stats counters

	// Warnings a flood repeats go through these: one line per kind per second.
	logInternal, logOverload, logConns, logBadInput ratelog.Limiter
}

// NewServer returns a server over h. Zero Config fields take their defaults; an invalid Config (or a nil
// Handler) makes Serve return the validation error. A nil logger discards logs.
func NewServer(cfg Config, h Handler, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfgErr: cfg.Validate(),
		cfg:    cfg.withDefaults(),
		h:      h,
		log:    logger,
	}
	if s.cfgErr == nil && h == nil {
		s.cfgErr = errors.New("msgpackrpc: NewServer: nil Handler")
	}
	s.conns = netserve.NewTracker[*conn](s.cfg.MaxConns)
	s.mem = s.cfg.Memory
	if s.mem == nil {
		s.mem = netserve.NewBudget(netserve.DefaultBudgetBytes)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// connKey keys the connection in a call's context.
type connKey struct{}

// ConnOf returns the connection a call arrived on (a *tls.Conn when the listener serves TLS), for handlers
// that decide by who is calling; nil outside a call.
func ConnOf(ctx context.Context) net.Conn {
	nc, _ := ctx.Value(connKey{}).(net.Conn)
	return nc
}

// Serve accepts connections on ln and serves each on its own goroutine until Shutdown. It always returns a
// non-nil error and closes ln: ErrServerClosed after Shutdown, the Config error if the Config is invalid, or
// the listener's error. Serve may run on several listeners at once.
func (s *Server) Serve(ln net.Listener) error {
	if s.cfgErr != nil {
		ln.Close()
		return s.cfgErr
	}
	if err := s.conns.Serve(ln, "msgpackrpc", s.log, s.conns.Stopping(), s.accept); err != nil {
		return err
	}
	return ErrServerClosed
}

// accept starts serving nc, or closes it when the server is full or closing. A rejected client sees the
// connection closed before any response (there is no msgid to answer yet).
func (s *Server) accept(nc net.Conn) {
	if s.conns.Full() {
		s.stats.rejectedConns.Add(1)
		s.logConns.Warn(s.log, "msgpackrpc: too many open connections", "remote", nc.RemoteAddr().String(),
			"max_conns", s.cfg.MaxConns)
		nc.Close()
		return
	}
	c := newConn(s, nc)
	if !s.conns.Add(c) {
		c.cancel()
		nc.Close()
		return
	}
	s.stats.totalConns.Add(1)
	go c.serve()
}

// Shutdown stops the server gracefully: it closes the listeners and stops every connection from reading
// further requests; requests already received but not started are answered CodeShuttingDown; calls in
// flight run to completion and their responses are written; then each connection closes. Shutdown returns
// nil once every connection is closed. If ctx ends first, it cancels the contexts of the calls still running,
// closes the remaining connections, and returns ctx's error without waiting for the calls.
func (s *Server) Shutdown(ctx context.Context) error {
	s.conns.Close(func(c *conn) { c.stop() })
	err := s.conns.Wait(ctx)
	s.cancel()
	if err != nil {
		s.conns.Each(func(c *conn) { c.nc.Close() })
	}
	return err
}

// ServerStats are the server's counters (Stats).
type ServerStats struct {
	Conns         int64  // connections open now
	TotalConns    uint64 // connections accepted and served
	RejectedConns uint64 // connections closed at once because MaxConns were open
	Requests      uint64 // requests passed to the Handler
	Answered      uint64 // responses encoded and queued (results and errors)
	Notifications uint64 // notifications received (not answered)
	InFlight      int64  // requests running or whose responses are waiting to be written
	Errors        uint64 // error responses sent, for any reason
	BadFrames     uint64 // messages that were not msgpack, over a limit, or of the wrong shape
	Panics        uint64 // Handler panics recovered
	Overloads     uint64 // requests and responses refused because the memory budget had no room
	ReadTimeouts  uint64 // connections closed because a message's rest did not come within ReadTimeout
}

// counters back ServerStats; updated with atomics from every connection and call goroutine.
type counters struct {
	totalConns, rejectedConns, requests, notifications, errors, badFrames, panics atomic.Uint64
	overloads, readTimeouts, answered                                             atomic.Uint64
	inFlight                                                                      atomic.Int64
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() ServerStats {
	st := &s.stats
	return ServerStats{
		Conns:         s.conns.Open().Load(),
		TotalConns:    st.totalConns.Load(),
		RejectedConns: st.rejectedConns.Load(),
		Requests:      st.requests.Load(),
		Answered:      st.answered.Load(),
		Notifications: st.notifications.Load(),
		InFlight:      st.inFlight.Load(),
		Errors:        st.errors.Load(),
		BadFrames:     st.badFrames.Load(),
		Panics:        st.panics.Load(),
		Overloads:     st.overloads.Load(),
		ReadTimeouts:  st.readTimeouts.Load(),
	}
}
