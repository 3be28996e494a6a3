package itest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/internal/logbuf"
)

// promServer is a Prometheus server the test started on loopback.
type promServer struct {
	addr string
}

// startPrometheus runs Debian's prometheus with a config that scrapes each target (name -> host:port) every
// second, its TSDB in a temp dir, on a loopback port; it is killed when the test ends. A port someone took
// between choosing and binding it is retried with another.
func startPrometheus(t *testing.T, targets map[string]string) *promServer {
	t.Helper()
	need(t, "/usr/bin/prometheus")
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: gokai\n    static_configs:\n")
	for name, addr := range targets {
		fmt.Fprintf(&cfg, "      - targets: ['%s']\n        labels: {node: '%s'}\n", addr, name)
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for try := 0; try < 5; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		var log logbuf.Buffer
		cmd := exec.Command("/usr/bin/prometheus", "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, fmt.Sprint("tsdb", try)),
			"--web.listen-address="+addr, "--log.level=warn")
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		ready := false
		eventually.WithinEvery(30*time.Second, 100*time.Millisecond, func() bool {
			select {
			case <-exited:
				return true
			default:
			}
			res, err := http.Get("http://" + addr + "/-/ready")
			if err != nil {
				return false
			}
			res.Body.Close()
			ready = res.StatusCode == 200
			return ready
		})
		if ready {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("prometheus log:\n%s", log.String())
				}
			})
			return &promServer{addr: addr}
		}
		stop()
		if !strings.Contains(log.String(), "address already in use") {
			t.Fatalf("prometheus did not become ready:\n%s", log.String())
		}
	}
	t.Fatal("prometheus: no free port in 5 tries")
	return nil
}

// promSample is one series of an instant vector.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSample) value() float64 {
	str, _ := s.Value[1].(string)
	v, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// query runs an instant PromQL query through Prometheus's HTTP API.
func (p *promServer) query(q string) ([]promSample, error) {
	res, err := http.Get("http://" + p.addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSample `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", q, err, body)
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("%s: %s", q, out.Error)
	}
	return out.Data.Result, nil
}

// TestPrometheusScrapesACluster: a real Prometheus scrapes a 3-node cluster under a bounded memcache load;
// through its HTTP API, PromQL gives the request rate of every node and a p99 latency from the histograms,
// and each node's /metrics passes promtool check metrics.
func TestPrometheusScrapesACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	need(t, "/usr/bin/prometheus")
	need(t, "/usr/bin/promtool")
	cl := newCluster(t)
	cl.form([]string{"a", "b", "c"})
	targets := map[string]string{}
	var mcAddrs []string
	for _, n := range cl.nodes {
		if n.httpAddr == "" {
			t.Fatalf("%s: no http address in its ready line", n.name)
		}
		targets[n.name] = n.httpAddr
		mcAddrs = append(mcAddrs, n.mcAddr)
	}
	prom := startPrometheus(t, targets)

	// Bounded load: at most 200k sets in at most 2 minutes, spread over the three nodes.
	acked := newAcked()
	w := startWriter(mcAddrs, "prom-", 200_000, 2*time.Minute, acked)
	defer w.stop()

	rate := `sum by (node) (rate(gokai_coordinator_requests_total{op="put",result="ok"}[10s]))`
	p99 := `histogram_quantile(0.99, sum by (le) (rate(gokai_coordinator_request_duration_seconds_bucket{op="put"}[10s])))`
	var rates []promSample
	eventually.NoError(t, 90*time.Second, "Prometheus has a put rate for every node", func() error {
		var err error
		if rates, err = prom.query(rate); err != nil {
			return err
		}
		if len(rates) != 3 {
			return fmt.Errorf("%d series: %+v", len(rates), rates)
		}
		for _, s := range rates {
			if !(s.value() > 0) {
				return fmt.Errorf("node %s: rate %v", s.Metric["node"], s.Value)
			}
		}
		return nil
	})
	for _, s := range rates {
		t.Logf("put rate on %s: %.0f/s", s.Metric["node"], s.value())
	}
	var q []promSample
	eventually.NoError(t, 30*time.Second, "Prometheus gives a p99 put latency", func() error {
		var err error
		if q, err = prom.query(p99); err != nil {
			return err
		}
		if len(q) != 1 || !(q[0].value() > 0) || q[0].value() > 10 {
			return fmt.Errorf("p99: %+v", q)
		}
		return nil
	})
	t.Logf("p99 put latency: %.3f ms", q[0].value()*1000)
	// Every replica's command is counted at the vnodes: three per put, summed over the cluster.
	vn, err := prom.query(`sum(rate(gokai_vnode_commands_total{command="PutRequest"}[10s])) / sum(rate(gokai_coordinator_requests_total{op="put"}[10s]))`)
	if err != nil || len(vn) != 1 || vn[0].value() < 2.5 || vn[0].value() > 3.5 {
		t.Fatalf("vnode PutRequests per put: %+v %v (want about 3: N=3)", vn, err)
	}
	up, err := prom.query(`sum(gokai_cluster_members{state="up"}) by (node)`)
	if err != nil || len(up) != 3 {
		t.Fatalf("members up: %+v %v", up, err)
	}
	for _, s := range up {
		if s.value() != 3 {
			t.Fatalf("%s sees %v members up, want 3", s.Metric["node"], s.Value)
		}
	}
	w.stop()

	for _, n := range cl.nodes {
		res, err := http.Get("http://" + n.httpAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%s /metrics: %d %v", n.name, res.StatusCode, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, "/usr/bin/promtool", "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s: promtool check metrics: %v\n%s", n.name, err, out)
		}
	}
	if w.failures > 0 {
		t.Logf("load: %d of %d sets not acknowledged", w.failures, w.sent)
	}
	if len(acked.snapshot()) == 0 {
		t.Fatal("no write was acknowledged")
	}
}
