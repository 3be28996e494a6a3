package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"
)

// The gokai binary, built once for the package's tests from the current tree.
var (
	gokaiOnce sync.Once
	gokaiBin  string
	gokaiErr  error
	gokaiDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if gokaiDir != "" {
		os.RemoveAll(gokaiDir)
	}
	os.Exit(code)
}

func gokaiBinary(t *testing.T) string {
	t.Helper()
	gokaiOnce.Do(func() {
		if gokaiDir, gokaiErr = os.MkdirTemp("", "bench-gokai-"); gokaiErr != nil {
			return
		}
		gokaiBin = filepath.Join(gokaiDir, "gokai")
		out, err := exec.Command("go", "build", "-o", gokaiBin, "github.com/gokai-kv/gokai/cmd/gokai").CombinedOutput()
		if err != nil {
			gokaiErr = errors.Join(err, errors.New(string(out)))
		}
	})
	if gokaiErr != nil {
		t.Fatalf("build gokai: %v", gokaiErr)
	}
	return gokaiBin
}

var gokaiReady = regexp.MustCompile(`msg="gokai ready" memcache=(\S+) rpc=(\S+)`)

// startGokai runs one gokai node (defaults: N=3 R=2 W=2, leveldb in a temp dir) on loopback ports the OS
// picks, and returns its memcache and msgpack-RPC addresses. The node is killed when the test ends.
func startGokai(t *testing.T) (mcAddr, rpcAddr string) {
	t.Helper()
	cmd := exec.Command(gokaiBinary(t), "start", "-data-dir", t.TempDir(),
		"-memcache-listen", "127.0.0.1:0", "-rpc-listen", "127.0.0.1:0", "-gossip-listen", "127.0.0.1:0", "-transport-listen", "127.0.0.1:0", "-http-listen", "127.0.0.1:0", "-log-level", "info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		logMu sync.Mutex
		log   bytes.Buffer
	)
	ready := make(chan []string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			log.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if m := gokaiReady.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m
			}
		}
	}()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	logText := func() string {
		logMu.Lock()
		defer logMu.Unlock()
		return log.String()
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		<-scanned
		if t.Failed() {
			t.Logf("gokai log:\n%s", logText())
		}
	})
	select {
	case m := <-ready:
		return m[1], m[2]
	case <-exited:
		t.Fatalf("gokai exited before ready:\n%s", logText())
	case <-time.After(10 * time.Second):
		t.Fatalf("gokai not ready after 10s:\n%s", logText())
	}
	return "", ""
}

func gokaiConfig(protocol, addr string) Config {
	cfg := Default()
	cfg.Protocol, cfg.Addr, cfg.Keys, cfg.Duration, cfg.PrefillTimeout = protocol, addr, 500, 250*time.Millisecond, 5*time.Second
	return cfg
}

// checkGokaiRun asserts a clean run against gokai: a full prefill, operations, hits, no errors.
func checkGokaiRun(t *testing.T, rep *Report, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, rep)
	if rep.Prefill == nil || rep.Prefill.Keys != int64(rep.Config.Keys) || rep.Ops == 0 || rep.Hits == 0 ||
		rep.Errors != 0 || rep.Reconnects != 0 {
		t.Fatalf("prefill %+v counts %+v: want every key prefilled, ops, hits and no errors", rep.Prefill, rep.Counts)
	}
	if rep.Misses != 0 { // every key was prefilled: a get that misses lost a write
		t.Errorf("%d misses after prefill", rep.Misses)
	}
}

// TestGokaiMsgpackRPC drives a real gokai node over msgpack-RPC: sequential, then a window of many requests
// in flight on each connection.
func TestGokaiMsgpackRPC(t *testing.T) {
	_, rpcAddr := startGokai(t)
	for _, tc := range []struct {
		name            string
		conns, pipeline int
	}{{"sequential", 1, 1}, {"window", 2, 32}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := gokaiConfig("msgpack-rpc", rpcAddr)
			cfg.Conns, cfg.Pipeline = tc.conns, tc.pipeline
			rep, err := Run(context.Background(), cfg)
			checkGokaiRun(t, rep, err)
			if rep.Stop != StopDuration {
				t.Errorf("stop %s, want %s", rep.Stop, StopDuration)
			}
		})
	}
}

// TestGokaiMsgpackRPCOpenLoop: open loop sends batches and reads them back in request order, whatever order
// the node answers in.
func TestGokaiMsgpackRPCOpenLoop(t *testing.T) {
	_, rpcAddr := startGokai(t)
	cfg := gokaiConfig("msgpack-rpc", rpcAddr)
	cfg.Conns, cfg.Pipeline, cfg.Rate = 2, 4, 2000
	rep, err := Run(context.Background(), cfg)
	checkGokaiRun(t, rep, err)
	if rep.Ops+rep.Unsent != 500 {
		t.Errorf("ops %d + unsent %d, want the 500 scheduled", rep.Ops, rep.Unsent)
	}
}

// TestGokaiMsgpackRPCOpsLimit: an Ops-bounded run issues exactly Ops operations, with a window whose size
// does not divide the budget.
func TestGokaiMsgpackRPCOpsLimit(t *testing.T) {
	_, rpcAddr := startGokai(t)
	cfg := gokaiConfig("msgpack-rpc", rpcAddr)
	// NB: a duration far longer than 1000 operations take, so the ops limit ends the run on any machine.
	cfg.Conns, cfg.Pipeline, cfg.Ops, cfg.Duration = 3, 7, 1000, time.Minute
	rep, err := Run(context.Background(), cfg)
	checkGokaiRun(t, rep, err)
	if rep.Ops != 1000 || rep.Stop != StopOps {
		t.Fatalf("ops %d stop %s, want exactly 1000 ops, stopped by ops", rep.Ops, rep.Stop)
	}
}

// TestGokaiMemcache: the same node over memcache, for comparison.
func TestGokaiMemcache(t *testing.T) {
	mcAddr, _ := startGokai(t)
	cfg := gokaiConfig("memcache", mcAddr)
	cfg.Conns, cfg.Pipeline = 2, 4
	rep, err := Run(context.Background(), cfg)
	checkGokaiRun(t, rep, err)
}

// TestGokaiMemcacheBinaryAndMeta: the same node over the memcache binary protocol and meta commands.
func TestGokaiMemcacheBinaryAndMeta(t *testing.T) {
	mcAddr, _ := startGokai(t)
	for _, proto := range []string{"memcache-binary", "memcache-meta"} {
		cfg := gokaiConfig(proto, mcAddr)
		cfg.Conns, cfg.Pipeline = 2, 4
		rep, err := Run(context.Background(), cfg)
		checkGokaiRun(t, rep, err)
	}
}
