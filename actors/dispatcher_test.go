package actors

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestDispatcherRunsEverythingAndNeverBlocks(t *testing.T) {
	d := NewDispatcher(2, 10)
	var ran atomic.Int64
	var wg sync.WaitGroup
	release := make(chan struct{})
	// Occupy both workers, then schedule far more runs than the queue holds: Schedule must not block.
	for i := 0; i < 2; i++ {
		wg.Add(1)
		d.Schedule(func() { defer wg.Done(); <-release; ran.Add(1) })
	}
	const extra = 1000
	for i := 0; i < extra; i++ {
		wg.Add(1)
		d.Schedule(func() {
			defer wg.Done()
			ran.Add(1)
			// A run that schedules another run (an actor sending to an actor) must not deadlock either.
			wg.Add(1)
			d.Schedule(func() { defer wg.Done(); ran.Add(1) })
		})
	}
	close(release)
	wg.Wait()
	if got := ran.Load(); got != 2+2*extra {
		t.Fatalf("ran %d, want %d", got, 2+2*extra)
	}
	if d.Throughput() != 10 {
		t.Fatalf("throughput %d", d.Throughput())
	}
	d.Close()
	// After Close, runs still happen (on goroutines of their own).
	done := make(chan struct{})
	d.Schedule(func() { close(done) })
	<-done
	d.Close() // idempotent
}

func TestInlineFirstRunsTheFirstRunInlineAndTheRestOnThePool(t *testing.T) {
	pool := NewDispatcher(2, 10)
	defer pool.Close()
	d := &InlineFirst{Pool: pool}
	ran := false
	d.Schedule(func() { ran = true })
	if !ran {
		t.Fatal("the first run did not run before Schedule returned")
	}
	// A later run must not run on the caller: it blocks until the caller lets it go, which would
	// deadlock an inline run.
	release, done := make(chan struct{}), make(chan struct{})
	d.Schedule(func() {
		<-release
		close(done)
	})
	close(release)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the second run never ran")
	}
	if d.Throughput() != 10 {
		t.Fatalf("throughput %d, want the pool's 10", d.Throughput())
	}
}
