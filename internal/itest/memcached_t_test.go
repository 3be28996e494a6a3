package itest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// memcached's own protocol tests (the t/ directory of its source) against gokai.
//
// The test fetches Debian's memcached source package with apt-get into a temp dir (a deb-src list of the
// Debian archives the system already uses, written there: the system's apt configuration is not touched),
// builds its timedrun helper, and installs testdata/memcached-t/memcached-debug as the server binary: every
// server a test file starts is a fresh gokai node (with -memcache-flush-all). MemcachedTest.pm gets one
// change: mem_move_time, which moves a memcached-debug server's clock with "debugtime", lets real time pass
// instead. testdata/memcached-t/expectations.txt says which files are skipped, and why (they test memcached
// internals: slabs, LRU, extstore, its proxy, UDP, TLS, startup options), and which single assertions
// check a behaviour gokai has on purpose; every other assertion of every other file must pass.

const memcachedTDir = "testdata/memcached-t"

// tExpectations is expectations.txt: files to skip, assertions that differ (file -> line numbers).
type tExpectations struct {
	skip   map[string]string
	differ map[string]map[int]string
}

func readTExpectations(t *testing.T) tExpectations {
	t.Helper()
	f, err := os.Open(filepath.Join(memcachedTDir, "expectations.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e := tExpectations{skip: map[string]string{}, differ: map[string]map[int]string{}}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		kind, rest, _ := strings.Cut(line, " ")
		what, reason, _ := strings.Cut(strings.TrimSpace(rest), " ")
		reason = strings.TrimSpace(reason)
		if reason == "" {
			t.Fatalf("expectations.txt:%d: no reason", n)
		}
		switch kind {
		case "skip":
			e.skip[what] = reason
		case "differ":
			file, l, ok := strings.Cut(what, ":")
			ln, err := strconv.Atoi(l)
			if !ok || err != nil {
				t.Fatalf("expectations.txt:%d: want differ <file>:<line> <reason>", n)
			}
			if e.differ[file] == nil {
				e.differ[file] = map[int]string{}
			}
			e.differ[file][ln] = reason
		default:
			t.Fatalf("expectations.txt:%d: unknown kind %q", n, kind)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return e
}

// requireTool skips (or fails in CI) when a program the suite needs is missing.
func requireTool(t *testing.T, name string, check ...string) {
	t.Helper()
	var err error
	if len(check) > 0 {
		err = exec.Command(name, check...).Run()
	} else {
		_, err = exec.LookPath(name)
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not available: %v", name, err)
	}
}

// fetchMemcachedSource downloads Debian's memcached source package into dir and unpacks its upstream
// tarball there; it returns the source tree.
func fetchMemcachedSource(t *testing.T, dir string) string {
	t.Helper()
	// The Debian archives the system uses, from its own index targets, as deb-src entries of our own.
	out, err := exec.Command("apt-get", "indextargets", "--format",
		"$(TARGET_OF)|$(IDENTIFIER)|$(ORIGIN)|$(REPO_URI)|$(RELEASE)|$(COMPONENT)").Output()
	if err != nil {
		t.Fatalf("apt-get indextargets: %v", err)
	}
	var entries []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) == 6 && f[0] == "deb" && f[1] == "Packages" && f[2] == "Debian" {
			entries = append(entries, fmt.Sprintf("deb-src %s %s %s", f[3], f[4], f[5]))
		}
	}
	slices.Sort(entries)
	entries = slices.Compact(entries)
	if len(entries) == 0 {
		requireOrSkip(t, errors.New("no Debian archive among the system's apt sources, or their lists are not "+
			"downloaded yet (apt-get update)"), "Debian's package archive")
	}
	for _, d := range []string{"parts", "lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(dir, "apt", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	list := filepath.Join(dir, "apt", "parts", "debian-src.list")
	if err := os.WriteFile(list, []byte(strings.Join(entries, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	apt := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		opts := []string{"-q", "-o", "Dir::Etc::SourceList=/dev/null", "-o", "Dir::Etc::SourceParts=" + filepath.Join(dir, "apt", "parts"),
			"-o", "Dir::State::Lists=" + filepath.Join(dir, "apt", "lists"), "-o", "Dir::Cache=" + filepath.Join(dir, "apt", "cache"),
			"-o", "APT::Sandbox::User=root"}
		cmd := exec.CommandContext(ctx, "apt-get", append(opts, args...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			t.Skipf("apt-get %s (Debian's archive unreachable?): %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	apt("update")
	apt("source", "--download-only", "memcached")
	tarballs, _ := filepath.Glob(filepath.Join(dir, "memcached_*.orig.tar.*"))
	if len(tarballs) != 1 {
		t.Fatalf("memcached source tarball: found %v", tarballs)
	}
	if out, err := exec.Command("tar", "-xf", tarballs[0], "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	trees, _ := filepath.Glob(filepath.Join(dir, "memcached-*"))
	if len(trees) != 1 {
		t.Fatalf("memcached source tree: found %v", trees)
	}
	return trees[0]
}

// prepareMemcachedT makes src's test suite run against gokai: timedrun built, memcached-debug the gokai
// shim, mem_move_time sleeping.
func prepareMemcachedT(t *testing.T, src string) {
	t.Helper()
	if out, err := exec.Command("gcc", "-o", filepath.Join(src, "timedrun"), filepath.Join(src, "timedrun.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc timedrun.c: %v\n%s", err, out)
	}
	shim, err := os.ReadFile(filepath.Join(memcachedTDir, "memcached-debug"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "memcached-debug"), shim, 0o755); err != nil {
		t.Fatal(err)
	}
	pm := filepath.Join(src, "t", "lib", "MemcachedTest.pm")
	b, err := os.ReadFile(pm)
	if err != nil {
		t.Fatal(err)
	}
	moveTime := regexp.MustCompile(`(?s)sub mem_move_time \{\n.*?print \$sock "debugtime \$move\\r\\n";\n\s*<\$sock>;\n\}`)
	if !moveTime.Match(b) {
		t.Fatal("MemcachedTest.pm: mem_move_time is not the one this test knows how to replace")
	}
	b = moveTime.ReplaceAllLiteral(b, []byte("sub mem_move_time {\n    my ($sock, $move) = @_;\n"+
		"    # gokai: a real server's clock cannot be moved; let real time pass instead.\n"+
		"    select undef, undef, undef, $move;\n}"))
	if err := os.WriteFile(pm, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// tapResult is what one test file reported.
type tapResult struct {
	planned, ran int
	skipAll      string
	failedLines  []int // source lines of the failed assertions
	exit         error
}

var (
	tapPlan     = regexp.MustCompile(`^1\.\.(\d+)(?:\s*#\s*(?i:skip)\S*\s*(.*))?$`)
	tapTest     = regexp.MustCompile(`^(not )?ok \d+`)
	tapFailedAt = regexp.MustCompile(`^#\s+(?:Failed test at|at) \S+ line (\d+)\.`)
)

// parseTAP reads a test file's output.
func parseTAP(out string, exitErr error) tapResult {
	r := tapResult{planned: -1, exit: exitErr}
	failing := false
	for _, line := range strings.Split(out, "\n") {
		if m := tapPlan.FindStringSubmatch(line); m != nil {
			r.planned, _ = strconv.Atoi(m[1])
			r.skipAll = m[2]
			continue
		}
		if m := tapTest.FindStringSubmatch(line); m != nil {
			r.ran++
			failing = m[1] != "" && !strings.Contains(line, "# TODO")
			continue
		}
		if m := tapFailedAt.FindStringSubmatch(line); m != nil && failing {
			n, _ := strconv.Atoi(m[1])
			r.failedLines = append(r.failedLines, n)
			failing = false
		}
	}
	return r
}

func TestMemcachedProtocolSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("memcached's t/ suite takes minutes")
	}
	requireTool(t, "perl", "-MTest::More", "-e", "1")
	requireTool(t, "gcc")
	requireTool(t, "apt-get")
	exp := readTExpectations(t)
	bin := gokaiBinary(t)
	src := fetchMemcachedSource(t, t.TempDir())
	prepareMemcachedT(t, src)
	files, _ := filepath.Glob(filepath.Join(src, "t", "*.t"))
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = filepath.Base(f)
	}
	for name := range exp.skip {
		if !slices.Contains(names, name) {
			t.Errorf("expectations.txt skips %s, which this memcached source does not have", name)
		}
	}
	for name := range exp.differ {
		if !slices.Contains(names, name) {
			t.Errorf("expectations.txt has differences in %s, which this memcached source does not have", name)
		}
	}
	var summary []string
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			if reason, ok := exp.skip[name]; ok {
				summary = append(summary, fmt.Sprintf("%-28s skipped: %s", name, reason))
				t.Skip(reason)
			}
			data := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "perl", filepath.Join("t", name))
			cmd.Dir = src
			cmd.Env = append(os.Environ(), "GOKAI_BIN="+bin, "GOKAI_T_DATA="+data)
			// NB: the file's servers (timedrun, gokai) are in its process group: a file that dies or times
			// out without stopping them leaves nothing behind.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
			start := time.Now()
			out, err := cmd.CombinedOutput()
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			r := parseTAP(string(out), err)
			logs := func() string {
				var b strings.Builder
				nodes, _ := filepath.Glob(filepath.Join(data, "node.*", "gokai.log"))
				for _, l := range nodes {
					if text, _ := os.ReadFile(l); len(text) > 0 {
						fmt.Fprintf(&b, "--- %s\n%s", l, text)
					}
				}
				return b.String()
			}
			want := exp.differ[name]
			var unexpected []int
			for _, l := range r.failedLines {
				if _, ok := want[l]; !ok {
					unexpected = append(unexpected, l)
				}
			}
			var fixed []int
			for l := range want {
				if !slices.Contains(r.failedLines, l) {
					fixed = append(fixed, l)
				}
			}
			switch {
			case r.skipAll != "":
				summary = append(summary, fmt.Sprintf("%-28s skipped itself: %s", name, r.skipAll))
				t.Skipf("the file skips itself: %s", r.skipAll)
			case r.planned < 0 || r.ran != r.planned:
				t.Fatalf("ran %d of %d planned tests (%v):\n%s\n%s", r.ran, r.planned, err, out, logs())
			case len(unexpected) > 0:
				t.Fatalf("failed at lines %v:\n%s\n%s", unexpected, out, logs())
			case len(fixed) > 0:
				t.Fatalf("expectations.txt says lines %v differ, but they pass: remove them", fixed)
			case err != nil && len(r.failedLines) == 0:
				t.Fatalf("exit %v:\n%s\n%s", err, out, logs())
			}
			note := ""
			if len(r.failedLines) > 0 {
				note = fmt.Sprintf(" (%d known differences)", len(r.failedLines))
			}
			summary = append(summary, fmt.Sprintf("%-28s %d/%d passed%s in %v", name, r.ran-len(r.failedLines), r.ran,
				note, time.Since(start).Round(100*time.Millisecond)))
		})
	}
	t.Logf("memcached t/ suite against gokai:\n%s", strings.Join(summary, "\n"))
}
