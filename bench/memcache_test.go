package bench

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// rwPair is a connection stand-in: reads come from r, writes go to w.
type rwPair struct {
	io.Reader
	io.Writer
}

func TestMemcacheQueueWire(t *testing.T) {
	var out bytes.Buffer
	c := newMemcacheClient(rwPair{strings.NewReader(""), &out})
	if err := c.Queue(OpGet, []byte("bench:1"), nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Queue(OpSet, []byte("bench:2"), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := c.Queue(OpSet, []byte("bench:3"), nil); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Fatal("Queue wrote before Flush")
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "get bench:1\r\nset bench:2 0 0 5\r\nhello\r\nset bench:3 0 0 0\r\n\r\n"
	if out.String() != want {
		t.Fatalf("wire = %q, want %q", out.String(), want)
	}
}

func TestMemcacheRead(t *testing.T) {
	const key = "bench:7"
	tests := []struct {
		name    string
		kind    OpKind
		reply   string
		want    Outcome
		wantErr string // "" ok, "reply" *ReplyError, "protocol" ErrProtocol, "eof" io error
	}{
		{"hit", OpGet, "VALUE bench:7 0 5\r\nhello\r\nEND\r\n", Hit, ""},
		{"hit with cas", OpGet, "VALUE bench:7 3 2 99\r\nhi\r\nEND\r\n", Hit, ""},
		{"hit empty value", OpGet, "VALUE bench:7 0 0\r\n\r\nEND\r\n", Hit, ""},
		{"siblings", OpGet, "VALUE bench:7 0 1 5\r\na\r\nVALUE bench:7 0 1 5\r\nb\r\nEND\r\n", Hit, ""},
		{"value contains CRLF", OpGet, "VALUE bench:7 0 4\r\n\r\n\r\n\r\nEND\r\n", Hit, ""},
		{"miss", OpGet, "END\r\n", Miss, ""},
		{"stored", OpSet, "STORED\r\n", Stored, ""},
		{"server error get", OpGet, "SERVER_ERROR out of memory\r\n", 0, "reply"},
		{"server error set", OpSet, "SERVER_ERROR busy\r\n", 0, "reply"},
		{"not stored", OpSet, "NOT_STORED\r\n", 0, "reply"},
		{"error", OpGet, "ERROR\r\n", 0, "protocol"},
		{"client error", OpSet, "CLIENT_ERROR bad data chunk\r\n", 0, "protocol"},
		{"wrong key", OpGet, "VALUE bench:8 0 5\r\nhello\r\nEND\r\n", 0, "protocol"},
		{"bad size", OpGet, "VALUE bench:7 0 x\r\nhello\r\nEND\r\n", 0, "protocol"},
		{"negative size", OpGet, "VALUE bench:7 0 -1\r\nEND\r\n", 0, "protocol"},
		{"missing size", OpGet, "VALUE bench:7 0\r\nEND\r\n", 0, "protocol"},
		{"huge size", OpGet, "VALUE bench:7 0 99999999999\r\n", 0, "protocol"},
		{"bad cas", OpGet, "VALUE bench:7 0 1 z\r\na\r\nEND\r\n", 0, "protocol"},
		{"data not CRLF terminated", OpGet, "VALUE bench:7 0 2\r\nhello\r\nEND\r\n", 0, "protocol"},
		{"bare LF", OpGet, "END\n", 0, "protocol"},
		{"stored for get", OpGet, "STORED\r\n", 0, "protocol"},
		{"end for set", OpSet, "END\r\n", 0, "protocol"},
		{"truncated line", OpGet, "VALUE bench:7", 0, "eof"},
		{"truncated data", OpGet, "VALUE bench:7 0 5\r\nhel", 0, "eof"},
		{"no end", OpGet, "VALUE bench:7 0 5\r\nhello\r\n", 0, "eof"},
		{"empty", OpSet, "", 0, "eof"},
		{"line too long", OpGet, strings.Repeat("x", mcBufSize+10) + "\r\n", 0, "protocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newMemcacheClient(rwPair{strings.NewReader(tt.reply), io.Discard})
			got, err := c.Read(tt.kind, []byte(key))
			var re *ReplyError
			switch tt.wantErr {
			case "":
				if err != nil || got != tt.want {
					t.Fatalf("Read = %v, %v; want %v", got, err, tt.want)
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
		})
	}
}

// TestMemcacheInStepAfterReplyError: after a *ReplyError the next reply is read correctly.
func TestMemcacheInStepAfterReplyError(t *testing.T) {
	c := newMemcacheClient(rwPair{strings.NewReader("SERVER_ERROR x\r\nSTORED\r\nEND\r\n"), io.Discard})
	if _, err := c.Read(OpSet, []byte("k")); err == nil {
		t.Fatal("want an error")
	}
	if got, err := c.Read(OpSet, []byte("k")); got != Stored || err != nil {
		t.Fatalf("second reply = %v, %v", got, err)
	}
	if got, err := c.Read(OpGet, []byte("k")); got != Miss || err != nil {
		t.Fatalf("third reply = %v, %v", got, err)
	}
}

// loopRW replays data forever on Read and discards writes: a server that always gives the same reply.
type loopRW struct {
	data []byte
	off  int
}

func (l *loopRW) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.data[l.off:])
		n += c
		l.off = (l.off + c) % len(l.data)
	}
	return n, nil
}

func (l *loopRW) Write(p []byte) (int, error) { return len(p), nil }

// TestMemcacheNoAllocs: the steady state of queue, flush and read allocates nothing.
func TestMemcacheNoAllocs(t *testing.T) {
	key, value := []byte("bench:42"), make([]byte, 100)
	get := newMemcacheClient(&loopRW{data: []byte("VALUE bench:42 0 100\r\n" + strings.Repeat("v", 100) + "\r\nEND\r\n")})
	set := newMemcacheClient(&loopRW{data: []byte("STORED\r\n")})
	for _, tc := range []struct {
		c    *memcacheClient
		kind OpKind
		want Outcome
	}{{get, OpGet, Hit}, {set, OpSet, Stored}} {
		n := testing.AllocsPerRun(2000, func() {
			if err := tc.c.Queue(tc.kind, key, value); err != nil {
				t.Fatal(err)
			}
			if err := tc.c.Flush(); err != nil {
				t.Fatal(err)
			}
			if got, err := tc.c.Read(tc.kind, key); got != tc.want || err != nil {
				t.Fatalf("Read = %v, %v", got, err)
			}
		})
		if n != 0 {
			t.Fatalf("%v: %v allocations per operation", tc.kind, n)
		}
	}
}

// FuzzMemcacheRead feeds arbitrary server replies to the reply parser: it must not panic, and must consume
// input on every successful read (so a worker can never spin on one reply).
func FuzzMemcacheRead(f *testing.F) {
	for _, s := range []string{
		"VALUE k 0 5\r\nhello\r\nEND\r\n", "END\r\n", "STORED\r\n", "SERVER_ERROR x\r\n",
		"VALUE k 0 1 5\r\na\r\nVALUE k 0 1 6\r\nb\r\nEND\r\n", "VALUE k 0 18446744073709551615\r\n",
		"VALUE k 0 3\r\nabc\n\rEND\r\n", "NOT_STORED\r\nEND\r\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, set bool) {
		kind := OpGet
		if set {
			kind = OpSet
		}
		r := bytes.NewReader(data)
		c := newMemcacheClient(rwPair{r, io.Discard})
		for i := 0; i <= len(data); i++ {
			before := r.Len() + c.r.Buffered()
			out, err := c.Read(kind, []byte("k"))
			var re *ReplyError
			if err != nil && !errors.As(err, &re) {
				return
			}
			if err == nil && (kind == OpSet) != (out == Stored) {
				t.Fatalf("%v reply gave outcome %v", kind, out)
			}
			if r.Len()+c.r.Buffered() >= before {
				t.Fatal("successful read consumed nothing")
			}
		}
		t.Fatal("more successful reads than input bytes")
	})
}
