package memcache

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testTimeout = 5 * time.Second

// testLogWriter sends slog output to t.Log.
type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

type testServer struct {
	t     testing.TB
	srv   *Server
	addr  string
	store *memStore
	clock *fakeClock
}

// startServer runs a Server with a memStore on 127.0.0.1:0. Unless cfg.Now is set the fake clock drives it.
func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	ts := &testServer{t: t, clock: newFakeClock()}
	if cfg.Now == nil {
		cfg.Now = ts.clock.Now
	}
	if cfg.Version == "" {
		cfg.Version = "1.2.3-test"
	}
	ts.store = newMemStore(cfg.Now)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	var logger *slog.Logger
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ts.srv = NewServer(cfg, ts.store, logger)
	served := make(chan error, 1)
	go func() { served <- ts.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := ts.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		waitFor(t, "connection goroutines to end", func() bool { return ts.srv.curr.Load() == 0 })
	})
	return ts
}

// waitFor polls cond until it holds or the test deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // NB: polling interval, not a wait for the condition
	}
}

type client struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func (ts *testServer) dial() *client {
	ts.t.Helper()
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { nc.Close() })
	return &client{t: ts.t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *client) send(s string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(testTimeout))
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("send %q: %v", abbrev(s), err)
	}
}

// expect reads exactly len(want) bytes and compares.
func (c *client) expect(want string) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(testTimeout))
	got := make([]byte, len(want))
	n, err := io.ReadFull(c.br, got)
	if err != nil || string(got) != want {
		c.t.Fatalf("reply:\n got: %q (err %v)\nwant: %q", abbrev(string(got[:n])), err, abbrev(want))
	}
}

func (c *client) do(send, want string) {
	c.t.Helper()
	c.send(send)
	c.expect(want)
}

func (c *client) readLine() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(testTimeout))
	line, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("readLine: %q, %v", line, err)
	}
	return strings.TrimSuffix(line, "\r\n")
}

// expectClosed reads until EOF; any bytes before it fail the test.
func (c *client) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(testTimeout))
	rest, err := io.ReadAll(c.br)
	if err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		c.t.Fatalf("expected EOF, got %v after %q", err, abbrev(string(rest)))
	}
	if len(rest) > 0 {
		c.t.Fatalf("expected EOF, got %q first", abbrev(string(rest)))
	}
}

func isReset(err error) bool { return strings.Contains(err.Error(), "connection reset") }

// inSync checks that the connection still parses requests from a clean boundary.
func (c *client) inSync() {
	c.t.Helper()
	c.do("version\r\n", "VERSION 1.2.3-test\r\n")
}

func abbrev(s string) string {
	if len(s) > 300 {
		return s[:150] + fmt.Sprintf("...(%d bytes)...", len(s)-300) + s[len(s)-150:]
	}
	return s
}

func TestServerCommands(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	for _, step := range []struct{ send, want string }{
		{"set a 5 0 3\r\nabc\r\n", "STORED\r\n"},
		{"get a\r\n", "VALUE a 5 3\r\nabc\r\nEND\r\n"},
		{"get a missing a\r\n", "VALUE a 5 3\r\nabc\r\nVALUE a 5 3\r\nabc\r\nEND\r\n"},
		{"get missing\r\n", "END\r\n"},
		{"set empty 0 0 0\r\n\r\n", "STORED\r\n"},
		{"get empty\r\n", "VALUE empty 0 0\r\n\r\nEND\r\n"},
		{"set bin 0 0 4\r\n\r\n\x00\n\r\n", "STORED\r\n"},
		{"get bin\r\n", "VALUE bin 0 4\r\n\r\n\x00\n\r\nEND\r\n"},
		{"set lf 1 0 1\nx\r\nget lf\n", "STORED\r\nVALUE lf 1 1\r\nx\r\nEND\r\n"},

		{"add a 0 0 1\r\nx\r\n", "NOT_STORED\r\n"},
		{"add b 0 0 1\r\nx\r\n", "STORED\r\n"},
		{"replace c 0 0 1\r\nx\r\n", "NOT_STORED\r\n"},
		{"replace b 7 0 2\r\nyy\r\n", "STORED\r\n"},
		{"get b\r\n", "VALUE b 7 2\r\nyy\r\nEND\r\n"},
		{"append b 0 0 2\r\nzz\r\n", "STORED\r\n"},
		{"prepend b 9 100 2\r\nxx\r\n", "STORED\r\n"},
		{"get b\r\n", "VALUE b 7 6\r\nxxyyzz\r\nEND\r\n"}, // flags (and expiry) of the old value kept
		{"append c 0 0 1\r\nx\r\n", "NOT_STORED\r\n"},
		{"prepend c 0 0 1\r\nx\r\n", "NOT_STORED\r\n"},
		{"cas c 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n"},

		{"set n 3 0 2\r\n10\r\n", "STORED\r\n"},
		{"incr n 5\r\n", "15\r\n"},
		{"decr n 100\r\n", "0\r\n"},
		{"incr n 18446744073709551615\r\n", "18446744073709551615\r\n"},
		{"incr n 2\r\n", "1\r\n"}, // wraps at 2^64
		{"get n\r\n", "VALUE n 3 1\r\n1\r\nEND\r\n"},
		{"set sp 0 0 4\r\n 42 \r\nincr sp 1\r\n", "STORED\r\n43\r\n"},
		{"incr missing 1\r\n", "NOT_FOUND\r\n"},
		{"decr missing 1\r\n", "NOT_FOUND\r\n"},
		{"incr a 1\r\n", "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"},
		{"set big 0 0 20\r\n18446744073709551616\r\nincr big 1\r\n",
			"STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"},

		{"delete b\r\n", "DELETED\r\n"},
		{"delete b\r\n", "NOT_FOUND\r\n"},
		{"get b\r\n", "END\r\n"},
		{"delete a 0\r\n", "DELETED\r\n"},
		{"delete a 1\r\n", "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"},

		{"set t 0 100 1\r\nx\r\n", "STORED\r\n"},
		{"touch t 10\r\n", "TOUCHED\r\n"},
		{"touch missing 10\r\n", "NOT_FOUND\r\n"},
		{"gat 100 t missing t\r\n", "VALUE t 0 1\r\nx\r\nVALUE t 0 1\r\nx\r\nEND\r\n"},
		{"gat 0\r\n", "END\r\n"},

		{"version\r\n", "VERSION 1.2.3-test\r\n"},
		{"verbosity 1\r\n", "OK\r\n"},
		{"flush_all\r\n", "CLIENT_ERROR flush_all not allowed\r\n"},
		{"get n\r\n", "VALUE n 3 1\r\n1\r\nEND\r\n"},
		{"stats items\r\n", "END\r\n"},
		{"stats nonsense\r\n", "ERROR\r\n"},
		{"bogus\r\n", "ERROR\r\n"},
		{"\r\n", "ERROR\r\n"},
	} {
		c.do(step.send, step.want)
	}
	c.do("get t\r\nquit\r\nversion\r\n", "VALUE t 0 1\r\nx\r\nEND\r\n")
	c.expectClosed()
}

func TestServerNoreply(t *testing.T) {
	ts := startServer(t, Config{FlushAllEnabled: true})
	c := ts.dial()
	c.send("set a 0 0 1 noreply\r\n1\r\n" +
		"add a 0 0 1 noreply\r\nx\r\n" + // NOT_STORED, suppressed
		"add b 0 0 1 noreply\r\n2\r\n" +
		"replace b 0 0 1 noreply\r\n3\r\n" +
		"append b 0 0 1 noreply\r\n4\r\n" +
		"prepend b 0 0 1 noreply\r\n5\r\n" +
		"cas b 0 0 1 1 noreply\r\nx\r\n" + // EXISTS, suppressed
		"incr a 10 noreply\r\n" +
		"decr a 1 noreply\r\n" +
		"incr b 1 noreply\r\n" +
		"set x 0 0 1 noreply\r\nx\r\nincr x 1 noreply\r\n" + // non-numeric error, suppressed
		"touch a 100 noreply\r\n" +
		"set d 0 0 1 noreply\r\nd\r\n" +
		"delete d noreply\r\n" +
		"delete d 0 noreply\r\n" + // NOT_FOUND, suppressed
		"verbosity 1 noreply\r\n" +
		"set a 0 0 1 noreply\r\nxy\r\n" + // bad data chunk, suppressed (as memcached)
		"set " + strings.Repeat("k", 251) + " 0 0 1 noreply\r\nx\r\n" + // key too long, suppressed
		"version\r\n")
	c.expect("VERSION 1.2.3-test\r\n")
	c.do("get a b d\r\n", "VALUE a 0 2\r\n10\r\nVALUE b 0 3\r\n535\r\nEND\r\n")
	c.send("flush_all noreply\r\nget a\r\n")
	c.expect("END\r\n")
}

func TestServerGetsCasSiblings(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	c.do("set s 1 0 2\r\nv1\r\n", "STORED\r\n")
	// A concurrent write through another replica leaves a sibling with a later LastMod.
	ts.store.addSibling("s", Value{Data: []byte("v2"), Flags: 2, LastMod: ts.clock.Now().Add(time.Second).UnixNano()})
	c.do("get s\r\n", "VALUE s 2 2\r\nv2\r\nEND\r\n") // newest LastMod

	c.send("gets s\r\n")
	re := regexp.MustCompile(`^VALUE s (\d+) 2 (\d+)$`)
	var cas []string
	var data []string
	for range 2 {
		m := re.FindStringSubmatch(c.readLine())
		if m == nil {
			t.Fatal("gets: bad VALUE line")
		}
		cas = append(cas, m[2])
		data = append(data, c.readLine())
	}
	c.expect("END\r\n")
	if cas[0] != cas[1] {
		t.Fatalf("siblings have different cas: %v", cas)
	}
	if data[0] != "v1" || data[1] != "v2" {
		t.Fatalf("gets order %v, want the chosen sibling (v2) last", data)
	}
	unique, _ := strconv.ParseUint(cas[0], 10, 64)

	c.do(fmt.Sprintf("cas s 0 0 2 %d\r\nzz\r\n", unique+1), "EXISTS\r\n")
	c.do(fmt.Sprintf("cas s 0 0 2 %d\r\nv3\r\n", unique), "STORED\r\n")
	if n := ts.store.siblingCount("s"); n != 1 {
		t.Fatalf("cas left %d siblings, want 1", n)
	}
	c.send("gets s\r\n")
	m := re.FindStringSubmatch(c.readLine())
	if m == nil || m[2] == cas[0] {
		t.Fatalf("after cas: VALUE line %v, want a new cas", m)
	}
	c.expect("v3\r\nEND\r\n")
	c.do(fmt.Sprintf("cas s 0 0 2 %d\r\nv4\r\n", unique), "EXISTS\r\n") // stale unique

	// A cas whose unique was read before another sibling arrived fails: the unique names the whole set.
	newUnique := m[2]
	ts.store.addSibling("s", Value{Data: []byte("v5"), LastMod: 1})
	c.do("cas s 0 0 2 "+newUnique+"\r\nv6\r\n", "EXISTS\r\n")

	// append resolves siblings: the chosen sibling's data plus the new data, over the full context.
	c.do("append s 0 0 1\r\n!\r\n", "STORED\r\n")
	if n := ts.store.siblingCount("s"); n != 1 {
		t.Fatalf("append left %d siblings, want 1", n)
	}
	c.do("get s\r\n", "VALUE s 0 3\r\nv3!\r\nEND\r\n")

	// delete removes exactly the siblings it saw.
	ts.store.addSibling("s", Value{Data: []byte("v7"), LastMod: 2})
	c.do("delete s\r\n", "DELETED\r\n")
	c.do("get s\r\n", "END\r\n")

	// gats returns the touched value with the cas of the new (single) sibling set.
	c.do("set g 4 0 1\r\na\r\n", "STORED\r\n")
	ts.store.addSibling("g", Value{Data: []byte("b"), Flags: 5, LastMod: 1})
	c.send("gats 100 g\r\n")
	if line := c.readLine(); !regexp.MustCompile(`^VALUE g 4 1 \d+$`).MatchString(line) {
		t.Fatalf("gats: %q", line)
	}
	c.expect("a\r\nEND\r\n")
	if n := ts.store.siblingCount("g"); n != 1 {
		t.Fatalf("gats left %d siblings", n)
	}
}

func TestServerExpiry(t *testing.T) {
	ts := startServer(t, Config{})
	ts.store.hideExpired = false // exercise the server's own check
	c := ts.dial()
	now := ts.clock.Now().Unix()
	c.do("set rel 0 10 1\r\nr\r\n", "STORED\r\n")
	c.do(fmt.Sprintf("set abs 0 %d 1\r\na\r\n", now+100), "STORED\r\n")
	c.do("set neg 0 -1 1\r\nn\r\n", "STORED\r\n")
	c.do("set pastabs 0 2592001 1\r\np\r\n", "STORED\r\n") // absolute, in 1970
	c.do("get rel abs neg pastabs\r\n", "VALUE rel 0 1\r\nr\r\nVALUE abs 0 1\r\na\r\nEND\r\n")
	ts.clock.Advance(9 * time.Second)
	c.do("get rel\r\n", "VALUE rel 0 1\r\nr\r\nEND\r\n")
	c.do("touch rel 20\r\n", "TOUCHED\r\n")
	ts.clock.Advance(19 * time.Second)
	c.do("get rel\r\n", "VALUE rel 0 1\r\nr\r\nEND\r\n")
	ts.clock.Advance(time.Second)
	c.do("get rel\r\n", "END\r\n")
	c.do("incr rel 1\r\ndelete rel\r\ntouch rel 1\r\n", "NOT_FOUND\r\nNOT_FOUND\r\nNOT_FOUND\r\n")
	c.do("add rel 0 0 1\r\nx\r\n", "STORED\r\n")
	ts.clock.Advance(71 * time.Second)
	c.do("get abs\r\n", "END\r\n")
	c.do("set t 0 0 1\r\nx\r\ntouch t -1\r\nget t\r\n", "STORED\r\nTOUCHED\r\nEND\r\n")
	c.do("set g 0 5 1\r\nx\r\ngat 0 g\r\n", "STORED\r\nVALUE g 0 1\r\nx\r\nEND\r\n")
	ts.clock.Advance(time.Hour)
	c.do("get g\r\n", "VALUE g 0 1\r\nx\r\nEND\r\n") // gat 0: never expires now

	// An expired sibling next to a live one: get returns the live one, gets lists only it.
	c.do("set m 0 0 4\r\nlive\r\n", "STORED\r\n")
	ts.store.addSibling("m", Value{Data: []byte("dead"), Expiry: ts.clock.Now().Unix() - 1, LastMod: 1 << 62})
	c.do("get m\r\n", "VALUE m 0 4\r\nlive\r\nEND\r\n")
	c.send("gets m\r\n")
	c.readLine()
	c.expect("live\r\nEND\r\n")
}

func TestServerPipelining(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	var req, want strings.Builder
	for i := range 200 {
		v := strings.Repeat(strconv.Itoa(i%10), i)
		fmt.Fprintf(&req, "set k%d %d 0 %d\r\n%s\r\nget k%d\r\n", i, i, len(v), v, i)
		fmt.Fprintf(&want, "STORED\r\nVALUE k%d %d %d\r\n%s\r\nEND\r\n", i, i, len(v), v)
	}
	c.do(req.String(), want.String())

	// A request split across writes after a complete one: the first reply must be sent before the server
	// waits for the rest (a client may wait for it).
	c.do("get k1\r\nget k", "VALUE k1 1 1\r\n1\r\nEND\r\n")
	c.do("2\r\n", "VALUE k2 2 2\r\n22\r\nEND\r\n")
	c.do("set x 0 0 5\r\nab", "")
	c.do("cde\r\n", "STORED\r\n")
}

func TestServerBadInputStaysInSync(t *testing.T) {
	ts := startServer(t, Config{MaxValueBytes: 100, MaxLineBytes: 1024})
	c := ts.dial()
	k251 := strings.Repeat("k", 251)
	for _, step := range []struct{ send, want string }{
		{"set a 0 0 1\r\nxy\r\n", "CLIENT_ERROR bad data chunk\r\n"},
		// One byte short: the block takes the first byte of the next request, and the rest of that line is
		// dropped to resynchronise.
		{"set a 0 0 3\r\nxy\r\nget a\r\n", "CLIENT_ERROR bad data chunk\r\n"},
		{"set a 0 0 101\r\n" + strings.Repeat("v", 101) + "\r\n", "SERVER_ERROR object too large for cache\r\n"},
		{"set a 0 0 100\r\n" + strings.Repeat("v", 100) + "\r\n", "STORED\r\n"},
		{"append a 0 0 1\r\nv\r\n", "SERVER_ERROR object too large for cache\r\n"},
		{"set " + k251 + " 0 0 5\r\nhello\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"set a\x01 0 0 5\r\nhello\r\n", "CLIENT_ERROR key contains a control character\r\n"},
		{"set a x 0 5\r\nhello\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"cas a 0 0 5 x\r\nhello\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"get " + k251 + "\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"get a\tb\r\n", "CLIENT_ERROR key contains a control character\r\n"},
		{"nonsense\r\n", "ERROR\r\n"},
		{"get\r\n", "ERROR\r\n"},
		{"GET a\r\n", "ERROR\r\n"},
		{"incr a x\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n"},
		{"touch a x\r\n", "CLIENT_ERROR invalid exptime argument\r\n"},
		{"delete " + strings.Repeat("key ", 300) + "\r\n", "CLIENT_ERROR line too long\r\n"},
		{strings.Repeat("x", 100_000) + "\r\n", "CLIENT_ERROR line too long\r\n"},
	} {
		c.do(step.send, step.want)
		c.inSync()
	}
	c.do("get a\r\n", "VALUE a 0 100\r\n"+strings.Repeat("v", 100)+"\r\nEND\r\n")

	// <bytes> unreadable or uncertain: as in memcached the connection reads on, and what follows the line
	// (the data the client meant) is read as commands.
	for _, step := range []struct{ line, want string }{
		{"set a 0 0 abc\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"set a 0 0\r\n", "ERROR\r\n"},
		{"set a b 0 0 5\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"set a 0 0 -1 noreply\r\n", ""},
	} {
		c := ts.dial()
		c.do(step.line+"get nothing\r\n", step.want+"END\r\n")
		c.inSync()
	}
}

func TestServerLongGet(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	c.do("set k7 0 0 1\r\n7\r\n", "STORED\r\n")
	var keys []string
	for i := range 5000 { // ~29 KB line: spans several read buffers
		keys = append(keys, "k"+strconv.Itoa(i))
	}
	c.do("get "+strings.Join(keys, " ")+"\r\n", "VALUE k7 0 1\r\n7\r\nEND\r\n")
	// Longer than MaxLineBytes: served key by key as the line arrives.
	c.do("get "+strings.Repeat("k7 ", 30000)+"\r\n", strings.Repeat("VALUE k7 0 1\r\n7\r\n", 30000)+"END\r\n")
	c.inSync()
}

func TestServerStoreErrors(t *testing.T) {
	ts := startServer(t, Config{FlushAllEnabled: true})
	ts.store.setFail("bad", &StoreError{Code: "quorum", Msg: "coordinator: quorum not met\r\n(need 2, got 1)",
		Err: errors.New("replica: write /data/leveldb/000003.log: input/output error")})
	ts.store.setFail("path", errors.New("write /data/leveldb/000003.log: no space left on device"))
	c := ts.dial()
	c.do("set ok 0 0 1\r\n1\r\n", "STORED\r\n")
	// Only what the Store chose to say reaches the client; an error it did not describe is answered
	// without its text, which names a file.
	c.do("set path 0 0 1\r\nx\r\n", "SERVER_ERROR "+msgStoreFailed+"\r\n")
	c.do("get path\r\n", "SERVER_ERROR "+msgStoreFailed+"\r\n")
	const se = "SERVER_ERROR coordinator: quorum not met  (need 2, got 1)\r\n"
	for _, req := range []string{
		"get ok bad ok\r\n", // the error ends the reply: no END
		"gets bad\r\n", "gat 1 bad\r\n", "set bad 0 0 1\r\nx\r\n", "add bad 0 0 1\r\nx\r\n", "cas bad 0 0 1 1\r\nx\r\n",
		"append bad 0 0 1\r\nx\r\n", "incr bad 1\r\n", "touch bad 1\r\n", "delete bad\r\n",
	} {
		want := se
		if strings.HasPrefix(req, "get ok") {
			want = "VALUE ok 0 1\r\n1\r\n" + se
		}
		c.do(req, want)
		c.inSync()
	}
	c.do("set bad 0 0 1 noreply\r\nx\r\ndelete bad noreply\r\n", "")
	c.inSync()
	c.send("stats\r\n")
	found := false
	for line := c.readLine(); line != "END"; line = c.readLine() {
		found = found || line == "STAT store_errors 14"
	}
	if !found {
		t.Error("store_errors stat is not 14")
	}
}

func TestServerFlushAll(t *testing.T) {
	ts := startServer(t, Config{FlushAllEnabled: true})
	c := ts.dial()
	c.do("set a 0 0 1\r\nx\r\nflush_all\r\nget a\r\n", "STORED\r\nOK\r\nEND\r\n")
	c.do("set a 0 0 1\r\nx\r\nflush_all -1\r\nget a\r\n", "STORED\r\nOK\r\nEND\r\n")
	// A set right after a flush is kept.
	c.do("set a 0 0 1\r\nx\r\nget a\r\n", "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n")
	// A delayed flush goes to the Store at once, naming a nanosecond before the second it names
	// (memcached's oldest_live): what is stored until then is visible until then, and gone after.
	now := ts.clock.Now()
	c.do("flush_all 2\r\nset b 0 0 1\r\ny\r\nget a b\r\n", "OK\r\nSTORED\r\nVALUE a 0 1\r\nx\r\nVALUE b 0 1\r\ny\r\nEND\r\n")
	times := ts.store.flushTimes()
	if want := time.Unix(now.Unix()+2, 0).Add(-time.Nanosecond); len(times) != 3 || !times[0].Equal(now) || !times[2].Equal(want) {
		t.Fatalf("flush times %v, want [%v %v %v]", times, now, now, want)
	}
	ts.clock.Advance(2 * time.Second)
	c.do("get a b\r\nset c 0 0 1\r\nz\r\nget c\r\n", "END\r\nSTORED\r\nVALUE c 0 1\r\nz\r\nEND\r\n")
	// An absolute time works the same; "flush_all noreply" answers nothing.
	c.do(fmt.Sprintf("flush_all %d noreply\r\nget c\r\n", ts.clock.Now().Unix()+5), "VALUE c 0 1\r\nz\r\nEND\r\n")
	if n := ts.store.flushCount(); n != 4 {
		t.Fatalf("%d flushes, want 4", n)
	}
}

func TestFlushAt(t *testing.T) {
	now := time.Unix(1_700_000_000, 123)
	for _, tc := range []struct {
		exptime int64
		want    time.Time
	}{
		{0, now}, {-1, now}, {1, time.Unix(1_700_000_001, 0).Add(-1)}, {100, time.Unix(1_700_000_100, 0).Add(-1)},
		{1_700_000_000, now}, {1_600_000_000, now}, {1_700_000_050, time.Unix(1_700_000_050, 0).Add(-1)},
	} {
		if got := FlushAt(tc.exptime, now); !got.Equal(tc.want) {
			t.Errorf("FlushAt(%d) = %v, want %v", tc.exptime, got, tc.want)
		}
	}
}

func TestServerStats(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	c.do("set a 0 0 1\r\nx\r\nget a b\r\n", "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n")
	stats := func(cmd string) map[string]string {
		c.send(cmd)
		m := map[string]string{}
		for line := c.readLine(); line != "END"; line = c.readLine() {
			f := strings.SplitN(line, " ", 3)
			if len(f) != 3 || f[0] != "STAT" {
				t.Fatalf("bad stats line %q", line)
			}
			m[f[1]] = f[2]
		}
		return m
	}
	m := stats("stats\r\n")
	for name, want := range map[string]string{
		"pid": strconv.Itoa(os.Getpid()), "version": "1.2.3-test", "curr_connections": "1",
		"total_connections": "1", "cmd_get": "2", "get_hits": "1", "get_misses": "1", "cmd_set": "1",
		"time": strconv.FormatInt(ts.clock.Now().Unix(), 10), "uptime": "0", "gokai_keys": "1",
		"max_connections": "1024",
	} {
		if m[name] != want {
			t.Errorf("stat %s = %q, want %q", name, m[name], want)
		}
	}
	ts.clock.Advance(90 * time.Second)
	if got := stats("stats\r\n")["uptime"]; got != "90" {
		t.Errorf("uptime = %s, want 90", got)
	}
	if got := stats("stats settings\r\n")["flush_enabled"]; got != "no" {
		t.Errorf("flush_enabled = %q", got)
	}
	c.do("stats reset\r\n", "RESET\r\n")
	if got := stats("stats\r\n")["cmd_get"]; got != "0" {
		t.Errorf("cmd_get after reset = %s", got)
	}
}

func TestServerMaxConns(t *testing.T) {
	ts := startServer(t, Config{MaxConns: 2})
	c1, c2 := ts.dial(), ts.dial()
	c1.inSync()
	c2.inSync()
	c3 := ts.dial()
	c3.expect("ERROR Too many open connections\r\n")
	c3.expectClosed()
	c1.nc.Close()
	waitFor(t, "a free connection slot", func() bool { return ts.srv.curr.Load() < 2 })
	ts.dial().inSync()
	c2.inSync()
}

func TestServerIdleTimeout(t *testing.T) {
	ts := startServer(t, Config{IdleTimeout: 50 * time.Millisecond})
	c := ts.dial()
	c.inSync()
	c.expectClosed()
}

func TestServerReadTimeout(t *testing.T) {
	ts := startServer(t, Config{ReadTimeout: 50 * time.Millisecond})
	c := ts.dial()
	c.inSync()
	c.send("get a") // never finished
	c.expectClosed()
	c = ts.dial()
	c.send("set a 0 0 10\r\nabc") // block never finished
	c.expectClosed()
	// Between requests there is no timeout by default.
	c = ts.dial()
	c.inSync()
	c.nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := c.br.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle connection: %v, want our own read deadline", err)
	}
	c.inSync()
}

// TestServerAddAfterAMissSupersedesNothing: two adds of one missing key that both read the miss before
// either writes are both STORED, and the store keeps both values as siblings: an add after a miss writes
// over the miss's empty context (supersede nothing), never blind. A plain set is blind and replaces both.
// A plain read asks the Store for no causal context (its encoding is a cost a get does not need); every
// command that writes over what it read asks for it. The test store leaves Entry.Context empty unless asked,
// so a writing command that did not ask would also turn its write into a sibling in the other tests.
func TestServerAsksForContextOnlyToWriteOverARead(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	c.do("set k 0 0 1\r\n1\r\n", "STORED\r\n")
	if r := ts.store.takeReads(); len(r) != 0 {
		t.Fatalf("a plain set read the key: %+v", r)
	}
	plain, ctx := []Read{{}}, []Read{{Context: true}}
	for _, tc := range []struct {
		send, want string
		reads      []Read
	}{
		{"get k\r\n", "VALUE k 0 1\r\n1\r\nEND\r\n", plain},
		{"get k nope\r\n", "VALUE k 0 1\r\n1\r\nEND\r\n", []Read{{}, {}}},
		{"mg k v\r\n", "VA 1\r\n1\r\n", plain},
		{"mg k s\r\n", "HD s1\r\n", plain},
		{"add k 0 0 1\r\n2\r\n", "NOT_STORED\r\n", ctx},
		{"append k 0 0 1\r\n2\r\n", "STORED\r\n", ctx},
		{"incr k 1\r\n", "13\r\n", ctx},
		{"touch k 100\r\n", "TOUCHED\r\n", ctx},
		{"gat 100 k\r\n", "VALUE k 0 2\r\n13\r\nEND\r\n", ctx},
		{"mg k v T100\r\n", "VA 2\r\n13\r\n", ctx},
		{"delete k\r\n", "DELETED\r\n", ctx},
	} {
		c.do(tc.send, tc.want)
		if got := ts.store.takeReads(); !slices.Equal(got, tc.reads) {
			t.Fatalf("%q read the store with %+v, want %+v", tc.send, got, tc.reads)
		}
	}
	// gets shows the cas unique without the context; the cas that uses it reads again, for the context.
	c.do("set k 0 0 1\r\n1\r\n", "STORED\r\n")
	c.send("gets k\r\n")
	line := c.readLine()
	c.expect("1\r\nEND\r\n")
	if got := ts.store.takeReads(); !slices.Equal(got, plain) {
		t.Fatalf("gets read the store with %+v", got)
	}
	f := strings.Fields(line)
	c.do("cas k 0 0 1 "+f[len(f)-1]+"\r\n2\r\n", "STORED\r\n")
	if got := ts.store.takeReads(); !slices.Equal(got, ctx) {
		t.Fatalf("cas read the store with %+v", got)
	}
	if n := ts.store.siblingCount("k"); n != 1 {
		t.Fatalf("cas with the cas unique of gets: %d siblings, want 1 (it must supersede what gets showed)", n)
	}
}

func TestServerAddAfterAMissSupersedesNothing(t *testing.T) {
	ts := startServer(t, Config{})
	a, b := ts.dial(), ts.dial()
	release := make(chan struct{})
	held := make(chan struct{}, 2)
	ts.store.mu.Lock()
	ts.store.hold, ts.store.held = release, held
	ts.store.mu.Unlock()
	a.send("add k 0 0 5\r\nalpha\r\n")
	b.send("add k 0 0 5\r\nbravo\r\n")
	<-held
	<-held // both reads missed; neither has written
	ts.store.mu.Lock()
	ts.store.hold, ts.store.held = nil, nil
	ts.store.mu.Unlock()
	close(release)
	a.expect("STORED\r\n")
	b.expect("STORED\r\n")
	if n := ts.store.siblingCount("k"); n != 2 {
		t.Fatalf("after two STORED adds: %d siblings, want 2", n)
	}
	a.send("gets k\r\n")
	var got []string
	for line := a.readLine(); line != "END"; line = a.readLine() {
		got = append(got, line)
	}
	if len(got) != 4 || !slices.Contains(got, "alpha") || !slices.Contains(got, "bravo") {
		t.Fatalf("gets after two adds: %q, want alpha and bravo", got)
	}
	a.do("set k 0 0 1\r\nz\r\n", "STORED\r\n")
	if n := ts.store.siblingCount("k"); n != 1 {
		t.Fatalf("after a plain set: %d siblings, want 1", n)
	}
	// An add over what the read found but hides (an expired value) supersedes it, as over a tombstone.
	ts.store.addSibling("gone", Value{Data: []byte("old"), Expiry: ts.clock.Now().Unix() - 1})
	a.do("add gone 0 0 3\r\nnew\r\n", "STORED\r\n")
	if n := ts.store.siblingCount("gone"); n != 1 {
		t.Fatalf("add over an expired value: %d siblings, want 1", n)
	}
	// cas on a miss stays NOT_FOUND (memcached).
	a.do("cas nothing 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n")
}

func TestServerShutdownGraceful(t *testing.T) {
	ts := startServer(t, Config{})
	busy, idle := ts.dial(), ts.dial()
	busy.do("set a 0 0 1\r\nx\r\n", "STORED\r\n")
	idle.inSync()

	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	ts.store.mu.Lock()
	ts.store.block, ts.store.entered = release, entered
	ts.store.mu.Unlock()
	busy.send("get a\r\nget a\r\n")
	<-entered

	shut := make(chan error, 1)
	go func() { shut <- ts.srv.Shutdown(context.Background()) }()
	idle.expectClosed() // closed while waiting for a request
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	close(release)
	busy.expect("VALUE a 0 1\r\nx\r\nEND\r\n") // the in-flight request completes...
	busy.expectClosed()                        // ...and the pipelined one behind it is dropped
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if nc, err := net.Dial("tcp", ts.addr); err == nil {
		nc.Close()
		t.Fatal("listener still accepting after Shutdown")
	}
}

func TestServerShutdownForced(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	entered := make(chan struct{}, 1)
	ts.store.mu.Lock()
	ts.store.block, ts.store.entered = make(chan struct{}), entered // never released
	ts.store.mu.Unlock()
	c.send("get a\r\n")
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	// The cancelled command may still get its SERVER_ERROR out before the connection closes (a race
	// between the store returning and the close); nothing else may come.
	c.nc.SetReadDeadline(time.Now().Add(testTimeout))
	rest, err := io.ReadAll(c.br)
	if err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("expected EOF, got %v after %q", err, abbrev(string(rest)))
	}
	if len(rest) > 0 && !strings.HasPrefix(string(rest), "SERVER_ERROR ") {
		t.Fatalf("expected EOF or one SERVER_ERROR, got %q", abbrev(string(rest)))
	}
	if strings.Count(string(rest), "\r\n") > 1 {
		t.Fatalf("more than one reply after a forced shutdown: %q", abbrev(string(rest)))
	}
}

func TestServeInvalidConfig(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	err = NewServer(Config{MaxConns: -1}, newMemStore(time.Now), nil).Serve(ln)
	if err == nil || !strings.Contains(err.Error(), "MaxConns = -1") {
		t.Fatalf("Serve = %v", err)
	}
	if err := NewServer(Config{}, nil, nil).Serve(ln); err == nil {
		t.Fatal("nil store accepted")
	}
}

func TestLineReader(t *testing.T) {
	in := "a\r\nb\n" + strings.Repeat("x", 40) + "\r\n" + strings.Repeat("y", 41) + "\r\nc\r\n" + "partial"
	lr := lineReader{r: bufio.NewReaderSize(strings.NewReader(in), 16), max: 42}
	var got []string
	for {
		line, err := lr.readLine()
		if errors.Is(err, ErrLineTooLong) {
			got = append(got, "<too long>")
			continue
		}
		if err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
		got = append(got, string(bytes.Clone(line)))
	}
	want := []string{"a", "b", strings.Repeat("x", 40), "<too long>", "c"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("lines %q, want %q", got, want)
	}
}
