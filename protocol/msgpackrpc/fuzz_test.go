package msgpackrpc

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/mpscan"
	"github.com/gokai-kv/gokai/internal/netserve"
)

// fuzzHandler is testHandler without the methods that wait or return large results.
type fuzzHandler struct{ testHandler }

func (h *fuzzHandler) Call(ctx context.Context, method string, params []any) (any, error) {
	switch method {
	case "wait", "block", "big":
		return nil, ErrUnknownMethod(method)
	}
	return h.testHandler.Call(ctx, method, params)
}

// FuzzServer: arbitrary bytes on a connection never crash the server; whatever it sends back is a sequence
// of well-formed responses; and it keeps answering ping on another connection.
func FuzzServer(f *testing.F) {
	for _, in := range hostileInputs() {
		if len(in) <= 4096 {
			f.Add(in)
		}
	}
	for _, req := range [][]byte{
		request(f, 1, "echo", []byte("k"), "v", 1, map[string]any{"w": 2}),
		request(f, 2, "panic"),
		request(f, 3, "fail"),
		request(f, 4, "unencodable"),
		mustMarshal(f, []any{2, "ping", []any{}}),
		mustMarshal(f, []any{1, 5, nil, nil}),
		h("94 00 cd 01 00 c4 04 70 69 6e 67 dc 00 02 c5 00 03 61 62 63 ce 00 01 00 00"),
		append(append(putHead(9, 600<<10), make([]byte, 600<<10)...), request(f, 10, "ping")...),
		append(putHead(11, 600<<10), make([]byte, 2000)...),
	} {
		f.Add(req)
		f.Add(req[:len(req)/2])
		f.Add(append(append([]byte(nil), req...), req...))
	}
	_, addr := startServer(f, Config{MaxMessageBytes: 1 << 20, MaxElems: 4096}, &fuzzHandler{*newTestHandler()})
	// A server whose budget refuses any message declaring more than 448 KiB: its bytes are skipped.
	tight := netserve.NewBudget(512 << 10)
	ts, taddr := startServer(f, Config{MaxMessageBytes: 1 << 20, MaxElems: 4096, Memory: tight}, &fuzzHandler{*newTestHandler()})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzConn(t, addr, data)
		fuzzConn(t, taddr, data)
		waitFor(t, "the connection closed", func() bool { return ts.Stats().Conns == 0 })
		if n := tight.Used(); n != 0 {
			t.Fatalf("%d budget bytes held after the connection closed", n)
		}
	})
}

// fuzzConn sends data on a new connection to addr, checks that what comes back is well-formed responses,
// and that the server still answers ping.
func fuzzConn(t *testing.T, addr string, data []byte) {
	{
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		nc.Write(data) // may fail once the server has closed
		nc.(*net.TCPConn).CloseWrite()
		out, rerr := io.ReadAll(nc)
		if rerr != nil && !isReset(rerr) {
			t.Fatalf("reading the server's replies: %v", rerr)
		}
		for len(out) > 0 {
			n, err := mpscan.Scan(out, mpscan.Limits{MaxBytes: 64 << 20})
			if err == mpscan.ErrIncomplete && rerr != nil {
				break // cut by a reset
			}
			if err != nil {
				t.Fatalf("server sent bad msgpack: %v", err)
			}
			decodeResponse(t, out[:n])
			out = out[n:]
		}
		ping(t, addr)
	}
}
