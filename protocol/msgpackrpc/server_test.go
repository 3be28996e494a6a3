package msgpackrpc

import (
	"context"
	"encoding/hex"
	"math"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func TestRequestResponse(t *testing.T) {
	_, addr := startServer(t, Config{}, newTestHandler())
	c := dial(t, addr)

	r := c.call(1, "echo", []byte("bin"), "str", 7, -3, 1.5, nil, true, map[string]any{"k": []any{int64(1)}})
	want := []any{[]byte("bin"), "str", int8(7), int8(-3), 1.5, nil, true, map[string]any{"k": []any{int8(1)}}}
	if r.err != nil || !reflect.DeepEqual(r.result, want) {
		t.Fatalf("echo = %#v, %v; want %#v", r.result, r.err, want)
	}
	if r := c.call(0, "ping"); r.result != "pong" || r.msgid != 0 {
		t.Fatalf("ping msgid 0 = %+v", r)
	}
	if r := c.call(math.MaxUint32, "ping"); r.result != "pong" {
		t.Fatalf("ping msgid max = %+v", r)
	}
	r = c.call(2, "struct")
	if m, _ := r.result.(map[string]any); m == nil || m["c"] != "str" || !reflect.DeepEqual(m["b"], []byte("bin")) ||
		m["a"] != int8(1) || len(m) != 3 {
		t.Fatalf("struct = %#v", r.result)
	}
	r = c.call(3, "typed", "key-as-str", map[string]any{"r": uint64(3), "return_body": true})
	if m, _ := r.result.(map[string]any); m == nil || !reflect.DeepEqual(m["key"], []byte("key-as-str")) ||
		m["r"] != int8(3) || m["return_body"] != true {
		t.Fatalf("typed = %#v %v", r.result, r.err)
	}

	// method as bin (Perl's Data::MessagePack packs strings as bin), msgid as uint16, nil params.
	var buf strings.Builder
	enc := msgpack.NewEncoder(&buf)
	enc.EncodeArrayLen(4)
	enc.EncodeInt(0)
	enc.EncodeUint16(300)
	enc.EncodeBytes([]byte("ping"))
	enc.EncodeNil()
	c.write([]byte(buf.String()))
	if r := c.mustNext(); r.msgid != 300 || r.result != "pong" {
		t.Fatalf("bin method = %+v", r)
	}
}

func TestPipelinedOutOfOrder(t *testing.T) {
	hd := newTestHandler()
	hd.started = make(chan string, 1)
	s, addr := startServer(t, Config{}, hd)
	c := dial(t, addr)
	// Both requests in one write: the slow one first.
	c.write(append(request(t, 1, "wait", "slow"), request(t, 2, "echo", "fast")...))
	<-hd.started
	if r := c.mustNext(); r.msgid != 2 {
		t.Fatalf("first response to msgid %d, want 2 (the fast call)", r.msgid)
	}
	// The fast call's slot is released just after its response is written.
	waitFor(t, "one call in flight", func() bool { return s.Stats().InFlight == 1 })
	close(hd.gate)
	if r := c.mustNext(); r.msgid != 1 || r.result != "done" {
		t.Fatalf("second response = %+v", r)
	}

	// Many pipelined requests in one write are all answered, each once.
	var batch []byte
	for i := range 500 {
		batch = append(batch, request(t, uint32(1000+i), "echo", i)...)
	}
	c.write(batch)
	seen := map[uint64]bool{}
	for range 500 {
		r := c.mustNext()
		if seen[r.msgid] || r.msgid < 1000 || r.msgid >= 1500 {
			t.Fatalf("unexpected response %+v", r)
		}
		seen[r.msgid] = true
	}
}

func TestNotification(t *testing.T) {
	s, addr := startServer(t, Config{}, newTestHandler())
	c := dial(t, addr)
	c.write(mustMarshal(t, []any{2, "ping", []any{}}))
	c.write(mustMarshal(t, []any{2, "unknown", []any{1, 2}}))
	c.write(mustMarshal(t, []any{2, []byte("ping"), nil}))
	// The next message is the answer to this request: notifications get none.
	if r := c.call(9, "ping"); r.result != "pong" {
		t.Fatalf("ping = %+v", r)
	}
	if st := s.Stats(); st.Notifications != 3 || st.Requests != 1 || st.BadFrames != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestHandlerErrors(t *testing.T) {
	s, addr := startServer(t, Config{}, newTestHandler())
	c := dial(t, addr)
	tests := []struct {
		method  string
		code    string
		message string
		fields  map[string]any
	}{
		{"fail", CodeNotFound, "no such key", map[string]any{"need": int8(2), "got": int8(1)}},
		{"plain", CodeInternal, internalMessage, nil},
		{"deadline", CodeTimeout, "deadline exceeded", nil},
		{"panic", CodeInternal, panicMessage, nil},
		{"unencodable", CodeInternal, "encoding the response: msgpack: Encode(unsupported chan int)", nil},
		{"nosuch", CodeUnknownMethod, `no method "nosuch"`, nil},
		{"typed", CodeBadRequest, "missing parameter 1 (key)", nil},
	}
	for i, tt := range tests {
		r := c.call(uint32(i), tt.method)
		want := map[string]any{"code": tt.code, "message": tt.message}
		for k, v := range tt.fields {
			want[k] = v
		}
		if !reflect.DeepEqual(r.err, want) {
			t.Errorf("%s: error = %#v, want %#v", tt.method, r.err, want)
		}
	}
	// The server keeps serving after a panic, on this connection and new ones.
	if r := c.call(100, "ping"); r.result != "pong" {
		t.Fatalf("ping after errors = %+v", r)
	}
	ping(t, addr)
	if st := s.Stats(); st.Panics != 1 || st.Errors != uint64(len(tests)) {
		t.Fatalf("stats = %+v", st)
	}
}

func TestParamErrors(t *testing.T) {
	_, addr := startServer(t, Config{}, newTestHandler())
	c := dial(t, addr)
	for _, tc := range []struct {
		params []any
		msg    string
	}{
		{[]any{5}, "parameter key: want bin or str, got int"},
		{[]any{nil}, "parameter key: want bin or str, got nil"},
		{[]any{"k", []any{}}, "parameter opts: want a map, got array"},
		{[]any{"k", map[string]any{"r": 1.5}}, "option r: want an integer, got float"},
		{[]any{"k", map[string]any{"r": uint64(math.MaxUint64)}}, "option r: 18446744073709551615 out of range"},
		{[]any{"k", map[string]any{"return_body": 1}}, "option return_body: want a bool, got int"},
	} {
		r := c.call(1, "typed", tc.params...)
		if r.code() != CodeBadRequest || r.err["message"] != tc.msg {
			t.Errorf("typed%v = %v, want bad_request %q", tc.params, r.err, tc.msg)
		}
	}
}

// TestBadMessages sends each message on a new connection and checks the answer and whether the connection
// stays open.
func TestBadMessages(t *testing.T) {
	cfg := Config{MaxMessageBytes: 4096, MaxDepth: 8, MaxElems: 64}
	s, addr := startServer(t, cfg, newTestHandler())
	m := func(v any) []byte { return mustMarshal(t, v) }
	deep := h(strings.Repeat("91", 10) + "01")
	tests := []struct {
		name   string
		in     []byte
		code   string // "" = no response
		msgid  uint64
		closed bool
	}{
		{"response from client", m([]any{1, 7, nil, "x"}), CodeBadRequest, 7, false},
		{"request of 3", m([]any{0, 7, "echo"}), CodeBadRequest, 7, false},
		{"request of 5", m([]any{0, 7, "echo", []any{}, 1}), CodeBadRequest, 7, false},
		{"int method", m([]any{0, 7, 5, []any{}}), CodeBadRequest, 7, false},
		{"nil method", m([]any{0, 7, nil, []any{}}), CodeBadRequest, 7, false},
		{"params not array", m([]any{0, 7, "echo", 5}), CodeBadRequest, 7, false},
		{"params map", m([]any{0, 7, "echo", map[string]any{}}), CodeBadRequest, 7, false},
		{"unknown ext in params", append(h("94 00 07 a4 65 63 68 6f 91"), h("d4 42 00")...), CodeBadRequest, 7, false},
		{"int map key in params", h("94 00 07 a4 65 63 68 6f 91 81 01 02"), CodeBadRequest, 7, false},
		{"msgid as uint64", h("94 00 cf 00 00 00 00 00 00 00 07 a4 70 69 6e 67 90"), "", 7, false},
		{"negative msgid", m([]any{0, -1, "echo", []any{}}), "", 0, true},
		{"msgid over uint32", m([]any{0, uint64(1) << 32, "echo", []any{}}), "", 0, true},
		{"float msgid", m([]any{0, 1.0, "echo", []any{}}), "", 0, true},
		{"str msgid", m([]any{0, "7", "echo", []any{}}), "", 0, true},
		{"not an array", m("hello"), "", 0, true},
		{"empty array", m([]any{}), "", 0, true},
		{"unknown type", m([]any{3, 7, "x", []any{}}), "", 0, true},
		{"notification of 4", m([]any{2, "ping", []any{}, 1}), "", 0, true},
		{"notification int method", m([]any{2, 5, []any{}}), "", 0, true},
		{"never-used byte", h("c1"), "", 0, true},
		{"never-used byte in params", h("94 00 07 a4 65 63 68 6f 91 c1"), CodeBadRequest, 7, true},
		{"too deep", append(h("94 00 07 a4 65 63 68 6f"), deep...), CodeBadRequest, 7, true},
		{"too many elems", m([]any{0, 7, "echo", make([]any, 100)}), CodeTooLarge, 7, true},
		{"too large declared", h("94 00 07 a4 65 63 68 6f 91 c6 00 00 10 00"), CodeTooLarge, 7, true},
		{"too large declared, array32", h("94 00 07 a4 65 63 68 6f dd ff ff ff ff"), CodeTooLarge, 7, true},
		{"array32 of 4G", h("dd ff ff ff ff"), "", 0, true},
		{"map32 of 4G", h("df ff ff ff ff"), "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, addr)
			c.write(tt.in)
			if tt.code != "" || tt.name == "msgid as uint64" {
				r := c.mustNext()
				if r.code() != tt.code || r.msgid != tt.msgid {
					t.Fatalf("response = %+v, want code %q msgid %d", r, tt.code, tt.msgid)
				}
				if tt.code == CodeTooLarge && r.err["limit"] == nil {
					t.Fatalf("too_large without limit: %v", r.err)
				}
			}
			if tt.closed {
				c.expectClosed()
			} else if r := c.call(99, "ping"); r.result != "pong" {
				t.Fatalf("ping after = %+v", r)
			}
		})
	}
	ping(t, addr)
	if st := s.Stats(); st.BadFrames != uint64(len(tests)-1) {
		t.Errorf("BadFrames = %d, want %d", st.BadFrames, len(tests)-1)
	}
}

// TestTruncatedAtEveryOffset: a valid request cut at every byte offset, then the client half-closes. The
// server must wait for more (send nothing), close on EOF, and keep serving; the whole request byte by byte
// is answered.
func TestTruncatedAtEveryOffset(t *testing.T) {
	s, addr := startServer(t, Config{}, newTestHandler())
	reqs := [][]byte{
		request(t, 77, "echo", []byte("key"), strings.Repeat("v", 300), nil,
			map[string]any{"w": 2, "return_body": true, "t": time.Unix(1700000000, 5)}),
		h("94 00 cd 01 00 c4 04 70 69 6e 67 dc 00 02 c5 00 03 61 62 63 ce 00 01 00 00"),
	}
	for _, req := range reqs {
		for k := 0; k < len(req); k++ {
			c := dial(t, addr)
			c.write(req[:k])
			c.nc.(*net.TCPConn).CloseWrite()
			c.expectClosed()
			c.nc.Close()
		}
		// Byte by byte on one connection.
		c := dial(t, addr)
		c.nc.(*net.TCPConn).SetNoDelay(true)
		for i := range req {
			c.write(req[i : i+1])
		}
		if r := c.mustNext(); r.err != nil {
			t.Fatalf("request sent byte by byte: %+v", r)
		}
		c.nc.Close()
	}
	ping(t, addr)
	waitFor(t, "connections closed", func() bool { return s.Stats().Conns == 0 })
	if st := s.Stats(); st.BadFrames != 0 || st.Requests != 3 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestMaxConns(t *testing.T) {
	s, addr := startServer(t, Config{MaxConns: 2}, newTestHandler())
	a, b := dial(t, addr), dial(t, addr)
	a.call(1, "ping")
	b.call(1, "ping")
	c := dial(t, addr)
	c.expectClosed()
	if st := s.Stats(); st.RejectedConns != 1 || st.Conns != 2 {
		t.Fatalf("stats = %+v", st)
	}
	a.nc.Close()
	waitFor(t, "a connection slot", func() bool { return s.Stats().Conns == 1 })
	ping(t, addr)
}

// TestBackpressure: with MaxInFlightPerConn calls running, the connection stops reading: the client's
// writes block once the socket buffers are full, and the queued requests run when the calls finish.
func TestBackpressure(t *testing.T) {
	hd := newTestHandler()
	hd.started = make(chan string, 2)
	s, addr := startServer(t, Config{MaxInFlightPerConn: 2}, hd)
	c := dial(t, addr)
	c.write(append(request(t, 1, "wait"), request(t, 2, "wait")...))
	<-hd.started
	<-hd.started
	// Stream echo requests until the write blocks.
	req := request(t, 3, "echo", strings.Repeat("x", 1000))
	var batch []byte
	for range 64 {
		batch = append(batch, req...)
	}
	written := 0
	c.nc.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	for written < 256<<20 {
		n, err := c.nc.Write(batch)
		written += n
		if err != nil {
			break
		}
	}
	if written >= 256<<20 {
		t.Fatalf("wrote %d bytes without blocking", written)
	}
	if st := s.Stats(); st.Requests != 2 || st.InFlight != 2 {
		t.Fatalf("stats while blocked = %+v", st)
	}
	t.Logf("client blocked after %d bytes (%d requests)", written, written/len(req))
	close(hd.gate)
	// Every complete request written is answered: two waits, then the echoes.
	want := 2 + written/len(req)
	go func() {
		// The rest of a partly written request, so that the last one completes.
		c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		c.nc.Write(req[written%len(req):])
	}()
	if written%len(req) != 0 {
		want++
	}
	for i := 0; i < want; i++ {
		if r := c.mustNext(); r.err != nil {
			t.Fatalf("response %d: %+v", i, r)
		}
	}
}

func TestIdleTimeout(t *testing.T) {
	hd := newTestHandler()
	hd.started = make(chan string, 1)
	_, addr := startServer(t, Config{IdleTimeout: 50 * time.Millisecond}, hd)
	start := time.Now()
	idle := dial(t, addr)
	idle.expectClosed()
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("closed after %v", d)
	}
	// A connection with a call in flight is not idle.
	busy := dial(t, addr)
	busy.write(request(t, 1, "wait"))
	<-hd.started
	busy.nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := busy.nc.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("busy connection: read = %v, want our own timeout", err)
	}
	close(hd.gate)
	if r := busy.mustNext(); r.result != "done" {
		t.Fatalf("response = %+v", r)
	}
	busy.expectClosed() // idle again
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestWriteTimeout: a client that does not read a large response is disconnected, and its calls' context
// ends.
func TestWriteTimeout(t *testing.T) {
	hd := newTestHandler()
	hd.started = make(chan string, 1)
	s, addr := startServer(t, Config{WriteTimeout: 100 * time.Millisecond}, hd)
	c := dial(t, addr)
	c.nc.(*net.TCPConn).SetReadBuffer(4096)
	c.write(append(request(t, 1, "block"), request(t, 2, "big")...))
	<-hd.started
	// "block" returns when the failed write cancels the connection's context; then the server closes.
	waitFor(t, "the connection closed", func() bool { return s.Stats().Conns == 0 })
	if st := s.Stats(); st.InFlight != 0 {
		t.Fatalf("stats = %+v", st)
	}
	ping(t, addr)
}

func TestShutdownGraceful(t *testing.T) {
	hd := newTestHandler()
	hd.started = make(chan string, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(Config{}, hd, testLogger(t))
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	c := dial(t, ln.Addr().String())
	c.write(request(t, 1, "wait"))
	<-hd.started

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if err := <-served; err != ErrServerClosed {
		t.Fatalf("Serve = %v", err)
	}
	// A request sent now is either answered shutting_down (if read with the ones already buffered) or
	// never read; the call in flight is answered in any case.
	c.write(request(t, 2, "ping"))
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a call in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(hd.gate)
	got := map[uint64]string{}
	for {
		r, err := c.next()
		if err != nil {
			break
		}
		got[r.msgid] = r.code()
		if r.msgid == 1 && r.result != "done" {
			t.Fatalf("in-flight call answered %+v", r)
		}
	}
	if _, ok := got[1]; !ok {
		t.Fatalf("the call in flight was not answered: %v", got)
	}
	if code, ok := got[2]; ok && code != CodeShuttingDown {
		t.Fatalf("request after Shutdown answered %q", code)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("listener still accepting")
	}
}

// TestShutdownBufferedRequests: requests buffered behind a blocked dispatch get shutting_down.
func TestShutdownBufferedRequests(t *testing.T) {
	hd := newTestHandler()
	hd.started = make(chan string, 1)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	s := NewServer(Config{MaxInFlightPerConn: 1}, hd, testLogger(t))
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	c := dial(t, ln.Addr().String())
	c.write(append(append(request(t, 1, "wait"), request(t, 2, "ping")...), request(t, 3, "ping")...))
	<-hd.started
	waitFor(t, "the reader to hold msgid 2", func() bool { return s.Stats().Requests == 1 })
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	// Serve returns after Shutdown has released the server lock, under which it stops the connections.
	<-served
	close(hd.gate)
	codes := map[uint64]string{}
	for {
		r, err := c.next()
		if err != nil {
			break
		}
		codes[r.msgid] = r.code()
	}
	want := map[uint64]string{1: "", 2: CodeShuttingDown, 3: CodeShuttingDown}
	if !reflect.DeepEqual(codes, want) {
		t.Fatalf("codes = %v, want %v", codes, want)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

func TestShutdownForced(t *testing.T) {
	hd := newTestHandler()
	hd.started = make(chan string, 1)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	s := NewServer(Config{}, hd, testLogger(t))
	go s.Serve(ln)
	c := dial(t, ln.Addr().String())
	c.write(request(t, 1, "block")) // returns only when its context ends
	<-hd.started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
	// The call's context was cancelled, so everything winds down.
	waitFor(t, "connections closed", func() bool { return s.Stats().Conns == 0 && s.Stats().InFlight == 0 })
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown = %v", err)
	}
	if err := s.Serve(ln); err != ErrServerClosed {
		t.Fatalf("Serve after Shutdown = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{MaxMessageBytes: 10}, "Config.MaxMessageBytes = 10"},
		{Config{MaxMessageBytes: 2 << 30}, "Config.MaxMessageBytes = 2147483648"},
		{Config{MaxDepth: 1}, "Config.MaxDepth = 1"},
		{Config{MaxDepth: 300}, "Config.MaxDepth = 300"},
		{Config{MaxElems: 3}, "Config.MaxElems = 3"},
		{Config{MaxInFlightPerConn: -1}, "Config.MaxInFlightPerConn = -1"},
		{Config{MaxConns: -1}, "Config.MaxConns = -1"},
		{Config{IdleTimeout: -time.Second}, "Config.IdleTimeout = -1s"},
		{Config{MaxConnBytes: -1}, "Config.MaxConnBytes = -1"},
		{Config{MaxMessageBytes: 1 << 20, MaxConnBytes: 1<<20 + 4096}, "Config.MaxConnBytes = 1052672"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "msgpackrpc: ") {
			t.Errorf("%+v: Validate = %v, want %q", tc.cfg, err, tc.want)
		}
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		if serr := NewServer(tc.cfg, newTestHandler(), nil).Serve(ln); serr == nil || serr.Error() != err.Error() {
			t.Errorf("Serve = %v, want the Validate error", serr)
		}
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := NewServer(Config{}, nil, nil).Serve(ln); err == nil {
		t.Error("Serve with a nil Handler succeeded")
	}
}
