package msgpackrpc

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/logbuf"
	"github.com/gokai-kv/gokai/internal/netserve"
)

// putHead is the start of a request [0, msgid, "echo", [<bin32 of size bytes>]]; the value's bytes follow.
func putHead(msgid uint32, size int) []byte {
	b := h("94 00 ce")
	b = append(b, byte(msgid>>24), byte(msgid>>16), byte(msgid>>8), byte(msgid))
	b = append(b, h("a4 65 63 68 6f 91 c6")...)
	return append(b, byte(size>>24), byte(size>>16), byte(size>>8), byte(size))
}

// TestReadTimeoutClosesAPartialMessage: once a message has started, its rest must come within ReadTimeout
// of the first wait for it, however it trickles; between messages there is no such limit.
func TestReadTimeoutClosesAPartialMessage(t *testing.T) {
	mem := netserve.NewBudget(64 << 20)
	s, addr := startServer(t, Config{ReadTimeout: 100 * time.Millisecond, Memory: mem}, newTestHandler())

	c := dial(t, addr)
	req := request(t, 1, "echo", "hello")
	c.write(req[:len(req)/2])
	c.expectClosed()

	// One byte every 30 ms: each read is within the timeout, the message is not.
	trickle := dial(t, addr)
	go func() {
		for _, b := range req {
			if _, err := trickle.nc.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(30 * time.Millisecond) // NB: pacing the trickle
		}
	}()
	trickle.expectClosed()

	// A partial 9 MiB message: its reservation and buffer go when the connection does.
	c = dial(t, addr)
	c.write(append(putHead(2, 9<<20), make([]byte, 1<<20)...))
	c.expectClosed()
	waitFor(t, "the connections closed", func() bool { return s.Stats().Conns == 0 })
	if mem.Used() != 0 {
		t.Fatalf("%d budget bytes still held after the connections closed", mem.Used())
	}
	if st := s.Stats(); st.ReadTimeouts != 3 {
		t.Fatalf("ReadTimeouts = %d, want 3", st.ReadTimeouts)
	}

	// Idle between messages: not closed (IdleTimeout is 0).
	c = dial(t, addr)
	if r := c.call(3, "ping"); r.result != "pong" {
		t.Fatalf("ping = %+v", r)
	}
	c.nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.nc.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("idle connection: read = %v, want our own timeout", err)
	}
	if r := c.call(4, "ping"); r.result != "pong" {
		t.Fatalf("ping after idling = %+v", r)
	}
}

// TestStalledMessagesReleaseTheirBuffers: connections that stall in the middle of big messages hold
// memory only until the read timeout closes them; nothing keeps their buffers (no pool), so the heap
// goes back to what it was.
func TestStalledMessagesReleaseTheirBuffers(t *testing.T) {
	s, addr := startServer(t, Config{ReadTimeout: 3 * time.Second}, newTestHandler())
	runtime.GC()
	var before, during, after runtime.MemStats
	runtime.ReadMemStats(&before)
	chunk := make([]byte, 8<<20)
	var conns []*client
	for i := range 8 {
		c := dial(t, addr)
		c.write(append(putHead(uint32(i), 9<<20), chunk...))
		conns = append(conns, c)
	}
	waitFor(t, "the server to buffer the messages", func() bool {
		runtime.GC()
		runtime.ReadMemStats(&during)
		return during.HeapAlloc >= before.HeapAlloc+48<<20
	})
	for _, c := range conns {
		c.expectClosed()
	}
	waitFor(t, "the connections closed", func() bool { return s.Stats().Conns == 0 })
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("heap %d MiB before, %d MiB with 8 stalled 9 MiB messages, %d MiB after they were closed",
		before.HeapAlloc>>20, during.HeapAlloc>>20, after.HeapAlloc>>20)
	if after.HeapAlloc > before.HeapAlloc+4<<20 {
		t.Fatalf("heap %d MiB after the connections closed, %d MiB before: buffers were kept", after.HeapAlloc>>20,
			before.HeapAlloc>>20)
	}
}

// TestBudgetRefusesAMessageAndKeepsTheConnection: a message whose declared size does not fit in the
// budget is answered overload before its bytes are buffered, its bytes are passed over, and the requests
// behind it on the same connection are served.
func TestBudgetRefusesAMessageAndKeepsTheConnection(t *testing.T) {
	mem := netserve.NewBudget(4 << 20)
	s, addr := startServer(t, Config{MaxMessageBytes: 8 << 20, Memory: mem}, newTestHandler())
	c := dial(t, addr)
	big := append(putHead(1, 6<<20), make([]byte, 6<<20)...)
	var batch []byte
	batch = append(batch, big...)
	batch = append(batch, request(t, 2, "ping")...)
	batch = append(batch, mustMarshal(t, []any{2, "ping", []any{bytes.Repeat([]byte("n"), 6<<20)}})...) // notification
	batch = append(batch, request(t, 3, "echo", []byte("small"))...)
	go func() {
		// In pieces, so that the refused message arrives over many reads.
		for b := batch; len(b) > 0; {
			n := min(len(b), 100<<10)
			if _, err := c.nc.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
	}()
	// NB: requests are served concurrently, so the answers may come in any order (msgpack-RPC matches them
	// by msgid).
	want := map[uint64]string{1: CodeOverload, 2: "", 3: ""}
	for range len(want) {
		r := c.mustNext()
		code, ok := want[r.msgid]
		if !ok || r.code() != code {
			t.Fatalf("response %+v: unexpected or repeated msgid, or want code %q", r, code)
		}
		delete(want, r.msgid)
	}
	// A message that fits is served whole.
	if r := c.call(4, "echo", make([]byte, 512<<10)); r.err != nil {
		t.Fatalf("echo of 512 KiB: %+v", r.err)
	}
	if st := s.Stats(); st.Overloads != 2 {
		t.Fatalf("Overloads = %d, want 2 (the request and the notification)", st.Overloads)
	}
	c.nc.Close()
	waitFor(t, "the connection closed", func() bool { return s.Stats().Conns == 0 })
	if mem.Used() != 0 {
		t.Fatalf("%d budget bytes still held", mem.Used())
	}

	// A message over the budget that has no msgid and is not a notification cannot be answered: close.
	c = dial(t, addr)
	c.write(append(h("c6 00 60 00 00"), make([]byte, 1024)...))
	c.expectClosed()
}

// TestBudgetRefusesAResponse: a result whose bytes do not fit is answered overload instead; the call's
// connection keeps serving. Results whose size is known only once encoded are checked after encoding.
func TestBudgetRefusesAResponse(t *testing.T) {
	mem := netserve.NewBudget(4 << 20)
	s, addr := startServer(t, Config{Memory: mem}, newTestHandler())
	c := dial(t, addr)
	for i, tc := range []struct {
		method string
		n      int
		code   string
	}{
		{"bytes", 1 << 20, ""},
		{"bytes", 4 << 20, CodeOverload},
		{"bigstruct", 1 << 20, ""},
		{"bigstruct", 4 << 20, CodeOverload},
		{"bytes", 100, ""},
	} {
		r := c.call(uint32(i), tc.method, tc.n)
		if r.code() != tc.code {
			t.Fatalf("%s(%d): %+v, want code %q", tc.method, tc.n, r.err, tc.code)
		}
	}
	c.nc.Close()
	waitFor(t, "the connection closed", func() bool { return s.Stats().Conns == 0 })
	if mem.Used() != 0 {
		t.Fatalf("%d budget bytes still held", mem.Used())
	}
}

// TestMaxConnBytesBoundsOnePipeliningConnection: one connection pipelines big responses and reads none
// for a while. It runs only as many calls as its MaxConnBytes holds (the reader waits, and TCP pushes back
// on the client), so what it holds stays under the cap; another connection is served meanwhile; and every
// call is answered once the client reads.
func TestMaxConnBytesBoundsOnePipeliningConnection(t *testing.T) {
	mem := netserve.NewBudget(64 << 20)
	s, addr := startServer(t, Config{MaxMessageBytes: 1 << 20, MaxConnBytes: 3 << 20, Memory: mem}, newTestHandler())
	c := dialSmallWindow(t, addr)
	const calls = 12
	var batch []byte
	for i := range calls {
		batch = append(batch, request(t, uint32(i), "bytes", 900<<10)...)
	}
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			default:
			}
			peak.Store(max(peak.Load(), mem.Used()))
			time.Sleep(50 * time.Microsecond) // NB: sampling interval
		}
	}()
	c.write(batch)
	waitFor(t, "the first calls answered", func() bool { return s.Stats().Answered >= 2 })
	ping(t, addr)
	for i := range calls {
		if r := c.mustNext(); r.err != nil {
			t.Fatalf("response %d: %+v", i, r.err)
		}
	}
	close(stop)
	<-sampled
	t.Logf("peak held %d KiB", peak.Load()>>10)
	if p := peak.Load(); p > 3<<20 {
		t.Fatalf("the connection held %d bytes, over its 3 MiB", p)
	}
	c.nc.Close()
	waitFor(t, "the connection closed", func() bool { return s.Stats().Conns == 0 })
	if mem.Used() != 0 {
		t.Fatalf("%d budget bytes still held", mem.Used())
	}
}

// TestWindowLetsSmallCallsPipeline: once a connection's responses are small, its calls run as many at
// once as MaxInFlightPerConn allows, whatever MaxConnBytes.
func TestWindowLetsSmallCallsPipeline(t *testing.T) {
	hd := newTestHandler()
	hd.started = make(chan string, 64)
	_, addr := startServer(t, Config{MaxMessageBytes: 1 << 20, MaxConnBytes: 3 << 20, MaxInFlightPerConn: 32}, hd)
	c := dial(t, addr)
	for i := range 4 { // the first responses set the estimate
		if r := c.call(uint32(i), "ping"); r.err != nil {
			t.Fatal(r.err)
		}
	}
	var batch []byte
	for i := range 20 {
		batch = append(batch, request(t, uint32(100+i), "wait", i)...)
	}
	c.write(batch)
	for range 20 {
		<-hd.started // all 20 run at once: 3 MiB holds 3 calls of a 1 MiB estimate, not 20
	}
	close(hd.gate)
	for range 20 {
		if r := c.mustNext(); r.result != "done" {
			t.Fatalf("response %+v", r)
		}
	}
}

// smallWindow sets a 4 KiB receive buffer on a socket before it connects (set after, it can stall the
// connection: the window it advertised shrinks), so the server's writes block early.
func smallWindow(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
	})
	if err != nil {
		return err
	}
	return serr
}

// dialSmallWindow is dial with a 4 KiB receive buffer (smallWindow).
func dialSmallWindow(t testing.TB, addr string) *client {
	t.Helper()
	d := net.Dialer{Control: smallWindow}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc}
}

// TestBudgetNeverLeaksRandomized: many connections run random scripts (big and small requests and
// responses, refused ones, failing and panicking calls, calls cut short by a close, partial messages
// left to the read timeout, bytes that are not msgpack, clients that never read); once they are all closed
// the budget is whole.
func TestBudgetNeverLeaksRandomized(t *testing.T) {
	mem := netserve.NewBudget(4 << 20)
	hd := newTestHandler()
	close(hd.gate)
	s, addr := startServer(t, Config{MaxMessageBytes: 1 << 20, MaxConnBytes: 2<<20 + 8<<10, Memory: mem,
		ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, MaxInFlightPerConn: 4}, hd)
	conns := 80
	if testing.Short() {
		conns = 20
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 12)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func(seed uint64) {
			defer wg.Done()
			defer func() { <-sem }()
			randomScript(t, addr, rand.New(rand.NewPCG(seed, 99)))
		}(uint64(i))
	}
	wg.Wait()
	waitFor(t, "every connection closed", func() bool { return s.Stats().Conns == 0 })
	st := s.Stats()
	t.Logf("stats %+v", st)
	if mem.Used() != 0 {
		t.Fatalf("%d budget bytes leaked", mem.Used())
	}
	if st.Overloads == 0 || st.ReadTimeouts == 0 || st.Panics == 0 {
		t.Fatalf("the scripts did not reach every path: %+v", st)
	}
}

// randomScript runs one connection's random script against addr. Errors are expected (refusals, closes);
// only the server's bookkeeping is checked, by the caller.
func randomScript(t *testing.T, addr string, r *rand.Rand) {
	d := net.Dialer{}
	if r.IntN(4) == 0 {
		d.Control = smallWindow
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	var out []byte
	for i := range 1 + r.IntN(12) {
		id := uint32(i)
		switch r.IntN(9) {
		case 0:
			out = append(out, request(t, id, "echo", make([]byte, r.IntN(900<<10)))...)
		case 1:
			out = append(out, request(t, id, "bytes", r.IntN(1<<20))...)
		case 2:
			out = append(out, request(t, id, "bigstruct", r.IntN(1<<20))...)
		case 3:
			out = append(out, request(t, id, "fail")...)
		case 4:
			out = append(out, request(t, id, "panic")...)
		case 5:
			if r.IntN(5) == 0 {
				out = append(out, h("c1")...) // not msgpack: the connection ends with a protocol error
			} else {
				out = append(out, request(t, id, "bytes", 1<<20-64)...)
			}
		case 6:
			out = append(out, putHead(id, r.IntN(1<<20))...) // a message that never ends
		case 7:
			out = append(out, request(t, id, "nosuch")...)
		default:
			out = append(out, request(t, id, "ping")...)
		}
	}
	if r.IntN(3) == 0 {
		out = out[:r.IntN(len(out)+1)] // cut anywhere
	}
	var pieces [][]byte
	for b := out; len(b) > 0; {
		n := min(len(b), 1+r.IntN(256<<10))
		pieces, b = append(pieces, b[:n]), b[n:]
	}
	go func() {
		for _, p := range pieces {
			if _, err := nc.Write(p); err != nil {
				return
			}
		}
	}()
	switch r.IntN(3) {
	case 0: // never read; close after a while
		time.Sleep(time.Duration(r.IntN(300)) * time.Millisecond) // NB: the script's pacing
	case 1: // read a little
		buf := make([]byte, 1+r.IntN(64<<10))
		nc.SetReadDeadline(time.Now().Add(time.Duration(r.IntN(300)) * time.Millisecond))
		nc.Read(buf)
	default: // read until the server closes or goes quiet
		nc.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 64<<10)
		for {
			if _, err := nc.Read(buf); err != nil {
				break
			}
		}
	}
}

// TestOverloadWarningsAreRateLimited: a flood of refused requests writes about one warning a second, and
// the lines say how many were suppressed.
func TestOverloadWarningsAreRateLimited(t *testing.T) {
	var logBuf logbuf.Buffer
	logger := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	mem := netserve.NewBudget(1 << 20)
	hd := newTestHandler()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(Config{Memory: mem}, hd, logger)
	go s.Serve(ln)
	defer s.Shutdown(t.Context())
	start := time.Now()
	const floods = 2000
	c := dial(t, ln.Addr().String())
	var batch []byte
	for i := range floods {
		batch = append(batch, putHead(uint32(i), 2<<20)...) // refused at its header, then its bytes skipped
		batch = append(batch, make([]byte, 2<<20)...)
		if len(batch) > 8<<20 || i == floods-1 {
			go c.nc.Write(bytes.Clone(batch))
			for range countOverloadHeads(batch) {
				if r := c.mustNext(); r.code() != CodeOverload {
					t.Fatalf("response %+v", r)
				}
			}
			batch = batch[:0]
		}
	}
	elapsed := time.Since(start)
	lines := strings.Count(logBuf.String(), "over the memory budget")
	t.Logf("%d refusals in %v: %d log lines", floods, elapsed, lines)
	if max := 1 + int(elapsed/time.Second) + 1; lines > max {
		t.Fatalf("%d overload lines in %v, want at most %d:\n%s", lines, elapsed, max, logBuf.String())
	}
	if lines > 1 && !strings.Contains(logBuf.String(), "suppressed=") {
		t.Fatalf("no suppressed count in:\n%s", logBuf.String())
	}
}

// countOverloadHeads counts the messages putHead started in b.
func countOverloadHeads(b []byte) int {
	return bytes.Count(b, h("a4 65 63 68 6f 91 c6"))
}

func TestSizeHintBoundsTheEncoding(t *testing.T) {
	for _, v := range []any{
		nil, true, int8(-5), uint64(1 << 60), -1 << 40, 3.5, float32(1), "", strings.Repeat("s", 40),
		strings.Repeat("s", 70000), []byte{}, make([]byte, 300), []byte(nil),
		[]any{1, "a", []byte("b"), map[string]any{"k": []any{nil, false}}},
		map[string]any{"values": []any{make([]byte, 1000)}, "context": []byte("ctx"), "n": 3},
		make([]any, 20), map[string]any{strings.Repeat("k", 40): 1},
	} {
		n, ok := sizeHint(v)
		if !ok {
			t.Fatalf("sizeHint(%T) not known", v)
		}
		var buf bytes.Buffer
		if err := encodeResponse(nil, &buf, 1, nil, v); err != nil {
			t.Fatal(err)
		}
		if buf.Len() > n+responseHeadroom {
			t.Fatalf("%s: encoded %d bytes, hint %d + %d", fmt.Sprintf("%.40v", v), buf.Len(), n, responseHeadroom)
		}
	}
	if _, ok := sizeHint(structResult{}); ok {
		t.Fatal("sizeHint knows a struct's size")
	}
	if _, ok := sizeHint([]any{structResult{}}); ok {
		t.Fatal("sizeHint knows the size of a struct inside a slice")
	}
}
