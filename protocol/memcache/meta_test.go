package memcache

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// do1 sends s and returns the first reply line, without its CRLF.
func (c *client) do1(s string) string {
	c.t.Helper()
	c.send(s)
	return c.readLine()
}

// describeMeta renders a meta parse result compactly.
func describeMeta(m *MetaCommand, pe *ProtocolError) string {
	if pe != nil {
		s := strings.TrimSuffix(string(pe.Reply()), "\r\n")
		if pe.Swallow > 0 {
			s += " swallow=" + strconv.FormatInt(pe.Swallow, 10)
		}
		return s
	}
	var b strings.Builder
	b.WriteString("m" + string(m.Code))
	if m.Code == metaNoop {
		return b.String()
	}
	b.WriteString(" key=" + strconv.Quote(string(m.Key)))
	if m.DataLen >= 0 {
		b.WriteString(" len=" + strconv.Itoa(m.DataLen))
	}
	for _, f := range m.FlagList() {
		b.WriteString(" " + string(f.Flag) + string(f.Token))
	}
	return b.String()
}

func TestParseMeta(t *testing.T) {
	k251 := strings.Repeat("k", 251)
	for _, c := range []struct{ line, want string }{
		{"mn", "mn"},
		{"mn extra", "mn"},
		{"mg foo", `mg key="foo"`},
		{"mg foo s v t c f k O123 q", `mg key="foo" s v t c f k O123 q`},
		{"mg 44OG44K544OI b v", `mg key="テスト" b v`},
		{"mg Zm9v b", `mg key="foo" b`},
		{"mg Zm9vYg== b", `mg key="foob" b`},
		{"mg Zm9vYg b", "CLIENT_ERROR error decoding key"}, // unpadded: memcached's decoder refuses it
		{"mg !!! b", "CLIENT_ERROR error decoding key"},
		{"mg foo m o o o", "CLIENT_ERROR invalid flag"},
		{"mg foo v v", "CLIENT_ERROR duplicate flag"},
		{"mg foo Nx", "CLIENT_ERROR bad token in command line format"},
		{"mg foo T99999999999", "CLIENT_ERROR bad token in command line format"},
		{"mg foo O" + strings.Repeat("o", 32), "CLIENT_ERROR opaque token too long"},
		{"mg foo O" + strings.Repeat("o", 31), `mg key="foo" O` + strings.Repeat("o", 31)},
		{"mg foo " + strings.Repeat("a ", 18), "CLIENT_ERROR options flags are too long"},
		{"mg foo " + strings.Repeat("a ", 17), "CLIENT_ERROR invalid flag"},
		{"mg foo P/path Lx", `mg key="foo" P/path Lx`},
		{"mg " + k251, "CLIENT_ERROR bad command line format"},
		{"mg", "ERROR"},
		{"mx foo", "ERROR"},
		{"mg a\x01", "CLIENT_ERROR key contains a control character"},
		{"ms foo 2", `ms key="foo" len=2`},
		{"ms foo 2 T10 F5 C7 MA I q k c O1 b", "CLIENT_ERROR error decoding key swallow=4"},
		{"ms Zm9v 2 T10 F5 C7 MA I q k c O1 b", `ms key="foo" len=2 T10 F5 C7 MA I q k c O1 b`},
		{"ms foo", "CLIENT_ERROR bad command line format"},
		{"ms foo x", "CLIENT_ERROR bad command line format"},
		{"ms foo -1", "CLIENT_ERROR bad command line format"},
		{"ms foo 2 MZ", "CLIENT_ERROR invalid mode for ms M token swallow=4"},
		{"ms foo 2 MEE", "CLIENT_ERROR incorrect length for M token swallow=4"},
		{"ms foo 2 Fx", "CLIENT_ERROR bad command line format swallow=4"},
		{"ms foo 2 zz", "CLIENT_ERROR invalid flag swallow=4"},
		{"ms foo 1048577", "SERVER_ERROR object too large for cache swallow=1048579"},
		{"ms foo 2 " + strings.Repeat("a ", 17), "CLIENT_ERROR options flags too long swallow=4"},
		{"ms foo 2 " + strings.Repeat("a ", 16), "CLIENT_ERROR invalid flag swallow=4"},
		{"md foo q C5 I T30 k O2", `md key="foo" q C5 I T30 k O2`},
		{"md foo q q", "CLIENT_ERROR invalid or duplicate flag"},
		{"md foo Cx", "CLIENT_ERROR invalid or duplicate flag"},
		{"ma foo N0 J13 D30 MD v t c", `ma key="foo" N0 J13 D30 MD v t c`},
		{"ma foo Dx", "CLIENT_ERROR invalid or duplicate flag"},
		{"ma foo MX", "CLIENT_ERROR invalid mode for ma M token"},
		{"me foo", `me key="foo"`},
		{"me Zm9v b", `me key="foo"`},
		{"me", "CLIENT_ERROR bad command line format"},
	} {
		var m MetaCommand
		var buf [MaxKeyLength]byte
		if !IsMetaLine([]byte(c.line)) {
			t.Errorf("%q: not a meta line", c.line)
			continue
		}
		got := describeMeta(&m, m.Parse([]byte(c.line), buf[:], DefaultMaxValueBytes))
		if got != c.want {
			t.Errorf("Parse(%q)\n got: %s\nwant: %s", c.line, got, c.want)
		}
	}
	for _, line := range []string{"mget", "m", "", "get", "mgx foo"} {
		if IsMetaLine([]byte(line)) {
			t.Errorf("%q: a meta line", line)
		}
	}
}

// metaFlags returns the flags of a meta reply line as a map from flag byte to token.
func metaFlags(t *testing.T, line string) map[byte]string {
	t.Helper()
	m := map[byte]string{}
	f := strings.Fields(line)
	start := 1
	if f[0] == "VA" {
		start = 2
	}
	for _, tok := range f[start:] {
		m[tok[0]] = tok[1:]
	}
	return m
}

// TestMetaCommands follows memcached's t/metaget.t.
func TestMetaCommands(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	c.do(" \n", "ERROR\r\n")
	c.do("set foo 0 0 2\r\nhi\r\n", "STORED\r\n")
	c.do("me none\r\n", "EN\r\n")
	if line := c.do1("me foo\r\n"); !regexp.MustCompile(`^ME foo exp=-1 la=\d+ cas=\d+ fetch=no size=2 siblings=1$`).MatchString(line) {
		t.Fatalf("me: %q", line)
	}
	c.do("md deltest\r\n", "NF\r\n")
	c.do("md foo\r\n", "HD\r\n")
	c.do("set foo2 0 90 2\r\nho\r\n", "STORED\r\n")
	c.do("mg foo2 s v\r\n", "VA 2 s2\r\nho\r\n")

	// ms with cas.
	c.do("ms msetcas 2\r\nbo\r\n", "HD\r\n")
	cas := metaFlags(t, c.do1("mg msetcas c\r\n"))['c']
	c.do("ms msetcas 2 c C1\r\nio\r\n", "EX c0\r\n")
	if line := c.do1("ms msetcas 2 c C" + cas + "\r\nio\r\n"); !regexp.MustCompile(`^HD c\d+$`).MatchString(line) ||
		metaFlags(t, line)['c'] == cas {
		t.Fatalf("ms with cas: %q", line)
	}
	// md with cas.
	c.do("ms mdeltest 2\r\nzo\r\n", "HD\r\n")
	cas = metaFlags(t, c.do1("mg mdeltest c\r\n"))['c']
	c.do("md mdeltest C1\r\n", "EX\r\n")
	c.do("md mdeltest C"+cas+"\r\n", "HD\r\n")

	// Base64 keys: the decoded key is stored; k returns it encoded, marked b.
	c.do("ms 44OG44K544OI 2 b\r\npo\r\n", "HD\r\n")
	c.do("mg 44OG44K544OI v\r\n", "EN\r\n")
	c.do("mg 44OG44K544OI b v k\r\n", "VA 2 k44OG44K544OI b\r\npo\r\n")
	c.do("mg 44OG44K544OI b v k q\r\n"+"mg 44OG44K544OJ b v k q\r\nmn\r\n", "VA 2 k44OG44K544OI b\r\npo\r\nMN\r\n")

	// ma.
	c.do("ma mo\r\n", "NF\r\n")
	c.do("set mo 0 0 1\r\n1\r\n", "STORED\r\n")
	c.do("ma mo\r\n", "HD\r\n")
	c.do("ma mo v\r\n", "VA 1\r\n3\r\n")
	c.do("set mo 0 0 1\r\nq\r\n", "STORED\r\n")
	c.do("ma mo\r\n", "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
	c.do("ma mu N90\r\n", "HD\r\n")
	c.do("mg mu s t v Ofoo k\r\n", "VA 1 s1 t90 Ofoo kmu\r\n0\r\n")
	c.do("ma mu T300 v t\r\n", "VA 1 t300\r\n1\r\n")
	c.do("ma mi N0 J13 v t\r\n", "VA 2 t-1\r\n13\r\n")
	c.do("ma mi N0 J13 v t\r\n", "VA 2 t-1\r\n14\r\n")
	c.do("ma mi N0 J13 v t D30\r\n", "VA 2 t-1\r\n44\r\n")
	c.do("ma mi N0 J13 v t MD D22\r\n", "VA 2 t-1\r\n22\r\n")
	c.do("ma mi N0 J13 v t MD D9000\r\n", "VA 1 t-1\r\n0\r\n")
	c.do("ma mi q D1\r\nmn\r\n", "MN\r\n")
	c.do("ma mi Ox k v\r\n", "VA 1 Ox kmi\r\n2\r\n")
	mc := metaFlags(t, c.do1("ma mc N0 c v\r\n"))['c']
	c.expect("0\r\n")
	c.do("ma mc N0 C99999 v Oz\r\n", "EX Oz\r\n")
	line := c.do1("ma mc N0 C" + mc + " c v\r\n")
	c.expect("1\r\n")
	if metaFlags(t, line)['c'] == mc {
		t.Fatalf("cas unchanged by ma: %q", line)
	}

	// ms modes.
	c.do("ms modedefault 2 T120\r\naa\r\n", "HD\r\n")
	c.do("mg modedefault s v\r\n", "VA 2 s2\r\naa\r\n")
	c.do("ms modedefault 2 T120 ME\r\naa\r\n", "NS\r\n")
	c.do("ms modetest 2 T120 ME\r\nbb\r\n", "HD\r\n")
	c.do("ms modetest 2 T120 MA\r\ncc\r\n", "HD\r\n")
	c.do("ms modetest 2 T120 MP\r\naa\r\n", "HD\r\n")
	c.do("mg modetest s v\r\n", "VA 6 s6\r\naabbcc\r\n")
	c.do("ms modereplace 2 T120 MR\r\nzz\r\n", "NS\r\n")
	c.do("ms modetest 2 T120 MR\r\nxx\r\n", "HD\r\n")
	c.do("ms modetest 2 T120 MS\r\nyy\r\n", "HD\r\n")
	c.do("ms modetest 2 T120 MZ\r\ntt\r\n", "CLIENT_ERROR invalid mode for ms M token\r\n")
	c.do("ms modetest 2 F77 k Oq\r\nff\r\n", "HD kmodetest Oq\r\n")
	c.do("mg modetest f v\r\n", "VA 2 f77\r\nff\r\n")
	c.do("ms modetest 2 MA C1\r\ngg\r\n", "EX\r\n")

	// Quiet mode and mn.
	c.send("ms quiet 2 q\r\nmo\r\nmd quiet q\r\nmg quiet s v q\r\n")
	c.do("ms quiet\r\n", "CLIENT_ERROR bad command line format\r\n")
	c.do("ms quiet 2 q\r\nbo\r\nmg quiet v q\r\nmg quiet v q\r\nmg quietmiss v q\r\nmn\r\n",
		"VA 2\r\nbo\r\nVA 2\r\nbo\r\nMN\r\n")
	c.do("mg foo m o o o o o o o o o\r\n", "CLIENT_ERROR invalid flag\r\n")
	c.do("mg missing Oab k\r\n", "EN Oab kmissing\r\n")
	c.do("mg foo2 s\r\nmg foo2 s\r\nquit\r\nmg foo2 s\r\n", "HD s2\r\nHD s2\r\n")
	c.expectClosed()
}

// TestMetaLeases follows metaget.t's win, stale and hit-before tests.
func TestMetaLeases(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	// Vivify on miss: the first client wins (W), the next sees the token sent (Z).
	c.do("mg needwin s c v N30 t\r\n", "")
	line := c.readLine()
	f := metaFlags(t, line)
	c.expect("\r\n")
	if _, won := f['W']; !won || f['s'] != "0" || f['t'] != "30" || strings.Contains(line, "Z") {
		t.Fatalf("vivify: %q", line)
	}
	cas := f['c']
	c.do("mg needwin s t c v N30\r\n", "VA 0 s0 t30 c"+cas+" Z\r\n\r\n")
	c.do("ms needwin 2 C5000 T120\r\nnu\r\n", "EX\r\n")
	c.do("ms needwin 2 C"+cas+" T120\r\nmu\r\n", "HD\r\n")
	c.do("mg needwin s k t v N30\r\n", "VA 2 s2 kneedwin t120\r\nmu\r\n")
	// A TTL below the R token: the first client wins.
	c.do("mg needwin s t v N30 R130\r\n", "VA 2 s2 t120 W\r\nmu\r\n")
	c.do("mg needwin s t v N30 R130\r\n", "VA 2 s2 t120 Z\r\nmu\r\n")
	c.do("mg needwin s t v N30 R100\r\n", "VA 2 s2 t120 Z\r\nmu\r\n")

	// Get and touch: T before t shows the new TTL, t before T the old one.
	c.do("ms gatkey 4 T100\r\nooom\r\n", "HD\r\n")
	c.do("mg gatkey s v T300 t\r\n", "VA 4 s4 t300\r\nooom\r\n")
	c.do("mg gatkey t T200\r\n", "HD t300\r\n")
	ts.clock.Advance(150 * time.Second)
	c.do("mg gatkey t\r\n", "HD t50\r\n")

	// Hit before (h) and last access (l); u reads without counting as an access.
	c.do("ms hitflag 3 T100\r\nhit\r\n", "HD\r\n")
	c.do("mg hitflag s t h\r\n", "HD s3 t100 h0\r\n")
	c.do("mg hitflag s t h\r\n", "HD s3 t100 h1\r\n")
	c.do("ms noupdate 3 T100\r\nhit\r\n", "HD\r\n")
	c.do("mg noupdate u h\r\n", "HD h0\r\n")
	c.do("mg noupdate h\r\n", "HD h0\r\n")
	c.do("mg noupdate u h\r\n", "HD h1\r\n")
	c.do("ms la_test 2 T100\r\nla\r\n", "HD\r\n")
	ts.clock.Advance(2 * time.Second)
	c.do("mg la_test l\r\n", "HD l2\r\n")
	ts.clock.Advance(3 * time.Second)
	c.do("mg la_test l\r\n", "HD l3\r\n")
	c.do("get la_test\r\n", "VALUE la_test 0 2\r\nla\r\nEND\r\n") // a text get is an access too
	c.do("mg la_test l h\r\n", "HD l0 h1\r\n")

	// Serve stale: md I marks the item stale with a new cas; the next reader wins the recache.
	c.do("set toinv 0 0 3\r\nmoo\r\n", "STORED\r\n")
	c.do("mg toinv s v\r\n", "VA 3 s3\r\nmoo\r\n")
	c.do("md toinv I T30\r\n", "HD\r\n")
	line = c.do1("mg toinv s t c v\r\n")
	c.expect("moo\r\n")
	f = metaFlags(t, line)
	_, won := f['W']
	_, stale := f['X']
	if !won || !stale || f['t'] != "30" {
		t.Fatalf("stale read: %q", line)
	}
	cas = f['c']
	c.do("ms toinv 1 T90 C0\r\nf\r\n", "EX\r\n")
	c.do("ms toinv 1 I T90 C1\r\nf\r\n", "HD\r\n") // a stale set: stored, still stale, TTL kept
	line = c.do1("mg toinv s t c v\r\n")
	c.expect("f\r\n")
	f = metaFlags(t, line)
	_, won = f['W']
	_, stale = f['X']
	_, sent := f['Z']
	if won || !stale || !sent || f['t'] != "30" || f['c'] == cas {
		t.Fatalf("after a stale set: %q", line)
	}
	c.do("ms toinv 1 T90 C"+f['c']+"\r\ng\r\n", "HD\r\n")
	line = c.do1("mg toinv s t v\r\n")
	c.expect("g\r\n")
	if line != "VA 1 s1 t90" {
		t.Fatalf("after a valid set: %q", line)
	}
}

// TestMetaBadInput: errors are always answered (q or not) and ms's data block is discarded.
func TestMetaBadInput(t *testing.T) {
	ts := startServer(t, Config{MaxValueBytes: 10})
	c := ts.dial()
	c.do("ms k 2 q zz\r\nab\r\n", "CLIENT_ERROR invalid flag\r\n")
	c.do("ms k 3 q\r\nab\r\nmn\r\n", "CLIENT_ERROR bad data chunk\r\n") // the block took "m"; "n" was dropped
	c.do("ms k 2\r\nok\r\n", "HD\r\n")
	c.do("ms k 11 q\r\n"+strings.Repeat("x", 11)+"\r\n", "SERVER_ERROR object too large for cache\r\n")
	c.do("mg k v\r\n", "EN\r\n") // the too-large set removed the old value
	c.do("ms k 6\r\n123456\r\n", "HD\r\n")
	c.do("ms k 6 MA\r\n123456\r\n", "SERVER_ERROR object too large for cache\r\n")
	c.do("ms k 11 MA\r\n"+strings.Repeat("x", 11)+"\r\n", "SERVER_ERROR object too large for cache\r\n")
	c.do("mg k v\r\n", "VA 6\r\n123456\r\n") // not in set mode: kept
	c.do("ms k x\r\nmn\r\n", "CLIENT_ERROR bad command line format\r\nMN\r\n")
	c.do("md k q Cx\r\n", "CLIENT_ERROR invalid or duplicate flag\r\n")
	c.do("mz k\r\n", "ERROR\r\n")
	c.inSync()
}

// TestMetaSiblings: mg shows the sibling get shows and a cas naming the whole set; ms with that cas
// resolves the siblings.
func TestMetaSiblings(t *testing.T) {
	ts := startServer(t, Config{})
	ts.store.addSibling("k", Value{Data: []byte("old"), LastMod: 1})
	ts.store.addSibling("k", Value{Data: []byte("new"), LastMod: 2})
	c := ts.dial()
	line := c.do1("mg k v c\r\n")
	c.expect("new\r\n")
	cas := metaFlags(t, line)['c']
	c.do("gets k\r\n", "VALUE k 0 3 "+cas+"\r\nold\r\nVALUE k 0 3 "+cas+"\r\nnew\r\nEND\r\n")
	c.do("ms k 6 C"+cas+"\r\nmerged\r\n", "HD\r\n")
	if n := ts.store.siblingCount("k"); n != 1 {
		t.Fatalf("%d siblings after ms with the set's cas", n)
	}
}

// TestMetaOneWinnerPerNode: readers racing for the win token of a stale item on one node: exactly one
// gets W, even when every one of them read the item before any took the token.
func TestMetaOneWinnerPerNode(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	for round := range 5 {
		key := "race" + strconv.Itoa(round)
		c.do("ms "+key+" 1\r\nx\r\n", "HD\r\n")
		c.do("md "+key+" I\r\n", "HD\r\n")
		const readers = 8
		hold, held := make(chan struct{}), make(chan struct{}, readers)
		ts.store.mu.Lock()
		ts.store.hold, ts.store.held = hold, held
		ts.store.mu.Unlock()
		wins := make(chan bool, readers)
		for range readers {
			rc := ts.dial()
			go func() {
				rc.send("mg " + key + " c\r\n")
				line, err := rc.br.ReadString('\n')
				wins <- err == nil && strings.Contains(line, " W")
			}()
		}
		for range readers {
			<-held // every reader has read the stale item, none has answered
		}
		ts.store.mu.Lock()
		ts.store.hold, ts.store.held = nil, nil
		ts.store.mu.Unlock()
		close(hold)
		n := 0
		for range readers {
			if <-wins {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("round %d: %d winners", round, n)
		}
	}
}
