package itest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/client"
	"github.com/gokai-kv/gokai/internal/eventually"
)

// rateSampler records the transfer rates the senders report while a move runs.
type rateSampler struct {
	mu          sync.Mutex
	maxRate     float64
	samples     int
	sum         float64
	maxAttempts map[int]int // partition -> attempts seen
	seen        map[string]bool
	keys        map[string]int64 // transfer -> most keys seen sent
}

func newRateSampler() *rateSampler {
	return &rateSampler{maxAttempts: map[int]int{}, seen: map[string]bool{}, keys: map[string]int64{}}
}

// sample asks every node for its transfers once.
func (r *rateSampler) sample(cl *cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, n := range cl.nodes {
		ps, err := callTransfers(ctx, cl.cls[n.name])
		if err != nil {
			continue // a node being killed or restarted
		}
		r.add(ps)
	}
}

func (r *rateSampler) add(ps []tProgress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range ps {
		id := fmt.Sprintf("%d %s->%s", p.Partition, p.From, p.To)
		r.seen[id] = true
		r.keys[id] = max(r.keys[id], p.Keys)
		r.maxAttempts[p.Partition] = max(r.maxAttempts[p.Partition], p.Attempts)
		if p.State == "sending" && p.Rate > 0 && p.Keys > 0 {
			r.samples++
			r.sum += p.Rate
			r.maxRate = max(r.maxRate, p.Rate)
		}
	}
}

// summary describes what was seen; took is the time the whole move took.
func (r *rateSampler) summary(took time.Duration) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var keys int64
	for _, k := range r.keys {
		keys += k
	}
	s := fmt.Sprintf("%d transfers seen, %d keys sent (%.0f keys/s over the whole move)", len(r.seen), keys, float64(keys)/took.Seconds())
	if r.samples > 0 {
		s += fmt.Sprintf("; rate reported while sending: mean %.0f keys/s, max %.0f keys/s (%d samples)", r.sum/float64(r.samples), r.maxRate, r.samples)
	}
	return s
}

// checkBalance fails unless every member owns within ±1 of q/members partitions.
func checkBalance(t *testing.T, st *cStatus) {
	t.Helper()
	avg := float64(st.Q) / float64(len(st.Members))
	for name, c := range st.partitions() {
		if d := float64(c) - avg; d < -1 || d > 1 {
			t.Errorf("%s owns %d partitions, want within ±1 of %d/%d", name, c, st.Q, len(st.Members))
		}
	}
}

// TestClusterJoinLeaveUnderLoad adds a 4th node to a 3-node cluster while a writer keeps writing, then
// makes it leave under load: partitions move both ways, the ring stays balanced, every acknowledged write
// stays readable through every node, and the node that left ends with no partitions.
func TestClusterJoinLeaveUnderLoad(t *testing.T) {
	cl := newCluster(t)
	cl.form([]string{"n1@127.0.0.1", "n2@127.0.0.1", "n3@127.0.0.1"})
	n1, n2, n3 := cl.nodes[0], cl.nodes[1], cl.nodes[2]
	acks := newAcked()
	start := time.Now()
	preload(t, n1.mcAddr, "pre-", 10000, 4, acks)
	if got := len(acks.snapshot()); got != 10000 {
		t.Fatalf("preload: %d of 10000 acknowledged", got)
	}
	t.Logf("preloaded 10000 keys through n1 in %v", time.Since(start).Round(time.Millisecond))
	ring3 := checkRingViews(t, cl)
	ackedKeys := func() []string {
		var out []string
		for k := range acks.snapshot() {
			out = append(out, k)
		}
		return out
	}
	memcaches := func() map[string]string {
		out := map[string]string{}
		for _, n := range cl.nodes {
			out[n.name] = n.mcAddr
		}
		return out
	}
	writeTo := []string{n1.mcAddr, n2.mcAddr, n3.mcAddr}

	// Join n4 under load.
	n4 := cl.add("n4@127.0.0.1")
	w := startWriter(writeTo, "join-", 3000, 60*time.Second, acks)
	cl.join(n4, n1)
	cl.waitStaged(n1, 1)
	var plan struct {
		Changes []struct {
			Kind string `json:"kind"`
			Node string `json:"node"`
		} `json:"changes"`
		Transfers       []struct{ Partition int } `json:"transfers"`
		PartitionsAfter map[string]int            `json:"partitions_after"`
		Warning         string                    `json:"warning"`
	}
	cl.cliJSON(n2, &plan, "cluster", "plan")
	if len(plan.Changes) != 1 || plan.Changes[0].Kind != "join" || plan.Changes[0].Node != n4.name || len(plan.Transfers) != 16 ||
		plan.PartitionsAfter[n4.name] != 16 {
		t.Fatalf("plan: %+v", plan)
	}
	// With 4 nodes and Q=64 (a multiple of 4), every window of N=3 partitions can be on distinct nodes.
	if plan.Warning != "" {
		t.Errorf("plan warning with 4 nodes: %s", plan.Warning)
	}
	cl.cli(n3, "cluster", "commit")
	start = time.Now()
	rates := newRateSampler()
	st := cl.settled(90*time.Second, cl.names(), func() { rates.sample(cl) })
	joinTook := time.Since(start)
	w.stop()
	t.Logf("join: n4 took its %d partitions in %v; %s; writer: %d sent, %d failed",
		st.partitions()[n4.name], joinTook.Round(time.Millisecond), rates.summary(joinTook), w.sent, w.failures)
	checkBalance(t, st)
	ring := checkRingViews(t, cl)
	if bad := repeatingWindows(ring.Owners, ring.N); len(bad) > 0 {
		t.Errorf("4 nodes, q=64, n=3: windows repeating a node: %v", bad)
	}
	// The 3-node ring's lists skip at its wrap, the 4-node ring's do not: keys there changed partitions.
	// NB: until the nodes re-homed them, such a key can have fewer than N copies where its list looks, and
	// a read can miss it if another replica is also behind (docs/cluster.md): wait for the placement first.
	changed := waitRehomed(t, cl, ring3, ring, ackedKeys(), 60*time.Second)
	if len(repeatingWindows(ring3.Owners, ring3.N)) > 0 && changed == 0 {
		t.Error("no key changed lists with the join, though the 3-node ring's lists skip")
	}
	t.Logf("join: %d keys changed lists; all on their new lists, none left behind", changed)
	checkReadable(t, acks.snapshot(), memcaches())

	// n4 leaves under load.
	w = startWriter(writeTo, "leave-", 3000, 60*time.Second, acks)
	out := cl.cli(n4, "cluster", "leave")
	mustMatch(t, "leave", `leave of .* staged`, out)
	cl.waitStaged(n1, 1)
	out = cl.cli(n1, "cluster", "plan")
	mustMatch(t, "plan", `(?m)^leave +n4@127\.0\.0\.1$`, out)
	mustMatch(t, "plan", `(?m)^16 partitions move$`, out)
	cl.cli(n1, "cluster", "commit")
	start = time.Now()
	rates = newRateSampler()
	cl.remove(n4.name) // settled() checks the remaining members
	st = cl.settled(90*time.Second, cl.names(), func() { rates.sample(cl); sampleOne(rates, cl.cls[n4.name]) })
	leaveTook := time.Since(start)
	w.stop()
	t.Logf("leave: n4 handed off its partitions in %v; %s; writer: %d sent, %d failed",
		leaveTook.Round(time.Millisecond), rates.summary(leaveTook), w.sent, w.failures)
	checkBalance(t, st)
	ringAfter := checkRingViews(t, cl)
	changed = waitRehomed(t, cl, ring, ringAfter, ackedKeys(), 60*time.Second)
	t.Logf("leave: %d keys changed lists; all on their new lists, none left behind", changed)
	checkReadable(t, acks.snapshot(), memcaches())

	// The node that left: removed from the cluster (in its own view too), no transfers, no vnodes.
	c4 := cl.cls[n4.name]
	eventually.NoError(t, 30*time.Second, "n4 gone after leaving (no member, no transfer, no vnode)", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st4, err := callStatus(ctx, c4)
		var ps []tProgress
		if err == nil {
			ps, err = callTransfers(ctx, c4)
		}
		var stats client.Stats
		if err == nil {
			stats, err = c4.Stats(ctx)
		}
		cancel()
		why := ""
		switch {
		case err != nil:
			why = err.Error()
		case len(ps) > 0:
			why = fmt.Sprintf("%d transfers", len(ps))
		case stats.String("gokai_vnodes") != "0":
			why = "gokai_vnodes=" + stats.String("gokai_vnodes")
		default:
			for _, m := range st4.Members {
				if m.Name == n4.name {
					why = "still a member (" + m.Status + ")"
				}
			}
		}
		if why != "" {
			return errors.New(why)
		}
		return nil
	})
}

// sampleOne asks one node for its transfers.
func sampleOne(r *rateSampler, c *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if ps, err := callTransfers(ctx, c); err == nil {
		r.add(ps)
	}
}
