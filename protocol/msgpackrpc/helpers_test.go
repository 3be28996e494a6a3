package msgpackrpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/mpscan"
	"github.com/vmihailenco/msgpack/v5"
)

// testHandler serves the methods the tests call.
type testHandler struct {
	gate    chan struct{} // "wait" returns when it is closed
	started chan string   // if set, "wait" and "block" send their first param here when they start
}

func newTestHandler() *testHandler { return &testHandler{gate: make(chan struct{})} }

type structResult struct {
	A int    `msgpack:"a"`
	B []byte `msgpack:"b"`
	C string `msgpack:"c"`
	D []int  `msgpack:"d,omitempty"`
}

func (h *testHandler) Call(ctx context.Context, method string, params []any) (any, error) {
	switch method {
	case "echo":
		return params, nil
	case "ping":
		return "pong", nil
	case "wait", "block":
		if h.started != nil {
			var tag string
			if len(params) > 0 {
				tag = fmt.Sprint(params[0])
			}
			h.started <- tag
		}
		if method == "block" {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		select {
		case <-h.gate:
			return "done", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case "fail":
		return nil, fmt.Errorf("wrapped: %w", &Error{Code: CodeNotFound, Message: "no such key",
			Fields: map[string]any{"need": 2, "got": 1, "code": "ignored"}})
	case "plain":
		return nil, errors.New("boom")
	case "deadline":
		return nil, fmt.Errorf("get: %w", context.DeadlineExceeded)
	case "panic":
		panic("kaboom")
	case "unencodable":
		return make(chan int), nil
	case "struct":
		return structResult{A: 1, B: []byte("bin"), C: "str"}, nil
	case "big":
		return bytes.Repeat([]byte("x"), 8<<20), nil
	case "bytes", "bigstruct": // n bytes, as a bin or inside a struct (whose size is known only once encoded)
		n, _, err := Int(map[string]any{"n": params[0]}, "n")
		if err != nil {
			return nil, err
		}
		if method == "bigstruct" {
			return structResult{B: make([]byte, n)}, nil
		}
		return make([]byte, n), nil
	case "typed":
		key, err := Bytes(params, 0, "key")
		if err != nil {
			return nil, err
		}
		opts, err := Map(params, 1, "opts")
		if err != nil {
			return nil, err
		}
		r, hasR, err := Int(opts, "r")
		if err != nil {
			return nil, err
		}
		rb, hasRB, err := Bool(opts, "return_body")
		if err != nil {
			return nil, err
		}
		return map[string]any{"key": key, "r": r, "has_r": hasR, "return_body": rb, "has_rb": hasRB}, nil
	}
	return nil, ErrUnknownMethod(method)
}

// tlog is an io.Writer for slog that writes to t.Log until the test's cleanup, and drops lines after.
type tlog struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tlog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	w := &tlog{t: t}
	t.Cleanup(func() { // registered first: runs after the server's Shutdown
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startServer serves h on a loopback port and shuts the server down when the test ends.
func startServer(t testing.TB, cfg Config, h Handler) (*Server, string) {
	t.Helper()
	var logger *slog.Logger
	if _, fuzz := t.(*testing.F); !fuzz {
		logger = testLogger(t)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(cfg, h, logger)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != ErrServerClosed {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	})
	return s, ln.Addr().String()
}

// client is a raw-socket test client.
type client struct {
	t   testing.TB
	nc  net.Conn
	buf []byte
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc}
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// request encodes [0, msgid, method, params].
func request(t testing.TB, msgid uint32, method string, params ...any) []byte {
	if params == nil {
		params = []any{}
	}
	return mustMarshal(t, []any{0, msgid, method, params})
}

func (c *client) write(b []byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// response is a decoded [1, msgid, error, result].
type response struct {
	msgid  uint64
	err    map[string]any
	result any
}

func (r response) code() string {
	if r.err == nil {
		return ""
	}
	s, _ := r.err["code"].(string)
	return s
}

// next reads one message, waiting up to 10 s. It returns io.EOF (or another read error) if the server
// closes the connection first.
func (c *client) next() (response, error) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		n, err := mpscan.Scan(c.buf, mpscan.Limits{MaxBytes: 64 << 20})
		if err == nil {
			frame := c.buf[:n]
			c.buf = c.buf[n:]
			return decodeResponse(c.t, frame), nil
		}
		if err != mpscan.ErrIncomplete {
			c.t.Fatalf("server sent bad msgpack: %v", err)
		}
		tmp := make([]byte, 64<<10)
		m, err := c.nc.Read(tmp)
		c.buf = append(c.buf, tmp[:m]...)
		if err != nil && m == 0 {
			return response{}, err
		}
	}
}

func decodeResponse(t testing.TB, frame []byte) response {
	t.Helper()
	v, err := msgpack.NewDecoder(bytes.NewReader(frame)).DecodeInterface()
	if err != nil {
		t.Fatalf("decoding a response: %v", err)
	}
	a, ok := v.([]any)
	if !ok || len(a) != 4 || toUint(a[0]) != 1 {
		t.Fatalf("not a response: %#v", v)
	}
	r := response{msgid: toUint(a[1]), result: a[3]}
	if a[2] != nil {
		if r.err, ok = a[2].(map[string]any); !ok {
			t.Fatalf("error is not a map: %#v", a[2])
		}
		if a[3] != nil {
			t.Fatalf("error response with a result: %#v", v)
		}
	}
	return r
}

func toUint(v any) uint64 {
	n, ok, err := Int(map[string]any{"v": v}, "v")
	if !ok || err != nil {
		return 1 << 63
	}
	return uint64(n)
}

// mustNext reads one response.
func (c *client) mustNext() response {
	c.t.Helper()
	r, err := c.next()
	if err != nil {
		c.t.Fatalf("reading a response: %v", err)
	}
	return r
}

// call sends one request and reads one response.
func (c *client) call(msgid uint32, method string, params ...any) response {
	c.t.Helper()
	c.write(request(c.t, msgid, method, params...))
	r := c.mustNext()
	if r.msgid != uint64(msgid) {
		c.t.Fatalf("response to msgid %d, want %d", r.msgid, msgid)
	}
	return r
}

// expectClosed reads until the server closes the connection; it fails on any message.
func (c *client) expectClosed() {
	c.t.Helper()
	if r, err := c.next(); err == nil {
		c.t.Fatalf("got %+v, want the connection closed", r)
	} else if !errors.Is(err, io.EOF) && !isReset(err) {
		c.t.Fatalf("read: %v, want EOF", err)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") ||
		strings.Contains(err.Error(), "broken pipe"))
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // NB: polling interval, not a wait for the condition
	}
}

// ping checks that a new connection is served.
func ping(t testing.TB, addr string) {
	t.Helper()
	c := dial(t, addr)
	if r := c.call(4242, "ping"); r.err != nil || r.result != "pong" {
		t.Fatalf("ping = %+v", r)
	}
	c.nc.Close()
}
