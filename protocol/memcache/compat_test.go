package memcache

import (
	"strings"
	"testing"
)

// Text-protocol behaviours memcached's own tests (its t/ directory) pin, each with the t/ file it comes from.

// cas.t: a cas without its unique is a command of the wrong arity: ERROR, and the connection reads on (the
// data line is then a command of its own, as in memcached).
func TestCompatCasWithoutUniqueKeepsTheConnection(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	c.do("cas foo 0 0 6 \r\nbarva2\r\n", "ERROR\r\nERROR\r\n")
	c.do("set foo 0 0 1 2 3\r\n", "ERROR\r\n")
	c.do("set foo 0 0\r\n", "ERROR\r\n")
	c.inSync()
}

// issue_70.t: an unreadable <bytes> field answers CLIENT_ERROR and the connection reads on.
func TestCompatBadByteCountKeepsTheConnection(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	c.do("set issue70 0 0 0\r\n\r\n", "STORED\r\n")
	c.do("set issue70 0 0 -1\r\n", "CLIENT_ERROR bad command line format\r\n")
	c.do("set issue70 0 0 4294967295\r\n", "CLIENT_ERROR bad command line format\r\n")
	c.do("set issue70 0 0 2147483647\r\n", "CLIENT_ERROR bad command line format\r\n")
	c.do("set issue70 0 0 abc noreply\r\n", "") // noreply hides the error, as in memcached
	c.inSync()
}

// getset.t: a set over the item size limit answers SERVER_ERROR and removes the key's old value.
func TestCompatOversizedSetRemovesTheOldValue(t *testing.T) {
	ts := startServer(t, Config{MaxValueBytes: 100})
	c := ts.dial()
	c.do("set k 0 0 3\r\nMOO\r\n", "STORED\r\n")
	c.do("set k 0 0 101\r\n"+strings.Repeat("B", 101)+"\r\n", "SERVER_ERROR object too large for cache\r\n")
	c.do("get k\r\n", "END\r\n")
	// Only set: a too-large add, replace, append or cas leaves the value alone.
	c.do("set k 0 0 3\r\nMOO\r\n", "STORED\r\n")
	c.do("replace k 0 0 101\r\n"+strings.Repeat("B", 101)+"\r\n", "SERVER_ERROR object too large for cache\r\n")
	c.do("get k\r\n", "VALUE k 0 3\r\nMOO\r\nEND\r\n")
}

// getset.t: a multi-get line far longer than any read buffer (and than MaxLineBytes) is read key by key.
func TestCompatLongMultiGetIsReadIncrementally(t *testing.T) {
	ts := startServer(t, Config{MaxLineBytes: 1024})
	c := ts.dial()
	c.do("set foobarbaz 0 0 2\r\nhi\r\n", "STORED\r\n")
	const n = 18725 // ~187 KB of keys, as getset.t sends
	want := strings.Repeat("VALUE foobarbaz 0 2\r\nhi\r\n", n) + "END\r\n"
	c.do("get "+strings.Repeat("foobarbaz ", n)+"\r\n", want)
	c.do("gets "+strings.Repeat("nope ", 30000)+"\r\n", "END\r\n")
	c.inSync()
	// A bad key in a long line ends the reply with the error; the rest of the line is dropped.
	c.do("get foobarbaz "+strings.Repeat("x", 251)+" "+strings.Repeat("foobarbaz ", 1000)+"\r\n",
		"VALUE foobarbaz 0 2\r\nhi\r\nCLIENT_ERROR bad command line format\r\n")
	c.inSync()
	// Other long lines are still bounded by MaxLineBytes.
	c.do("delete "+strings.Repeat("x", 5000)+"\r\n", "CLIENT_ERROR line too long\r\n")
	c.inSync()
}

// issue_152.t: a 251-byte key is memcached's "bad command line format".
func TestCompatLongKeyError(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	c.do("set a 1 0 1\r\na\r\n", "STORED\r\n")
	c.do("get a "+strings.Repeat("a", 251)+"\r\n", "CLIENT_ERROR bad command line format\r\n")
}

// malicious-commands.t: an HTTP request line closes the connection without a reply.
func TestCompatHTTPRequestLineCloses(t *testing.T) {
	ts := startServer(t, Config{})
	for _, line := range []string{"GET / HTTP/1.0", "PUT /asdf/asd/fasdfasdf/sadf HTTP/1.1", "DELETE HTTP/1.1"} {
		c := ts.dial()
		c.send(line + "\r\n")
		c.expectClosed()
	}
}

// noreply.t: "verbosity noreply" answers nothing.
func TestCompatVerbosityNoreply(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	c.send("verbosity noreply\r\nverbosity 0 noreply\r\n")
	c.inSync()
	c.do("verbosity invalid\r\n", "CLIENT_ERROR bad command line format\r\n")
}

// maxconns.t: memcached's text for a connection over the limit.
func TestCompatTooManyConnections(t *testing.T) {
	ts := startServer(t, Config{MaxConns: 1})
	c1 := ts.dial()
	c1.inSync()
	c2 := ts.dial()
	c2.expect("ERROR Too many open connections\r\n")
	c2.expectClosed()
}

// flush-all.t: memcached's text for a flush_all the server does not allow.
func TestCompatFlushAllNotAllowed(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	c.do("flush_all\r\n", "CLIENT_ERROR flush_all not allowed\r\n")
	c.do("flush_all noreply\r\n", "")
	c.inSync()
	// memcached counts a refused flush_all in cmd_flush ("not allowed but we log it on stats").
	c.send("stats\r\n")
	found := false
	for line := c.readLine(); line != "END"; line = c.readLine() {
		found = found || line == "STAT cmd_flush 2"
	}
	if !found {
		t.Error("cmd_flush is not 2 after two refused flush_all")
	}
	if n := ts.store.flushCount(); n != 0 {
		t.Errorf("a refused flush_all reached the store %d times", n)
	}
}

// issue_50.t and memcached's -B: a binary-only server closes a connection that speaks text; a text-only
// one reads a binary packet as a text line.
func TestCompatProtocolsBinding(t *testing.T) {
	bin := startServer(t, Config{Protocols: "binary"})
	c := bin.dial()
	c.send("Here's a bunch of garbage that doesn't look like the bin prot.")
	c.expectClosed()
	c = bin.dial()
	c.doBin(binReq{op: binNoop}, binStatusOK)

	ascii := startServer(t, Config{Protocols: "ascii"})
	c = ascii.dial()
	c.send(string(binReq{op: binGet, key: "k"}.bytes()) + "\r\n")
	c.expect("ERROR\r\n")
	c.inSync()
	c.do("stats settings\r\n", "")
	for line := c.readLine(); line != "END"; line = c.readLine() {
		if strings.HasPrefix(line, "STAT binding_protocol ") && line != "STAT binding_protocol ascii" {
			t.Fatalf("settings: %q", line)
		}
	}
	if err := (Config{Protocols: "http"}).Validate(); err == nil {
		t.Fatal("Protocols http accepted")
	}
}
