package itest

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/client"
)

// TestListKeysMemoryFlat measures a node's memory while list_keys pages through 10,000 and then 100,000
// keys (one node, N=3: 3 replicas of each key in its vnodes). A page is built from bounded coverage streams
// (at most 4 vnodes at once, each at most 2 chunks ahead) and holds at most 1000 keys, so what the listing
// adds to the node's resident memory must not grow with the number of keys listed: the growth while 100,000
// keys are listed (caches warm) stays under 8 MiB, and within that for 10,000 plus 8 MiB. A node that let
// every vnode run 16 chunks of 10,000 keys ahead (what the bounds prevent) grew by 15 MiB here.
func TestListKeysMemoryFlat(t *testing.T) {
	p := startNode(t, "")
	pid := p.cmd.Process.Pid
	c := rpcClient(t, p.rpcAddr)
	acks := newAcked()
	measure := func(want int) (before, peak int) {
		t.Helper()
		before = procKiB(t, pid, "VmRSS")
		var mu sync.Mutex
		peak = before
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if r := procKiB(t, pid, "VmRSS"); r > 0 {
						mu.Lock()
						peak = max(peak, r)
						mu.Unlock()
					}
				}
			}
		}()
		start := time.Now()
		seen, pages := listEveryKey(t, c, client.ListOptions{MaxKeys: 1000})
		close(stop)
		<-done
		if len(seen) != want {
			t.Fatalf("listed %d keys, want %d", len(seen), want)
		}
		for k, n := range seen {
			if n != 1 {
				t.Fatalf("%s listed %d times", k, n)
			}
		}
		t.Logf("%d keys in %d pages in %v: RSS %d KiB before, peak %d KiB (+%d KiB)", want, pages,
			time.Since(start).Round(time.Millisecond), before, peak, peak-before)
		return before, peak
	}
	// NB: 110-byte keys: a node that held a whole listing of 100,000 would hold over 11 MB of keys alone.
	prefix := "mem-" + strings.Repeat("x", 100)
	preload(t, p.mcAddr, prefix, 10000, 4, acks)
	b10, p10 := measure(10000)
	preload(t, p.mcAddr, prefix, 100000, 4, acks)
	// NB: one listing first, so that both measured listings run with goleveldb's caches warm.
	listEveryKey(t, c, client.ListOptions{MaxKeys: 1000})
	b100, p100 := measure(100000)
	if g10, g100 := p10-b10, p100-b100; g100 > 8<<10 || g100 > g10+8<<10 {
		t.Fatalf("listing 100,000 keys grew RSS by %d KiB, 10,000 by %d KiB: want at most 8 MiB, flat in the keys listed", g100, g10)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if n, err := c.CountKeys(ctx, nil); err != nil || n != 100000 {
		t.Fatalf("count: %d %v", n, err)
	}
}
