package itest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/client"
	"github.com/gokai-kv/gokai/internal/eventually"
)

// The failure harness: a sequential writer that records every request with its timing and outcome, the
// analysis of what a failure did to it, and polls of where the data is (one replica at a time, with
// vnode_get) while hinted handoff puts it back on a returning node.

// failureFlags start every node of the failure tests: fast probes, so memberlist declares a stopped node
// dead within a second or two.
var failureFlags = []string{"-gossip-probe-interval", "200ms"}

// formFailureCluster starts the named nodes and makes one cluster of them over msgpack-RPC: cluster_join
// sent to every node after the first (seeded with the first's rpc address), cluster_commit sent to the last
// (any node forwards it to the claimant), then waits until every node reports the same settled state.
func formFailureCluster(t *testing.T, names ...string) *cluster {
	t.Helper()
	cl := newCluster(t)
	for _, name := range names {
		cl.add(name, failureFlags...)
	}
	seed := cl.nodes[0]
	for _, n := range cl.nodes[1:] {
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		err := cl.cls[n.name].Call(ctx, "cluster_join", []any{seed.transportAddr}, nil, false)
		cancel()
		if err != nil {
			t.Fatalf("%s: cluster_join %s: %v", n.name, seed.transportAddr, err)
		}
	}
	cl.waitStaged(seed, len(names)-1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.cls[cl.nodes[len(names)-1].name].Call(ctx, "cluster_commit", nil, nil, false); err != nil {
		t.Fatalf("cluster_commit: %v", err)
	}
	cl.settled(60*time.Second, cl.names(), nil)
	return cl
}

// shortCtx is the deadline of one admin call.
func shortCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

// waitSeenAlive polls c's cluster_status until it reports node alive (or not), and returns how long it took.
func waitSeenAlive(t *testing.T, c *client.Client, node string, alive bool, timeout time.Duration) time.Duration {
	t.Helper()
	return eventually.NoError(t, timeout, fmt.Sprintf("%s seen alive=%v", node, alive), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := callStatus(ctx, c)
		if err != nil {
			return err
		}
		for _, m := range st.Members {
			if m.Name == node {
				if m.Alive != alive {
					return fmt.Errorf("seen alive=%v", m.Alive)
				}
				return nil
			}
		}
		return errors.New("not a member")
	})
}

// --- the recording writer ---------------------------------------------------------------------------

// writeOp is one request of a recWriter.
type writeOp struct {
	key, value string
	start, end time.Time
	ok         bool // STORED
}

// recWriter sets keys one at a time through one memcache connection (reconnecting after an error) until
// max requests, the time bound or stop. Request i writes prefix+i, except every tenth, which overwrites one
// of 16 hot keys, so what matters for those is the last value.
type recWriter struct {
	mu     sync.Mutex
	ops    []writeOp
	stopCh chan struct{}
	done   chan struct{}
}

func startRecWriter(addr, prefix string, max int, bound time.Duration) *recWriter {
	w := &recWriter{stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		var c *mcConn
		defer func() {
			if c != nil {
				c.Close()
			}
		}()
		end := time.Now().Add(bound)
		for i := 0; i < max && time.Now().Before(end); i++ {
			select {
			case <-w.stopCh:
				return
			default:
			}
			k := fmt.Sprintf("%s%06d", prefix, i)
			if i%10 == 9 {
				k = fmt.Sprintf("%shot-%02d", prefix, (i/10)%16)
			}
			o := writeOp{key: k, value: fmt.Sprintf("v%d-%s", i, k), start: time.Now()}
			var err error
			if c == nil {
				c, err = dialMCConn(addr)
			}
			if err == nil {
				var acked []bool
				acked, err = c.setMany([][2]string{{o.key, o.value}})
				o.ok = err == nil && acked[0]
				if err != nil {
					c.Close()
					c = nil
				}
			}
			o.end = time.Now()
			w.mu.Lock()
			w.ops = append(w.ops, o)
			w.mu.Unlock()
		}
	}()
	return w
}

// stop ends the load and waits for it.
func (w *recWriter) stop() {
	select {
	case <-w.stopCh:
	default:
		close(w.stopCh)
	}
	<-w.done
}

func (w *recWriter) snapshot() []writeOp {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.ops)
}

// waitAcked polls until n requests that started at or after since were acknowledged.
func (w *recWriter) waitAcked(t *testing.T, since time.Time, n int, timeout time.Duration) {
	t.Helper()
	eventually.NoError(t, timeout, fmt.Sprintf("%d acknowledged writes since %v", n, since.Format(time.StampMilli)), func() error {
		w.mu.Lock()
		got := 0
		for i := len(w.ops) - 1; i >= 0 && !w.ops[i].start.Before(since); i-- {
			if w.ops[i].ok {
				got++
			}
		}
		w.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-w.done:
			t.Fatalf("the writer ended with %d of %d acknowledged writes since %v", got, n, since.Format(time.StampMilli))
		default:
		}
		return fmt.Errorf("%d so far", got)
	})
}

// expectedValues maps every key with an acknowledged write to the values a read may return: the last
// acknowledged value and any written after it by a request that failed (a failed write may still have
// reached some replicas). With no failure it is exactly the last acknowledged value.
func expectedValues(ops []writeOp) map[string][]string {
	out := map[string][]string{}
	for _, o := range ops {
		switch {
		case o.ok:
			out[o.key] = []string{o.value}
		case out[o.key] != nil:
			out[o.key] = append(out[o.key], o.value)
		}
	}
	return out
}

// ackedKeys lists the keys of requests that started at or after from and were acknowledged by to.
func ackedKeys(ops []writeOp, from, to time.Time) []string {
	seen := map[string]bool{}
	var out []string
	for _, o := range ops {
		if o.ok && !o.start.Before(from) && !o.end.After(to) && !seen[o.key] {
			seen[o.key] = true
			out = append(out, o.key)
		}
	}
	sort.Strings(out)
	return out
}

// describeOutage summarises the requests around a failure at fail (the node back at back): failed
// fraction over the whole run, and how long after the failure writes succeeded again.
func describeOutage(ops []writeOp, fail, back time.Time) string {
	failed := 0
	var slowest time.Duration
	var lastFail, firstOK *writeOp
	for i := range ops {
		o := &ops[i]
		if !o.ok {
			failed++
		}
		if o.end.Before(fail) || o.start.After(back) {
			continue
		}
		slowest = max(slowest, o.end.Sub(o.start))
		if !o.ok {
			lastFail, firstOK = o, nil
		} else if firstOK == nil && o.start.After(fail) {
			firstOK = o
		}
	}
	s := fmt.Sprintf("%d requests, %d failed (%.4f%%); ", len(ops), failed, 100*float64(failed)/float64(max(1, len(ops))))
	switch {
	case lastFail == nil && firstOK != nil:
		s += fmt.Sprintf("no write failed after the failure (the first one sent after it was acknowledged %v later)",
			firstOK.end.Sub(fail).Round(time.Millisecond))
	case lastFail == nil:
		s += "no write failed after the failure, none was acknowledged either"
	case firstOK == nil:
		s += "writes never succeeded again before the node came back"
	default:
		s += fmt.Sprintf("writes succeeded again %v after the failure", firstOK.end.Sub(fail).Round(time.Millisecond))
	}
	return s + fmt.Sprintf("; slowest write in the outage %v", slowest.Round(time.Millisecond))
}

// --- where the data is --------------------------------------------------------------------------------

type preflistEntry struct {
	Partition int    `msgpack:"partition"`
	Node      string `msgpack:"node"`
	Primary   bool   `msgpack:"primary"`
}

type replicaObject struct {
	Found  bool     `msgpack:"found"`
	Values [][]byte `msgpack:"values"`
}

// handoffStats is the part of `stats` the failure tests read.
type handoffStats struct {
	CoordActive  int64 `msgpack:"gokai_coord_active"`
	Fallbacks    int64 `msgpack:"gokai_coord_fallbacks"`
	HintedKeys   int64 `msgpack:"gokai_hinted_handoff_keys"`
	HandoffAlive int64 `msgpack:"gokai_handoff_active"`
}

func failureStats(ctx context.Context, c *client.Client) (handoffStats, error) {
	var s handoffStats
	return s, c.Call(ctx, "stats", nil, &s, true)
}

func readReplica(ctx context.Context, c *client.Client, partition int, key string) (replicaObject, error) {
	var o replicaObject
	return o, c.Call(ctx, "vnode_get", []any{partition, []byte(key)}, &o, true)
}

// waitCoordinatorsIdle polls the nodes' stats until no coordinator is alive on any (lingering ones
// included: a write's fallbacks are added when its linger ends).
func waitCoordinatorsIdle(t *testing.T, cl *cluster, nodes []string, timeout time.Duration) {
	t.Helper()
	busy := ""
	// NB: a stats call to every node per poll: every 50 ms, not faster.
	if !eventually.WithinEvery(timeout, 50*time.Millisecond, func() bool {
		busy = ""
		for _, name := range nodes {
			ctx, cancel := shortCtx()
			s, err := failureStats(ctx, cl.cls[name])
			cancel()
			switch {
			case err != nil:
				busy = fmt.Sprintf("%s: %v", name, err)
			case s.CoordActive > 0:
				busy = fmt.Sprintf("%s: %d coordinators alive", name, s.CoordActive)
			}
		}
		return busy == ""
	}) {
		t.Fatalf("coordinators still busy after %v: %s", timeout, busy)
	}
}

// forEachParallel runs f on every item with a few workers and returns the first error.
func forEachParallel[T any](items []T, f func(T) error) error {
	const workers = 8
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan T)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range next {
				if err := f(it); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, it := range items {
		next <- it
	}
	close(next)
	wg.Wait()
	return first
}

// ownedPartitions maps each key whose preference list names node as a primary to node's partitions in it
// (one on a ring of N or more nodes: the skip rule lists a node once; more on smaller rings). Keys without
// node are left out.
func ownedPartitions(t *testing.T, c *client.Client, keys []string, node string) map[string][]int {
	t.Helper()
	var mu sync.Mutex
	out := map[string][]int{}
	err := forEachParallel(keys, func(k string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var pl []preflistEntry
		if err := c.Call(ctx, "preflist", []any{[]byte(k)}, &pl, true); err != nil {
			return fmt.Errorf("preflist %s: %w", k, err)
		}
		var ps []int
		for _, e := range pl {
			if e.Primary && e.Node == node {
				ps = append(ps, e.Partition)
			}
		}
		if len(ps) > 0 {
			mu.Lock()
			out[k] = ps
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// keyReplica is one key in one vnode.
type keyReplica struct {
	key       string
	partition int
}

func keyReplicasOf(parts map[string][]int) []keyReplica {
	var out []keyReplica
	for k, ps := range parts {
		for _, p := range ps {
			out = append(out, keyReplica{k, p})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].key < out[j].key || out[i].key == out[j].key && out[i].partition < out[j].partition
	})
	return out
}

// replicaHolds reports whether o holds one of the values wanted (any value when want is empty).
func replicaHolds(o replicaObject, want []string) bool {
	if !o.Found {
		return false
	}
	if len(want) == 0 {
		return true
	}
	for _, v := range o.Values {
		if slices.Contains(want, string(v)) {
			return true
		}
	}
	return false
}

// waitHolds polls the vnodes of the node behind c until every replica holds an expected value of its key
// (want nil: any value) and returns how long it took.
func waitHolds(t *testing.T, c *client.Client, what string, rs []keyReplica, want map[string][]string,
	timeout time.Duration) time.Duration {
	t.Helper()
	start, total := time.Now(), len(rs)
	var missing []keyReplica
	last := map[keyReplica]string{}
	// NB: every poll reads every replica still missing: every 100 ms, not faster.
	held := eventually.WithinEvery(timeout, 100*time.Millisecond, func() bool {
		var mu sync.Mutex
		missing = nil
		err := forEachParallel(rs, func(r keyReplica) error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			o, err := readReplica(ctx, c, r.partition, r.key)
			if err == nil && replicaHolds(o, want[r.key]) {
				return nil
			}
			mu.Lock()
			missing = append(missing, r)
			switch {
			case err != nil:
				last[r] = err.Error()
			case !o.Found:
				last[r] = "not found"
			default:
				last[r] = fmt.Sprintf("%q", o.Values)
			}
			mu.Unlock()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(missing) == 0 {
			return true
		}
		rs = missing // the next poll reads only what is still missing
		return false
	})
	if !held {
		sort.Slice(missing, func(i, j int) bool { return missing[i].key < missing[j].key })
		var ex []string
		for _, r := range missing[:min(5, len(missing))] {
			ex = append(ex, fmt.Sprintf("%s in %d: %s (want %q)", r.key, r.partition, last[r], want[r.key]))
		}
		t.Fatalf("%s: %d of %d replicas missing or stale after %v, e.g. %s", what, len(missing), total, timeout,
			strings.Join(ex, "; "))
	}
	return time.Since(start)
}

// hintsHeld counts, per node named, the replicas rs of which that node's vnode of the same partition holds
// a copy (a hint: those partitions belong to another node).
func hintsHeld(t *testing.T, cl *cluster, nodes []string, rs []keyReplica) map[string][]keyReplica {
	t.Helper()
	out := map[string][]keyReplica{}
	var mu sync.Mutex
	for _, name := range nodes {
		err := forEachParallel(rs, func(r keyReplica) error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			o, err := readReplica(ctx, cl.cls[name], r.partition, r.key)
			if err != nil {
				return fmt.Errorf("%s: vnode_get %d %s: %w", name, r.partition, r.key, err)
			}
			if o.Found {
				mu.Lock()
				out[name] = append(out[name], r)
				mu.Unlock()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// hintSampler polls gokai_hinted_handoff_keys on a fixed set of nodes (the ones handing hints back) in
// the background and records when the sum grew.
type hintSampler struct {
	mu          sync.Mutex
	base, cur   []int64 // per node: the first reading and the latest
	based       []bool
	start       time.Time
	first, last time.Time // first and last growth (zero: none yet)
	stopCh      chan struct{}
	done        chan struct{}
}

func startHintSampler(cs []*client.Client) *hintSampler {
	h := &hintSampler{base: make([]int64, len(cs)), cur: make([]int64, len(cs)), based: make([]bool, len(cs)),
		start: time.Now(), stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for {
			for i, c := range cs {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				s, err := failureStats(ctx, c)
				cancel()
				if err != nil {
					continue
				}
				now := time.Now()
				h.mu.Lock()
				switch {
				case !h.based[i]:
					h.base[i], h.cur[i], h.based[i] = s.HintedKeys, s.HintedKeys, true
				case s.HintedKeys != h.cur[i]:
					h.cur[i], h.last = s.HintedKeys, now
					if h.first.IsZero() {
						h.first = now
					}
				}
				h.mu.Unlock()
			}
			select {
			case <-h.stopCh:
				return
			case <-time.After(50 * time.Millisecond): // poll interval
			}
		}
	}()
	return h
}

func (h *hintSampler) stop() {
	select {
	case <-h.stopCh:
	default:
		close(h.stopCh)
	}
	<-h.done
}

// quiet is how long the sum has not grown (since the start when it never did).
func (h *hintSampler) quiet() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last.IsZero() {
		return time.Since(h.start)
	}
	return time.Since(h.last)
}

// delivered is the keys handed off since the sampler started, and when the count first and last grew.
func (h *hintSampler) delivered() (int64, time.Time, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var n int64
	for i := range h.cur {
		n += h.cur[i] - h.base[i]
	}
	return n, h.first, h.last
}

// waitDrained polls until the hint queues are empty: no node but owner holds any of the replicas rs (they
// are in partitions owner owns, so a copy elsewhere is a hint), no handoff is active or pending on any node
// (stats and transfers), and gokai_hinted_handoff_keys (hs) stopped growing for longer than two hint
// scans. It returns how long the wait took.
func waitDrained(t *testing.T, cl *cluster, owner string, rs []keyReplica, hs *hintSampler, timeout time.Duration) time.Duration {
	t.Helper()
	const stable = 2500 * time.Millisecond // hint scans run every second
	start := time.Now()
	left := map[string][]keyReplica{}
	for _, n := range cl.nodes {
		if n.name != owner {
			left[n.name] = rs
		}
	}
	var why []string
	// NB: a stats and transfers call to every node and a read of every hint left per poll: every 100 ms.
	drained := eventually.WithinEvery(timeout, 100*time.Millisecond, func() bool {
		why = nil
		for _, n := range cl.nodes {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			s, err := failureStats(ctx, cl.cls[n.name])
			var ps []tProgress
			if err == nil {
				ps, err = callTransfers(ctx, cl.cls[n.name])
			}
			cancel()
			if err != nil {
				why = append(why, fmt.Sprintf("%s: %v", n.name, err))
				continue
			}
			if s.HandoffAlive > 0 {
				why = append(why, fmt.Sprintf("%s: %d handoffs active", n.name, s.HandoffAlive))
			}
			for _, p := range ps {
				if p.State != "done" {
					why = append(why, fmt.Sprintf("%s: transfer %d %s->%s %s (%d/%d keys, attempt %d, %s)",
						n.name, p.Partition, p.From, p.To, p.State, p.Keys, p.TotalKeys, p.Attempts, p.LastError))
				}
			}
		}
		for name, rs := range left {
			if len(rs) == 0 {
				continue
			}
			held := hintsHeld(t, cl, []string{name}, rs)[name]
			left[name] = held
			if len(held) > 0 {
				why = append(why, fmt.Sprintf("%s still holds %d hints, e.g. %s in %d", name, len(held), held[0].key, held[0].partition))
			}
		}
		if len(why) == 0 && hs.quiet() < stable {
			why = append(why, fmt.Sprintf("handed-off keys grew %v ago, want %v still", hs.quiet().Round(time.Millisecond), stable))
		}
		return len(why) == 0
	})
	if !drained {
		sort.Strings(why)
		t.Fatalf("hints not drained after %v: %s", timeout, strings.Join(why, "; "))
	}
	return time.Since(start)
}

// readBackVia reads every key through a memcache address and fails on a value that is not expected.
func readBackVia(t *testing.T, addr string, want map[string][]string) {
	t.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	m, err := dialMCConn(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var bad []string
	for i := 0; i < len(keys); i += 100 {
		part := keys[i:min(i+100, len(keys))]
		got, err := m.getMany(part)
		if err != nil {
			t.Fatalf("read back through %s: %v", addr, err)
		}
		for _, k := range part {
			if v, ok := got[k]; !ok || !slices.Contains(want[k], v) {
				bad = append(bad, fmt.Sprintf("%s=%q (want %q)", k, v, want[k]))
			}
		}
	}
	if len(bad) > 0 {
		t.Errorf("read back through %s: %d of %d acknowledged keys missing or wrong, e.g. %v", addr, len(bad), len(keys),
			bad[:min(5, len(bad))])
	}
}

// asClientError unwraps a msgpack-RPC error answer.
func asClientError(err error) *client.Error {
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce
	}
	return nil
}
