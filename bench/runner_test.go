package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/eventually"
)

// startMemcached runs the real memcached on a free loopback port for the test and returns its address. Without
// the binary the test is skipped, unless the CI environment variable is set: then it fails.
func startMemcached(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("memcached")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("memcached is required in CI: %v", err)
		}
		t.Skipf("memcached not installed: %v", err)
	}
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort(t)
		args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-t", "2"}
		if os.Geteuid() == 0 {
			args = append(args, "-u", "root") // memcached refuses to run as root without -u
		}
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start memcached: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() { cmd.Process.Kill(); <-exited })
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		up := false
		eventually.Within(5*time.Second, func() bool {
			select {
			case <-exited: // most likely the port was taken in the meantime: try another
				return true
			default:
			}
			if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
				c.Close()
				up = true
			}
			return up
		})
		if up {
			return addr
		}
		select {
		case <-exited:
			t.Logf("memcached exited: %s", stderr.String())
		default:
			t.Logf("memcached did not accept connections on %s", addr)
		}
	}
	t.Fatal("memcached did not start")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func testConfig(addr string) Config {
	cfg := Default()
	cfg.Addr, cfg.Conns, cfg.Keys, cfg.Duration = addr, 8, 1000, 500*time.Millisecond
	return cfg
}

func checkInvariants(t *testing.T, rep *Report) {
	t.Helper()
	if rep.Gets+rep.Sets != rep.Ops || rep.Hits+rep.Misses > rep.Gets {
		t.Errorf("counts inconsistent: %+v", rep.Counts)
	}
	if rep.Latency.Count() != rep.GetLatency.Count()+rep.SetLatency.Count() || rep.Latency.Count() > rep.Ops {
		t.Errorf("latency counts %d/%d/%d for %d ops", rep.Latency.Count(), rep.GetLatency.Count(), rep.SetLatency.Count(), rep.Ops)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
	raw, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Config  map[string]any `json:"config"`
		Results struct {
			Ops       uint64                        `json:"ops"`
			LatencyUS map[string]map[string]float64 `json:"latency_us"`
		} `json:"results"`
	}
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatalf("JSON report does not decode: %v", err)
	}
	if back.Results.Ops != rep.Ops || back.Config["addr"] != rep.Config.Addr || back.Config["duration"] != rep.Config.Duration.String() {
		t.Errorf("JSON report: %s", raw)
	}
	if _, ok := back.Results.LatencyUS["all"]["p99.9"]; !ok {
		t.Errorf("JSON report lacks latency_us.all.p99.9: %s", raw)
	}
}

func TestRunMemcachedClosedLoop(t *testing.T) {
	addr := startMemcached(t)
	for _, pipeline := range []int{1, 4} {
		cfg := testConfig(addr)
		cfg.Pipeline = pipeline
		rep, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, rep)
		if rep.Ops == 0 || rep.Hits == 0 || rep.Errors != 0 || rep.Stop != StopDuration {
			t.Fatalf("pipeline %d: ops %d hits %d errors %d stop %s", pipeline, rep.Ops, rep.Hits, rep.Errors, rep.Stop)
		}
		if rep.Misses != 0 { // every key was prefilled and memcached has room for all of them
			t.Errorf("pipeline %d: %d misses after prefill", pipeline, rep.Misses)
		}
		if rep.Prefill == nil || rep.Prefill.Keys != int64(cfg.Keys) {
			t.Errorf("prefill %+v, want %d keys", rep.Prefill, cfg.Keys)
		}
		// Stopped by its duration (not the hard cap, checked above), a run lasts at least that long.
		if rep.Elapsed < cfg.Duration {
			t.Errorf("elapsed %v for duration %v", rep.Elapsed, cfg.Duration)
		}
	}
}

func TestRunMemcachedOpsLimit(t *testing.T) {
	addr := startMemcached(t)
	for _, tc := range []struct {
		pipeline int
		dist     string
	}{{1, "uniform"}, {3, "zipfian"}} { // 2000 is not a multiple of 8 conns × 3: the last claims are cut short
		cfg := testConfig(addr)
		// NB: a duration far longer than 2000 operations take, so the ops limit ends the run on any machine.
		cfg.Ops, cfg.Duration, cfg.Pipeline, cfg.Dist = 2000, time.Minute, tc.pipeline, tc.dist
		rep, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, rep)
		if rep.Ops != 2000 || rep.Stop != StopOps || rep.Errors != 0 {
			t.Fatalf("%+v: ops %d stop %s errors %d, want exactly 2000 ops, stop by ops", tc, rep.Ops, rep.Stop, rep.Errors)
		}
	}
}

func TestRunMemcachedOpenLoop(t *testing.T) {
	addr := startMemcached(t)
	cfg := testConfig(addr)
	cfg.Rate, cfg.Duration, cfg.Conns, cfg.Pipeline = 2000, time.Second, 4, 8
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, rep)
	want := cfg.Rate * cfg.Duration.Seconds()
	if rep.Ops+rep.Unsent != uint64(want) {
		t.Errorf("ops %d + unsent %d, want the %v scheduled", rep.Ops, rep.Unsent, want)
	}
	if got := float64(rep.Ops); math.Abs(got-want) > 0.15*want || rep.Errors != 0 {
		t.Fatalf("open loop: %v ops (errors %d), want %v ± 15%%", got, rep.Errors, want)
	}
}

// TestRunOpenLoopNoCoordinatedOmission: a server that takes 50ms per request, driven at 100 ops/s on one
// connection, falls further and further behind. Closed-loop thinking would report 50ms for every request; the
// open loop charges each request the time it waited to be sent.
func TestRunOpenLoopNoCoordinatedOmission(t *testing.T) {
	addr := startFake(t, &fakeServer{delay: 50 * time.Millisecond})
	cfg := testConfig(addr)
	cfg.Conns, cfg.Rate, cfg.Prefill, cfg.Duration = 1, 100, false, time.Second
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, rep)
	// ~20 requests served; the k-th waited about k·40ms before it could be sent.
	if p50, max := rep.Latency.Quantile(0.5), rep.Latency.Max(); p50 < 250*time.Millisecond || max < 600*time.Millisecond {
		t.Fatalf("p50 %v max %v: queueing delay not charged", p50, max)
	}
	if rep.Ops+rep.Unsent != 100 {
		t.Fatalf("ops %d + unsent %d, want the 100 scheduled", rep.Ops, rep.Unsent)
	}
}

// fakeServer is a minimal in-process memcache server with faults: it can close each connection after
// closeAfter commands, answer sets with setReply, or never answer at all.
type fakeServer struct {
	closeAfter int
	setReply   string // default "STORED"
	silent     bool
	delay      time.Duration // before each reply

	mu    sync.Mutex
	data  map[string][]byte
	conns map[net.Conn]bool
}

func startFake(t *testing.T, f *fakeServer) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.data, f.conns = map[string][]byte{}, map[net.Conn]bool{}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns[c] = true
			f.mu.Unlock()
			wg.Go(func() { f.serve(c) })
		}
	})
	return l.Addr().String()
}

func (f *fakeServer) serve(c net.Conn) {
	defer c.Close()
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	for n := 1; ; n++ {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		fields := strings.Fields(line)
		if f.silent || len(fields) < 2 {
			continue
		}
		time.Sleep(f.delay) // simulated slowness
		switch fields[0] {
		case "get":
			f.mu.Lock()
			v, ok := f.data[fields[1]]
			f.mu.Unlock()
			if ok {
				fmt.Fprintf(w, "VALUE %s 0 %d\r\n%s\r\n", fields[1], len(v), v)
			}
			w.WriteString("END\r\n")
		case "set":
			size, _ := strconv.Atoi(fields[4])
			v := make([]byte, size+2)
			if _, err := ioReadFull(r, v); err != nil {
				return
			}
			if f.setReply != "" {
				w.WriteString(f.setReply + "\r\n")
				break
			}
			f.mu.Lock()
			f.data[fields[1]] = v[:size]
			f.mu.Unlock()
			w.WriteString("STORED\r\n")
		}
		if r.Buffered() == 0 || n == f.closeAfter {
			w.Flush()
		}
		if n == f.closeAfter {
			return
		}
	}
}

func ioReadFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestRunReconnects: a server that drops every connection after 50 commands costs errors and reconnects, but
// the run carries on.
func TestRunReconnects(t *testing.T) {
	addr := startFake(t, &fakeServer{closeAfter: 50})
	cfg := testConfig(addr)
	cfg.Conns, cfg.Prefill, cfg.Duration = 4, false, 700*time.Millisecond
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, rep)
	if rep.Reconnects == 0 || rep.Errors == 0 || rep.Ops <= rep.Errors || rep.Hits == 0 {
		t.Fatalf("counts %+v: want reconnects, errors and successful operations", rep.Counts)
	}
}

// TestRunSpreadsConnections: with several servers in Addr, connection i goes to the (i mod n)th, and every
// server sees its share of the operations.
func TestRunSpreadsConnections(t *testing.T) {
	fakes := []*fakeServer{{}, {}, {}}
	var addrs []string
	for _, f := range fakes {
		addrs = append(addrs, startFake(t, f))
	}
	cfg := testConfig(strings.Join(addrs, ","))
	cfg.Conns, cfg.Keys, cfg.Ops = 7, 70, 700
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, rep)
	if rep.Ops != 700 || rep.Errors != 0 || rep.Reconnects != 0 {
		t.Fatalf("counts %+v: want 700 operations without errors or reconnects", rep.Counts)
	}
	for i, f := range fakes {
		f.mu.Lock()
		conns, keys := len(f.conns), len(f.data)
		f.mu.Unlock()
		want := 2 // connections 0, 3, 6 go to the first server, 1 and 4 to the second, 2 and 5 to the third
		if i == 0 {
			want = 3
		}
		if conns != want || keys == 0 {
			t.Errorf("server %d: %d connections and %d keys set, want %d connections and some keys", i, conns, keys, want)
		}
	}
}

// TestRunReplyErrorsKeepConnection: SERVER_ERROR replies count as errors without reconnecting.
func TestRunReplyErrorsKeepConnection(t *testing.T) {
	addr := startFake(t, &fakeServer{setReply: "SERVER_ERROR busy"})
	cfg := testConfig(addr)
	cfg.Prefill, cfg.Duration, cfg.Pipeline = false, 200*time.Millisecond, 4
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, rep)
	if rep.Errors != rep.Sets || rep.Sets == 0 || rep.Reconnects != 0 || rep.Hits != 0 || rep.Misses != rep.Gets {
		t.Fatalf("counts %+v: want every set an error, no reconnects", rep.Counts)
	}
	// prefill refuses to measure over a key space it could not fill
	cfg.Prefill = true
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "SERVER_ERROR busy") {
		t.Fatalf("prefill against failing sets: err = %v", err)
	}
}

// boundedCtx bounds a run whose own limits are under test: if they fail, the run ends by this context
// (StopCanceled, or a context error) after 30 s, and the test fails on the stop reason, not on a clock.
func boundedCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestRunHardCap: against a server that never answers, the run is ended by its hard cap (Duration + grace).
func TestRunHardCap(t *testing.T) {
	defer func(g time.Duration) { hardCapGrace = g }(hardCapGrace)
	hardCapGrace = 300 * time.Millisecond
	addr := startFake(t, &fakeServer{silent: true})
	cfg := testConfig(addr)
	cfg.Conns, cfg.Prefill, cfg.Duration = 3, false, 200*time.Millisecond
	rep, err := Run(boundedCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stop != StopHardCap || rep.Ops != 3 || rep.Errors != 3 {
		t.Fatalf("stop %s counts %+v: want hard-cap with one lost op per connection", rep.Stop, rep.Counts)
	}

	// and the prefill is ended by its own timeout
	cfg.Prefill, cfg.PrefillTimeout = true, 200*time.Millisecond
	if _, err := Run(boundedCtx(t), cfg); err == nil || !strings.Contains(err.Error(), "not done within prefill-timeout") {
		t.Fatalf("prefill against a silent server: err = %v", err)
	}
}

func TestRunCanceled(t *testing.T) {
	addr := startFake(t, &fakeServer{})
	cfg := testConfig(addr)
	cfg.Duration = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stop != StopCanceled || rep.Ops == 0 { // a run that ignored the cancel would stop by duration
		t.Fatalf("stop %s after %v with %d ops", rep.Stop, rep.Elapsed, rep.Ops)
	}
}

func TestRunDialFails(t *testing.T) {
	cfg := testConfig(net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))) // nobody listens there now
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "connection 1 of 8") {
		t.Fatalf("err = %v, want a dial error", err)
	}
}

// TestRunWorkersGiveUp: when the server goes away for good, workers stop after a bounded number of dials.
func TestRunWorkersGiveUp(t *testing.T) {
	defer func(b time.Duration) { backoffMin = b }(backoffMin)
	backoffMin = time.Millisecond
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{})
	go func() { // accept the run's connections, then close them and the listener
		var cs []net.Conn
		for range 2 {
			c, err := l.Accept()
			if err != nil {
				return
			}
			cs = append(cs, c)
		}
		l.Close()
		for _, c := range cs {
			c.Close()
		}
		close(accepted)
	}()
	cfg := testConfig(l.Addr().String())
	// NB: a duration far longer than the dials take: workers that did not give up would stop by duration.
	cfg.Conns, cfg.Prefill, cfg.Duration = 2, false, time.Minute
	rep, err := Run(context.Background(), cfg)
	<-accepted
	if !errors.Is(err, ErrWorkerFailed) || rep == nil || rep.Stop != StopFailed || len(rep.WorkerErrors) != 2 {
		t.Fatalf("err = %v, report %+v", err, rep)
	}
	for _, e := range rep.WorkerErrors {
		if !strings.Contains(e, fmt.Sprintf("%d dials failed", maxDials)) {
			t.Fatalf("worker error %q: want a give-up after %d dials", e, maxDials)
		}
	}
}

func TestConfigServerAddr(t *testing.T) {
	for _, tt := range []struct{ protocol, addr, want string }{
		{"memcache", "", "127.0.0.1:11211"},
		{"msgpack-rpc", "", "127.0.0.1:11011"},
		{"msgpack-rpc", "127.0.0.1:5", "127.0.0.1:5"},
	} {
		cfg := Default()
		cfg.Protocol, cfg.Addr = tt.protocol, tt.addr
		if got := cfg.ServerAddr(); got != tt.want {
			t.Errorf("%s %q: ServerAddr = %q, want %q", tt.protocol, tt.addr, got, tt.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	tests := []struct {
		name  string
		edit  func(*Config)
		field string // must appear in the error; "" = valid
	}{
		{"ipv6 loopback", func(c *Config) { c.Addr = "[::1]:11211" }, ""},
		{"localhost", func(c *Config) { c.Addr = "localhost:1" }, ""},
		{"remote refused", func(c *Config) { c.Addr = "10.1.2.3:11211" }, "addr \"10.1.2.3:11211\": not a loopback"},
		{"remote host name refused", func(c *Config) { c.Addr = "cache.example:11211" }, "addr"},
		{"remote allowed", func(c *Config) { c.Addr, c.AllowRemote = "10.1.2.3:11211", true }, ""},
		{"no port", func(c *Config) { c.Addr = "127.0.0.1" }, "addr"},
		{"port 0", func(c *Config) { c.Addr = "127.0.0.1:0" }, "addr"},
		{"several", func(c *Config) { c.Addr = "127.0.0.1:1,[::1]:2,localhost:3" }, ""},
		{"several, one remote", func(c *Config) { c.Addr = "127.0.0.1:1,10.1.2.3:2" }, "addr \"10.1.2.3:2\": not a loopback"},
		{"several, one empty", func(c *Config) { c.Addr = "127.0.0.1:1," }, "addr \"\""},
		{"too many", func(c *Config) { c.Addr = strings.Repeat("127.0.0.1:1,", 64) + "127.0.0.1:1" }, "65 servers"},
		{"protocol", func(c *Config) { c.Protocol = "redis" }, "protocol \"redis\""},
		{"conns", func(c *Config) { c.Conns = 0 }, "conns 0"},
		{"pipeline", func(c *Config) { c.Pipeline = 5000 }, "pipeline 5000"},
		{"rate", func(c *Config) { c.Rate = -1 }, "rate -1"},
		{"rate NaN", func(c *Config) { c.Rate = math.NaN() }, "rate NaN"},
		{"get-ratio", func(c *Config) { c.GetRatio = 1.5 }, "get-ratio 1.5"},
		{"keys", func(c *Config) { c.Keys = 0 }, "keys 0"},
		{"dist", func(c *Config) { c.Dist = "pareto" }, "dist \"pareto\""},
		{"zipf-s", func(c *Config) { c.ZipfS = 1 }, "zipf-s 1"},
		{"value-size", func(c *Config) { c.ValueSize = 2 << 20 }, "value-size 2097152"},
		{"duration", func(c *Config) { c.Duration = 0 }, "duration 0s"},
		{"ops", func(c *Config) { c.Ops = -1 }, "ops -1"},
		{"prefill-timeout", func(c *Config) { c.PrefillTimeout = 0 }, "prefill-timeout 0s"},
		{"prefill-timeout unused", func(c *Config) { c.PrefillTimeout, c.Prefill = 0, false }, ""},
		{"key-prefix space", func(c *Config) { c.KeyPrefix = "a b" }, "key-prefix \"a b\""},
		{"key-prefix long", func(c *Config) { c.KeyPrefix = strings.Repeat("k", 247) }, "key-prefix"},
		{"key-prefix empty", func(c *Config) { c.KeyPrefix = "" }, ""},
		{"msgpack-rpc", func(c *Config) { c.Protocol = "msgpack-rpc" }, ""},
		{"msgpack-rpc binary keys", func(c *Config) { c.Protocol, c.KeyPrefix = "msgpack-rpc", "a b\x00" }, ""},
		{"msgpack-rpc key too long", func(c *Config) { c.Protocol, c.KeyPrefix = "msgpack-rpc", strings.Repeat("k", 65535) }, "msgpack-rpc allows 65535"},
		{"msgpack-rpc remote", func(c *Config) { c.Protocol, c.Addr = "msgpack-rpc", "10.1.2.3:11011" }, "not a loopback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Default()
			tt.edit(&cfg)
			err := cfg.Validate()
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.field != "" && (err == nil || !strings.Contains(err.Error(), tt.field)):
				t.Fatalf("err = %v, want it to name %q", err, tt.field)
			}
		})
	}
}
