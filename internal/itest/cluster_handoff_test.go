package itest

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/eventually"
)

// TestClusterLeaveRightAfterJoin joins a 4th node to a loaded 3-node cluster and, the moment the join's
// transfers are done, makes n1 leave: the leave must complete (every transfer of n1 done, n1 out of the
// ring) within a bound, and every acknowledged write must stay readable through every remaining node.
// A leave committed right after a join used to hang: the leaving node's first transfers timed out on
// their flush forever.
func TestClusterLeaveRightAfterJoin(t *testing.T) {
	cl := newCluster(t)
	cl.form([]string{"n1@127.0.0.1", "n2@127.0.0.1", "n3@127.0.0.1"})
	n1, n2, n3 := cl.nodes[0], cl.nodes[1], cl.nodes[2]
	acks := newAcked()
	preload(t, n1.mcAddr, "pre-", 10000, 4, acks)
	if got := len(acks.snapshot()); got != 10000 {
		t.Fatalf("preload: %d of 10000 acknowledged", got)
	}
	w := startWriter([]string{n1.mcAddr, n2.mcAddr, n3.mcAddr}, "load-", 20000, 120*time.Second, acks)
	defer w.stop()

	n4 := cl.add("n4@127.0.0.1")
	cl.join(n4, n1)
	cl.waitStaged(n1, 1)
	cl.cli(n2, "cluster", "plan")
	cl.cli(n3, "cluster", "commit")
	start := time.Now()
	cl.settled(90*time.Second, cl.names(), nil)
	t.Logf("join settled in %v", time.Since(start).Round(time.Millisecond))

	// At once: leave n1, plan, commit.
	mustMatch(t, "leave", `leave of .* staged`, cl.cli(n2, "cluster", "leave", n1.name))
	cl.waitStaged(n2, 1)
	cl.cli(n2, "cluster", "plan")
	cl.cli(n2, "cluster", "commit")
	start = time.Now()
	cl.remove(n1.name)
	rates := newRateSampler()
	const bound = 60 * time.Second
	var why string
	// NB: every poll samples every node's transfers and status: every 50 ms, not faster.
	if !eventually.WithinEvery(bound, 50*time.Millisecond, func() bool {
		rates.sample(cl)
		sampleOne(rates, cl.cls[n1.name])
		_, why = cl.settledOnce(strings.Join(cl.names(), ","))
		return why == ""
	}) {
		t.Fatalf("leave of n1 not complete %v after its commit: %s; n1's transfers: %s", bound, why, transfersOf(t, cl, n1.name))
	}
	leaveTook := time.Since(start)
	w.stop()
	t.Logf("leave of n1 complete in %v; %s; max attempts per partition %d; writer: %d sent, %d failed",
		leaveTook.Round(time.Millisecond), rates.summary(leaveTook), maxOf(rates.maxAttempts), w.sent, w.failures)
	addrs := map[string]string{}
	for _, n := range cl.nodes {
		addrs[n.name] = n.mcAddr
	}
	checkReadable(t, acks.snapshot(), addrs)
}

// transfersOf renders a node's transfers (for failure messages).
func transfersOf(t *testing.T, cl *cluster, name string) string {
	t.Helper()
	ctx, cancel := shortCtx()
	defer cancel()
	ps, err := callTransfers(ctx, cl.cls[name])
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%d %s->%s %s attempts=%d err=%q", p.Partition, p.From, p.To, p.State, p.Attempts, p.LastError))
	}
	return strings.Join(out, "; ")
}

func maxOf(m map[int]int) int {
	best := 0
	for _, v := range m {
		best = max(best, v)
	}
	return best
}

var (
	handoffDoneRE   = regexp.MustCompile(`level=(\w+) msg="handoff done" .*partition=(\d+) from=\S+ to=(\S+)(?: kind=(\w+))? keys=(\d+)`)
	hintedReasonRE  = regexp.MustCompile(`msg="hinted handoff (?:of the partition again|repeated)[^"]*" .*partition=(\d+) .*why="[^"]*(?:coordinator requests|handoff items|no requests)`)
	handoffNoticeRE = regexp.MustCompile(`level=(?:INFO|WARN) msg="(?:handoff|hinted handoff)[^"]*" .*component=handoff (?:service=\S+ )?partition=(\d+) from=\S+ to=\S+(?: kind=(\w+))?`)
)

// waitFallbacks polls until the named nodes' coordinators together sent at least n writes to fallbacks.
func waitFallbacks(t *testing.T, cl *cluster, names []string, n int64, timeout time.Duration) {
	t.Helper()
	var sum int64
	// NB: a stats call to every node named per poll: every 50 ms, not faster.
	if !eventually.WithinEvery(timeout, 50*time.Millisecond, func() bool {
		sum = 0
		for _, name := range names {
			ctx, cancel := shortCtx()
			s, err := failureStats(ctx, cl.cls[name])
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			sum += s.Fallbacks
		}
		return sum >= n
	}) {
		t.Fatalf("%d fallback writes within %v, want %d", sum, timeout, n)
	}
}

// hintedRounds is what a node's log says about its hinted handoffs, by partition.
type hintedRounds struct {
	rounds, empty map[int]int // completed rounds (a drop), and those that moved no key
	keys          map[int]int
	reasons       map[int]int // log lines saying why a partition's hints keep coming back
	notices       map[int]int // info and warning lines about the partition's hinted handoffs
}

func parseHinted(log string) hintedRounds {
	h := hintedRounds{rounds: map[int]int{}, empty: map[int]int{}, keys: map[int]int{}, reasons: map[int]int{}, notices: map[int]int{}}
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	for _, line := range strings.Split(log, "\n") {
		if m := handoffDoneRE.FindStringSubmatch(line); m != nil && m[4] != "ownership" {
			p, keys := atoi(m[2]), atoi(m[5])
			h.rounds[p]++
			h.keys[p] += keys
			if keys == 0 {
				h.empty[p]++
			}
		}
		if m := hintedReasonRE.FindStringSubmatch(line); m != nil {
			h.reasons[atoi(m[1])]++
		}
		if m := handoffNoticeRE.FindStringSubmatch(line); m != nil && m[2] != "ownership" {
			h.notices[atoi(m[1])]++
		}
	}
	return h
}

// TestClusterJoinUnderLoadHandsOffHintsWithoutChurn makes hints (one node of three paused, SIGSTOP, under a
// write load, then let go on) and joins a 4th node while they are handed back and the load goes on. It
// checks the hinted handoffs the nodes ran: none for an empty hint set; a partition handed off more than
// once within a minute only with a log line that says why its hints keep coming back; no log line per round
// for a partition that repeats; and no handoff at all once the load stopped and the hints drained.
func TestClusterJoinUnderLoadHandsOffHintsWithoutChurn(t *testing.T) {
	cl := newCluster(t)
	flags := append([]string{"-log-level", "debug"}, failureFlags...)
	cl.form([]string{"n1@127.0.0.1", "n2@127.0.0.1", "n3@127.0.0.1"}, flags...)
	n1, n2, n3 := cl.nodes[0], cl.nodes[1], cl.nodes[2]
	acks := newAcked()
	preload(t, n1.mcAddr, "pre-", 10000, 4, acks)
	w := startWriter([]string{n1.mcAddr, n2.mcAddr}, "load-", 20000, 90*time.Second, acks)
	defer w.stop()

	// Hints: n3 stops while writes go on, until both others see it down and took writes for it.
	if err := n3.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n3.cmd.Process.Signal(syscall.SIGCONT) }) // before the harness kills it
	waitSeenAlive(t, cl.cls[n1.name], n3.name, false, 20*time.Second)
	waitSeenAlive(t, cl.cls[n2.name], n3.name, false, 20*time.Second)
	waitFallbacks(t, cl, []string{n1.name, n2.name}, 200, 30*time.Second)
	if err := n3.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitSeenAlive(t, cl.cls[n1.name], n3.name, true, 20*time.Second)

	// A join while the hints go back and the load goes on.
	n4 := cl.add("n4@127.0.0.1", flags...)
	cl.join(n4, n1)
	cl.waitStaged(n1, 1)
	cl.cli(n2, "cluster", "plan")
	cl.cli(n3, "cluster", "commit")
	start := time.Now()
	cl.settled(90*time.Second, cl.names(), nil)
	t.Logf("join settled in %v", time.Since(start).Round(time.Millisecond))
	w.stop()
	waitCoordinatorsIdle(t, cl, cl.names(), 30*time.Second)

	// Once the load stopped, the hints drain and the handoffs stop: no transfer left to run, and the
	// attempt counters stay still over three polls (more than two hint scans).
	var last, cur []int64
	busy := ""
	still := 0
	// NB: the polls are 1.5 s apart, longer than a hint scan: stillness over three of them means the
	// handoffs stopped, not that the polls came between two scans.
	if !eventually.WithinEvery(60*time.Second, 1500*time.Millisecond, func() bool {
		cur, busy = nil, ""
		for _, n := range cl.nodes {
			ctx, cancel := shortCtx()
			var s struct {
				Attempts int64 `msgpack:"gokai_handoff_attempts"`
			}
			err := cl.cls[n.name].Call(ctx, "stats", nil, &s, true)
			var ps []tProgress
			if err == nil {
				ps, err = callTransfers(ctx, cl.cls[n.name])
			}
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ps {
				if p.State != "done" {
					busy = fmt.Sprintf("%s: %d %s->%s %s", n.name, p.Partition, p.From, p.To, p.State)
				}
			}
			cur = append(cur, s.Attempts)
		}
		if busy == "" && slices.Equal(cur, last) {
			still++
		} else {
			still = 0
		}
		last = cur
		return still >= 3
	}) {
		t.Fatalf("handoffs still running 60s after the load stopped: %s; attempts %v", busy, cur)
	}

	var total, empty, maxRounds, notices int
	for _, n := range cl.nodes {
		h := parseHinted(n.logText())
		for p, r := range h.rounds {
			total += r
			empty += h.empty[p]
			notices += h.notices[p]
			maxRounds = max(maxRounds, r)
			if h.empty[p] > 0 {
				t.Errorf("%s: %d of %d hinted handoffs of partition %d moved no key", n.name, h.empty[p], r, p)
			}
			if r >= 2 && h.reasons[p] == 0 {
				t.Errorf("%s: partition %d handed off %d times (%d keys) with no log line saying why its hints keep coming back", n.name, p, r, h.keys[p])
			}
			// The test runs for less than two minutes: a first round, a second with the reason, a summary per
			// minute; warnings of a retried round on attempts 1, 2, 4, ... only.
			if h.notices[p] > 6 {
				t.Errorf("%s: %d info/warning lines about the hinted handoffs of partition %d (%d rounds)", n.name, h.notices[p], p, r)
			}
		}
	}
	t.Logf("hinted handoffs: %d rounds, %d of them empty, at most %d for one partition on one node; %d info/warning lines about them; writer: %d sent, %d failed",
		total, empty, maxRounds, notices, w.sent, w.failures)
	addrs := map[string]string{}
	for _, n := range cl.nodes {
		addrs[n.name] = n.mcAddr
	}
	checkReadable(t, acks.snapshot(), addrs)
}
