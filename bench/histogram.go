package bench

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records durations in log-linear buckets (the HDR histogram layout): values below 128ns each have
// their own bucket; above, every power-of-two range [2^e, 2^(e+1)) is split into 128 equal buckets. A bucket is
// reported by its midpoint, so every quantile is within 1/256 (0.4%) of a recorded value of the same rank.
// Values are tracked up to 60s; larger ones land in the last bucket (Max stays exact).
//
// The zero value is an empty histogram. Record does not allocate. Not safe for concurrent use: keep one per
// goroutine and Merge them.
type Histogram struct {
	counts [numBuckets]uint64
	n      uint64
	sum    float64 // nanoseconds; float so hours of seconds-long samples do not overflow
	min    int64
	max    int64
}

const (
	subBits      = 7
	subCount     = 1 << subBits // buckets per power of two
	maxTrackable = int64(60 * time.Second)
	// maxExp is the highest power of two below maxTrackable: 2^35 ns ≈ 34s <= 60s < 2^36.
	maxExp     = 35
	numBuckets = (maxExp - subBits + 2) * subCount // one linear group plus one per exponent subBits..maxExp
)

// bucketOf maps a value in [0, maxTrackable] to its bucket.
func bucketOf(v int64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - 1 // >= subBits
	shift := e - subBits
	return (shift+1)*subCount + int(v>>shift) - subCount
}

// bucketBounds returns the smallest value of bucket i and the bucket's width.
func bucketBounds(i int) (lo, width int64) {
	if i < subCount {
		return int64(i), 1
	}
	shift := i/subCount - 1
	return int64(subCount+i%subCount) << shift, 1 << shift
}

// Record adds one observation. Negative durations count as 0.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
	h.counts[bucketOf(min(v, maxTrackable))]++
}

// Merge adds every observation of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
	for i, c := range o.counts {
		h.counts[i] += c
	}
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 { return h.n }

// Min is the smallest observation (exact), 0 if empty.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Max is the largest observation (exact), 0 if empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is the average observation, 0 if empty.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(math.Round(h.sum / float64(h.n)))
}

// Quantile returns the nearest-rank q-quantile (the ceil(q·n)-th smallest observation) within the bucket
// error, clamped to [Min, Max]; q <= 0 gives Min, q >= 1 gives Max; 0 if empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	switch {
	case h.n == 0:
		return 0
	case q <= 0:
		return time.Duration(h.min)
	case q >= 1:
		return time.Duration(h.max)
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, w := bucketBounds(i)
			return time.Duration(min(max(lo+(w-1)/2, h.min), h.max))
		}
	}
	return time.Duration(h.max) // unreachable: counts sum to n
}
