package memcache

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/netserve"
)

var parseSeeds = []string{
	"get a", "gets a b c", "gat 10 a", "gats -1 a b", "set a 0 0 5", "set a 1 2 3 noreply",
	"cas a 0 0 1 123", "cas a 0 0 1 123 noreply", "add a 0 0 1", "replace a 0 0 1", "append a 0 0 1",
	"prepend a 0 0 1", "delete a", "delete a 0", "delete a 0 noreply", "delete a noreply", "incr a 1",
	"decr a 1 noreply", "touch a 10", "touch a 10 noreply", "stats", "stats settings", "stats reset",
	"version", "verbosity 1", "verbosity 1 noreply", "flush_all", "flush_all 10 noreply", "quit",
	"", " ", "get", "set a 0 0", "set a 0 0 abc", "set a 0 0 -1", "set a 0 0 1048577", "set a b 0 0 1",
	"get a\tb", "get a\x00", "incr a -1", "gat x a", "set " + strings.Repeat("k", 251) + " 0 0 1",
	"set a 0 0 2147483645", "set a 0 0 99999999999999999999", "delete a 1 noreply", "GET a",
}

// formatCommand writes c back as a request line, canonically spaced.
func formatCommand(c Command) string {
	f := []string{c.Op.String()}
	k := func() string { return string(c.Key()) }
	nr := func() {
		if c.NoReply {
			f = append(f, "noreply")
		}
	}
	switch c.Op {
	case OpGet, OpGets:
		for _, key := range c.Keys {
			f = append(f, string(key))
		}
	case OpGat, OpGats:
		f = append(f, strconv.FormatInt(c.Exptime, 10))
		for _, key := range c.Keys {
			f = append(f, string(key))
		}
	case OpSet, OpAdd, OpReplace, OpAppend, OpPrepend, OpCas:
		f = append(f, k(), strconv.FormatUint(uint64(c.Flags), 10), strconv.FormatInt(c.Exptime, 10),
			strconv.Itoa(c.Bytes))
		if c.Op == OpCas {
			f = append(f, strconv.FormatUint(c.CasUnique, 10))
		}
		nr()
	case OpDelete:
		f = append(f, k())
		nr()
	case OpIncr, OpDecr:
		f = append(f, k(), strconv.FormatUint(c.Delta, 10))
		nr()
	case OpTouch:
		f = append(f, k(), strconv.FormatInt(c.Exptime, 10))
		nr()
	case OpStats:
		for _, a := range c.Args {
			f = append(f, string(a))
		}
	case OpVerbosity:
		f = append(f, strconv.FormatUint(c.Verbosity, 10))
		nr()
	case OpFlushAll:
		f = append(f, strconv.FormatInt(c.Exptime, 10))
		nr()
	}
	return strings.Join(f, " ")
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add([]byte(s))
	}
	var reused Command
	f.Fuzz(func(t *testing.T, line []byte) {
		c, err := ParseCommand(line)
		if err2 := reused.Parse(line, DefaultMaxValueBytes); describe(c, err) != describe(reused, err2) {
			t.Fatalf("reused Command differs: %s vs %s", describe(c, err), describe(reused, err2))
		}
		if err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ProtocolError", err)
			}
			if pe.Kind < ReplyError || pe.Kind > ReplyNone || pe.Err == nil || (pe.Kind == ReplyNone) != pe.Close {
				t.Fatalf("bad ProtocolError %+v", pe)
			}
			if strings.ContainsAny(pe.Msg, "\r\n") {
				t.Fatalf("message with CR/LF: %q", pe.Msg)
			}
			if pe.Swallow < 0 || (pe.Swallow > 0 && (pe.Close || !c.Op.IsStorage() || pe.Swallow != int64(c.Bytes)+2)) {
				t.Fatalf("inconsistent swallow %d close %v for %s bytes %d", pe.Swallow, pe.Close, c.Op, c.Bytes)
			}
			if pe.Close && (c.Op != OpInvalid || !isHTTPRequestLine(line)) {
				t.Fatalf("close for a line that is not an HTTP request: %v", pe)
			}
			return
		}
		if c.Op == OpInvalid {
			t.Fatal("no error and no op")
		}
		for _, k := range c.Keys {
			if !LegalKey(k) {
				t.Fatalf("illegal key %q accepted", k)
			}
		}
		if c.Op.IsStorage() && (c.Bytes < 0 || c.Bytes > DefaultMaxValueBytes || len(c.Keys) != 1) {
			t.Fatalf("storage command with bytes %d keys %d", c.Bytes, len(c.Keys))
		}
		if !c.Op.IsStorage() && c.Bytes != -1 {
			t.Fatalf("%s with bytes %d", c.Op, c.Bytes)
		}
		// Round trip through the canonical form.
		canon := formatCommand(c)
		c2, err := ParseCommand([]byte(canon))
		if err != nil || describe(c2, nil) != describe(c, nil) {
			t.Fatalf("round trip of %q via %q: %s, %v", line, canon, describe(c2, err), err)
		}
	})
}

var streamSeeds = []string{
	"set a 0 0 1\r\nx\r\nget a\r\ngets a\r\n",
	"set n 0 0 1\r\n5\r\nincr n 3\r\ndecr n 100\r\nappend n 0 0 1\r\n1\r\nprepend n 0 0 1\r\n2\r\nget n\r\n",
	"add a 0 0 1\r\nx\r\nreplace a 0 0 1\r\ny\r\ncas a 0 0 1 1\r\nz\r\ndelete a\r\ndelete a 0 noreply\r\n",
	"touch a 10\r\ngat 10 a b\r\ngats 0 a\r\nstats\r\nstats settings\r\nstats reset\r\nstats x\r\n",
	"version\r\nverbosity 1\r\nflush_all\r\nflush_all 0 noreply\r\nquit\r\nget a\r\n",
	"set a 0 0 1\r\nxy\r\nset a 0 0 abc\r\nversion\r\n",
	"set a 0 0 100\r\n" + strings.Repeat("v", 100) + "\r\nget " + strings.Repeat("k", 251) + "\r\n",
	"set a 0 0 3\r\nab", "get a", "\r\n\r\n\n", "get " + strings.Repeat("a ", 400) + "\r\n",
	"set a 0 0 1 noreply\r\nx\r\nincr a 1\r\ngets a\r\ncas a 0 0 1 0 noreply\r\n1\r\n",
	"set a\x00 0 0 1\r\nx\r\nget\ta\r\n\x00\xff\r\n",
	// Meta commands.
	"ms a 2 T10 F5 c k Oz\r\nhi\r\nmg a s v t f c k h l Oz\r\nma n N0 J5 v t c\r\nmd a q\r\nmn\r\n",
	"mg w s c v N30 t\r\nmg w s c v N30 R40\r\nmd w I T5\r\nmg w v\r\nms w 1 I C1\r\nx\r\nme w\r\n",
	"ms Zm9v 2 b MA\r\nxx\r\nmg Zm9v b k v\r\nms a 99 q\r\nx\r\nms a x\r\nmg a zz\r\nstats detail on\r\n",
	"stats detail dump\r\nmg a s v q\r\nmz\r\nmg " + strings.Repeat("a ", 30) + "\r\nGET / HTTP/1.1\r\n",
	// Binary: a SET, a GETK, a quiet get of a miss, a NOOP, an unknown opcode, a STAT.
	string(binReq{op: binSet, key: "a", ext: []byte{0, 0, 0, 1, 0, 0, 0, 0}, value: "v"}.bytes()) +
		string(binReq{op: binGetK, key: "a"}.bytes()) + string(binReq{op: binGetQ, key: "b"}.bytes()) +
		string(binReq{op: binNoop}.bytes()) + string(binReq{op: 0x42, key: "k", value: "x"}.bytes()) +
		string(binReq{op: binStat, key: "settings"}.bytes()),
	string(binReq{op: binIncrement, key: "n", ext: make([]byte, 20)}.bytes()) +
		string(binReq{op: binAppendQ, key: "n", value: "1"}.bytes()) + string(binReq{op: binFlushQ}.bytes()) +
		string(binReq{op: binGAT, key: "n", ext: []byte{0, 0, 0, 9}}.bytes()) + string(binReq{op: binQuit}.bytes()),
	"\x80\x01\x00\x01\x08\x00\x00\x00\x00\x00\x00\x10",
}

// FuzzServerStream feeds arbitrary bytes to a real server and checks it neither panics nor hangs, that
// everything it answers is a well-formed reply stream, and that it still serves a fresh connection.
func FuzzServerStream(f *testing.F) {
	for _, s := range streamSeeds {
		f.Add([]byte(s))
	}
	ts := startServer(f, Config{MaxValueBytes: 64, MaxLineBytes: 512, FlushAllEnabled: true,
		ReadTimeout: time.Second})
	// A server whose budget refuses most data blocks and replies: the out-of-memory paths keep the stream
	// in sync too, and give back every byte.
	tight := netserve.NewBudget(128)
	tts := startServer(f, Config{MaxValueBytes: 64, MaxLineBytes: 512, FlushAllEnabled: true,
		ReadTimeout: time.Second, Memory: tight})
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzStream(t, ts, in)
		fuzzStream(t, tts, in)
		waitFor(t, "the connections closed", func() bool { return tts.srv.curr.Load() == 0 })
		if n := tight.Used(); n != 0 {
			t.Fatalf("%d budget bytes held after the connections closed", n)
		}
	})
}

// fuzzStream sends in on a new connection to ts and checks the replies and a fresh connection.
func fuzzStream(t *testing.T, ts *testServer, in []byte) {
	{
		nc, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		go func() {
			nc.SetWriteDeadline(time.Now().Add(testTimeout))
			nc.Write(in) // the server may close early (unparsable <bytes>, quit): errors are fine
			nc.(*net.TCPConn).CloseWrite()
		}()
		nc.SetReadDeadline(time.Now().Add(testTimeout))
		out, readErr := io.ReadAll(nc)
		if readErr != nil && !isReset(readErr) {
			t.Fatalf("server did not finish the stream: %v (after %q)", readErr, abbrev(string(out)))
		}
		if readErr != nil {
			// A reset may cut the last reply short (the server closed with input unread despite lingering).
			if i := bytes.LastIndex(out, crlf); i >= 0 {
				out = out[:i+2]
			}
		}
		check := checkReplies
		if len(in) > 0 && in[0] == binReqMagic {
			check = checkBinReplies
		}
		if err := check(out); err != nil && !(readErr != nil && errors.Is(err, errTruncated)) {
			t.Fatalf("bad reply stream: %v\nin:  %q\nout: %q", err, abbrev(string(in)), abbrev(string(out)))
		}

		c2, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		c2.SetDeadline(time.Now().Add(testTimeout))
		io.WriteString(c2, "version\r\n")
		want := "VERSION 1.2.3-test\r\n"
		got := make([]byte, len(want))
		if _, err := io.ReadFull(c2, got); err != nil || string(got) != want {
			t.Fatalf("fresh connection: %q, %v", got, err)
		}
		c2.Close()
	}
}

var errTruncated = errors.New("truncated data block")

// checkBinReplies verifies that b is a sequence of complete binary responses.
func checkBinReplies(b []byte) error {
	for len(b) > 0 {
		if len(b) < binHeaderLen {
			return errTruncated
		}
		if b[0] != binResMagic {
			return fmt.Errorf("response magic %#x", b[0])
		}
		h := parseBinHeader(b)
		if int(h.KeyLen)+int(h.ExtLen) > int(h.BodyLen) {
			return fmt.Errorf("response lengths %+v", h)
		}
		if len(b) < binHeaderLen+int(h.BodyLen) {
			return errTruncated
		}
		b = b[binHeaderLen+int(h.BodyLen):]
	}
	return nil
}

// metaReply matches the meta reply lines without a data block.
var metaReply = regexp.MustCompile(`^(HD|NS|EX|NF|EN)( \S+)*$|^MN$|^ME \S+( \S+=\S+)+$|^PREFIX \S* get \d+ hit \d+ set \d+ del \d+$`)

// checkReplies verifies that b is a sequence of complete memcache replies (text and meta).
func checkReplies(b []byte) error {
	simple := map[string]bool{"STORED": true, "NOT_STORED": true, "EXISTS": true, "NOT_FOUND": true,
		"DELETED": true, "TOUCHED": true, "OK": true, "END": true, "RESET": true, "ERROR": true}
	for len(b) > 0 {
		i := bytes.Index(b, crlf)
		if i < 0 {
			return fmt.Errorf("unterminated line %q", b)
		}
		line := string(b[:i])
		b = b[i+2:]
		f := strings.Split(line, " ")
		switch {
		case simple[line]:
		case f[0] == "VALUE":
			if len(f) != 4 && len(f) != 5 {
				return fmt.Errorf("VALUE line %q", line)
			}
			n, err := strconv.Atoi(f[3])
			if err != nil || !LegalKey([]byte(f[1])) {
				return fmt.Errorf("VALUE line %q", line)
			}
			if len(b) < n+2 {
				return errTruncated
			}
			if !bytes.Equal(b[n:n+2], crlf) {
				return fmt.Errorf("data block of %q", line)
			}
			b = b[n+2:]
		case f[0] == "VA" && len(f) >= 2:
			n, err := strconv.Atoi(f[1])
			if err != nil || n < 0 {
				return fmt.Errorf("VA line %q", line)
			}
			if len(b) < n+2 {
				return errTruncated
			}
			if !bytes.Equal(b[n:n+2], crlf) {
				return fmt.Errorf("data block of %q", line)
			}
			b = b[n+2:]
		case metaReply.MatchString(line):
		case f[0] == "STAT" && len(f) >= 3:
		case f[0] == "VERSION" && len(f) == 2:
		case f[0] == "CLIENT_ERROR" || f[0] == "SERVER_ERROR":
		default:
			if _, err := strconv.ParseUint(line, 10, 64); err != nil {
				return fmt.Errorf("unknown reply line %q", line)
			}
		}
	}
	return nil
}
