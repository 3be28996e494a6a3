package msgpackrpc

import (
	"net"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/mpscan"
)

// benchClient reads responses framed by mpscan, without decoding them, so the figures are the server's.
type benchClient struct {
	nc   net.Conn
	buf  []byte
	r, w int
}

func (c *benchClient) next(b *testing.B) {
	for {
		if c.r < c.w {
			n, err := mpscan.Scan(c.buf[c.r:c.w], mpscan.Limits{})
			if err == nil {
				c.r += n
				return
			}
			if err != mpscan.ErrIncomplete {
				b.Fatal(err)
			}
		}
		if c.r == c.w {
			c.r, c.w = 0, 0
		} else if c.w == len(c.buf) {
			c.w = copy(c.buf, c.buf[c.r:c.w])
			c.r = 0
		}
		n, err := c.nc.Read(c.buf[c.w:])
		if err != nil {
			b.Fatal(err)
		}
		c.w += n
	}
}

func benchSetup(b *testing.B) (*benchClient, []byte) {
	_, addr := startServer(b, Config{}, newTestHandler())
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(time.Minute))
	req := request(b, 12345, "echo", []byte("some-key-0001"), make([]byte, 100), nil, map[string]any{"w": 2})
	return &benchClient{nc: nc, buf: make([]byte, 64<<10)}, req
}

func BenchmarkEchoSequential(b *testing.B) {
	c, req := benchSetup(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	for b.Loop() {
		if _, err := c.nc.Write(req); err != nil {
			b.Fatal(err)
		}
		c.next(b)
	}
}

// BenchmarkEcho64InFlight keeps 64 requests in flight on one connection.
func BenchmarkEcho64InFlight(b *testing.B) {
	const inFlight = 64
	c, req := benchSetup(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	n := b.N
	credits := make(chan struct{}, inFlight)
	for range inFlight {
		credits <- struct{}{}
	}
	errc := make(chan error, 1)
	b.ResetTimer()
	go func() {
		for i := 0; i < n; i++ {
			<-credits
			if _, err := c.nc.Write(req); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for range n {
		c.next(b)
		credits <- struct{}{}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}
