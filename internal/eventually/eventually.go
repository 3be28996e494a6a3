package eventually

import (
	"testing"
	"time"
)

// Interval is the polling period: short enough not to slow a test down, long enough not to spin.
const Interval = 10 * time.Millisecond

// True polls cond until it holds and returns how long that took; after timeout it fails t, naming what was
// awaited.
func True(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("not within %v: %s", timeout, what)
		}
		time.Sleep(Interval) // polling interval, not a wait for the condition
	}
	return time.Since(start)
}

// NoError polls f until it returns nil and returns how long that took; after timeout it fails t with what
// and f's last error.
func NoError(t testing.TB, timeout time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := f()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("not within %v: %s: %v", timeout, what, err)
		}
		time.Sleep(Interval) // polling interval, not a wait for the condition
	}
}

// Within is True for callers that report failure themselves: it reports whether cond held within timeout.
// Called as a negative ("it must not happen within timeout"), it watches cond for the whole timeout.
func Within(timeout time.Duration, cond func() bool) bool {
	return WithinEvery(timeout, Interval, cond)
}

// WithinEvery is Within polling every period instead of Interval: for a condition that costs something to
// check (a status call to every node of a cluster), or one that must be seen to hold across polls spread
// over time.
func WithinEvery(timeout, every time.Duration, cond func() bool) bool {
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			return false
		}
		time.Sleep(every) // polling period, not a wait for the condition
	}
	return true
}
