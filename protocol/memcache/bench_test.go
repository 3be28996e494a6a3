package memcache

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func BenchmarkParseCommand(b *testing.B) {
	for _, bc := range []struct{ name, line string }{
		{"get", "get user:1234567890"},
		{"get10", "get " + strings.TrimSpace(strings.Repeat("user:1234567890 ", 10))},
		{"set", "set user:1234567890 0 3600 100"},
		{"cas", "cas user:1234567890 0 3600 100 1234567890123 noreply"},
	} {
		line := []byte(bc.line)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var c Command
			for b.Loop() {
				if err := c.Parse(line, DefaultMaxValueBytes); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/alloc", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseCommand(line); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// fixedStore answers every Get with one 100-byte value and accepts every write, allocating nothing, so the
// round-trip benchmark measures the server.
type fixedStore struct{ e Entry }

func (s *fixedStore) Get(context.Context, []byte, Read) (Entry, error)              { return s.e, nil }
func (s *fixedStore) Set(context.Context, []byte, Value, Supersede) (uint64, error) { return 1, nil }
func (s *fixedStore) Delete(context.Context, []byte, Supersede) error               { return nil }
func (s *fixedStore) FlushAll(context.Context, time.Time) error                     { return nil }
func (s *fixedStore) Stats() []Stat                                                 { return nil }

func BenchmarkServerRoundTrip(b *testing.B) {
	value := strings.Repeat("v", 100)
	store := &fixedStore{e: Entry{Found: true, Siblings: []Value{{Data: []byte(value)}}, Cas: 1}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer(Config{}, store, nil)
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Shutdown(context.Background()) })

	run := func(b *testing.B, req, reply string, depth int) {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		br := bufio.NewReader(nc)
		batch := []byte(strings.Repeat(req, depth))
		buf := make([]byte, len(reply)*depth)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := nc.Write(batch); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(br, buf); err != nil {
				b.Fatal(err)
			}
		}
		if string(buf[:len(reply)]) != reply {
			b.Fatalf("reply %q", buf[:len(reply)])
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*depth), "ns/req")
	}
	get := "get user:1234567890\r\n"
	getReply := "VALUE user:1234567890 0 100\r\n" + value + "\r\nEND\r\n"
	set := "set user:1234567890 0 0 100\r\n" + value + "\r\n"
	b.Run("get", func(b *testing.B) { run(b, get, getReply, 1) })
	b.Run("set", func(b *testing.B) { run(b, set, "STORED\r\n", 1) })
	b.Run("get/pipelined16", func(b *testing.B) { run(b, get, getReply, 16) })
	b.Run("set/pipelined16", func(b *testing.B) { run(b, set, "STORED\r\n", 16) })

	// The same over meta commands and the binary protocol.
	mg, mgReply := "mg user:1234567890 v\r\n", "VA 100\r\n"+value+"\r\n"
	ms := "ms user:1234567890 100\r\n" + value + "\r\n"
	b.Run("meta-get", func(b *testing.B) { run(b, mg, mgReply, 1) })
	b.Run("meta-set", func(b *testing.B) { run(b, ms, "HD\r\n", 1) })
	b.Run("meta-get/pipelined16", func(b *testing.B) { run(b, mg, mgReply, 16) })
	bget := string(binReq{op: binGet, key: "user:1234567890"}.bytes())
	bgetReply := string(appendBinHeader(nil, binGet, 0, 0, 4, 104, 0, 1)) + "\x00\x00\x00\x00" + value
	bset := string(binReq{op: binSet, key: "user:1234567890", ext: make([]byte, 8), value: value}.bytes())
	bsetReply := string(appendBinHeader(nil, binSet, 0, 0, 0, 0, 0, 1))
	b.Run("binary-get", func(b *testing.B) { run(b, bget, bgetReply, 1) })
	b.Run("binary-set", func(b *testing.B) { run(b, bset, bsetReply, 1) })
	b.Run("binary-get/pipelined16", func(b *testing.B) { run(b, bget, bgetReply, 16) })
}
