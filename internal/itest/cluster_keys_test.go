package itest

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/client"
	"github.com/gokai-kv/gokai/coverage"
	"github.com/gokai-kv/gokai/ring"
)

// Key listing (list_keys, count, gokai keys) on real processes: coverage plans, streams and paging across
// nodes, with a node killed.

// listEveryKey pages through list_keys on c (max keys a page) and returns how often each key came back and
// how many pages it took.
func listEveryKey(t *testing.T, c *client.Client, o client.ListOptions) (map[string]int, int) {
	t.Helper()
	return listEveryKeyBetween(t, c, o, nil)
}

// listEveryKeyBetween is listEveryKey calling between(pages so far) before every page after the first.
func listEveryKeyBetween(t *testing.T, c *client.Client, o client.ListOptions, between func(int)) (map[string]int, int) {
	t.Helper()
	seen := map[string]int{}
	pages := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		p, err := c.ListKeys(ctx, o)
		cancel()
		if err != nil {
			t.Fatalf("list_keys page %d: %v", pages, err)
		}
		pages++
		for _, k := range p.Keys {
			seen[string(k)]++
		}
		if p.Continuation == nil {
			if p.PartitionsDone != p.Partitions {
				t.Fatalf("listing ended with %d of %d partitions done", p.PartitionsDone, p.Partitions)
			}
			return seen, pages
		}
		o.Continuation = p.Continuation
		if between != nil {
			between(pages)
		}
	}
}

// checkOnce fails t unless seen holds exactly the keys of want, each once.
func checkOnce(t *testing.T, what string, seen map[string]int, want map[string]bool) {
	t.Helper()
	var twice, missing, extra []string
	for k, n := range seen {
		switch {
		case !want[k]:
			extra = append(extra, k)
		case n > 1:
			twice = append(twice, k)
		}
	}
	for k := range want {
		if seen[k] == 0 {
			missing = append(missing, k)
		}
	}
	if len(twice)+len(missing)+len(extra) > 0 {
		t.Fatalf("%s: %d keys listed, want %d; twice %d %.5q, missing %d %.5q, not expected %d %.5q", what, len(seen), len(want),
			len(twice), twice, len(missing), missing, len(extra), extra)
	}
}

// TestClusterListKeys: 3 nodes, 10,000 keys written over memcache (and 500 of them deleted): list_keys
// returns every live key exactly once (3 replicas hold each), with or without a prefix, count agrees, and
// `gokai keys` lists them with its progress line; then one node is killed (SIGKILL) between two pages of a
// listing, and the listing, a count started at the kill, and a new listing still return every key exactly
// once: the ranges whose vnode is on the dead node are re-planned on the other replicas (after the dead node
// went silent, its transport refused, or memberlist declared it dead), the ranges listed part of the way
// resuming after their last key.
func TestClusterListKeys(t *testing.T) {
	cl := formFailureCluster(t, fn1, fn2, fn3)
	n1 := cl.nodes[0]
	acks := newAcked()
	preload(t, n1.mcAddr, "key-", 10000, 4, acks)
	if got := len(acks.snapshot()); got != 10000 {
		t.Fatalf("preload: %d of 10000 acknowledged", got)
	}
	c := cl.cls[fn1]
	want, withPrefix := map[string]bool{}, map[string]bool{}
	for k := range acks.snapshot() {
		want[k] = true
	}
	deleted := 0
	for k := range want {
		if deleted == 500 {
			break
		}
		ctx, cancel := shortCtx()
		err := c.Delete(ctx, []byte(k), nil, nil)
		cancel()
		if err != nil {
			t.Fatalf("delete %s: %v", k, err)
		}
		delete(want, k)
		deleted++
	}
	for k := range want {
		if strings.HasPrefix(k, "key-0012") {
			withPrefix[k] = true
		}
	}

	start := time.Now()
	seen, pages := listEveryKey(t, c, client.ListOptions{MaxKeys: 1000})
	t.Logf("listed %d keys in %d pages in %v", len(seen), pages, time.Since(start).Round(time.Millisecond))
	checkOnce(t, "all up", seen, want)
	seen, _ = listEveryKey(t, cl.cls[fn2], client.ListOptions{MaxKeys: 77, Prefix: []byte("key-0012")})
	checkOnce(t, "prefix key-0012", seen, withPrefix)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	n, err := c.CountKeys(ctx, nil)
	cancel()
	if err != nil || n != uint64(len(want)) {
		t.Fatalf("count: %d %v, want %d", n, err, len(want))
	}
	res := gokaiCLI(t, n1.rpcAddr, "", "keys", "--prefix", "key-0012").ok(t, "gokai keys --prefix key-0012")
	cliSeen := map[string]int{}
	for _, k := range strings.Fields(res.stdout) {
		cliSeen[k]++
	}
	checkOnce(t, "gokai keys --prefix", cliSeen, withPrefix)
	if !regexp.MustCompile(fmt.Sprintf(`\rkeys: %d, partitions: 64/64\n$`, len(withPrefix))).MatchString(res.stderr) {
		t.Fatalf("gokai keys: progress %q", res.stderr)
	}

	// Pause (SIGSTOP) the node of the first vnode a full plan asks, and count at once through another node:
	// that vnode stays silent, so after the count's idle (3s) its ranges are asked again on a plan around
	// the paused node (suspected since), and the count is exact.
	ctx, cancel = shortCtx()
	ri, err := c.Ring(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	owners := make([]ring.NodeID, len(ri.Owners))
	for i, o := range ri.Owners {
		owners[i] = ring.NodeID(o)
	}
	r, err := ring.NewFromOwners(owners, ri.Version)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := coverage.NewPlan(r, ri.N, nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var paused, via *cnode
	for _, n := range cl.nodes {
		switch {
		case n.name == string(plan.Vnodes[0].Node):
			paused = n
		case via == nil:
			via = n
		}
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	cc, err := client.New(ctx, client.Config{Seeds: []string{via.rpcAddr}, PoolSize: 1, DisableRouting: true,
		RequestTimeout: 60 * time.Second, TLS: clientTLS(t)})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if err := paused.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = paused.cmd.Process.Signal(syscall.SIGCONT) }) // before the harness kills it
	ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
	var pausedCount uint64
	err = cc.Call(ctx, "count", []any{map[string]any{"timeout_ms": 3000}}, &pausedCount, true)
	cancel()
	if err != nil || pausedCount != uint64(len(want)) {
		t.Fatalf("count with %s paused: %d %v, want %d", paused.name, pausedCount, err, len(want))
	}
	ctx, cancel = shortCtx()
	vst, err := cc.Stats(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := vst["gokai_kv_coverage_failures"].(int64); f < 1 {
		t.Fatalf("count with %s paused: %v coverage failures on %s, want the paused vnode's", paused.name, vst["gokai_kv_coverage_failures"], via.name)
	}
	if err := paused.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	for _, n := range cl.nodes {
		waitSeenAlive(t, cl.cls[n.name], paused.name, true, 30*time.Second)
	}

	// Kill n3 in the middle of a listing through n1: the ranges listed part of the way on n3's vnodes resume
	// on other replicas after their last key. A count started at the kill through n2 also runs around it.
	var wg sync.WaitGroup
	var counted atomic.Uint64
	var countErr atomic.Value
	var killed time.Time
	seen, pages = listEveryKeyBetween(t, c, client.ListOptions{MaxKeys: 200, Timeout: 3 * time.Second}, func(page int) {
		if page != 3 {
			return
		}
		cl.nodes[2].kill9(t)
		killed = time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			n, err := cl.cls[fn2].CountKeys(ctx, nil)
			if err != nil {
				countErr.Store(err)
			}
			counted.Store(n)
		}()
	})
	ctx, cancel = shortCtx()
	st, err := c.Stats(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("n3 killed: listed %d keys in %d pages, %v after the kill; n1's coverage requests %v, failed %v",
		len(seen), pages, time.Since(killed).Round(time.Millisecond), st["gokai_kv_coverage_requests"], st["gokai_kv_coverage_failures"])
	checkOnce(t, "n3 killed", seen, want)
	wg.Wait()
	if err := countErr.Load(); err != nil || counted.Load() != uint64(len(want)) {
		t.Fatalf("count with n3 killed: %d %v, want %d", counted.Load(), err, len(want))
	}
	seen, _ = listEveryKey(t, cl.cls[fn2], client.ListOptions{MaxKeys: 1000})
	checkOnce(t, "n3 down, listed through n2", seen, want)
}
