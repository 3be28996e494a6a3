package itest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/client"
)

// Failure tests: 3 nodes, N=3 R=2 W=2 (the defaults), a node lost during a write load. Sloppy quorum keeps
// the writes going (fallback vnodes on the other nodes take the dead node's replicas as hints) and hinted
// handoff gives the node its data back when it returns.

const (
	fn1 = "n1@127.0.0.1"
	fn2 = "n2@127.0.0.1"
	fn3 = "n3@127.0.0.1"
)

// checkRecovered checks the guarantees after owner came back at back (it was lost at fail, and was
// certainly down from down): owner's own vnodes hold the last value of every key acknowledged while it was
// down, the hints drain, and every acknowledged key reads back with its last value through readVia. hs
// samples the hinted-handoff counters of the other nodes since before back.
func checkRecovered(t *testing.T, cl *cluster, ops []writeOp, owner string, down, back time.Time, hs *hintSampler,
	readVia string) {
	t.Helper()
	want := expectedValues(ops)
	keys := ackedKeys(ops, down, back)
	if len(keys) == 0 {
		t.Fatal("no write was acknowledged while the node was down")
	}
	var other *client.Client
	for name, c := range cl.cls {
		if name != owner {
			other = c
			break
		}
	}
	parts := ownedPartitions(t, other, keys, owner)
	rs := keyReplicasOf(parts)
	took := waitHolds(t, cl.cls[owner], owner+"'s own vnodes", rs, want, 60*time.Second)
	t.Logf("%s's own vnodes hold the last value of all %d keys acknowledged while it was down "+
		"(%d of them in its partitions, %d replicas), checked %v after it came back (%v of polling)", owner,
		len(keys), len(parts), len(rs), time.Since(back).Round(time.Millisecond), took.Round(time.Millisecond))

	waitDrained(t, cl, owner, rs, hs, 60*time.Second)
	hs.stop()
	n, first, last := hs.delivered()
	if n == 0 {
		t.Logf("hints drained: no key was handed off (gokai_hinted_handoff_keys did not grow)")
	} else {
		span := last.Sub(back)
		t.Logf("hints drained: %d keys handed off; first delivery seen %v after the node came back, last %v after "+
			"(%.0f keys/s from the return, %.0f keys/s while delivering)", n,
			first.Sub(back).Round(time.Millisecond), span.Round(time.Millisecond), float64(n)/span.Seconds(),
			float64(n)/max(last.Sub(first), 50*time.Millisecond).Seconds())
	}
	readBackVia(t, readVia, want)
	t.Logf("all %d acknowledged keys read back with their last value through %s", len(want), readVia)
}

// fallbacksOf is a node's gokai_coord_fallbacks, for the log.
func fallbacksOf(t *testing.T, cl *cluster, name string) string {
	t.Helper()
	ctx, cancel := shortCtx()
	defer cancel()
	s, err := failureStats(ctx, cl.cls[name])
	if err != nil {
		return err.Error()
	}
	return fmt.Sprint(s.Fallbacks)
}

// TestFailureKillDuringWrites kills one node of 3 (SIGKILL) during a write load through another, restarts
// it after the survivors declared it dead, and checks that writes kept being acknowledged and that the
// node gets back every key written meanwhile.
func TestFailureKillDuringWrites(t *testing.T) {
	cl := formFailureCluster(t, fn1, fn2, fn3)
	n1, n2, n3 := cl.nodes[0], cl.nodes[1], cl.nodes[2]

	w := startRecWriter(n1.mcAddr, "kill-", 100000, 90*time.Second)
	defer w.stop()
	w.waitAcked(t, time.Time{}, 1000, 30*time.Second)
	fail := time.Now()
	n3.kill9(t)
	down := time.Now()
	detect := waitSeenAlive(t, cl.cls[n1.name], n3.name, false, 20*time.Second)
	w.waitAcked(t, down, 3000, 40*time.Second)
	t.Logf("killed %s; %s declared it dead %v after the kill", n3.name, n1.name, (detect + down.Sub(fail)).Round(time.Millisecond))

	hs := startHintSampler([]*client.Client{cl.cls[n1.name], cl.cls[n2.name]})
	defer hs.stop()
	back := time.Now()
	n3 = n3.restart(t)
	cl.replace(n3)
	t.Logf("%s restarted (ready %v after the restart began)", n3.name, time.Since(back).Round(time.Millisecond))
	w.waitAcked(t, time.Now(), 500, 30*time.Second)
	w.stop()
	ops := w.snapshot()
	t.Logf("writes through %s: %s; %s fallback writes", n1.name, describeOutage(ops, fail, back), fallbacksOf(t, cl, n1.name))
	checkRecovered(t, cl, ops, n3.name, down, back, hs, n2.mcAddr)
}

// TestFailureKillFallback loses the node holding the hints too: after writes while the primary is down,
// the node holding most of the primary's hints is killed (SIGKILL) and restarted, then the primary
// returns. The hints must have survived on disk and drain to the primary.
func TestFailureKillFallback(t *testing.T) {
	cl := formFailureCluster(t, fn1, fn2, fn3)
	n1, n2, n3 := cl.nodes[0], cl.nodes[1], cl.nodes[2]

	w := startRecWriter(n1.mcAddr, "fb-", 100000, 90*time.Second)
	defer w.stop()
	w.waitAcked(t, time.Time{}, 500, 30*time.Second)
	fail := time.Now()
	n3.kill9(t)
	down := time.Now()
	waitSeenAlive(t, cl.cls[n1.name], n3.name, false, 20*time.Second)
	w.waitAcked(t, down, 3000, 40*time.Second)
	w.stop()
	stopped := time.Now()
	ops := w.snapshot()
	t.Logf("writes through %s with %s down: %s", n1.name, n3.name, describeOutage(ops, fail, stopped))

	// A write whose n3 replica went unanswered before n1 saw n3 dead gets its fallback when the
	// coordinator's linger ends: wait for every coordinator to finish.
	waitCoordinatorsIdle(t, cl, []string{n1.name, n2.name}, 30*time.Second)

	// Where are n3's hints? Its partitions of the keys written meanwhile, on the other nodes: every one of
	// them must be somewhere.
	keys := ackedKeys(ops, down, stopped)
	rs := keyReplicasOf(ownedPartitions(t, cl.cls[n1.name], keys, n3.name))
	held := hintsHeld(t, cl, []string{n1.name, n2.name}, rs)
	t.Logf("hints for %s's %d replicas of keys written while it was down: %s holds %d, %s holds %d",
		n3.name, len(rs), n1.name, len(held[n1.name]), n2.name, len(held[n2.name]))
	hinted := map[keyReplica]bool{}
	for _, r := range append(slices.Clone(held[n1.name]), held[n2.name]...) {
		hinted[r] = true
	}
	var unhinted []string
	for _, r := range rs {
		if !hinted[r] {
			unhinted = append(unhinted, fmt.Sprintf("%s in %d", r.key, r.partition))
		}
	}
	if len(unhinted) > 0 {
		t.Errorf("%d of %d replicas acknowledged while %s was down have no hint on another node, e.g. %v",
			len(unhinted), len(rs), n3.name, unhinted[:min(5, len(unhinted))])
	}
	fb := n1
	if len(held[n2.name]) > len(held[n1.name]) {
		fb = n2
	}
	if len(held[fb.name]) == 0 {
		t.Fatalf("no node holds hints for %s", n3.name)
	}

	fb.kill9(t)
	restarted := time.Now()
	fb2 := fb.restart(t)
	cl.replace(fb2)
	waitHolds(t, cl.cls[fb2.name], fb2.name+"'s hints after its restart", held[fb.name], nil, 30*time.Second)
	t.Logf("killed and restarted the fallback %s: its %d hints were there again %v after the restart", fb2.name,
		len(held[fb.name]), time.Since(restarted).Round(time.Millisecond))
	if fb2.name == n1.name {
		n1 = fb2
	} else {
		n2 = fb2
	}
	// The restarted fallback must know the primary is still down (it hands nothing off until it returns).
	waitSeenAlive(t, cl.cls[fb2.name], n3.name, false, 20*time.Second)

	hs := startHintSampler([]*client.Client{cl.cls[n1.name], cl.cls[n2.name]})
	defer hs.stop()
	back := time.Now()
	n3 = n3.restart(t)
	cl.replace(n3)
	checkRecovered(t, cl, ops, n3.name, down, back, hs, n2.mcAddr)
}
