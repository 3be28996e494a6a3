package memcache

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

// describe renders a parse result compactly, so tables read like protocol transcripts.
func describe(c Command, err error) string {
	var b strings.Builder
	if err != nil {
		var pe *ProtocolError
		if !errors.As(err, &pe) {
			return "non-protocol error: " + err.Error()
		}
		b.WriteString(strings.TrimSuffix(string(pe.Reply()), "\r\n"))
		if pe.Swallow > 0 {
			fmt.Fprintf(&b, " swallow=%d", pe.Swallow)
		}
		if pe.Close {
			b.WriteString(" close")
		}
		if c.NoReply {
			b.WriteString(" noreply")
		}
		return strings.TrimSpace(b.String())
	}
	b.WriteString(c.Op.String())
	if len(c.Keys) > 0 {
		b.WriteString(" keys=[")
		for i, k := range c.Keys {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.Write(k)
		}
		b.WriteString("]")
	}
	if c.Op.IsStorage() || c.Op == OpTouch || c.Op == OpGat || c.Op == OpGats || c.Op == OpFlushAll {
		if c.Op.IsStorage() {
			fmt.Fprintf(&b, " flags=%d", c.Flags)
		}
		fmt.Fprintf(&b, " exp=%d", c.Exptime)
	}
	if c.Bytes >= 0 {
		fmt.Fprintf(&b, " bytes=%d", c.Bytes)
	}
	if c.Op == OpCas {
		fmt.Fprintf(&b, " cas=%d", c.CasUnique)
	}
	if c.Op == OpIncr || c.Op == OpDecr {
		fmt.Fprintf(&b, " delta=%d", c.Delta)
	}
	if c.Op == OpVerbosity {
		fmt.Fprintf(&b, " level=%d", c.Verbosity)
	}
	if len(c.Args) > 0 {
		fmt.Fprintf(&b, " args=%q", c.Args)
	}
	if c.NoReply {
		b.WriteString(" noreply")
	}
	return b.String()
}

func TestParseCommand(t *testing.T) {
	k250 := strings.Repeat("k", 250)
	k251 := strings.Repeat("k", 251)
	for _, tc := range []struct{ line, want string }{
		// Retrieval.
		{"get a", "get keys=[a]"},
		{"get a b c", "get keys=[a b c]"},
		{"  get   a  b  ", "get keys=[a b]"},
		{"gets a b", "gets keys=[a b]"},
		{"get noreply", "get keys=[noreply]"},
		{"get " + k250, "get keys=[" + k250 + "]"},
		{"get ключ", "get keys=[ключ]"},
		{"get", "ERROR"},
		{"get    ", "ERROR"},
		{"get " + k251, "CLIENT_ERROR bad command line format"},
		{"get a " + k251 + " b", "CLIENT_ERROR bad command line format"},
		{"get a\tb", "CLIENT_ERROR key contains a control character"},
		{"get a\x00b", "CLIENT_ERROR key contains a control character"},
		{"get a\x7f", "CLIENT_ERROR key contains a control character"},
		{"get a\r", "CLIENT_ERROR key contains a control character"},
		{"gat 100 a b", "gat keys=[a b] exp=100"},
		{"gats -1 a", "gats keys=[a] exp=-1"},
		{"gat 0", "gat exp=0"},
		{"gat", "ERROR"},
		{"gat x a", "CLIENT_ERROR invalid exptime argument"},
		{"gat 1 " + k251, "CLIENT_ERROR bad command line format"},

		// Storage.
		{"set a 0 0 5", "set keys=[a] flags=0 exp=0 bytes=5"},
		{"set a 4294967295 100 0 noreply", "set keys=[a] flags=4294967295 exp=100 bytes=0 noreply"},
		{"add a 1 -1 3", "add keys=[a] flags=1 exp=-1 bytes=3"},
		{"replace a 2 2592001 3", "replace keys=[a] flags=2 exp=2592001 bytes=3"},
		{"append a 0 0 3", "append keys=[a] flags=0 exp=0 bytes=3"},
		{"prepend a 0 0 3 noreply", "prepend keys=[a] flags=0 exp=0 bytes=3 noreply"},
		{"cas a 0 0 3 18446744073709551615", "cas keys=[a] flags=0 exp=0 bytes=3 cas=18446744073709551615"},
		{"cas a 0 0 3 7 noreply", "cas keys=[a] flags=0 exp=0 bytes=3 cas=7 noreply"},
		{"set a 0 0 1048576", "set keys=[a] flags=0 exp=0 bytes=1048576"},
		{"set a 0 0 1048577", "SERVER_ERROR object too large for cache swallow=1048579"},
		{"set a 0 0 1048577 noreply", "SERVER_ERROR object too large for cache swallow=1048579 noreply"},
		{"set " + k251 + " 0 0 5", "CLIENT_ERROR bad command line format swallow=7"},
		{"set a\x01 0 0 5", "CLIENT_ERROR key contains a control character swallow=7"},
		{"set a x 0 5", "CLIENT_ERROR bad command line format swallow=7"},
		{"set a -1 0 5", "CLIENT_ERROR bad command line format swallow=7"},
		{"set a 4294967296 0 5", "CLIENT_ERROR bad command line format swallow=7"},
		{"set a 0 x 5", "CLIENT_ERROR bad command line format swallow=7"},
		{"set a 0 9223372036854775808 5", "CLIENT_ERROR bad command line format swallow=7"},
		{"set a 0 0 5 junk", "set keys=[a] flags=0 exp=0 bytes=5"}, // memcached ignores a last token that is not noreply
		{"set a b 0 5 5", "CLIENT_ERROR bad command line format"},  // ...so where <bytes> is is uncertain: no swallow
		{"set a 0 0 5 noreply", "set keys=[a] flags=0 exp=0 bytes=5 noreply"},
		{"cas a 0 0 5 x", "CLIENT_ERROR bad command line format swallow=7"},
		{"cas a 0 0 5 -1 noreply", "CLIENT_ERROR bad command line format swallow=7 noreply"},
		{"set a 0 0 abc", "CLIENT_ERROR bad command line format"},
		{"set a 0 0 -1", "CLIENT_ERROR bad command line format"},
		{"set a 0 0 2147483645", "SERVER_ERROR object too large for cache swallow=2147483647"},
		{"set a 0 0 2147483646", "CLIENT_ERROR bad command line format"},
		{"set a 0 0 abc noreply", "CLIENT_ERROR bad command line format noreply"},
		{"set a 0 0", "ERROR"},
		{"set", "ERROR"},
		{"set a b 0 0 5", "CLIENT_ERROR bad command line format"},
		{"cas a b 0 0 5 1", "CLIENT_ERROR bad command line format"},
		{"set a 0 0 5 noreply x", "ERROR"},
		{"cas a 0 0 5", "ERROR"},
		{"cas a 0 0 5 ", "ERROR"},

		// Delete, arithmetic, touch.
		{"delete a", "delete keys=[a]"},
		{"delete a noreply", "delete keys=[a] noreply"},
		{"delete a 0", "delete keys=[a]"},
		{"delete a 0 noreply", "delete keys=[a] noreply"},
		{"delete noreply", "delete keys=[noreply]"},
		{"delete a 1", "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"},
		{"delete a 1 noreply", "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply] noreply"},
		{"delete a noreply 0", "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"},
		{"delete", "ERROR"},
		{"delete a 0 noreply x", "ERROR"},
		{"delete " + k251, "CLIENT_ERROR bad command line format"},
		{"incr a 1", "incr keys=[a] delta=1"},
		{"decr a 18446744073709551615 noreply", "decr keys=[a] delta=18446744073709551615 noreply"},
		{"incr a 18446744073709551616", "CLIENT_ERROR invalid numeric delta argument"},
		{"incr a -1", "CLIENT_ERROR invalid numeric delta argument"},
		{"incr a x noreply", "CLIENT_ERROR invalid numeric delta argument noreply"},
		{"incr a 1 x", "CLIENT_ERROR bad command line format"},
		{"incr a", "ERROR"},
		{"incr", "ERROR"},
		{"decr a 1 2 3", "ERROR"},
		{"touch a 10", "touch keys=[a] exp=10"},
		{"touch a -1 noreply", "touch keys=[a] exp=-1 noreply"},
		{"touch a x", "CLIENT_ERROR invalid exptime argument"},
		{"touch a", "ERROR"},
		{"touch a 1 x", "CLIENT_ERROR bad command line format"},

		// The rest.
		{"stats", "stats"},
		{"stats settings", `stats args=["settings"]`},
		{"stats detail on", `stats args=["detail" "on"]`},
		{"version", "version"},
		{"version x", "version"},
		{"verbosity 1", "verbosity level=1"},
		{"verbosity 1 noreply", "verbosity level=1 noreply"},
		{"verbosity", "ERROR"},
		{"verbosity x", "CLIENT_ERROR bad command line format"},
		{"verbosity 1 2", "CLIENT_ERROR bad command line format"},
		{"verbosity noreply", "CLIENT_ERROR bad command line format noreply"},
		{"GET / HTTP/1.0", "close"},
		{"bogus x HTTP/1.1 ", "close"},
		{"bogus HTTP/", "close"},
		{"bogus xHTTP/1.1", "ERROR"},
		{"flush_all", "flush_all exp=0"},
		{"flush_all 10", "flush_all exp=10"},
		{"flush_all -1", "flush_all exp=-1"},
		{"flush_all noreply", "flush_all exp=0 noreply"},
		{"flush_all 10 noreply", "flush_all exp=10 noreply"},
		{"flush_all x", "CLIENT_ERROR invalid exptime argument"},
		{"flush_all 1 2", "CLIENT_ERROR bad command line format"},
		{"flush_all 1 2 noreply", "CLIENT_ERROR bad command line format noreply"},
		{"quit", "quit"},
		{"quit now", "quit"},

		// Unknown.
		{"", "ERROR"},
		{"   ", "ERROR"},
		{"GET a", "ERROR"},
		{"foo bar", "ERROR"},
		{"mg a v", "ERROR"},
		{"get\ta", "ERROR"},
	} {
		c, err := ParseCommand([]byte(tc.line))
		if got := describe(c, err); got != tc.want {
			t.Errorf("ParseCommand(%q)\n got: %s\nwant: %s", tc.line, got, tc.want)
		}
	}
}

func TestParseCommandSentinels(t *testing.T) {
	for _, tc := range []struct {
		line string
		want error
	}{
		{"nope", ErrUnknownCommand},
		{"get " + strings.Repeat("k", 251), ErrKeyTooLong},
		{"get a\x01", ErrBadKey},
		{"set a 0 0 x", ErrBadFormat},
		{"set a 0 0 2000000", ErrValueTooLarge},
		{"incr a x", ErrBadNumber},
		{"touch a x", ErrBadNumber},
	} {
		_, err := ParseCommand([]byte(tc.line))
		if !errors.Is(err, tc.want) {
			t.Errorf("ParseCommand(%q) = %v, want errors.Is %v", tc.line, err, tc.want)
		}
	}
}

func TestCommandParseReuse(t *testing.T) {
	var c Command
	if err := c.Parse([]byte("get a b c d"), 10); err != nil {
		t.Fatal(err)
	}
	if err := c.Parse([]byte("set k 1 2 10"), 10); err != nil {
		t.Fatal(err)
	}
	if got := describe(c, nil); got != "set keys=[k] flags=1 exp=2 bytes=10" {
		t.Fatalf("after reuse: %s", got)
	}
	if err := c.Parse([]byte("set k 1 2 11"), 10); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("limit 10, 11 bytes: %v", err)
	}
	if err := c.Parse([]byte("version"), 10); err != nil || len(c.Keys) != 0 || c.Bytes != -1 {
		t.Fatalf("version after set: %v %s", err, describe(c, err))
	}
}

func TestLegalKey(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want bool
	}{
		{"a", true}, {"foo:bar/baz", true}, {strings.Repeat("x", 250), true}, {"日本", true},
		{"", false}, {strings.Repeat("x", 251), false}, {"a b", false}, {"a\tb", false}, {"a\nb", false},
		{"\x7f", false}, {"\x00", false},
	} {
		if got := LegalKey([]byte(tc.key)); got != tc.want {
			t.Errorf("LegalKey(%q) = %v, want %v", tc.key, got, tc.want)
		}
	}
}

func TestParseNumbers(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"-0", 0, true}, {"42", 42, true}, {"-42", -42, true},
		{"9223372036854775807", math.MaxInt64, true}, {"-9223372036854775808", math.MinInt64, true},
		{"9223372036854775808", 0, false}, {"-9223372036854775809", 0, false},
		{"", 0, false}, {"-", 0, false}, {"+1", 0, false}, {"1x", 0, false}, {" 1", 0, false},
		{"99999999999999999999999", 0, false},
	} {
		got, ok := parseInt([]byte(tc.s))
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("parseInt(%q) = %d, %v; want %d, %v", tc.s, got, ok, tc.want, tc.ok)
		}
	}
	if v, ok := parseUint([]byte("18446744073709551615"), math.MaxUint64); !ok || v != math.MaxUint64 {
		t.Errorf("parseUint(max) = %d, %v", v, ok)
	}
	if _, ok := parseUint([]byte("18446744073709551616"), math.MaxUint64); ok {
		t.Error("parseUint(max+1) accepted")
	}
}

func TestExpiryAt(t *testing.T) {
	const now = 1_700_000_000
	for _, tc := range []struct{ exptime, want int64 }{
		{0, 0},
		{1, now + 1},
		{MaxRelativeExptime, now + MaxRelativeExptime},
		{MaxRelativeExptime + 1, MaxRelativeExptime + 1}, // absolute, long past
		{now + 100, now + 100},                           // absolute, future
		{-1, now - 1},
		{math.MinInt64, now - 1},
	} {
		got := ExpiryAt(tc.exptime, now)
		if got != tc.want {
			t.Errorf("ExpiryAt(%d, now) = %d, want %d", tc.exptime, got, tc.want)
		}
	}
	// Negative exptimes are expired whatever the clock says, and never mean "never".
	for _, n := range []int64{0, 1, 2, now} {
		at := ExpiryAt(-5, n)
		if at == 0 || (n >= 1 && !Expired(at, n)) {
			t.Errorf("ExpiryAt(-5, %d) = %d: not expired", n, at)
		}
	}
	if Expired(0, now) || Expired(now+1, now) || !Expired(now, now) || !Expired(now-1, now) {
		t.Error("Expired boundary")
	}
}

// TestExpiryAtProperty checks ExpiryAt against the rule spelled out independently.
func TestExpiryAtProperty(t *testing.T) {
	for _, now := range []int64{2, 1_000, 1_700_000_000} {
		for e := int64(-3); e <= 3; e++ {
			for _, base := range []int64{0, MaxRelativeExptime - 3, now, 1 << 40} {
				exptime := base + e
				at := ExpiryAt(exptime, now)
				switch {
				case exptime == 0 && at != 0:
					t.Errorf("exptime 0: %d", at)
				case exptime < 0 && !(at > 0 && at < now):
					t.Errorf("exptime %d now %d: %d not in the past", exptime, now, at)
				case exptime > 0 && exptime <= 30*24*3600 && at != now+exptime:
					t.Errorf("relative %d: %d", exptime, at)
				case exptime > 30*24*3600 && at != exptime:
					t.Errorf("absolute %d: %d", exptime, at)
				}
			}
		}
	}
}

func TestReplyFor(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errUnknown(), "ERROR\r\n"},
		{clientError(ErrBadFormat, msgBadFormat), "CLIENT_ERROR bad command line format\r\n"},
		{fmt.Errorf("wrapped: %w", clientError(ErrBadKey, msgBadKey)), "CLIENT_ERROR key contains a control character\r\n"},
		{&StoreError{Msg: "quorum not met\r\nEND"}, "SERVER_ERROR quorum not met  END\r\n"},
		{&StoreError{Msg: strings.Repeat("x", 1000)}, "SERVER_ERROR " + strings.Repeat("x", maxErrorMsg) + "\r\n"},
		{fmt.Errorf("node: %w", &StoreError{Code: "out_of_space", Msg: "out of space",
			Err: errors.New("write /var/lib/gokai/leveldb/000012.log: no space left on device")}),
			"SERVER_ERROR out of space\r\n"},
		// An error the Store did not describe: its text (here a path) stays in the log.
		{errors.New("open /var/lib/gokai/leveldb/LOCK: permission denied"), "SERVER_ERROR " + msgStoreFailed + "\r\n"},
	} {
		if got := string(ReplyFor(tc.err)); got != tc.want {
			t.Errorf("ReplyFor(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{MaxValueBytes: -1}, "Config.MaxValueBytes = -1"},
		{Config{MaxValueBytes: 2 << 30}, "Config.MaxValueBytes = 2147483648"},
		{Config{MaxLineBytes: 100}, "Config.MaxLineBytes = 100"},
		{Config{MaxConns: -5}, "Config.MaxConns = -5"},
		{Config{IdleTimeout: -1}, "Config.IdleTimeout = -1ns"},
		{Config{Version: "1 2"}, `Config.Version = "1 2"`},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want mention of %q", tc.cfg, err, tc.want)
		}
	}
}
