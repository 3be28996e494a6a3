package itest

import (
	"fmt"
	"strings"
	"testing"
	"time"
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
	deadline := time.Now().Add(bound)
	for {
		rates.sample(cl)
		sampleOne(rates, cl.cls[n1.name])
		_, why := cl.settledOnce(strings.Join(cl.names(), ","))
		if why == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leave of n1 not complete %v after its commit: %s; n1's transfers: %s", bound, why, transfersOf(t, cl, n1.name))
		}
		time.Sleep(50 * time.Millisecond) // poll interval
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
