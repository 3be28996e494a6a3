package cli

import (
	"bytes"
	"context"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/logbuf"
)

// TestStartKeepsHeapFloor: a started node keeps the heap floor (the percent in force is raised above the
// configured one while its heap is small), logs it, and sets the configured percent back when it stops.
func TestStartKeepsHeapFloor(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	oldPct := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(oldPct); debug.SetMemoryLimit(oldLimit) })

	var errb logbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"start", "-data-dir", t.TempDir(), "-memcache-listen", "127.0.0.1:0", "-rpc-listen", "127.0.0.1:0",
			"-gossip-listen", "127.0.0.1:0", "-transport-listen", "127.0.0.1:0", "-http-listen", "127.0.0.1:0",
			"-gc-percent", "100", "-memory-limit", "4GiB", "-gc-min-heap", "1GiB"}, &bytes.Buffer{}, &errb)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(errb.String(), "gokai ready") {
		select {
		case err := <-done:
			t.Fatalf("start returned %v before it was ready:\n%s", err, errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 30s:\n%s", errb.String())
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	if !strings.Contains(errb.String(), "gc_percent=100 gc_percent_from=flag memory_limit=4096MiB memory_limit_from=flag gc_min_heap=1024MiB") {
		t.Fatalf("the collector's log line does not say what is in force:\n%s", errb.String())
	}
	// A node's live heap is tens of MiB, so a floor of 1 GiB (under half the limit) raises the percent well
	// above 100.
	if pct := gcPercent(); pct <= 400 {
		t.Fatalf("GC percent %d while the node runs, want it raised by the floor", pct)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("start: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("start did not return a minute after its context ended")
	}
	if got := gcPercent(); got != 100 {
		t.Fatalf("GC percent %d after the node stopped, want the configured 100 back", got)
	}
}

// gcPercent reads the GC percent in force (without setting it, which would race with the tuner).
func gcPercent() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
