package itest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBenchScript runs scripts/bench.sh for real with tiny settings (1 s runs, one round, a small key space)
// and checks its table: a row per scenario and target with non-zero ops/s, ratios on the gokai rows, a JSON
// report per run, and no process or work dir left behind.
func TestBenchScript(t *testing.T) {
	if testing.Short() {
		t.Skip("runs memcached and four gokai nodes for ~20 s")
	}
	if _, err := exec.LookPath("memcached"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("memcached is required in CI (install step missing?)")
		}
		t.Skip("memcached not installed")
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "bench.sh"))
	if err != nil {
		t.Fatal(err)
	}
	out, tmp := t.TempDir(), t.TempDir()

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Dir = filepath.Dir(filepath.Dir(script))
	cmd.Env = append(os.Environ(), "DURATION=1s", "ROUNDS=1", "RATE=2000", "BENCH_ARGS=-keys 1000 -conns 10",
		"OUT="+out, "TMPDIR="+tmp, "SKIP_CLUSTER=", "SKIP_OPEN_LOOP=", "SKIP_PROTOCOLS=")
	// Its own process group: on the deadline the script gets SIGINT like Ctrl-C (its trap stops what it
	// started); whatever is left of the group is killed after the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = 30 * time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	runErr := cmd.Wait()
	t.Logf("scripts/bench.sh took %v\n%s", time.Since(start).Round(time.Millisecond), stdout.String())
	if runErr != nil {
		t.Fatalf("scripts/bench.sh: %v\nstderr:\n%s", runErr, stderr.String())
	}

	type row struct {
		ops                 float64
		opsRatio, p999Ratio string
	}
	rows := map[string]row{} // "scenario/target"
	for _, line := range strings.Split(stdout.String(), "\n") {
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if !strings.HasPrefix(line, "| ") || len(cells) != 10 || cells[0] == "scenario" || strings.HasPrefix(cells[0], "---") {
			continue
		}
		ops, err := strconv.ParseFloat(cells[3], 64)
		if err != nil {
			t.Fatalf("ops/s %q in %q: %v", cells[3], line, err)
		}
		rows[cells[0]+"/"+cells[1]] = row{ops: ops, opsRatio: cells[8], p999Ratio: cells[9]}
	}
	scenarios := []string{"1 node, closed loop", "1 node, closed loop, binary protocol", "1 node, closed loop, meta commands",
		"1 node, open loop at 2000 ops/s", "1 node, closed loop, 100% set", "1 node, closed loop, 50% set",
		"3 nodes via n1, closed loop", "3 nodes, 51 conns over all, closed loop",
		"3 nodes via n1, closed loop, mTLS between nodes", "3 nodes, 51 conns over all, closed loop, mTLS between nodes"}
	for _, sc := range scenarios {
		for _, target := range []string{"memcached", "gokai"} {
			r, ok := rows[sc+"/"+target]
			switch {
			case !ok:
				t.Errorf("no row for %s, %s", sc, target)
			case r.ops <= 0:
				t.Errorf("%s, %s: ops/s %v", sc, target, r.ops)
			case target == "gokai" && (r.opsRatio == "-" || r.p999Ratio == "-"):
				t.Errorf("%s, gokai: no ratios (%q, %q)", sc, r.opsRatio, r.p999Ratio)
			}
		}
	}
	if len(rows) != 2*len(scenarios) {
		t.Errorf("%d rows, want %d", len(rows), 2*len(scenarios))
	}
	if !strings.Contains(stdout.String(), "`gokai bench -scenario '1 node, closed loop' -target gokai -addr 127.0.0.1:") {
		t.Errorf("the table lists no exact bench command")
	}

	// The ownership handoff's table: one round, with its rates.
	if !regexp.MustCompile(`(?m)^\| 1 \| \d+ \| [\d.]+ \| [\d.]+ \| \*\*[\d.]+\*\* \| \*\*\d+\*\* \|`).MatchString(stdout.String()) {
		t.Errorf("no ownership-handoff round in the output")
	}
	reports, _ := filepath.Glob(filepath.Join(out, "[0-9]*.json")) // NB: the handoff's load report aside
	if len(reports) != 2*len(scenarios) {
		t.Errorf("%d JSON reports in OUT, want %d: %v", len(reports), 2*len(scenarios), reports)
	}
	if table, err := os.ReadFile(filepath.Join(out, "table.md")); err != nil || !strings.Contains(stdout.String(), string(table)) {
		t.Errorf("table.md (%v) is not the printed table", err)
	}
	// Everything it started is gone: the processes it names and its work dir under TMPDIR.
	for _, m := range regexp.MustCompile(`\(pid (\d+)\)`).FindAllStringSubmatch(stdout.String(), -1) {
		pid, _ := strconv.Atoi(m[1])
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after the script (kill -0: %v)", pid, err)
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("the script left %d entries in TMPDIR, e.g. %s", len(left), left[0].Name())
	}
}
