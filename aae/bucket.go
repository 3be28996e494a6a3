package aae

import "time"

// Bucket is a token bucket (the repair rate limit): Rate tokens a second, at most Burst saved up. The caller
// passes the time; the zero Bucket (Rate 0) never limits.
type Bucket struct {
	Rate, Burst float64
	tokens      float64
	last        time.Time
}

// NewBucket returns a full bucket of rate tokens a second and burst at most (burst < 1 means 1).
func NewBucket(rate, burst float64) *Bucket {
	return &Bucket{Rate: rate, Burst: max(1, burst), tokens: max(1, burst)}
}

// Take takes one token at now and returns how long the caller must wait before using it (0: at once).
// A token taken is spent even when the caller must wait for it, so waiting callers queue fairly.
func (b *Bucket) Take(now time.Time) time.Duration {
	if b.Rate <= 0 {
		return 0
	}
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = min(b.Burst, b.tokens+now.Sub(b.last).Seconds()*b.Rate)
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
	b.tokens--
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.Rate * float64(time.Second))
}
