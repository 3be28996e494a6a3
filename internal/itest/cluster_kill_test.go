package itest

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/eventually"
)

// TestClusterTransferReceiverKilled kills the node receiving a partition (SIGKILL) in the middle of the
// transfer, restarts it on the same data dir, name and addresses, and checks that the move completes
// (the sender retries the transfer from the start) and that no acknowledged write is lost.
func TestClusterTransferReceiverKilled(t *testing.T) {
	cl := newCluster(t)
	// One transfer at a time and enough data that a partition takes a moment to send.
	n1 := cl.add("n1@127.0.0.1", "-handoff-concurrency", "1")
	acks := newAcked()
	start := time.Now()
	preload(t, n1.mcAddr, "big-", 20000, 4, acks)
	if got := len(acks.snapshot()); got != 20000 {
		t.Fatalf("preload: %d of 20000 acknowledged", got)
	}
	t.Logf("preloaded 20000 keys in %v", time.Since(start).Round(time.Millisecond))
	n2 := cl.add("n2@127.0.0.1", "-handoff-concurrency", "1")
	cl.join(n2, n1)
	cl.waitStaged(n1, 1)
	cl.cli(n2, "cluster", "plan")
	w := startWriter([]string{n1.mcAddr}, "during-", 5000, 90*time.Second, acks)
	defer w.stop()
	cl.cli(n1, "cluster", "commit")
	start = time.Now()

	// Wait until a partition is half sent to n2.
	var victim tProgress
	var ps []tProgress
	// NB: a transfer is mid-way for moments only: poll every 2 ms to catch one.
	if !eventually.WithinEvery(30*time.Second, 2*time.Millisecond, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var err error
		ps, err = callTransfers(ctx, cl.cls[n1.name])
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.To == n2.name && p.State == "sending" && p.Keys > 0 && p.Keys < p.TotalKeys {
				victim = p
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no transfer to n2 caught mid-way within 30s: %+v", ps)
	}
	n2.kill9(t)
	t.Logf("killed n2 %v after the commit, partition %d at %d/%d keys", time.Since(start).Round(time.Millisecond),
		victim.Partition, victim.Keys, victim.TotalKeys)

	// While n2 is down, `gokai transfers` shows the pending moves and that n2 does not answer.
	var view struct {
		Pending   int `json:"pending"`
		Transfers []struct {
			Partition int    `json:"partition"`
			To        string `json:"to"`
			Reported  bool   `json:"reported"`
		} `json:"transfers"`
		Unreachable []string `json:"unreachable"`
	}
	cl.cliJSON(n1, &view, "transfers")
	if view.Pending == 0 || len(view.Transfers) == 0 || len(view.Unreachable) != 1 || view.Unreachable[0] != n2.name {
		t.Fatalf("transfers while n2 is down: %+v", view)
	}
	mustMatch(t, "transfers", `(?m)^not answering: n2@127\.0\.0\.1$`, cl.cli(n1, "transfers"))

	// The move completes once n2 is back (the sender retries the interrupted transfer).
	rates := newRateSampler()
	n2 = n2.restart(t)
	cl.replace(n2)
	if m := regexp.MustCompile(`msg="cluster ready" .*version=(\d+)`).FindStringSubmatch(n2.logText()); m != nil {
		t.Logf("n2 restarted with the cluster state of version %s from its data dir", m[1])
	}
	restarted := time.Now()
	st := cl.settled(120*time.Second, cl.names(), func() { rates.sample(cl) })
	took := time.Since(start)
	w.stop()
	t.Logf("move done %v after the commit (%v after the restart); %s; partition %d attempts seen: %d; writer: %d sent, %d failed",
		took.Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond), rates.summary(took),
		victim.Partition, rates.maxAttempts[victim.Partition], w.sent, w.failures)
	checkBalance(t, st)
	checkReadable(t, acks.snapshot(), map[string]string{n1.name: n1.mcAddr, n2.name: n2.mcAddr})
}
