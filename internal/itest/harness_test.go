package itest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildMu   sync.Mutex
	binDir    string                // REQUIRES: buildMu held
	binaries  = map[string]string{} // package -> built binary; REQUIRES: buildMu held
	buildErrs = map[string]error{}  // REQUIRES: buildMu held
)

// buildBinary builds a main package once per test binary run (into one temp dir TestMain removes).
func buildBinary(t *testing.T, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if err := buildErrs[pkg]; err != nil {
		t.Fatal(err)
	}
	if path, ok := binaries[pkg]; ok {
		return path
	}
	if binDir == "" {
		dir, err := os.MkdirTemp("", "gokai-itest-bin-")
		if err != nil {
			t.Fatal(err)
		}
		binDir = dir
	}
	path := filepath.Join(binDir, filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", path, pkg).CombinedOutput(); err != nil {
		buildErrs[pkg] = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		t.Fatal(buildErrs[pkg])
	}
	binaries[pkg] = path
	return path
}

// gokaiBinary builds cmd/gokai once per test binary run.
func gokaiBinary(t *testing.T) string { return buildBinary(t, "github.com/gokai-kv/gokai/cmd/gokai") }

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// proc is one running gokai process.
type proc struct {
	t       *testing.T
	bin     string // the binary it runs
	cmd     *exec.Cmd
	dataDir string
	args    []string
	mcAddr  string
	rpcAddr string
	logMu   sync.Mutex
	log     bytes.Buffer
	exited  chan struct{}
	exitErr error
}

var readyRE = regexp.MustCompile(`msg="gokai ready" memcache=(\S+) rpc=(\S*)`)

// startNode runs `gokai start` on a data dir (a new temp dir if dataDir is "") with loopback port 0 and
// extra flags, and waits until it is ready.
func startNode(t *testing.T, dataDir string, extra ...string) *proc {
	t.Helper()
	return startNodeOf(t, gokaiBinary(t), dataDir, extra...)
}

// startNodeOf is startNode with another binary of gokai's command line (package cli).
func startNodeOf(t *testing.T, bin, dataDir string, extra ...string) *proc {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	args := append([]string{"start", "-data-dir", dataDir, "-memcache-listen", "127.0.0.1:0", "-rpc-listen", "127.0.0.1:0", "-gossip-listen", "127.0.0.1:0", "-transport-listen", "127.0.0.1:0", "-log-level", "info"}, extra...)
	p := &proc{t: t, bin: bin, dataDir: dataDir, args: args, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = io.Discard
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.logMu.Lock()
			p.log.WriteString(line + "\n")
			p.logMu.Unlock()
			if m := readyRE.FindStringSubmatch(line); m != nil {
				ready <- m
			}
		}
	}()
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("gokai log:\n%s", p.logText())
		}
	})
	select {
	case m := <-ready:
		p.mcAddr, p.rpcAddr = m[1], m[2]
	case <-p.exited:
		t.Fatalf("gokai exited before ready: %v\n%s", p.exitErr, p.logText())
	case <-time.After(30 * time.Second):
		t.Fatalf("gokai not ready after 30s\n%s", p.logText())
	}
	return p
}

func (p *proc) logText() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

// stop sends sig and waits for the exit.
func (p *proc) stop(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return err
	}
	select {
	case <-p.exited:
		return p.exitErr
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		return fmt.Errorf("gokai did not exit within 60s after %v", sig)
	}
}

// mc is a minimal raw memcache text client for assertions on exact protocol bytes.
type mc struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialMC(t *testing.T, addr string) *mc {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &mc{t: t, conn: c, r: bufio.NewReader(c)}
}

// do sends raw bytes and reads until a line equal to one of the terminators (or the first line when none).
func (m *mc) do(req string, terminators ...string) string {
	m.t.Helper()
	_ = m.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(m.conn, req); err != nil {
		m.t.Fatal(err)
	}
	var out strings.Builder
	for {
		line, err := m.r.ReadString('\n')
		if err != nil {
			m.t.Fatalf("read after %q: %v (so far %q)", req, err, out.String())
		}
		out.WriteString(line)
		if len(terminators) == 0 {
			return out.String()
		}
		for _, term := range terminators {
			if strings.TrimRight(line, "\r\n") == term {
				return out.String()
			}
		}
	}
}

// tool runs an external client program with a deadline and returns its combined output.
func tool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

func need(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI (install step missing?)", path)
		}
		t.Skipf("%s not installed", path)
	}
}
