package eventually

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a testing.TB that records a Fatalf instead of stopping the goroutine.
type recorder struct {
	testing.TB
	failed atomic.Bool
	msg    string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed.Store(true)
	r.msg = format
	panic(r) // stops the caller like runtime.Goexit would, without ending the real test
}

func run(f func(*recorder)) (r *recorder) {
	r = &recorder{}
	defer func() {
		if p := recover(); p != nil && p != r {
			panic(p)
		}
	}()
	f(r)
	return r
}

func TestTrue(t *testing.T) {
	var n atomic.Int64
	r := run(func(r *recorder) { True(r, time.Second, "third poll", func() bool { return n.Add(1) >= 3 }) })
	if r.failed.Load() || n.Load() != 3 {
		t.Fatalf("failed=%v after %d polls", r.failed.Load(), n.Load())
	}
	r = run(func(r *recorder) { True(r, 30*time.Millisecond, "never", func() bool { return false }) })
	if !r.failed.Load() {
		t.Fatal("a condition that never holds passed")
	}
}

func TestNoError(t *testing.T) {
	var n atomic.Int64
	r := run(func(r *recorder) {
		NoError(r, time.Second, "second try", func() error {
			if n.Add(1) < 2 {
				return errors.New("not yet")
			}
			return nil
		})
	})
	if r.failed.Load() || n.Load() != 2 {
		t.Fatalf("failed=%v after %d tries", r.failed.Load(), n.Load())
	}
	r = run(func(r *recorder) { NoError(r, 30*time.Millisecond, "never", func() error { return errors.New("no") }) })
	if !r.failed.Load() {
		t.Fatal("a call that always fails passed")
	}
	if Within(30*time.Millisecond, func() bool { return false }) || !Within(time.Second, func() bool { return true }) {
		t.Fatal("Within")
	}
}

func TestWithinEvery(t *testing.T) {
	// The period is a floor between polls: over 100 ms at 40 ms, cond runs at most at 0, 40, 80 and 120 ms.
	var n atomic.Int64
	if WithinEvery(100*time.Millisecond, 40*time.Millisecond, func() bool { n.Add(1); return false }) {
		t.Fatal("a condition that never holds held")
	}
	if got := n.Load(); got < 1 || got > 4 {
		t.Fatalf("%d polls in 100 ms at a 40 ms period", got)
	}
	n.Store(0)
	if !WithinEvery(time.Second, time.Millisecond, func() bool { return n.Add(1) >= 3 }) || n.Load() != 3 {
		t.Fatalf("held after %d polls, want 3", n.Load())
	}
}
