package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

// binRes builds a binary response for tests.
func binRes(op byte, status uint16, ext, key, value string) string {
	b := []byte{binResMagic, op}
	b = binary.BigEndian.AppendUint16(b, uint16(len(key)))
	b = append(b, byte(len(ext)), 0)
	b = binary.BigEndian.AppendUint16(b, status)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ext)+len(key)+len(value)))
	b = append(b, make([]byte, 12)...) // opaque, cas
	return string(b) + ext + key + value
}

func TestBinaryQueueWire(t *testing.T) {
	var out bytes.Buffer
	c := newBinaryClient(rwPair{strings.NewReader(""), &out})
	if err := c.Queue(OpGet, []byte("bench:1"), []byte("ignored")); err != nil { // a get sends no value
		t.Fatal(err)
	}
	if err := c.Queue(OpSet, []byte("k"), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Fatal("Queue wrote before Flush")
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "\x80\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\x07" + strings.Repeat("\x00", 12) + "bench:1" +
		"\x80\x01\x00\x01\x08\x00\x00\x00\x00\x00\x00\x0e" + strings.Repeat("\x00", 12) + strings.Repeat("\x00", 8) + "k" + "hello"
	if out.String() != want {
		t.Fatalf("wire = %q\nwant   %q", out.String(), want)
	}
}

func TestBinaryRead(t *testing.T) {
	for _, tt := range []struct {
		name    string
		kind    OpKind
		reply   string
		want    Outcome
		wantErr string
	}{
		{"hit", OpGet, binRes(0, 0, "\x00\x00\x00\x00", "", "hello"), Hit, ""},
		{"miss", OpGet, binRes(0, 1, "", "", "Not found"), Miss, ""},
		{"stored", OpSet, binRes(1, 0, "", "", ""), Stored, ""},
		{"too large", OpSet, binRes(1, 3, "", "", "Too large."), 0, "reply"},
		{"temporary failure", OpGet, binRes(0, 0x86, "", "", "overload"), 0, "reply"},
		{"not found for set", OpSet, binRes(1, 1, "", "", "Not found"), 0, "reply"},
		{"wrong magic", OpGet, "\x80" + binRes(0, 0, "", "", "")[1:], 0, "protocol"},
		{"wrong opcode", OpGet, binRes(1, 0, "", "", ""), 0, "protocol"},
		{"huge body", OpGet, binRes(0, 0, "", "", "")[:8] + "\xff\xff\xff\xff" + strings.Repeat("\x00", 12), 0, "protocol"},
		{"truncated header", OpGet, binRes(0, 0, "", "", "")[:10], 0, "eof"},
		{"truncated body", OpGet, binRes(0, 0, "", "", "hello")[:27], 0, "eof"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newBinaryClient(rwPair{strings.NewReader(tt.reply), io.Discard})
			got, err := c.Read(tt.kind, []byte("k"))
			checkReadResult(t, got, err, tt.want, tt.wantErr)
		})
	}
}

func TestMetaQueueWire(t *testing.T) {
	var out bytes.Buffer
	c := newMetaClient(rwPair{strings.NewReader(""), &out})
	if err := c.Queue(OpGet, []byte("bench:1"), nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Queue(OpSet, []byte("bench:2"), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := "mg bench:1 v\r\nms bench:2 5\r\nhello\r\n"; out.String() != want {
		t.Fatalf("wire = %q, want %q", out.String(), want)
	}
}

func TestMetaRead(t *testing.T) {
	for _, tt := range []struct {
		name    string
		kind    OpKind
		reply   string
		want    Outcome
		wantErr string
	}{
		{"hit", OpGet, "VA 5\r\nhello\r\n", Hit, ""},
		{"hit with flags", OpGet, "VA 2 s2 c9\r\nhi\r\n", Hit, ""},
		{"hit empty", OpGet, "VA 0\r\n\r\n", Hit, ""},
		{"miss", OpGet, "EN\r\n", Miss, ""},
		{"stored", OpSet, "HD\r\n", Stored, ""},
		{"not stored", OpSet, "NS\r\n", 0, "reply"},
		{"server error", OpGet, "SERVER_ERROR busy\r\n", 0, "reply"},
		{"error", OpGet, "ERROR\r\n", 0, "protocol"},
		{"client error", OpSet, "CLIENT_ERROR bad data chunk\r\n", 0, "protocol"},
		{"hd for get", OpGet, "HD\r\n", 0, "protocol"},
		{"bad size", OpGet, "VA x\r\nhello\r\n", 0, "protocol"},
		{"data not CRLF terminated", OpGet, "VA 2\r\nhello\r\n", 0, "protocol"},
		{"truncated data", OpGet, "VA 5\r\nhel", 0, "eof"},
		{"empty", OpSet, "", 0, "eof"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newMetaClient(rwPair{strings.NewReader(tt.reply), io.Discard})
			got, err := c.Read(tt.kind, []byte("k"))
			checkReadResult(t, got, err, tt.want, tt.wantErr)
		})
	}
}

func checkReadResult(t *testing.T, got Outcome, err error, want Outcome, wantErr string) {
	t.Helper()
	var re *ReplyError
	switch wantErr {
	case "":
		if err != nil || got != want {
			t.Fatalf("Read = %v, %v; want %v", got, err, want)
		}
	case "reply":
		if !errors.As(err, &re) {
			t.Fatalf("err = %v, want *ReplyError", err)
		}
	case "protocol":
		if !errors.Is(err, ErrProtocol) {
			t.Fatalf("err = %v, want ErrProtocol", err)
		}
	case "eof":
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("err = %v, want EOF", err)
		}
	}
}

// TestBinaryAndMetaNoAllocs: the steady state of queue, flush and read allocates nothing, misses included.
func TestBinaryAndMetaNoAllocs(t *testing.T) {
	key, value := []byte("bench:42"), make([]byte, 100)
	for _, tc := range []struct {
		name string
		c    Client
		kind OpKind
		want Outcome
	}{
		{"binary get", newBinaryClient(&loopRW{data: []byte(binRes(0, 0, "\x00\x00\x00\x00", "", strings.Repeat("v", 100)))}), OpGet, Hit},
		{"binary miss", newBinaryClient(&loopRW{data: []byte(binRes(0, 1, "", "", "Not found"))}), OpGet, Miss},
		{"binary set", newBinaryClient(&loopRW{data: []byte(binRes(1, 0, "", "", ""))}), OpSet, Stored},
		{"meta get", newMetaClient(&loopRW{data: []byte("VA 100\r\n" + strings.Repeat("v", 100) + "\r\n")}), OpGet, Hit},
		{"meta miss", newMetaClient(&loopRW{data: []byte("EN\r\n")}), OpGet, Miss},
		{"meta set", newMetaClient(&loopRW{data: []byte("HD\r\n")}), OpSet, Stored},
	} {
		n := testing.AllocsPerRun(2000, func() {
			if err := tc.c.Queue(tc.kind, key, value); err != nil {
				t.Fatal(err)
			}
			if err := tc.c.Flush(); err != nil {
				t.Fatal(err)
			}
			if got, err := tc.c.Read(tc.kind, key); got != tc.want || err != nil {
				t.Fatalf("%s: Read = %v, %v", tc.name, got, err)
			}
		})
		if n != 0 {
			t.Fatalf("%s: %v allocations per operation", tc.name, n)
		}
	}
}

// FuzzBinaryAndMetaRead feeds arbitrary replies to both parsers: no panic, and every successful read
// consumes input.
func FuzzBinaryAndMetaRead(f *testing.F) {
	for _, s := range []string{binRes(0, 0, "\x00\x00\x00\x00", "", "hello"), binRes(0, 1, "", "", "Not found"),
		binRes(1, 0, "", "", ""), "VA 5\r\nhello\r\n", "EN\r\n", "HD\r\n", "NS\r\n", "VA 2 s2\r\nhi\r\nEN\r\n"} {
		f.Add([]byte(s), false, false)
		f.Add([]byte(s), true, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, set, meta bool) {
		kind := OpGet
		if set {
			kind = OpSet
		}
		r := bytes.NewReader(data)
		var c Client
		var buffered func() int
		if meta {
			mc := newMetaClient(rwPair{r, io.Discard})
			c, buffered = mc, mc.r.Buffered
		} else {
			bc := newBinaryClient(rwPair{r, io.Discard})
			c, buffered = bc, bc.r.Buffered
		}
		for i := 0; i <= len(data); i++ {
			before := r.Len() + buffered()
			out, err := c.Read(kind, []byte("k"))
			var re *ReplyError
			if err != nil && !errors.As(err, &re) {
				return
			}
			if err == nil && (kind == OpSet) != (out == Stored) {
				t.Fatalf("%v reply gave outcome %v", kind, out)
			}
			if r.Len()+buffered() >= before {
				t.Fatal("successful read consumed nothing")
			}
		}
		t.Fatal("more successful reads than input bytes")
	})
}

// TestRunMemcachedBinaryAndMeta: both protocols against memcached itself.
func TestRunMemcachedBinaryAndMeta(t *testing.T) {
	addr := startMemcached(t)
	for _, proto := range []string{"memcache-binary", "memcache-meta"} {
		cfg := testConfig(addr)
		cfg.Protocol, cfg.Pipeline = proto, 4
		rep, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, rep)
		if rep.Ops == 0 || rep.Hits == 0 || rep.Errors != 0 || rep.Misses != 0 {
			t.Fatalf("%s: ops %d hits %d misses %d errors %d", proto, rep.Ops, rep.Hits, rep.Misses, rep.Errors)
		}
	}
}
