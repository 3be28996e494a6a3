package itest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/internal/logbuf"
)

// chromium runs Debian's headless chromium on url with extra flags (--dump-dom or --screenshot=FILE) and
// returns its stdout and its log (stderr, with the page's console messages: --enable-logging=stderr).
func chromium(t *testing.T, url string, extra ...string) (stdout, log string) {
	t.Helper()
	profile := t.TempDir()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
		"--user-data-dir=" + profile, "--enable-logging=stderr", "--v=0", "--window-size=1200,1500",
		// Let the page's script run its in-place refresh (every 2 s) before the DOM is dumped.
		"--virtual-time-budget=5000"}, extra...)
	args = append(args, url)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/chromium", args...)
	var out, errb logbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", url, err, errb.String())
	}
	return out.String(), errb.String()
}

// consoleRE matches a console message in chromium's log; the page logs none when it works.
var consoleRE = regexp.MustCompile(`(?m)^.*:CONSOLE\(\d+\)\].*$`)

// TestStatusPageInChromiumDuringAJoin: a node's status page, loaded in headless Chromium while a third node
// joins a two-node cluster, loads without console messages (errors, failed loads, CSP violations), shows
// every member, the ring and a transfer in progress to the joining node, after its script refreshed it in
// place; a screenshot is written to the test's output dir (GOKAI_SCREENSHOT_DIR, else a temp dir, logged).
func TestStatusPageInChromiumDuringAJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	need(t, "/usr/bin/chromium")
	cl := newCluster(t)
	cl.form([]string{"a", "b"})
	a, b := cl.nodes[0], cl.nodes[1]
	// Enough data that every partition has keys to send.
	preload(t, a.mcAddr, "page-", 20000, 4, newAcked())

	c := cl.add("c")
	cl.join(c, a)
	cl.waitStaged(a, 1)
	cl.cli(a, "cluster", "plan")
	cl.cli(a, "cluster", "commit")
	// Freeze the joining node as soon as a transfer to it is on its way: the transfers to it then stay in
	// progress (a batch waits for its acknowledgement) while the page is loaded.
	ctx := context.Background()
	stopped := false
	defer func() {
		if stopped {
			_ = c.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	var sending tProgress
	eventually.NoError(t, 60*time.Second, "a transfer from a or b to c is sending", func() error {
		for _, n := range []*cnode{a, b} {
			ps, err := callTransfers(ctx, cl.cls[n.name])
			if err != nil {
				return err
			}
			for _, p := range ps {
				if p.To == "c" && (p.State == "counting" || p.State == "sending" || p.State == "flushing") {
					if !stopped {
						if err := c.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
							t.Fatal(err)
						}
						stopped = true
						return fmt.Errorf("c stopped; looking again") // a transfer may have finished just before
					}
					sending = p
					return nil
				}
			}
		}
		return fmt.Errorf("no transfer to c in progress yet")
	})
	sender := a
	if sending.From == "b" {
		sender = b
	}
	url := "http://" + sender.httpAddr + "/"
	dom, log := chromium(t, url, "--dump-dom")
	if m := consoleRE.FindAllString(log, -1); len(m) > 0 {
		t.Fatalf("console messages while loading the status page:\n%s", strings.Join(m, "\n"))
	}
	for _, name := range []string{"a", "b", "c"} {
		if !strings.Contains(dom, fmt.Sprintf(`data-member="%s"`, name)) {
			t.Errorf("the page shows no member %s", name)
		}
	}
	if n := strings.Count(dom, `class="arc`); n != 64 {
		t.Errorf("the ring shows %d partitions, want 64", n)
	}
	row := regexp.MustCompile(fmt.Sprintf(`(?s)<tr class="transfer (counting|sending|flushing|retrying)" data-partition="%d">.*?<progress max="100" value="\d+">`, sending.Partition))
	if !row.MatchString(dom) {
		t.Errorf("no transfer row with a progress bar for partition %d (%s → c)", sending.Partition, sending.From)
	}
	if !strings.Contains(dom, `class="transfer-mark"`) {
		t.Error("the ring marks no partition in transfer")
	}
	if !strings.Contains(dom, `<svg class="chart"`) {
		t.Error("no requests chart")
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	dir := os.Getenv("GOKAI_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	shot := filepath.Join(dir, "status-page-join.png")
	if _, log := chromium(t, url, "--screenshot="+shot); consoleRE.MatchString(log) {
		t.Fatalf("console messages while taking the screenshot:\n%s", strings.Join(consoleRE.FindAllString(log, -1), "\n"))
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)

	// The join completes once c runs again.
	if err := c.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	cl.settled(120*time.Second, []string{"a", "b", "c"}, nil)
}
