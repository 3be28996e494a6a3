package faults

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	longFlag   = flag.Bool("faults.long", envBool("GOKAI_FAULTS_LONG"), "run the long schedules (also GOKAI_FAULTS_LONG=1)")
	reportFlag = flag.String("faults.report", os.Getenv("GOKAI_FAULTS_REPORT"), "append every schedule's table to this file (also GOKAI_FAULTS_REPORT)")
	logsFlag   = flag.String("faults.logs", os.Getenv("GOKAI_FAULTS_LOGS"), "keep node logs, histories and samples under this directory (also GOKAI_FAULTS_LOGS)")
)

func envBool(name string) bool {
	b, _ := strconv.ParseBool(os.Getenv(name))
	return b
}

// live holds what must be undone if the test binary is interrupted: SIGINT or SIGTERM runs every entry
// (killing nodes, deleting namespaces) before the process exits. t.Cleanup removes each entry as it runs it.
var live = &cleanups{m: map[int]func(){}}

type cleanups struct {
	mu   sync.Mutex
	next int
	m    map[int]func()
}

// add registers f and returns the function that runs it once and unregisters it.
func (c *cleanups) add(f func()) func() {
	c.mu.Lock()
	id := c.next
	c.next++
	var once sync.Once
	run := func() { once.Do(f) }
	c.m[id] = run
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(c.m, id)
		c.mu.Unlock()
		run()
	}
}

// runAll runs every registered cleanup, newest first (processes before the namespaces they run in).
func (c *cleanups) runAll() {
	c.mu.Lock()
	ids := make([]int, 0, len(c.m))
	for id := range c.m {
		ids = append(ids, id)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(ids)))
	fs := make([]func(), len(ids))
	for i, id := range ids {
		fs[i] = c.m[id]
	}
	c.m = map[int]func(){}
	c.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Geteuid() == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if gone, err := Sweep(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "faults: sweeping leftover namespaces: %v\n", err)
		} else if len(gone) > 0 {
			fmt.Fprintf(os.Stderr, "faults: removed %d namespaces left by an earlier run: %v\n", len(gone), gone)
		}
		cancel()
	}
	sweepTempDirs()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "faults: %v: stopping nodes and deleting namespaces\n", s)
		live.runAll()
		removeBinary()
		os.Exit(2)
	}()
	code := m.Run()
	live.runAll()
	removeBinary()
	os.Exit(code)
}

var (
	buildMu  sync.Mutex // held while building, and while removing the build
	binDir   string     // REQUIRES: buildMu held
	binPath  string     // REQUIRES: buildMu held
	buildErr error      // REQUIRES: buildMu held
)

func removeBinary() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if binDir != "" {
		os.RemoveAll(binDir)
		binDir, binPath, buildErr = "", "", fmt.Errorf("faults: the gokai binary was removed")
	}
}

// gokaiBinary builds cmd/gokai once per test binary run.
func gokaiBinary(t *testing.T) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if binPath == "" && buildErr == nil {
		binDir, buildErr = os.MkdirTemp("", tempPrefix()+"bin-")
		if buildErr == nil {
			binPath = filepath.Join(binDir, "gokai")
			out, err := exec.Command("go", "build", "-o", binPath, "github.com/gokai-kv/gokai/cmd/gokai").CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			}
		}
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// tempPrefix starts the name of every temp dir of this run: "gokai-faults-<pid>-".
func tempPrefix() string { return fmt.Sprintf("gokai-faults-%d-", os.Getpid()) }

var tempRE = regexp.MustCompile(`^gokai-faults-(\d+)-`)

// sweepTempDirs removes the temp dirs of runs whose process is gone (killed before its cleanups ran).
func sweepTempDirs() {
	ents, err := os.ReadDir(os.TempDir())
	if err != nil {
		return
	}
	for _, e := range ents {
		m := tempRE.FindStringSubmatch(e.Name())
		if m == nil || !e.IsDir() {
			continue
		}
		if pid, err := strconv.Atoi(m[1]); err == nil && !processAlive(pid) {
			os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
		}
	}
}
