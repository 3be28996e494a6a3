package itest

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gokai-kv/gokai/client"
)

// procKiB reads one "Name: N kB" field of /proc/PID/status (VmRSS: resident now; VmHWM: the peak).
func procKiB(t *testing.T, pid int, field string) int {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// goodClient runs puts and gets of small values on its own connection until stopped, and records the first
// error: the node must keep serving it while it is attacked.
type goodClient struct {
	calls atomic.Int64
	err   atomic.Value
	stop  chan struct{}
	done  chan struct{}
}

func startGoodClient(t *testing.T, addr string) *goodClient {
	t.Helper()
	c := newRPCClient(t, addr, client.Config{})
	g := &goodClient{stop: make(chan struct{}), done: make(chan struct{})}
	blind := &client.WriteOptions{Blind: true}
	go func() {
		defer close(g.done)
		for i := 0; ; i++ {
			select {
			case <-g.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := c.Put(ctx, []byte("good"), []byte(fmt.Sprintf("v%d", i)), nil, blind)
			if err == nil {
				_, err = c.Get(ctx, []byte("good"), nil)
			}
			cancel()
			if err != nil {
				g.err.Store(fmt.Errorf("call %d: %w", i, err))
				return
			}
			g.calls.Add(1)
			time.Sleep(5 * time.Millisecond) // NB: pacing, not waiting for a condition
		}
	}()
	return g
}

// finish stops the client and fails the test if any of its calls failed or none was made.
func (g *goodClient) finish(t *testing.T) int64 {
	t.Helper()
	close(g.stop)
	<-g.done
	if err, _ := g.err.Load().(error); err != nil {
		t.Fatalf("the well-behaved client failed during the attack: %v", err)
	}
	if g.calls.Load() == 0 {
		t.Fatal("the well-behaved client made no progress")
	}
	return g.calls.Load()
}

// waitFor polls cond every 100 ms until it holds or timeout passes; it reports whether it held.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// partialPut is the start of a msgpack-RPC put whose value declares size bytes, cut short by cut bytes.
func partialPut(msgid uint32, size, cut int) []byte {
	b := []byte{0x94, 0x00, 0xce}
	b = binary.BigEndian.AppendUint32(b, msgid)
	b = append(b, 0xa3, 'p', 'u', 't', 0x94, 0xc4, 3, 'k', 'e', 'y', 0xc6)
	b = binary.BigEndian.AppendUint32(b, uint32(size))
	return append(b, make([]byte, size-cut)...)
}

// rpcCall encodes a request [0, msgid, method, params].
func rpcCall(t *testing.T, msgid uint32, method string, params ...any) []byte {
	t.Helper()
	b, err := msgpack.Marshal([]any{0, msgid, method, params})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rpcResponse is one decoded response [1, msgid, error, result].
type rpcResponse struct {
	msgid  uint32
	code   string // "" for success
	result any
}

// readRPCResponse reads one response from r.
func readRPCResponse(r *bufio.Reader) (rpcResponse, error) {
	dec := msgpack.NewDecoder(r)
	var raw []any
	if err := dec.Decode(&raw); err != nil {
		return rpcResponse{}, err
	}
	if len(raw) != 4 {
		return rpcResponse{}, fmt.Errorf("response of %d elements", len(raw))
	}
	id, _ := toUint(raw[1])
	resp := rpcResponse{msgid: uint32(id), result: raw[3]}
	if raw[2] != nil {
		m, ok := raw[2].(map[string]any)
		if !ok {
			return resp, fmt.Errorf("error %T", raw[2])
		}
		resp.code, _ = m["code"].(string)
	}
	return resp, nil
}

func toUint(v any) (uint64, bool) {
	switch x := v.(type) {
	case int8:
		return uint64(x), true
	case int16:
		return uint64(x), true
	case int32:
		return uint64(x), true
	case int64:
		return uint64(x), true
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case uint32:
		return uint64(x), true
	case uint64:
		return x, true
	}
	return 0, false
}

// closedByServer reports whether the server closes c within d (the read sees EOF or a reset).
func closedByServer(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestRPCPartialFrameFloodStaysBounded: 100 connections each send all but the last KiB of a put whose
// value declares 9 MiB, and stall. The node's memory must stay bounded while they hang, the node must keep
// serving another client, the stalled connections must be closed by the read timeout, and the memory
// must be given back afterwards.
func TestRPCPartialFrameFloodStaysBounded(t *testing.T) {
	const (
		conns = 100
		size  = 9 << 20
	)
	p := startNode(t, "", boundsFlags...)
	pid := p.cmd.Process.Pid
	good := startGoodClient(t, p.rpcAddr)
	waitFor(10*time.Second, func() bool { return good.calls.Load() > 10 })
	rssBefore := procKiB(t, pid, "VmRSS")

	var wg sync.WaitGroup
	attackers := make([]net.Conn, conns)
	var writeErrs atomic.Int64
	for i := range attackers {
		c, err := net.DialTimeout("tcp", p.rpcAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		attackers[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetWriteDeadline(time.Now().Add(60 * time.Second))
			if _, err := c.Write(partialPut(uint32(i), size, 1024)); err != nil {
				writeErrs.Add(1)
			}
		}()
	}
	wg.Wait()
	rssStalled := procKiB(t, pid, "VmRSS")
	peak := procKiB(t, pid, "VmHWM")
	t.Logf("RSS %d MiB before; %d MiB with %d stalled partial 9 MiB frames; peak %d MiB (%d writes failed)",
		rssBefore>>10, rssStalled>>10, conns, peak>>10, writeErrs.Load())
	if n := good.calls.Load(); n == 0 {
		t.Fatal("no good call")
	}

	var closedN atomic.Int64
	for _, c := range attackers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if closedByServer(c, boundsReadTimeout+20*time.Second) {
				closedN.Add(1)
			}
		}()
	}
	wg.Wait()
	closed := int(closedN.Load())
	t.Logf("%d of %d stalled connections closed by the server", closed, conns)
	released := waitFor(60*time.Second, func() bool { return procKiB(t, pid, "VmRSS") < rssBefore+boundsReleasedKiB })
	rssAfter := procKiB(t, pid, "VmRSS")
	calls := good.finish(t)
	t.Logf("RSS %d MiB after the connections closed; the well-behaved client made %d calls", rssAfter>>10, calls)
	if peak > rssBefore+boundsPeakKiB {
		t.Errorf("peak RSS %d MiB: over the %d MiB before + %d MiB", peak>>10, rssBefore>>10, boundsPeakKiB>>10)
	}
	if closed != conns {
		t.Errorf("%d of %d stalled connections were still open %v after the read timeout", conns-closed, conns, boundsReadTimeout)
	}
	if !released {
		t.Errorf("RSS %d MiB a minute after the attack: not back under %d MiB before + %d MiB", rssAfter>>10, rssBefore>>10, boundsReleasedKiB>>10)
	}
}

// TestRPCBigGetPipelineStaysBounded: one connection pipelines 48 gets of a 16 MiB value and reads their
// responses slowly (64 MiB/s). The node runs only as many of them at a time as the connection's byte
// window holds, so its memory stays bounded; it keeps serving another client (on memcache) and stats
// (on msgpack-RPC) throughout; every get is answered; and the memory is given back after.
func TestRPCBigGetPipelineStaysBounded(t *testing.T) {
	const (
		gets = 48
		size = 16 << 20
	)
	p := startNode(t, "", boundsFlags...)
	pid := p.cmd.Process.Pid
	c := newRPCClient(t, p.rpcAddr, client.Config{})
	value := make([]byte, size)
	for i := range value {
		value[i] = byte(i)
	}
	ctx := context.Background()
	if _, err := c.Put(ctx, []byte("big"), value, nil, &client.WriteOptions{Blind: true}); err != nil {
		t.Fatal(err)
	}
	good := startGoodMemcacheClient(t, p.mcAddr)
	waitFor(10*time.Second, func() bool { return good.calls.Load() > 10 })
	rssBefore := procKiB(t, pid, "VmRSS")

	a, err := net.DialTimeout("tcp", p.rpcAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var batch []byte
	for i := 0; i < gets; i++ {
		batch = append(batch, rpcCall(t, uint32(i), "get", []byte("big"), map[string]any{})...)
	}
	if _, err := a.Write(batch); err != nil {
		t.Fatal(err)
	}
	// Read slowly: 1 MiB every 16 ms. Stats are asked on another connection meanwhile.
	r := bufio.NewReaderSize(&slowReader{r: a, chunk: 1 << 20, every: 16 * time.Millisecond}, 1<<20)
	codes := map[string]int{}
	_ = a.SetReadDeadline(time.Now().Add(120 * time.Second))
	var statsErr error
	for i := 0; i < gets; i++ {
		resp, err := readRPCResponse(r)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if resp.code == "" {
			m, _ := resp.result.(map[string]any)
			vs, _ := m["values"].([]any)
			if len(vs) != 1 || len(vs[0].([]byte)) != size {
				t.Fatalf("response %d: a get of the big value returned %v", resp.msgid, m)
			}
		}
		codes[resp.code]++
		if i%8 == 0 && statsErr == nil {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, statsErr = c.Stats(sctx)
			cancel()
		}
	}
	peak := procKiB(t, pid, "VmHWM")
	a.Close()
	if statsErr != nil {
		t.Fatalf("stats during the attack: %v", statsErr)
	}
	t.Logf("RSS %d MiB before; peak %d MiB; responses by error code %v", rssBefore>>10, peak>>10, codes)
	released := waitFor(60*time.Second, func() bool { return procKiB(t, pid, "VmRSS") < rssBefore+boundsReleasedKiB })
	rssAfter := procKiB(t, pid, "VmRSS")
	calls := good.finish(t)
	t.Logf("RSS %d MiB after the connection closed; the well-behaved client made %d calls", rssAfter>>10, calls)
	if peak > rssBefore+boundsPeakKiB {
		t.Errorf("peak RSS %d MiB: over the %d MiB before + %d MiB", peak>>10, rssBefore>>10, boundsPeakKiB>>10)
	}
	if !released {
		t.Errorf("RSS %d MiB a minute after the attack: not back under %d MiB before + %d MiB", rssAfter>>10, rssBefore>>10, boundsReleasedKiB>>10)
	}
}

// slowReader reads at most chunk bytes every interval.
type slowReader struct {
	r     io.Reader
	chunk int
	every time.Duration
	next  time.Time
}

func (s *slowReader) Read(p []byte) (int, error) {
	if d := time.Until(s.next); d > 0 {
		time.Sleep(d) // NB: pacing the reader
	}
	s.next = time.Now().Add(s.every)
	return s.r.Read(p[:min(len(p), s.chunk)])
}

// startGoodMemcacheClient is startGoodClient on the memcache face: sets and gets of a small value.
func startGoodMemcacheClient(t *testing.T, addr string) *goodClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	br := bufio.NewReader(nc)
	g := &goodClient{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(g.done)
		for i := 0; ; i++ {
			select {
			case <-g.stop:
				return
			default:
			}
			v := fmt.Sprintf("v%d", i)
			_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
			_, err := fmt.Fprintf(nc, "set good 0 0 %d\r\n%s\r\nget good\r\n", len(v), v)
			var lines []string
			for err == nil && len(lines) < 4 {
				var line string
				line, err = br.ReadString('\n')
				lines = append(lines, line)
			}
			want := []string{"STORED\r\n", fmt.Sprintf("VALUE good 0 %d\r\n", len(v)), v + "\r\n", "END\r\n"}
			if err != nil || fmt.Sprint(lines) != fmt.Sprint(want) {
				g.err.Store(fmt.Errorf("call %d: %q, %v", i, lines, err))
				return
			}
			g.calls.Add(1)
			time.Sleep(5 * time.Millisecond) // NB: pacing, not waiting for a condition
		}
	}()
	return g
}

// TestMemcacheShedLogIsBounded: 400 connections each pipeline 50 gets at a node that can run only a few
// requests at once: the node sheds most of them (SERVER_ERROR overload), answers every one, and writes
// about one log line a second for it (the lines carry the count of the ones they stand for).
func TestMemcacheShedLogIsBounded(t *testing.T) {
	const conns, gets = 400, 50
	p := startNode(t, "", append([]string{"-max-in-flight", "4"}, boundsFlags...)...)
	m := dialMC(t, p.mcAddr)
	if got := m.do("set k 0 0 5\r\nvalue\r\n"); got != "STORED\r\n" {
		t.Fatalf("set: %q", got)
	}
	logBefore := len(p.logText())
	req := strings.Repeat("get k\r\n", gets)
	start := time.Now()
	var wg sync.WaitGroup
	var shed, served atomic.Int64
	errs := make(chan error, conns)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.DialTimeout("tcp", p.mcAddr, 10*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(60 * time.Second))
			if _, err := io.WriteString(nc, req); err != nil {
				errs <- err
				return
			}
			br := bufio.NewReader(nc)
			for j := 0; j < gets; j++ {
				line, err := br.ReadString('\n')
				switch {
				case err != nil:
					errs <- fmt.Errorf("reply %d: %v", j, err)
					return
				case strings.HasPrefix(line, "SERVER_ERROR overload"):
					shed.Add(1)
				case line == "VALUE k 0 5\r\n":
					if rest, err := br.ReadString('\n'); err != nil || rest != "value\r\n" {
						errs <- fmt.Errorf("value: %q, %v", rest, err)
						return
					}
					if end, err := br.ReadString('\n'); err != nil || end != "END\r\n" {
						errs <- fmt.Errorf("end: %q, %v", end, err)
						return
					}
					served.Add(1)
				default:
					errs <- fmt.Errorf("reply %d: %q", j, line)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	logged := p.logText()[logBefore:]
	lines := strings.Count(logged, "\n")
	storeLines := strings.Count(logged, "memcache: store error")
	t.Logf("%d gets in %v: %d shed, %d served; %d log lines (%d bytes), %d of them store errors",
		conns*gets, elapsed, shed.Load(), served.Load(), lines, len(logged), storeLines)
	if shed.Load() < 1000 {
		t.Fatalf("only %d of %d gets shed: the node was not overloaded, the test measures nothing", shed.Load(), conns*gets)
	}
	if max := 2*(2+int(elapsed/time.Second)) + 10; lines > max {
		t.Fatalf("%d log lines in %v, want at most %d:\n%s", lines, elapsed, max, logged)
	}
}

var (
	boundsFlags       = []string{"-rpc-read-timeout", "3s"}
	boundsReadTimeout = 3 * time.Second
	boundsPeakKiB     = 700 << 10
	boundsReleasedKiB = 150 << 10
)
