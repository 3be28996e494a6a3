package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/internal/logbuf"
	"github.com/gokai-kv/gokai/internal/pki"
	"github.com/gokai-kv/gokai/kv"
	"github.com/gokai-kv/gokai/service"
)

// httpGet fetches url with client c and returns the status and body.
func httpGet(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return res.StatusCode, string(body)
}

// scrape reads n's /metrics in Prometheus's text format.
func scrape(t *testing.T, c *http.Client, base string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := httpGet(t, c, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	return mfs
}

// findMetric finds the metric of family name whose labels include want; nil if none.
func findMetric(mfs map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	mf := mfs[name]
	if mf == nil {
		return nil
	}
next:
	for _, m := range mf.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		return m
	}
	return nil
}

// TestReadyzWhileStartingAndHealthzThroughout: the HTTP listener answers while the rest of the tree
// starts: /healthz 200, /readyz 503 "starting", gokai_ready 0; once Start returned, /readyz is 200.
func TestReadyzWhileStartingAndHealthzThroughout(t *testing.T) {
	gate := make(chan struct{})
	reg := regService()
	start := reg.Start
	reg.Start = func(h service.Host) (*service.Instance, error) {
		<-gate // the tree stops here, after the HTTP listener, until the test lets it go on
		return start(h)
	}
	cfg := Default()
	cfg.DataDir = t.TempDir()
	cfg.MemcacheListen, cfg.RPCListen, cfg.GossipListen, cfg.TransportListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.HTTPListen, cfg.Q = "127.0.0.1:0", 16
	n, err := New(cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})), nil,
		WithService(kv.Service(kv.DefaultOptions())), WithService(reg))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- n.Start(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.Stop(ctx)
	})
	eventually.True(t, 10*time.Second, "the HTTP listener is bound", func() bool { return n.HTTPAddr() != "" })
	base := "http://" + n.HTTPAddr()
	c := &http.Client{Timeout: 5 * time.Second}
	if code, body := httpGet(t, c, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz while starting: %d %q", code, body)
	}
	if code, body := httpGet(t, c, base+"/readyz"); code != 503 || body != "starting\n" {
		t.Fatalf("/readyz while starting: %d %q", code, body)
	}
	if m := findMetric(scrape(t, c, base), "gokai_ready", nil); m == nil || m.GetGauge().GetValue() != 0 {
		t.Fatalf("gokai_ready while starting: %v", m)
	}
	close(gate)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if code, body := httpGet(t, c, base+"/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz after start: %d %q", code, body)
	}
	if m := findMetric(scrape(t, c, base), "gokai_ready", nil); m == nil || m.GetGauge().GetValue() != 1 {
		t.Fatalf("gokai_ready after start: %v", m)
	}
}

// TestReadyzStorageNotWritable: a failing data dir probe (a read-only filesystem) makes /readyz 503 with
// the cause and no path; when the probe succeeds again it is 200. The probe runs at most once a second.
func TestReadyzStorageNotWritable(t *testing.T) {
	// The node's clock is the real one plus a skew the test moves past the probe interval.
	var skew atomic.Int64
	n := startTestNodeClock(t, nil, func() time.Time { return time.Now().Add(time.Duration(skew.Load())) })
	nextProbe := func() { skew.Add(int64(2 * probeEvery)) }
	base := "http://" + n.HTTPAddr()
	c := &http.Client{Timeout: 5 * time.Second}
	if code, _ := httpGet(t, c, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz: %d", code)
	}
	// The real probe left nothing behind in the data dir.
	leftovers, _ := filepath.Glob(filepath.Join(n.cfg.DataDir, ".readyz-*"))
	if len(leftovers) != 0 {
		t.Fatalf("probe files left: %v", leftovers)
	}
	n.web.probeMu.Lock()
	n.web.probeTest = func(dir string) error {
		return &fs.PathError{Op: "open", Path: filepath.Join(dir, ".readyz-1"), Err: syscall.EROFS}
	}
	n.web.probeMu.Unlock()
	nextProbe()
	code, body := httpGet(t, c, base+"/readyz")
	if code != 503 || body != "storage not writable: read-only file system\n" {
		t.Fatalf("/readyz on a read-only data dir: %d %q", code, body)
	}
	if strings.Contains(body, n.cfg.DataDir) {
		t.Fatalf("/readyz names the data dir: %q", body)
	}
	n.web.probeMu.Lock()
	n.web.probeTest = nil
	n.web.probeMu.Unlock()
	nextProbe()
	if code, body := httpGet(t, c, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz once writable again: %d %q", code, body)
	}
}

// TestReadiness is the readiness decision as a table.
func TestReadiness(t *testing.T) {
	ok := readyIn{started: true, stateLoaded: true}
	for _, tc := range []struct {
		in     readyIn
		ready  bool
		reason string
	}{
		{ok, true, "ready"},
		{readyIn{}, false, "starting"},
		{readyIn{started: true, stopping: true, stateLoaded: true}, false, "stopping"},
		{readyIn{started: true}, false, "cluster state not loaded"},
		{readyIn{started: true, stateLoaded: true, servicesDown: []string{"kv"}}, false, "services not started: [kv]"},
		{readyIn{started: true, stateLoaded: true, diskFull: true}, false, "storage not writable: disk full"},
		{readyIn{started: true, stateLoaded: true, dirErr: &fs.PathError{Op: "open", Path: "/x/y", Err: syscall.ENOSPC}}, false, "storage not writable: no space left on device"},
		{readyIn{started: true, stateLoaded: true, dirErr: errors.New("odd")}, false, "storage not writable: odd"},
	} {
		ready, reason := readiness(tc.in)
		if ready != tc.ready || reason != tc.reason {
			t.Errorf("%+v: %v %q, want %v %q", tc.in, ready, reason, tc.ready, tc.reason)
		}
	}
}

// TestMetricsCountRequests: memcache sets and gets through KV show in the coordinator series (op and
// result) and the vnode series (every replica's command), with the histograms' counts equal to the
// requests made; the state series are there (ring, members, storage).
func TestMetricsCountRequests(t *testing.T) {
	n := startTestNodeWith(t, nil, nil, WithService(kv.Service(kv.DefaultOptions())), withVnodeTimeEvery(1))
	mc := dial(t, n.MemcacheAddr())
	const sets, gets = 7, 5
	for i := range sets {
		if got := mc.do(fmt.Sprintf("set m%d 0 0 1\r\nx\r\n", i), ""); got != "STORED\r\n" {
			t.Fatalf("set: %q", got)
		}
	}
	for i := range gets {
		if got := mc.do(fmt.Sprintf("get m%d\r\n", i), "END"); !strings.HasPrefix(got, "VALUE") {
			t.Fatalf("get: %q", got)
		}
	}
	if got := mc.do("delete m0\r\n", ""); got != "DELETED\r\n" {
		t.Fatalf("delete: %q", got)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	base := "http://" + n.HTTPAddr()
	var mfs map[string]*dto.MetricFamily
	// Replicas past the quorum answer after the client did: wait for every one of the 3 per request.
	eventually.NoError(t, 10*time.Second, "every replica's command is counted", func() error {
		mfs = scrape(t, c, base)
		// NB: memcache's delete reads the key first (to answer NOT_FOUND): one more read.
		for cmd, want := range map[string]uint64{"GetRequest": 3 * (gets + 1), "PutRequest": 3 * (sets + 1)} {
			m := findMetric(mfs, "gokai_vnode_command_duration_seconds", map[string]string{"service": "kv", "command": cmd})
			if m == nil || m.GetHistogram().GetSampleCount() != want {
				return fmt.Errorf("vnode %s timed: %v, want %d", cmd, m, want)
			}
			c := findMetric(mfs, "gokai_vnode_commands_total", map[string]string{"service": "kv", "command": cmd})
			if c == nil || c.GetCounter().GetValue() != float64(want) {
				return fmt.Errorf("vnode %s counted: %v, want %d", cmd, c, want)
			}
		}
		return nil
	})
	for op, want := range map[string]float64{"put": sets, "get": gets + 1, "delete": 1} {
		m := findMetric(mfs, "gokai_coordinator_requests_total", map[string]string{"service": "kv", "op": op, "result": "ok"})
		if m == nil || m.GetCounter().GetValue() != want {
			t.Errorf("requests %s ok: %v, want %v", op, m, want)
		}
		h := findMetric(mfs, "gokai_coordinator_request_duration_seconds", map[string]string{"service": "kv", "op": op})
		if h == nil || h.GetHistogram().GetSampleCount() != uint64(want) {
			t.Errorf("latency %s: %v, want %v samples", op, h, want)
		}
	}
	// KV's own series: every read found its key with one sibling; every set left an object.
	if m := findMetric(mfs, "gokai_kv_read_siblings", nil); m == nil || m.GetHistogram().GetSampleCount() != gets+1 ||
		m.GetHistogram().GetSampleSum() != gets+1 {
		t.Errorf("read siblings: %v, want %d reads of one sibling", m, gets+1)
	}
	if m := findMetric(mfs, "gokai_kv_object_size_bytes", map[string]string{"op": "put"}); m == nil || m.GetHistogram().GetSampleCount() != sets {
		t.Errorf("put object sizes: %v, want %d", m, sets)
	}
	for name, want := range map[string]float64{"gokai_ring_partitions": 16, "gokai_ring_owned_partitions": 16, "gokai_ready": 1} {
		if m := findMetric(mfs, name, nil); m == nil || m.GetGauge().GetValue() != want {
			t.Errorf("%s: %v, want %v", name, m, want)
		}
	}
	if m := findMetric(mfs, "gokai_cluster_members", map[string]string{"state": "up"}); m == nil || m.GetGauge().GetValue() != 1 {
		t.Errorf("members up: %v", m)
	}
	if m := findMetric(mfs, "gokai_vnodes", map[string]string{"service": "kv"}); m == nil || m.GetGauge().GetValue() != 16 {
		t.Errorf("vnodes: %v", m)
	}
	for _, name := range []string{"gokai_leveldb_io_bytes_total", "gokai_leveldb_compactions_total", "gokai_storage_disk_full",
		"gokai_storage_dropped_partitions_pending", "gokai_storage_drop_compactions_total",
		"go_goroutines", "process_resident_memory_bytes", "gokai_handoff_keys_sent_total", "gokai_vnode_mailbox_messages"} {
		if mfs[name] == nil {
			t.Errorf("no %s", name)
		}
	}
}

// TestHTTPOverTLSNeedsAnOperatorForAllButHealth: with certs-dir the listener speaks TLS; the health checks
// answer anyone, /metrics only a client with a certificate of the cluster CA.
func TestHTTPOverTLSNeedsAnOperatorForAllButHealth(t *testing.T) {
	ca := t.TempDir()
	if err := pki.CreateCA(ca, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := pki.CreateClient(ca, "", "admin", time.Now()); err != nil {
		t.Fatal(err)
	}
	certs := t.TempDir()
	for _, f := range []string{pki.CACert, pki.GossipKey} {
		b, err := os.ReadFile(filepath.Join(ca, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(certs, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := pki.CreateNode(certs, filepath.Join(ca, pki.CAKey), "gokai@127.0.0.1", nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	n := startTestNode(t, func(c *Config) { c.CertsDir = certs })
	cert, pool, err := pki.LoadClient(ca, "admin")
	if err != nil {
		t.Fatal(err)
	}
	base := "https://" + n.HTTPAddr()
	anon := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: pki.ClientConfig(pool, nil)}}
	admin := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: pki.ClientConfig(pool, &cert)}}
	if code, _ := httpGet(t, anon, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz without a certificate: %d", code)
	}
	if code, _ := httpGet(t, anon, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz without a certificate: %d", code)
	}
	if code, body := httpGet(t, anon, base+"/metrics"); code != http.StatusForbidden {
		t.Fatalf("/metrics without a certificate: %d %s", code, body)
	}
	if m := findMetric(scrape(t, admin, base), "gokai_ready", nil); m == nil || m.GetGauge().GetValue() != 1 {
		t.Fatalf("/metrics as the operator: gokai_ready %v", m)
	}
	// Plain HTTP to the TLS port gets nothing useful.
	plain := &http.Client{Timeout: 5 * time.Second}
	if res, err := plain.Get("http://" + n.HTTPAddr() + "/metrics"); err == nil {
		res.Body.Close()
		if res.StatusCode == 200 {
			t.Fatal("plain HTTP served /metrics on the TLS port")
		}
	}
}

// withVnodeTimeEvery makes the node time one vnode command in every k (tests: every one).
func withVnodeTimeEvery(k int) Option { return func(o *options) { o.vnodeTimeEvery = k } }

// TestVnodeCommandsSampled: with the default sampling every vnode command is counted and one in
// vnodeTimeEvery of each vnode timed.
func TestVnodeCommandsSampled(t *testing.T) {
	n := startTestNode(t, func(c *Config) { c.Q = 1; c.N = 1; c.R = 1; c.W = 1 }) // one vnode: its commands are all counted in one place
	mc := dial(t, n.MemcacheAddr())
	const sets = 4 * vnodeTimeEvery
	for i := range sets {
		if got := mc.do(fmt.Sprintf("set s%d 0 0 1\r\nx\r\n", i), ""); got != "STORED\r\n" {
			t.Fatalf("set: %q", got)
		}
	}
	mfs := scrape(t, &http.Client{Timeout: 5 * time.Second}, "http://"+n.HTTPAddr())
	c := findMetric(mfs, "gokai_vnode_commands_total", map[string]string{"command": "PutRequest"})
	h := findMetric(mfs, "gokai_vnode_command_duration_seconds", map[string]string{"command": "PutRequest"})
	if c == nil || h == nil || c.GetCounter().GetValue() != sets || h.GetHistogram().GetSampleCount() != sets/vnodeTimeEvery {
		t.Fatalf("counted %v, timed %v; want %d counted, %d timed", c, h, sets, sets/vnodeTimeEvery)
	}
}

// TestMetricsAreDocumented: every gokai_ series a node serves is in docs/metrics.md (names are part of
// the interface operators build dashboards on).
func TestMetricsAreDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	n := startTestNode(t, nil)
	mc := dial(t, n.MemcacheAddr())
	if got := mc.do("set d 0 0 1\r\nx\r\nget d\r\n", "END"); !strings.Contains(got, "VALUE d") {
		t.Fatalf("set and get: %q", got)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	mfs := scrape(t, c, "http://"+n.HTTPAddr())
	seen := 0
	for name := range mfs {
		if !strings.HasPrefix(name, "gokai_") {
			continue
		}
		seen++
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("%s is not in docs/metrics.md", name)
		}
	}
	if seen < 40 {
		t.Fatalf("only %d gokai_ series served", seen)
	}
	// Anti-entropy (on by default) has its series too.
	for _, name := range []string{"gokai_aae_exchanges_total", "gokai_aae_repairs_total", "gokai_aae_tree_builds_total"} {
		if _, ok := mfs[name]; !ok {
			t.Errorf("%s is not served", name)
		}
	}
}

// TestDebugListenerLogsTheBoundPort: with -debug-listen 127.0.0.1:0 the node logs the port the OS chose
// (it logged the configured ":0"), and pprof answers there.
func TestDebugListenerLogsTheBoundPort(t *testing.T) {
	var logs logbuf.Buffer
	cfg := Default()
	cfg.DataDir = t.TempDir()
	cfg.MemcacheListen, cfg.RPCListen, cfg.GossipListen, cfg.TransportListen = "", "", "127.0.0.1:0", "127.0.0.1:0"
	cfg.HTTPListen, cfg.DebugListen, cfg.Q = "", "127.0.0.1:0", 16
	n, err := New(cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})), nil,
		WithService(kv.Service(kv.DefaultOptions())))
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
	re := regexp.MustCompile(`msg="debug listening".* addr=(\S+)`)
	var addr string
	eventually.True(t, 10*time.Second, "the debug listener logs its address", func() bool {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
		}
		return addr != ""
	})
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "0" {
		t.Fatalf("debug listening at %q: the bound port, not the configured one, must be logged (%v)", addr, err)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	if code, body := httpGet(t, c, "http://"+addr+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("pprof index at %s: %d %.200q", addr, code, body)
	}
}
