package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// exactQuantile is the simple reference: the ceil(q·n)-th smallest value of a sorted slice.
func exactQuantile(sorted []int64, q float64) int64 {
	switch {
	case q <= 0:
		return sorted[0]
	case q >= 1:
		return sorted[len(sorted)-1]
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

var testQuantiles = []float64{0, 0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1}

// TestHistogramQuantilesProperty compares the histogram with exact sorted-slice quantiles on random data of
// several shapes: every quantile must be within 1% of the exact one (the layout promises 1/256).
func TestHistogramQuantilesProperty(t *testing.T) {
	gens := map[string]func(r *rand.Rand) int64{
		// log-uniform over 1ns..60s: exercises every exponent group
		"log-uniform": func(r *rand.Rand) int64 { return int64(math.Exp(r.Float64() * math.Log(float64(maxTrackable)))) },
		// a latency-like lognormal around 100µs with a long tail
		"lognormal":  func(r *rand.Rand) int64 { return int64(math.Exp(math.Log(100e3) + 1.5*r.NormFloat64())) },
		"small-ints": func(r *rand.Rand) int64 { return r.Int64N(300) },
		"constant":   func(r *rand.Rand) int64 { return 123456789 },
		"bimodal": func(r *rand.Rand) int64 {
			if r.IntN(100) == 0 {
				return 5e9 + r.Int64N(1e9)
			}
			return 20e3 + r.Int64N(10e3)
		},
	}
	for name, gen := range gens {
		for seed := range uint64(20) {
			r := rand.New(rand.NewPCG(seed, 42))
			n := 1 + r.IntN(20000)
			if seed < 3 {
				n = int(seed) + 1 // tiny samples too
			}
			var h Histogram
			vals := make([]int64, n)
			for i := range vals {
				vals[i] = gen(r)
				h.Record(time.Duration(vals[i]))
			}
			slices.Sort(vals)
			if h.Count() != uint64(n) || int64(h.Min()) != vals[0] || int64(h.Max()) != vals[n-1] {
				t.Fatalf("%s seed %d: count/min/max %d/%d/%d, want %d/%d/%d",
					name, seed, h.Count(), h.Min(), h.Max(), n, vals[0], vals[n-1])
			}
			for _, q := range testQuantiles {
				got, want := int64(h.Quantile(q)), exactQuantile(vals, q)
				if relErr := math.Abs(float64(got-want)) / max(float64(want), 1); relErr > 0.01 {
					t.Errorf("%s seed %d n %d: q%v = %d, exact %d (error %.4f > 1%%)", name, seed, n, q, got, want, relErr)
				}
			}
		}
	}
}

// TestHistogramMerge: merging per-worker histograms equals recording everything in one.
func TestHistogramMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	var all, merged Histogram
	parts := make([]Histogram, 5)
	for i := range 10000 {
		d := time.Duration(r.Int64N(int64(time.Second)))
		all.Record(d)
		parts[i%len(parts)].Record(d)
	}
	for i := range parts {
		merged.Merge(&parts[i])
	}
	merged.Merge(&Histogram{}) // merging an empty one changes nothing
	if merged != all {
		t.Fatalf("merged histogram differs: n %d/%d min %v/%v max %v/%v", merged.n, all.n, merged.min, all.min, merged.max, all.max)
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 || h.Count() != 0 {
		t.Fatal("empty histogram is not all zero")
	}
	h.Record(-5)              // clamps to 0
	h.Record(2 * time.Minute) // beyond the tracked range: last buckets, exact max
	if h.Min() != 0 || h.Max() != 2*time.Minute || h.Quantile(1) != 2*time.Minute {
		t.Fatalf("min %v max %v q1 %v", h.Min(), h.Max(), h.Quantile(1))
	}
	if got := h.Quantile(0.5); got != 0 {
		t.Fatalf("q0.5 = %v, want 0", got)
	}
	if got := h.Mean(); got != time.Minute {
		t.Fatalf("mean = %v, want 1m", got)
	}
}

// TestBucketLayout: buckets tile [0, maxTrackable] without gaps, and each is at most 1/128 of its lower bound wide.
func TestBucketLayout(t *testing.T) {
	var next int64
	for i := range numBuckets {
		lo, w := bucketBounds(i)
		if lo != next {
			t.Fatalf("bucket %d starts at %d, want %d", i, lo, next)
		}
		if lo >= subCount && w*subCount > lo {
			t.Fatalf("bucket %d [%d,+%d) wider than 1/128", i, lo, w)
		}
		if bucketOf(lo) != i || bucketOf(lo+w-1) != i {
			t.Fatalf("bucket %d: bucketOf(%d)=%d bucketOf(%d)=%d", i, lo, bucketOf(lo), lo+w-1, bucketOf(lo+w-1))
		}
		next = lo + w
	}
	if next <= maxTrackable {
		t.Fatalf("buckets end at %d, below maxTrackable %d", next, maxTrackable)
	}
}

func TestHistogramRecordAllocs(t *testing.T) {
	h := new(Histogram)
	if n := testing.AllocsPerRun(1000, func() { h.Record(1234567) }); n != 0 {
		t.Fatalf("Record allocates %v times", n)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	for i := 0; b.Loop(); i++ {
		h.Record(time.Duration(i & 0xfffff))
	}
}
