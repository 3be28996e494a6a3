package itest

import (
	"syscall"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/client"
)

// TestFailurePauseDuringWrites stops one node of 3 (SIGSTOP) during a write load through another for
// longer than failure detection, then lets it go on (SIGCONT): writes keep being acknowledged, and the
// paused node ends up with every key written meanwhile.
func TestFailurePauseDuringWrites(t *testing.T) {
	cl := formFailureCluster(t, fn1, fn2, fn3)
	n1, n2, n3 := cl.nodes[0], cl.nodes[1], cl.nodes[2]

	w := startRecWriter(n1.mcAddr, "pause-", 100000, 90*time.Second)
	defer w.stop()
	w.waitAcked(t, time.Time{}, 1000, 30*time.Second)
	fail := time.Now()
	if err := n3.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n3.cmd.Process.Signal(syscall.SIGCONT) }) // before the harness kills it
	down := time.Now()
	d1 := waitSeenAlive(t, cl.cls[n1.name], n3.name, false, 20*time.Second)
	d2 := waitSeenAlive(t, cl.cls[n2.name], n3.name, false, 20*time.Second)
	w.waitAcked(t, down, 3000, 40*time.Second)
	// NB: the pause lasts at least 3 s whatever the detection took (the scenario, not a wait for a
	// condition): as long as a failed request keeps a node suspected (-failure-suspicion).
	if d := 3*time.Second - time.Since(down); d > 0 {
		time.Sleep(d)
	}
	t.Logf("stopped %s; declared dead by %s %v and by %s %v after the stop", n3.name, n1.name, d1.Round(time.Millisecond),
		n2.name, (d1 + d2).Round(time.Millisecond))

	hs := startHintSampler([]*client.Client{cl.cls[n1.name], cl.cls[n2.name]})
	defer hs.stop()
	back := time.Now()
	if err := n3.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	alive := waitSeenAlive(t, cl.cls[n1.name], n3.name, true, 20*time.Second)
	t.Logf("continued %s after %v stopped; %s sees it alive again %v later", n3.name, back.Sub(fail).Round(time.Millisecond),
		n1.name, alive.Round(time.Millisecond))
	w.waitAcked(t, time.Now(), 500, 30*time.Second)
	w.stop()
	ops := w.snapshot()
	t.Logf("writes through %s: %s; %s fallback writes", n1.name, describeOutage(ops, fail, back), fallbacksOf(t, cl, n1.name))
	checkRecovered(t, cl, ops, n3.name, down, back, hs, n2.mcAddr)
}
