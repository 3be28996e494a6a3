package node

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// BenchmarkFlushAll measures flush_all's latency, as a memcache client sees it, on a 1-node and a 3-node
// cluster of node processes (the 3-node one flushed through a node that is not the claimant), with 0 and
// 10,000 keys set before each flush (loading them is not timed). Run it with a fixed count, as loading
// keys takes a moment: go test ./node -run '^$' -bench FlushAll -benchtime 20x
func BenchmarkFlushAll(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			var addrs []string
			var all []*child
			names := []string{"a", "b", "c"}[:nodes]
			for _, name := range names {
				ch, addr := memcacheChild(b, name, "")
				all, addrs = append(all, ch), append(addrs, addr)
			}
			for _, ch := range all[1:] {
				if err := ch.call("cluster_join", []any{all[0].transport}, nil); err != nil {
					b.Fatal(err)
				}
			}
			if nodes > 1 {
				commit(b, all[0], nodes-1)
			}
			settled(b, all, names...)
			flushVia := addrs[len(addrs)-1]
			for _, keys := range []int{0, 10_000} {
				b.Run(fmt.Sprintf("keys=%d", keys), func(b *testing.B) {
					c := benchConn(b, flushVia)
					for range b.N {
						b.StopTimer()
						loadKeys(b, addrs, keys)
						b.StartTimer()
						if got := c.roundTrip("flush_all\r\n"); got != "OK" {
							b.Fatalf("flush_all: %q", got)
						}
					}
				})
			}
		})
	}
}

type benchClient struct {
	b *testing.B
	c net.Conn
	r *bufio.Reader
}

func benchConn(b *testing.B, addr string) *benchClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return &benchClient{b: b, c: c, r: bufio.NewReaderSize(c, 64<<10)}
}

// roundTrip sends req and returns the first line of the reply, without its CRLF.
func (bc *benchClient) roundTrip(req string) string {
	_ = bc.c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := bc.c.Write([]byte(req)); err != nil {
		bc.b.Fatal(err)
	}
	line, err := bc.r.ReadString('\n')
	if err != nil {
		bc.b.Fatal(err)
	}
	return strings.TrimRight(line, "\r\n")
}

// loadKeys sets keys keys through the nodes in turn, pipelined with noreply, and waits for each node to
// have taken them (a get after them on the same connection).
func loadKeys(b *testing.B, addrs []string, keys int) {
	if keys == 0 {
		return
	}
	per := (keys + len(addrs) - 1) / len(addrs)
	for i, addr := range addrs {
		bc := benchConn(b, addr)
		var sb strings.Builder
		for k := i * per; k < min(keys, (i+1)*per); k++ {
			fmt.Fprintf(&sb, "set key:%06d 0 0 8 noreply\r\nvalue%03d\r\n", k, k%1000)
		}
		sb.WriteString("get nothing-here\r\n")
		if got := bc.roundTrip(sb.String()); got != "END" {
			b.Fatalf("loading keys through %s: %q", addr, got)
		}
		bc.c.Close()
	}
}
