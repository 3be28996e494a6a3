package node

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/internal/logbuf"
	"github.com/gokai-kv/gokai/kv"
)

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func startTestNode(t *testing.T, mod func(*Config)) *Node {
	t.Helper()
	return startTestNodeClock(t, mod, nil)
}

// startTestNodeClock starts a node with clock now (nil: time.Now).
func startTestNodeClock(t *testing.T, mod func(*Config), now func() time.Time) *Node {
	t.Helper()
	return startTestNodeWith(t, mod, now, WithService(kv.Service(kv.DefaultOptions())))
}

// startTestNodeWith starts a node running the services opts register.
func startTestNodeWith(t *testing.T, mod func(*Config), now func() time.Time, opts ...Option) *Node {
	t.Helper()
	cfg := Default()
	cfg.DataDir = t.TempDir()
	cfg.MemcacheListen = "127.0.0.1:0"
	cfg.RPCListen = "127.0.0.1:0"
	cfg.GossipListen = "127.0.0.1:0"
	cfg.TransportListen = "127.0.0.1:0"
	cfg.HTTPListen = "127.0.0.1:0"
	cfg.Q = 16
	cfg.Linger = 100 * time.Millisecond
	if mod != nil {
		mod(&cfg)
	}
	n, err := New(cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})), now, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return n
}

// kvCoord is KV's get, put and delete on n's KV coordinators.
func kvCoord(t testing.TB, n *Node) *kv.Coordinator {
	t.Helper()
	c, err := kv.NewCoordinator(n.Coordinators(kv.ServiceName), kv.DefaultOptions().Config(n.cfg.Q))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type rawClient struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *rawClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, c: c, r: bufio.NewReader(c)}
}

func (rc *rawClient) do(req string, until string) string {
	rc.t.Helper()
	_ = rc.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(rc.c, req); err != nil {
		rc.t.Fatal(err)
	}
	var b strings.Builder
	for {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			rc.t.Fatalf("after %q: %v (%q)", req, err, b.String())
		}
		b.WriteString(line)
		if until == "" || strings.TrimRight(line, "\r\n") == until {
			return b.String()
		}
	}
}

var valueLine = regexp.MustCompile(`VALUE (\S+) (\d+) (\d+) (\d+)\r\n`)

func TestSiblingsVisibleInGetsAndResolvedByCas(t *testing.T) {
	n := startTestNode(t, nil)
	ctx := context.Background()
	key := []byte("doc")
	base, err := kvCoord(t, n).Put(ctx, key, []byte("base"), kv.Meta{}, nil, true, coordinator.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Two writers that both read `base` write with its context: neither overwrites the other.
	for _, v := range []string{"alice", "bob"} {
		if _, err := kvCoord(t, n).Put(ctx, key, []byte(v), kv.Meta{Flags: 3}, base.Clock, false, coordinator.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c := dial(t, n.MemcacheAddr())
	got := c.do("gets doc\r\n", "END")
	m := valueLine.FindAllStringSubmatch(got, -1)
	if len(m) != 2 || m[0][4] != m[1][4] {
		t.Fatalf("gets: want 2 siblings with one cas unique, got %q", got)
	}
	if !strings.Contains(got, "\r\nalice\r\n") || !strings.Contains(got, "\r\nbob\r\n") {
		t.Fatalf("gets: %q", got)
	}
	unique := m[0][4]
	// Plain get returns one value: the newest sibling (bob was written last).
	if got := c.do("get doc\r\n", "END"); got != "VALUE doc 3 3\r\nbob\r\nEND\r\n" {
		t.Fatalf("get: %q", got)
	}
	// cas with the sibling-set unique supersedes exactly those siblings.
	if got := c.do(fmt.Sprintf("cas doc 0 0 6 %s\r\nmerged\r\n", unique), ""); got != "STORED\r\n" {
		t.Fatalf("cas: %q", got)
	}
	got = c.do("gets doc\r\n", "END")
	if m := valueLine.FindAllStringSubmatch(got, -1); len(m) != 1 || !strings.Contains(got, "\r\nmerged\r\n") {
		t.Fatalf("after cas: %q", got)
	}
	// The old unique no longer names the sibling set.
	if got := c.do(fmt.Sprintf("cas doc 0 0 1 %s\r\nx\r\n", unique), ""); got != "EXISTS\r\n" {
		t.Fatalf("stale cas: %q", got)
	}
	if got := c.do("stats\r\n", "END"); !strings.Contains(got, "STAT gokai_siblings_seen ") {
		t.Fatalf("stats: %q", got)
	}
}

func TestBlindSetSupersedesWhatTheCoordinatingVnodeHolds(t *testing.T) {
	n := startTestNode(t, nil)
	ctx := context.Background()
	key := []byte("blind")
	base, err := kvCoord(t, n).Put(ctx, key, []byte("base"), kv.Meta{}, nil, true, coordinator.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"a", "b"} {
		if _, err := kvCoord(t, n).Put(ctx, key, []byte(v), kv.Meta{}, base.Clock, false, coordinator.WriteOptions{W: 3}); err != nil {
			t.Fatal(err)
		}
	}
	c := dial(t, n.MemcacheAddr())
	if got := c.do("set blind 0 0 5\r\nfinal\r\n", ""); got != "STORED\r\n" {
		t.Fatalf("set: %q", got)
	}
	if got := c.do("gets blind\r\n", "END"); strings.Count(got, "VALUE ") != 1 || !strings.Contains(got, "final") {
		t.Fatalf("after blind set: %q", got)
	}
}

func TestFlushAllWhenEnabled(t *testing.T) {
	n := startTestNode(t, func(c *Config) { c.MemcacheFlushAll = true })
	c := dial(t, n.MemcacheAddr())
	for i := 0; i < 20; i++ {
		if got := c.do(fmt.Sprintf("set f%d 0 0 1\r\nx\r\n", i), ""); got != "STORED\r\n" {
			t.Fatalf("set: %q", got)
		}
	}
	if got := c.do("flush_all\r\n", ""); got != "OK\r\n" {
		t.Fatalf("flush_all: %q", got)
	}
	for i := 0; i < 20; i++ {
		if got := c.do(fmt.Sprintf("get f%d\r\n", i), "END"); got != "END\r\n" {
			t.Fatalf("after flush_all: %q", got)
		}
	}
}

func TestConfigFileAndValidation(t *testing.T) {
	cfg := Default()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Q = 48 }, "q 48"},
		{func(c *Config) { c.R = 4 }, "R 4"},
		{func(c *Config) { c.Backend = "rocks" }, `backend "rocks"`},
		{func(c *Config) { c.LogLevel = "loud" }, `log-level "loud"`},
		{func(c *Config) { c.ClientMemoryMiB = 32 }, "client-memory-mib 32"},
		{func(c *Config) { c.RPCMaxConnMiB = 17 }, "rpc-max-conn-mib 17"},
		{func(c *Config) { c.RPCMaxConnMiB = 512 }, "rpc-max-conn-mib 512"},
		{func(c *Config) { c.RPCReadTimeout = -time.Second }, "rpc-read-timeout -1s"},
		{func(c *Config) { c.MemcacheMaxValue = 200 << 20 }, "memcache-max-value 209715200"},
		{func(c *Config) { c.AAE = "maybe" }, `aae "maybe"`},
		{func(c *Config) { c.AAEConcurrency = 65 }, "aae-concurrency 65"},
		{func(c *Config) { c.AAERepairRate = 0 }, "aae-repair-rate 0"},
		{func(c *Config) { c.AAEExchangePeriod = time.Millisecond }, "aae-exchange-period 1ms"},
		{func(c *Config) { c.AAERebuildPeriod = -time.Second }, "aae-rebuild-period -1s"},
	} {
		c := Default()
		tc.mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want error naming %q, got %v", tc.want, err)
		}
	}
}

func TestConfigFileFlagsOverrideFile(t *testing.T) {
	cfg := Default()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg.Bind(fs)
	if err := fs.Parse([]string{"-r", "1"}); err != nil {
		t.Fatal(err)
	}
	file := "# a comment\nq = 128\nr = 3\ndata-dir = \"/var/lib/gokai\"\ntimeout = 250ms\n"
	if err := loadReader(fs, strings.NewReader(file), "test.conf"); err != nil {
		t.Fatal(err)
	}
	if cfg.Q != 128 || cfg.R != 1 || cfg.DataDir != "/var/lib/gokai" || cfg.Timeout != 250*time.Millisecond {
		t.Fatalf("got q=%d r=%d dir=%q timeout=%s", cfg.Q, cfg.R, cfg.DataDir, cfg.Timeout)
	}
	for _, bad := range []string{"nonsense\n", "colour = blue\n", "q = many\n"} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c := Default()
		c.Bind(fs)
		if err := loadReader(fs, strings.NewReader(bad), "bad.conf"); err == nil || !strings.Contains(err.Error(), "bad.conf:1") {
			t.Errorf("%q: want an error naming the line, got %v", bad, err)
		}
	}
}

// TestSyncNodeServesAndSurvivesARestart: with sync (fsync per write) vnodes run on the worker pool rather
// than inline; a node in that mode serves sets and gets, and what it acknowledged is there after a restart.
func TestSyncNodeServesAndSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	mod := func(c *Config) { c.Sync, c.DataDir = true, dir }
	n := startTestNode(t, mod)
	c := dial(t, n.MemcacheAddr())
	for i := range 20 {
		if got := c.do(fmt.Sprintf("set k%d 0 0 2\r\nv%d\r\n", i, i%10), ""); got != "STORED\r\n" {
			t.Fatalf("set k%d: %q", i, got)
		}
	}
	if got := c.do("get k7\r\n", "END"); !strings.Contains(got, "v7") {
		t.Fatalf("get: %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	n2 := startTestNode(t, mod)
	c2 := dial(t, n2.MemcacheAddr())
	for i := range 20 {
		if got := c2.do(fmt.Sprintf("get k%d\r\n", i), "END"); !strings.Contains(got, fmt.Sprintf("v%d", i%10)) {
			t.Fatalf("after restart, k%d: %q", i, got)
		}
	}
}

// TestWatchWaitsWhenGossipStops: the tree cancels its Run loops but stops the cluster (gossip) without
// waiting for them, so the cluster watch can see its subscription closed before its cancellation. It must
// then wait for the cancellation: the closed channel's nil state reached save (an error) and reconcile (a
// panic), and the restarted watch crashed again on the closed gossip until the node escalated.
func TestWatchWaitsWhenGossipStops(t *testing.T) {
	var logs logbuf.Buffer
	cfg := Default()
	cfg.DataDir = t.TempDir()
	cfg.MemcacheListen, cfg.RPCListen, cfg.GossipListen, cfg.TransportListen = "", "", "127.0.0.1:0", "127.0.0.1:0"
	cfg.HTTPListen = ""
	cfg.Q = 16
	n, err := New(cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})), nil, WithService(kv.Service(kv.DefaultOptions())))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.Stop(ctx)
	})
	if err := n.cl.gossip.Shutdown(); err != nil {
		t.Fatal(err)
	}
	// NB: the failure showed within milliseconds (five crashes, then escalation); a second is ample, and
	// the wait can only let a failure through, never fail a correct node.
	select {
	case err := <-n.Done():
		t.Fatalf("node escalated after gossip stopped: %v\n%s", err, logs.String())
	case <-time.After(time.Second):
	}
	if l := logs.String(); strings.Contains(l, "save state") || strings.Contains(l, "crashed") {
		t.Fatalf("the cluster watch took the closed subscription for a state:\n%s", l)
	}
}

// TestAddOverATombstoneSupersedesIt: the read of a deleted key finds only a tombstone; an add writes over
// the tombstone's context, so the key holds the added value alone afterwards, not the value and the
// tombstone as siblings.
func TestAddOverATombstoneSupersedesIt(t *testing.T) {
	n := startTestNode(t, nil)
	c := dial(t, n.MemcacheAddr())
	for _, step := range [][2]string{
		{"set k 0 0 3\r\nold\r\n", "STORED\r\n"},
		{"delete k\r\n", "DELETED\r\n"},
		{"add k 0 0 3\r\nnew\r\n", "STORED\r\n"},
	} {
		if got := c.do(step[0], ""); got != step[1] {
			t.Fatalf("%q: %q, want %q", step[0], got, step[1])
		}
	}
	o, err := kvCoord(t, n).Get(context.Background(), []byte("k"), coordinator.ReadOptions{R: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Siblings) != 1 || string(o.Siblings[0].Value) != "new" || o.Siblings[0].Meta.Deleted {
		t.Fatalf("after add over a tombstone: %+v, want the added value alone", o.Siblings)
	}
}
