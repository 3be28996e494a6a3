package memcache

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"
)

// binReq is a binary request for tests.
type binReq struct {
	op     uint8
	key    string
	ext    []byte
	value  string
	cas    uint64
	opaque uint32
}

func (r binReq) bytes() []byte {
	b := []byte{binReqMagic, r.op}
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.key)))
	b = append(b, byte(len(r.ext)), 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.ext)+len(r.key)+len(r.value)))
	b = binary.BigEndian.AppendUint32(b, r.opaque)
	b = binary.BigEndian.AppendUint64(b, r.cas)
	return append(append(append(b, r.ext...), r.key...), r.value...)
}

// binRes is a decoded binary response.
type binRes struct {
	op     uint8
	status uint16
	opaque uint32
	cas    uint64
	ext    []byte
	key    string
	value  string
}

func (c *client) sendBin(rs ...binReq) {
	c.t.Helper()
	var b []byte
	for _, r := range rs {
		b = append(b, r.bytes()...)
	}
	c.send(string(b))
}

func (c *client) readBin() binRes {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(testTimeout))
	var h [24]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		c.t.Fatalf("read binary response header: %v", err)
	}
	if h[0] != binResMagic {
		c.t.Fatalf("response magic %#x", h[0])
	}
	keyLen, extLen := int(binary.BigEndian.Uint16(h[2:])), int(h[4])
	body := make([]byte, binary.BigEndian.Uint32(h[8:]))
	if _, err := io.ReadFull(c.br, body); err != nil {
		c.t.Fatalf("read binary response body: %v", err)
	}
	return binRes{op: h[1], status: binary.BigEndian.Uint16(h[6:]), opaque: binary.BigEndian.Uint32(h[12:]),
		cas: binary.BigEndian.Uint64(h[16:]), ext: body[:extLen], key: string(body[extLen : extLen+keyLen]),
		value: string(body[extLen+keyLen:])}
}

// doBin sends r and reads one response, checking its opcode, opaque and status.
func (c *client) doBin(r binReq, status uint16) binRes {
	c.t.Helper()
	r.opaque = 0xdeadbeef
	c.sendBin(r)
	res := c.readBin()
	if res.op != r.op || res.opaque != r.opaque || res.status != status {
		c.t.Fatalf("%#x %q: got op %#x opaque %#x status %#x (%q), want status %#x", r.op, r.key, res.op,
			res.opaque, res.status, res.value, status)
	}
	return res
}

func storeExt(flags, exptime uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, flags), exptime)
}

func arithExt(delta, initial uint64, exptime uint32) []byte {
	b := binary.BigEndian.AppendUint64(nil, delta)
	b = binary.BigEndian.AppendUint64(b, initial)
	return binary.BigEndian.AppendUint32(b, exptime)
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func TestBinaryCommands(t *testing.T) {
	ts := startServer(t, Config{FlushAllEnabled: true})
	c := ts.dial()
	c.doBin(binReq{op: binGet, key: "a"}, binStatusKeyNotFound)
	if res := c.doBin(binReq{op: binGetK, key: "a"}, binStatusKeyNotFound); res.key != "a" {
		t.Fatalf("GETK miss key %q", res.key)
	}
	set := c.doBin(binReq{op: binSet, key: "a", ext: storeExt(19, 0), value: "hello"}, binStatusOK)
	if set.cas == 0 {
		t.Fatal("SET answered cas 0")
	}
	get := c.doBin(binReq{op: binGet, key: "a"}, binStatusOK)
	if get.value != "hello" || binary.BigEndian.Uint32(get.ext) != 19 || get.cas != set.cas || get.key != "" {
		t.Fatalf("GET: %+v (set cas %d)", get, set.cas)
	}
	if res := c.doBin(binReq{op: binGetK, key: "a"}, binStatusOK); res.key != "a" || res.value != "hello" {
		t.Fatalf("GETK: %+v", res)
	}
	// CAS semantics: a unique in the header makes SET, ADD and REPLACE a cas.
	c.doBin(binReq{op: binSet, key: "a", ext: storeExt(0, 0), value: "x", cas: set.cas - 1}, binStatusKeyExists)
	c.doBin(binReq{op: binSet, key: "nokey", ext: storeExt(0, 0), value: "x", cas: 7}, binStatusKeyNotFound)
	set2 := c.doBin(binReq{op: binReplace, key: "a", ext: storeExt(5, 0), value: "world", cas: set.cas}, binStatusOK)
	c.doBin(binReq{op: binSet, key: "a", ext: storeExt(0, 0), value: "replay", cas: set.cas}, binStatusKeyExists)
	if res := c.doBin(binReq{op: binGet, key: "a"}, binStatusOK); res.value != "world" || res.cas != set2.cas {
		t.Fatalf("after cas: %+v", res)
	}
	c.doBin(binReq{op: binAdd, key: "a", ext: storeExt(0, 0), value: "x"}, binStatusKeyExists)
	c.doBin(binReq{op: binReplace, key: "b", ext: storeExt(0, 0), value: "x"}, binStatusKeyNotFound)
	c.doBin(binReq{op: binAdd, key: "b", ext: storeExt(0, 0), value: "1"}, binStatusOK)
	c.doBin(binReq{op: binAppend, key: "b", value: "23"}, binStatusOK)
	c.doBin(binReq{op: binPrepend, key: "b", value: "0"}, binStatusOK)
	c.doBin(binReq{op: binAppend, key: "nob", value: "x"}, binStatusNotStored)
	c.doBin(binReq{op: binAppend, key: "b", value: "x", cas: 1}, binStatusKeyExists)
	if res := c.doBin(binReq{op: binGet, key: "b"}, binStatusOK); res.value != "0123" {
		t.Fatalf("append/prepend: %q", res.value)
	}

	// INCR/DECR: the initial value on a miss unless the expiration is 0xffffffff; the new value and cas.
	c.doBin(binReq{op: binIncrement, key: "n", ext: arithExt(1, 0, 0xffffffff)}, binStatusKeyNotFound)
	res := c.doBin(binReq{op: binIncrement, key: "n", ext: arithExt(1, 5, 0)}, binStatusOK)
	if binary.BigEndian.Uint64([]byte(res.value)) != 5 || res.cas == 0 {
		t.Fatalf("incr create: %+v", res)
	}
	res = c.doBin(binReq{op: binIncrement, key: "n", ext: arithExt(1<<33, 0, 0)}, binStatusOK)
	if binary.BigEndian.Uint64([]byte(res.value)) != 1<<33+5 {
		t.Fatalf("incr: %+v", res)
	}
	if g := c.doBin(binReq{op: binGet, key: "n"}, binStatusOK); g.cas != res.cas || g.value != "8589934597" {
		t.Fatalf("get after incr: %+v, incr cas %d", g, res.cas)
	}
	res = c.doBin(binReq{op: binDecrement, key: "n", ext: arithExt(1<<40, 0, 0)}, binStatusOK)
	if binary.BigEndian.Uint64([]byte(res.value)) != 0 {
		t.Fatalf("decr floor: %+v", res)
	}
	c.doBin(binReq{op: binIncrement, key: "n", ext: arithExt(1, 0, 0), cas: res.cas + 1}, binStatusKeyExists)
	c.doBin(binReq{op: binIncrement, key: "a", ext: arithExt(1, 0, 0)}, binStatusNonNumeric)

	// DELETE, with and without a cas; a success answers cas 0.
	g := c.doBin(binReq{op: binGet, key: "b"}, binStatusOK)
	c.doBin(binReq{op: binDelete, key: "b", cas: g.cas + 1}, binStatusKeyExists)
	if d := c.doBin(binReq{op: binDelete, key: "b", cas: g.cas}, binStatusOK); d.cas != 0 {
		t.Fatalf("DELETE cas %d", d.cas)
	}
	c.doBin(binReq{op: binDelete, key: "b"}, binStatusKeyNotFound)

	// TOUCH, GAT, GATK with the fake clock.
	c.doBin(binReq{op: binSet, key: "t", ext: storeExt(3, 1), value: "tv"}, binStatusOK)
	if r := c.doBin(binReq{op: binTouch, key: "t", ext: u32(100)}, binStatusOK); r.value != "" || len(r.ext) != 4 {
		t.Fatalf("TOUCH: %+v", r)
	}
	ts.clock.Advance(2 * time.Second)
	if r := c.doBin(binReq{op: binGAT, key: "t", ext: u32(1)}, binStatusOK); r.value != "tv" {
		t.Fatalf("GAT: %+v", r)
	}
	if r := c.doBin(binReq{op: binGATK, key: "t", ext: u32(0)}, binStatusOK); r.value != "tv" || r.key != "t" {
		t.Fatalf("GATK: %+v", r)
	}
	c.doBin(binReq{op: binTouch, key: "nope", ext: u32(1)}, binStatusKeyNotFound)

	// NOOP, VERSION, VERBOSITY.
	c.doBin(binReq{op: binNoop}, binStatusOK)
	if v := c.doBin(binReq{op: binVersion}, binStatusOK); v.value != "1.2.3-test" {
		t.Fatalf("VERSION %q", v.value)
	}
	c.doBin(binReq{op: binVerbosity, ext: u32(1)}, binStatusOK)

	// FLUSH empties the store; a delayed one goes to the store at once, with its time.
	c.doBin(binReq{op: binFlush}, binStatusOK)
	c.doBin(binReq{op: binGet, key: "a"}, binStatusKeyNotFound)
	c.doBin(binReq{op: binFlush, ext: u32(3600)}, binStatusOK)
	times := ts.store.flushTimes()
	if want := time.Unix(ts.clock.Now().Unix()+3600, 0).Add(-time.Nanosecond); len(times) != 2 || !times[1].Equal(want) {
		t.Fatalf("flush times %v, want the second at %v", times, want)
	}

	// Text still works on a connection of its own.
	tc := ts.dial()
	tc.do("set x 0 0 1\r\n1\r\n", "STORED\r\n")
	if r := c.doBin(binReq{op: binGet, key: "x"}, binStatusOK); r.value != "1" {
		t.Fatalf("binary sees the text set: %+v", r)
	}

	// QUIT answers, then the server closes.
	c.doBin(binReq{op: binQuit}, binStatusOK)
	c.expectClosed()
}

// TestBinaryQuiet: quiet forms answer errors and get hits only; NOOP ends a pipeline.
func TestBinaryQuiet(t *testing.T) {
	ts := startServer(t, Config{FlushAllEnabled: true})
	c := ts.dial()
	c.sendBin(
		binReq{op: binSetQ, key: "a", ext: storeExt(1, 0), value: "A", opaque: 1},
		binReq{op: binAddQ, key: "a", ext: storeExt(1, 0), value: "x", opaque: 2}, // exists: answered
		binReq{op: binAddQ, key: "b", ext: storeExt(2, 0), value: "B", opaque: 3},
		binReq{op: binReplaceQ, key: "c", ext: storeExt(0, 0), value: "x", opaque: 4}, // not found: answered
		binReq{op: binAppendQ, key: "a", value: "a", opaque: 5},
		binReq{op: binPrependQ, key: "b", value: "b", opaque: 6},
		binReq{op: binIncrementQ, key: "n", ext: arithExt(1, 10, 0), opaque: 7},
		binReq{op: binDecrementQ, key: "n", ext: arithExt(3, 0, 0), opaque: 8},
		binReq{op: binGetQ, key: "a", opaque: 9},
		binReq{op: binGetQ, key: "missing", opaque: 10},
		binReq{op: binGetKQ, key: "b", opaque: 11},
		binReq{op: binGetKQ, key: "missing", opaque: 12},
		binReq{op: binGATQ, key: "n", ext: u32(0), opaque: 13},
		binReq{op: binGATKQ, key: "missing", ext: u32(0), opaque: 14},
		binReq{op: binDeleteQ, key: "b", opaque: 15},
		binReq{op: binDeleteQ, key: "b", opaque: 16}, // not found: answered
		binReq{op: binNoop, opaque: 17},
	)
	type seen struct {
		opaque uint32
		status uint16
		key    string
		value  string
	}
	var got []seen
	for {
		r := c.readBin()
		got = append(got, seen{r.opaque, r.status, r.key, r.value})
		if r.op == binNoop {
			break
		}
	}
	want := []seen{
		{2, binStatusKeyExists, "", "Data exists for key."},
		{4, binStatusKeyNotFound, "", "Not found"},
		{9, binStatusOK, "", "Aa"},
		{11, binStatusOK, "b", "bB"},
		{13, binStatusOK, "", "7"},
		{16, binStatusKeyNotFound, "", "Not found"},
		{17, binStatusOK, "", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("response %d: got %+v want %+v", i, got[i], want[i])
		}
	}
	c.sendBin(binReq{op: binFlushQ, opaque: 1}, binReq{op: binNoop, opaque: 2})
	if r := c.readBin(); r.op != binNoop || r.opaque != 2 {
		t.Fatalf("FLUSHQ answered: %+v", r)
	}
	c.sendBin(binReq{op: binQuitQ})
	c.expectClosed()
}

func TestBinaryStats(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	stats := func(group string) map[string]string {
		c.t.Helper()
		c.sendBin(binReq{op: binStat, key: group, opaque: 9})
		m := map[string]string{}
		for {
			r := c.readBin()
			if r.status != binStatusOK || r.opaque != 9 || r.cas != 0 {
				t.Fatalf("stat %q: %+v", group, r)
			}
			if r.key == "" {
				return m
			}
			m[r.key] = r.value
		}
	}
	c.doBin(binReq{op: binSet, key: "p:1", ext: storeExt(0, 0), value: "v"}, binStatusOK)
	if st := stats(""); st["cmd_set"] != "1" || st["version"] != "1.2.3-test" || st["gokai_keys"] != "1" {
		t.Fatalf("general stats: %v", st)
	}
	if st := stats("settings"); st["item_size_max"] != "1048576" || st["domain_socket"] != "NULL" {
		t.Fatalf("settings: %v", st)
	}
	stats("detail on")
	c.doBin(binReq{op: binGet, key: "p:1"}, binStatusOK)
	c.doBin(binReq{op: binGet, key: "p:2"}, binStatusKeyNotFound)
	if st := stats("detail dump"); st["detailed"] != "PREFIX p get 2 hit 1 set 0 del 0\r\nEND\r\n" {
		t.Fatalf("detail dump: %q", st["detailed"])
	}
	stats("detail off")
	stats("reset")
	if st := stats(""); st["cmd_set"] != "0" {
		t.Fatalf("after reset: %v", st)
	}
	if len(stats("items")) != 0 {
		t.Fatal("stats items not empty")
	}
	c.doBin(binReq{op: binStat, key: "bogus"}, binStatusKeyNotFound)
	c.doBin(binReq{op: binNoop}, binStatusOK)
}

// TestBinaryBadInput: malformed requests are answered as memcached answers them; the connection keeps
// serving unless the stream cannot be trusted.
func TestBinaryBadInput(t *testing.T) {
	ts := startServer(t, Config{MaxValueBytes: 100})
	c := ts.dial()
	// An unknown opcode: answered, its body discarded.
	c.doBin(binReq{op: 0x55, key: "k", value: "some body"}, binStatusUnknownCommand)
	c.doBin(binReq{op: binSASLList}, binStatusUnknownCommand) // no user file: no SASL
	c.doBin(binReq{op: binSASLAuth, key: "PLAIN", value: "\x00u\x00p"}, binStatusUnknownCommand)
	// A value over the limit: E2BIG, discarded; a SET also removes the old value.
	c.doBin(binReq{op: binSet, key: "k", ext: storeExt(0, 0), value: "old"}, binStatusOK)
	c.doBin(binReq{op: binAppend, key: "k", value: strings.Repeat("x", 101)}, binStatusTooLarge)
	c.doBin(binReq{op: binGet, key: "k"}, binStatusOK)
	c.doBin(binReq{op: binSet, key: "k", ext: storeExt(0, 0), value: strings.Repeat("x", 101)}, binStatusTooLarge)
	c.doBin(binReq{op: binGet, key: "k"}, binStatusKeyNotFound)
	c.doBin(binReq{op: binSet, key: "k", ext: storeExt(0, 0), value: strings.Repeat("x", 60)}, binStatusOK)
	c.doBin(binReq{op: binAppend, key: "k", value: strings.Repeat("x", 60)}, binStatusTooLarge)
	c.doBin(binReq{op: binNoop}, binStatusOK)

	// Malformed shapes close the connection after an error, as memcached does.
	for _, r := range []binReq{
		{op: binGet, key: strings.Repeat("k", 251)},            // key too long: EINVAL
		{op: binGet, key: "k", ext: u32(1)},                    // GET takes no extras
		{op: binSet, key: "k", value: "v"},                     // SET without its extras
		{op: binIncrement, key: "k", ext: storeExt(0, 0)},      // INCR with 8 bytes of extras
		{op: binNoop, key: "k"},                                // NOOP with a key
		{op: binDelete, key: "k", value: "v"},                  // DELETE with a value
		{op: binTouch, key: "k"},                               // TOUCH without its expiration
		{op: binVersion, value: "v"},                           // VERSION with a body
		{op: binFlush, ext: storeExt(0, 0)},                    // FLUSH with 8 bytes of extras
		{op: binAppend, key: "", value: "v"},                   // APPEND without a key
		{op: binStat, ext: u32(0)},                             // STAT with extras
		{op: binGet, key: "k", value: "v", opaque: 0xdeadbeef}, // a value where none goes
	} {
		c := ts.dial()
		r.opaque = 0xdeadbeef
		c.sendBin(r)
		res := c.readBin()
		if res.status != binStatusInvalid || res.op != r.op {
			t.Fatalf("%+v: got %+v", r, res)
		}
		c.expectClosed()
	}
	// Lengths that do not fit the body: unknown command, closed.
	bad := binReq{op: binGet, key: "key"}.bytes()
	binary.BigEndian.PutUint32(bad[8:], 1)
	c2 := ts.dial()
	c2.send(string(bad))
	if res := c2.readBin(); res.status != binStatusUnknownCommand {
		t.Fatalf("inconsistent lengths: %+v", res)
	}
	c2.expectClosed()
}

// TestBinaryBadMagicCloses: a connection that began in binary and then sends another magic is closed
// without a reply (memcached).
func TestBinaryBadMagicCloses(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	c.doBin(binReq{op: binNoop}, binStatusOK)
	c.send("get a\r\n" + strings.Repeat(" ", 20))
	c.expectClosed()
}

// issue_192.t: an ADDQ that announces a 4 GiB body is answered at once (too large; the body is discarded
// as it comes, never held), and the server keeps accepting.
func TestBinaryIssue192(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	c.send("\x80\x12\x00\x01\x08\x00\x00\x00\xff\xff\xff\xe8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
		"\xff\xff\xff\xff\x01\x00\x00\x00\x00\x00\x00\x00\x00\x000" + strings.Repeat("\x00", 26))
	if res := c.readBin(); res.status != binStatusTooLarge {
		t.Fatalf("issue 192: %+v", res)
	}
	ts.dial().inSync()
}

func TestBinarySASL(t *testing.T) {
	users, err := ParseUsers(strings.NewReader("alice:s3cret:x\nbob:pw\n"))
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{Users: users})
	c := ts.dial()
	// Before a login only VERSION and SASL commands run; anything else is an auth error and a close.
	c.doBin(binReq{op: binVersion}, binStatusOK)
	if r := c.doBin(binReq{op: binSASLList}, binStatusOK); r.value != "PLAIN" {
		t.Fatalf("mechanisms %q", r.value)
	}
	c.doBin(binReq{op: binSASLAuth, key: "PLAIN", value: "\x00alice\x00wrong"}, binStatusAuthError)
	c.doBin(binReq{op: binSASLAuth, key: "CRAM-MD5", value: "x"}, binStatusAuthError)
	c.doBin(binReq{op: binSASLAuth, key: "PLAIN", value: "bob\x00alice\x00s3cret:x"}, binStatusAuthError) // authzid of another user
	c.doBin(binReq{op: binSASLStep, key: "PLAIN", value: "x"}, binStatusAuthError)
	c.doBin(binReq{op: binSet, key: "k", ext: storeExt(0, 0), value: "v"}, binStatusAuthError)
	c.expectClosed()

	c = ts.dial()
	if r := c.doBin(binReq{op: binSASLAuth, key: "PLAIN", value: "\x00alice\x00s3cret:x"}, binStatusOK); r.value != "Authenticated" {
		t.Fatalf("auth reply %q", r.value)
	}
	c.doBin(binReq{op: binSet, key: "k", ext: storeExt(0, 0), value: "v"}, binStatusOK)
	c.doBin(binReq{op: binSASLAuth, key: "PLAIN", value: "alice\x00alice\x00s3cret:x"}, binStatusOK)

	// Text connections log in with memcached's -Y token.
	tc := ts.dial()
	tc.do("get k\r\n", "CLIENT_ERROR unauthenticated\r\n")
	tc.do("mn\r\n", "CLIENT_ERROR unauthenticated\r\n")
	tc.do("get "+strings.Repeat("k ", 5000)+"\r\n", "CLIENT_ERROR unauthenticated\r\n")
	tc.do("set foo 0 0 6\r\nbob pX\r\n", "CLIENT_ERROR authentication failure\r\n")
	tc.do("set foo 0 0 6\r\nbob pw\r\n", "STORED\r\n")
	tc.do("get k\r\n", "VALUE k 0 1\r\nv\r\nEND\r\n")
	tc.do("mn\r\n", "MN\r\n")
}

func TestParseUsers(t *testing.T) {
	for _, bad := range []string{"", "\n\n", "nocolon\n", ":pw\n", "u:" + strings.Repeat("p", 300) + "\n"} {
		if _, err := ParseUsers(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
	u, err := ParseUsers(strings.NewReader("foo:bar\r\nbaaaz:quux\n\nlast:a:b"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user, pass string
		ok         bool
	}{{"foo", "bar", true}, {"baaaz", "quux", true}, {"last", "a:b", true}, {"foo", "bab", false},
		{"foo", "bar\r", false}, {"nobody", "", false}, {"", "", false}} {
		if got := u.Check([]byte(c.user), []byte(c.pass)); got != c.ok {
			t.Errorf("Check(%q, %q) = %v", c.user, c.pass, got)
		}
	}
	var nilUsers *Users
	if nilUsers.Check([]byte("foo"), []byte("bar")) {
		t.Error("nil Users admits")
	}
}

func TestParseSASLPlain(t *testing.T) {
	for _, c := range []struct {
		msg              string
		authz, user, pwd string
		ok               bool
	}{
		{"\x00u\x00p", "", "u", "p", true},
		{"z\x00u\x00p\x00q", "z", "u", "p\x00q", true},
		{"\x00u\x00", "", "u", "", true},
		{"\x00\x00p", "", "", "p", false},
		{"u\x00p", "", "", "", false},
		{"", "", "", "", false},
	} {
		z, u, p, ok := parseSASLPlain([]byte(c.msg))
		if ok != c.ok || (ok && (string(z) != c.authz || string(u) != c.user || string(p) != c.pwd)) {
			t.Errorf("%q: %q %q %q %v", c.msg, z, u, p, ok)
		}
	}
}

func TestCheckBinRequest(t *testing.T) {
	h := func(op uint8, key, ext int, body uint32) binHeader {
		return binHeader{Magic: binReqMagic, Opcode: op, KeyLen: uint16(key), ExtLen: uint8(ext), BodyLen: body}
	}
	for _, c := range []struct {
		h      binHeader
		action binAction
		status uint16
		op     uint8
		quiet  bool
	}{
		{h(binGetQ, 3, 0, 3), binServe, 0, binGet, true},
		{h(binGATKQ, 3, 4, 7), binServe, 0, binGATK, true},
		{h(binSetQ, 3, 8, 20), binServe, 0, binSet, true},
		{h(binSet, 3, 8, 11+1<<20+1), binReject, binStatusTooLarge, binSet, false},
		{h(binSet, 3, 8, 11+1<<20), binServe, 0, binSet, false},
		{h(binSet, 3, 7, 20), binClose, binStatusInvalid, binSet, false},
		{h(0x99, 3, 1, 40), binReject, binStatusUnknownCommand, 0x99, false},
		{h(binGet, 251, 0, 251), binClose, binStatusInvalid, binGet, false},
		{h(binGet, 3, 2, 4), binClose, binStatusUnknownCommand, binGet, false},
		{h(binFlush, 0, 4, 4), binServe, 0, binFlush, false},
		{h(binFlushQ, 0, 0, 0), binServe, 0, binFlush, true},
		{h(binStat, 8, 0, 8), binServe, 0, binStat, false},
		{binHeader{Magic: 0x81}, binClose, 0, 0, false},
	} {
		v := checkBinRequest(c.h, DefaultMaxValueBytes, false, true)
		if v.Action != c.action || v.Status != c.status || (v.Action == binServe && (v.Op != c.op || v.Quiet != c.quiet)) {
			t.Errorf("%+v: got %+v", c.h, v)
		}
		if v.Action == binReject && v.Swallow != int(c.h.BodyLen) {
			t.Errorf("%+v: swallow %d", c.h, v.Swallow)
		}
	}
	if v := checkBinRequest(h(binGet, 1, 0, 1), 1, true, false); v.Action != binClose || v.Status != binStatusAuthError {
		t.Errorf("unauthenticated GET: %+v", v)
	}
	if v := checkBinRequest(h(binSASLAuth, 5, 0, 5+maxSASLData+1), 1, true, false); v.Action != binReject || v.Status != binStatusInvalid {
		t.Errorf("oversized SASL data: %+v", v)
	}
	raw := binReq{op: binGetK, key: "abc", opaque: 7, cas: 9}.bytes()
	if got := parseBinHeader(raw); !bytes.Equal(raw[:2], []byte{binReqMagic, binGetK}) || got.KeyLen != 3 ||
		got.BodyLen != 3 || got.Opaque != 7 || got.Cas != 9 {
		t.Errorf("parseBinHeader: %+v", got)
	}
}
