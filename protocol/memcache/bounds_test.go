package memcache

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/logbuf"
	"github.com/gokai-kv/gokai/internal/netserve"
)

// TestBudgetRefusesADataBlockAndStaysInSync: a storage command whose block does not fit in the memory
// budget is answered memcached's "SERVER_ERROR out of memory storing object"; the block is read and
// dropped (never buffered) and the connection serves the next request.
func TestBudgetRefusesADataBlockAndStaysInSync(t *testing.T) {
	mem := netserve.NewBudget(1 << 20) // large reservations: up to 896 KiB
	ts := startServer(t, Config{MaxValueBytes: 4 << 20, Memory: mem})
	c := ts.dial()
	big := strings.Repeat("b", 2<<20)
	c.do("set k 0 0 "+fmt.Sprint(len(big))+"\r\n"+big+"\r\n", "SERVER_ERROR out of memory storing object\r\n")
	c.do("get k\r\n", "END\r\n")
	c.do("set k 0 0 "+fmt.Sprint(len(big))+" noreply\r\n"+big+"\r\nget k\r\n", "END\r\n")
	c.do("set k 0 0 5\r\nsmall\r\nget k\r\n", "STORED\r\nVALUE k 0 5\r\nsmall\r\nEND\r\n")
	// An append whose result does not fit.
	mid := strings.Repeat("m", 600<<10)
	c.do("set a 0 0 "+fmt.Sprint(len(mid))+"\r\n"+mid+"\r\n", "STORED\r\n")
	c.do("append a 0 0 "+fmt.Sprint(len(mid))+"\r\n"+mid+"\r\n", "SERVER_ERROR out of memory storing object\r\n")
	c.inSync()
	if mem.Used() != 0 {
		t.Fatalf("%d budget bytes held between requests", mem.Used())
	}
}

// TestBudgetRefusesAGetReply: values whose bytes do not fit are answered "SERVER_ERROR out of memory
// writing get response", which ends the reply; the connection keeps serving.
func TestBudgetRefusesAGetReply(t *testing.T) {
	mem := netserve.NewBudget(1 << 20)
	ts := startServer(t, Config{MaxValueBytes: 4 << 20, Memory: mem})
	ts.store.addSibling("big", Value{Data: bytes.Repeat([]byte("v"), 900<<10)})
	ts.store.addSibling("small", Value{Data: []byte("s")})
	c := ts.dial()
	c.do("get small big small\r\n", "VALUE small 0 1\r\ns\r\nSERVER_ERROR out of memory writing get response\r\n")
	c.do("gets big\r\n", "SERVER_ERROR out of memory writing get response\r\n")
	c.do("gat 0 big\r\n", "SERVER_ERROR out of memory writing get response\r\n")
	c.do("get small\r\n", "VALUE small 0 1\r\ns\r\nEND\r\n")
	c.send("stats\r\n")
	found := false
	for line := c.readLine(); line != "END"; line = c.readLine() {
		found = found || line == "STAT out_of_memory_errors 3"
	}
	if !found {
		t.Fatal("out_of_memory_errors is not 3")
	}
	if mem.Used() != 0 {
		t.Fatalf("%d budget bytes held between requests", mem.Used())
	}
}

// TestBudgetRefusesALongLine: a request line longer than the read buffer grows only within the budget;
// past it the line is read to its end, dropped and answered "SERVER_ERROR out of memory reading request".
// A retrieval line is streamed key by key and needs no budget at all.
func TestBudgetRefusesALongLine(t *testing.T) {
	mem := netserve.NewBudget(256 << 10)
	ts := startServer(t, Config{MaxLineBytes: 4 << 20, Memory: mem})
	ts.store.addSibling("k7", Value{Data: []byte("7")})
	c := ts.dial()
	long := "mg " + strings.Repeat("k7 ", 200<<10) + "\r\n" // 600 KiB
	c.do(long, "SERVER_ERROR out of memory reading request\r\n")
	c.inSync()
	c.do("get "+strings.Repeat("k8 ", 200<<10)+"k7\r\n", "VALUE k7 0 1\r\n7\r\nEND\r\n") // 600 KiB streamed
	if mem.Used() != 0 {
		t.Fatalf("%d budget bytes held between requests", mem.Used())
	}
}

// TestReadTimeoutIsPerRequestNotPerRead: a request that trickles in (each byte well within ReadTimeout
// of the last) is still cut off ReadTimeout after the server first waited for it: a partial line, or a
// data block.
func TestReadTimeoutIsPerRequestNotPerRead(t *testing.T) {
	ts := startServer(t, Config{ReadTimeout: 150 * time.Millisecond})
	for _, req := range []string{"get aaaaaaaaaaaaaaaaaaaaaaa\r\n", "set k 0 0 20\r\n01234567890123456789\r\n"} {
		c := ts.dial()
		c.inSync()
		start := time.Now()
		go func() {
			for i := range len(req) {
				if _, err := io.WriteString(c.nc, req[i:i+1]); err != nil {
					return
				}
				time.Sleep(40 * time.Millisecond) // NB: pacing the trickle
			}
		}()
		c.expectClosed()
		if d := time.Since(start); d > time.Duration(len(req))*40*time.Millisecond {
			t.Fatalf("%q: closed after %v, only once it was all sent", req, d)
		}
	}
}

// TestBudgetNeverLeaksRandomized: connections run random scripts (big and small sets, appends, gets of
// big values, long lines, refused blocks, partial requests left to the read timeout, clients that close
// mid-block or never read); once they are all closed the budget is whole.
func TestBudgetNeverLeaksRandomized(t *testing.T) {
	mem := netserve.NewBudget(3 << 20)
	ts := startServer(t, Config{MaxValueBytes: 2 << 20, MaxLineBytes: 1 << 20, Memory: mem,
		ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, Now: time.Now})
	for i := range 4 {
		ts.store.addSibling(fmt.Sprint("big", i), Value{Data: bytes.Repeat([]byte("v"), 700<<10)})
	}
	conns := 60
	if testing.Short() {
		conns = 15
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 12)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func(seed uint64) {
			defer wg.Done()
			defer func() { <-sem }()
			memcacheScript(t, ts.addr, rand.New(rand.NewPCG(seed, 77)))
		}(uint64(i))
	}
	wg.Wait()
	waitFor(t, "every connection closed", func() bool { return ts.srv.curr.Load() == 0 })
	refused := ts.srv.stats.noMemory.Load()
	t.Logf("out of memory refusals %d, store errors %d", refused, ts.srv.stats.storeErrors.Load())
	if mem.Used() != 0 {
		t.Fatalf("%d budget bytes leaked", mem.Used())
	}
	if refused == 0 {
		t.Fatal("no request was refused: the scripts did not load the budget")
	}
}

func memcacheScript(t *testing.T, addr string, r *rand.Rand) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	var out bytes.Buffer
	for i := range 1 + r.IntN(10) {
		key := fmt.Sprint("k", r.IntN(5))
		switch r.IntN(8) {
		case 0, 1:
			n := r.IntN(1 << 20)
			fmt.Fprintf(&out, "set %s 0 0 %d\r\n%s\r\n", key, n, bytes.Repeat([]byte("x"), n))
		case 2:
			n := r.IntN(512 << 10)
			fmt.Fprintf(&out, "append %s 0 0 %d\r\n%s\r\n", key, n, bytes.Repeat([]byte("y"), n))
		case 3:
			fmt.Fprintf(&out, "get big%d %s big%d\r\n", r.IntN(4), key, r.IntN(4))
		case 4:
			fmt.Fprintf(&out, "gets %s big%d\r\n", key, r.IntN(4))
		case 5:
			fmt.Fprintf(&out, "get %s\r\n", strings.Repeat("kk ", r.IntN(300<<10)))
		case 6:
			fmt.Fprintf(&out, "set %s 0 0 %d noreply\r\n", key, r.IntN(1<<20)) // a block that never comes
		default:
			fmt.Fprintf(&out, "delete %s\r\nversion\r\n", key)
		}
		_ = i
	}
	b := out.Bytes()
	if r.IntN(3) == 0 {
		b = b[:r.IntN(len(b)+1)]
	}
	var pieces [][]byte
	for len(b) > 0 {
		n := min(len(b), 1+r.IntN(256<<10))
		pieces, b = append(pieces, b[:n]), b[n:]
	}
	go func() {
		for _, p := range pieces {
			if _, err := nc.Write(p); err != nil {
				return
			}
		}
	}()
	switch r.IntN(3) {
	case 0:
		time.Sleep(time.Duration(r.IntN(300)) * time.Millisecond) // NB: the script's pacing
	case 1:
		nc.SetReadDeadline(time.Now().Add(time.Duration(r.IntN(300)) * time.Millisecond))
		nc.Read(make([]byte, 1+r.IntN(64<<10)))
	default:
		nc.SetReadDeadline(time.Now().Add(time.Second))
		io.Copy(io.Discard, nc)
	}
}

// shedStore fails every call as a node sheds load.
type shedStore struct{ *memStore }

func (s *shedStore) Get(context.Context, []byte, Read) (Entry, error) {
	return Entry{}, &StoreError{Code: "overload", Msg: "overload", Err: fmt.Errorf("coordinator: overload")}
}

// TestShedWarningsAreRateLimited: 400 connections each pipelining 50 gets that the store sheds, twice, make
// about one warning line a second, whose counts add up to every shed request; every request is answered.
func TestShedWarningsAreRateLimited(t *testing.T) {
	var logBuf logbuf.Buffer
	logger := slog.New(slog.NewTextHandler(&logBuf, nil))
	st := &shedStore{memStore: newMemStore(time.Now)}
	srv := NewServer(Config{}, st, logger)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	const conns, gets = 400, 50
	flood := func(conns, gets int) {
		req := strings.Repeat("get somekey\r\n", gets)
		var wg sync.WaitGroup
		errs := make(chan error, conns)
		for range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				nc, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					errs <- err
					return
				}
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := io.WriteString(nc, req); err != nil {
					errs <- err
					return
				}
				br := bufio.NewReader(nc)
				for i := range gets {
					line, err := br.ReadString('\n')
					if err != nil || line != "SERVER_ERROR overload\r\n" {
						errs <- fmt.Errorf("reply %d: %q, %v", i, line, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	start := time.Now()
	flood(conns, gets)
	time.Sleep(time.Until(start.Add(1100 * time.Millisecond))) // NB: pacing: the second flood comes after the interval
	flood(conns, gets)
	// One more shed request after a whole interval: its line reports every request suppressed before it,
	// so the lines and their counts add up exactly, however the floods fell across the intervals.
	time.Sleep(1100 * time.Millisecond) // NB: pacing: the limiter's interval must pass
	flood(1, 1)
	elapsed := time.Since(start)
	out := logBuf.String()
	lines := strings.Count(out, "memcache: store error")
	suppressed := 0
	for _, l := range strings.Split(out, "\n") {
		var n int
		if i := strings.Index(l, "suppressed="); i >= 0 {
			fmt.Sscanf(l[i:], "suppressed=%d", &n)
			suppressed += n
		}
	}
	t.Logf("%d shed requests in %v: %d log lines (%d bytes), %d reported suppressed", 2*conns*gets, elapsed, lines,
		len(out), suppressed)
	if max := 2 + int(elapsed/time.Second); lines > max {
		t.Fatalf("%d lines in %v, want at most %d:\n%s", lines, elapsed, max, out)
	}
	if want := 2*conns*gets + 1; lines+suppressed != want {
		t.Fatalf("lines %d + suppressed %d: want %d, every shed request", lines, suppressed, want)
	}
}
