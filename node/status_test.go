package node

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/ring"
)

// TestBucketQuantile: interpolation inside the bucket the rank falls in, as PromQL's histogram_quantile.
func TestBucketQuantile(t *testing.T) {
	bounds := []float64{0.001, 0.01, 0.1}
	for _, tc := range []struct {
		q     float64
		cum   []uint64
		total uint64
		want  float64
	}{
		{0.99, []uint64{0, 0, 0}, 0, 0},                      // no observations
		{0.5, []uint64{100, 100, 100}, 100, 0.0005},          // all in the first bucket: half way up it
		{0.99, []uint64{90, 100, 100}, 100, 0.0091},          // rank 99 is 9/10 into (0.001, 0.01]
		{0.99, []uint64{0, 0, 50}, 100, 0.1},                 // in +Inf: the highest bound
		{0.9, []uint64{10, 10, 100}, 100, 0.01 + 0.09*80/90}, // 80 of 90 into (0.01, 0.1]
	} {
		got := bucketQuantile(tc.q, bounds, tc.cum, tc.total)
		if math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("q=%v cum=%v total=%d: %v, want %v", tc.q, tc.cum, tc.total, got, tc.want)
		}
	}
}

// TestSamplesAreDifferences: each chart point is the rate and p99 of the requests since the previous
// reading; the history is bounded.
func TestSamplesAreDifferences(t *testing.T) {
	var s samples
	t0 := time.Unix(1000, 0)
	bounds := []float64{0.001, 0.01}
	s.add(cumHist{at: t0, count: 10, bounds: bounds, counts: []uint64{10, 10}})
	if got := s.snapshot(); len(got) != 0 {
		t.Fatalf("a first reading makes no point: %+v", got)
	}
	s.add(cumHist{at: t0.Add(2 * time.Second), count: 30, bounds: bounds, counts: []uint64{10, 30}})
	got := s.snapshot()
	if len(got) != 1 || got[0].rate != 10 || math.Abs(got[0].p99-(0.001+0.009*19.8/20)) > 1e-12 {
		t.Fatalf("point: %+v", got)
	}
	for i := range 2 * sampleKeep {
		s.add(cumHist{at: t0.Add(time.Duration(3+i) * time.Second), count: 30, bounds: bounds, counts: []uint64{10, 30}})
	}
	if got := s.snapshot(); len(got) != sampleKeep || got[len(got)-1].rate != 0 || got[len(got)-1].p99 != 0 {
		t.Fatalf("history: %d points, last %+v", len(got), got[len(got)-1])
	}
}

// TestRingCellsShowFallbacks: a down owner's partition names the fallback its preference list gives, and
// the SVG escapes node names.
func TestRingCellsShowFallbacks(t *testing.T) {
	r, err := ring.New(8, 2, []ring.NodeID{"a", "b", "<c>"})
	if err != nil {
		t.Fatal(err)
	}
	up := func(n ring.NodeID) bool { return n != "b" }
	cells := ringCells(r, 2, up, map[int]string{3: "a → <c>"})
	for _, c := range cells {
		switch {
		case c.Owner == "b" && (c.OwnerUp || c.Fallback == "" || c.Fallback == "b"):
			t.Errorf("partition %d of down b: %+v", c.Partition, c)
		case c.Owner != "b" && (!c.OwnerUp || c.Fallback != ""):
			t.Errorf("partition %d of up %s: %+v", c.Partition, c.Owner, c)
		}
	}
	svg := ringSVG(cells, map[ring.NodeID]string{"a": "#111111"})
	if strings.Contains(svg, "<c>") || !strings.Contains(svg, "&lt;c&gt;") {
		t.Fatal("node names are not escaped in the ring's SVG")
	}
	if got := strings.Count(svg, `class="arc`); got != 8 {
		t.Fatalf("%d arcs, want 8", got)
	}
	if !strings.Contains(svg, `class="transfer-mark"`) {
		t.Fatal("the partition in transfer is not marked")
	}
}

// TestRingPictureOfALargeRing: at Q=65536 the picture has ringArcsMax arcs, and a partition in transfer
// inside a run still marks it.
func TestRingPictureOfALargeRing(t *testing.T) {
	r, err := ring.New(1<<16, 3, []ring.NodeID{"a", "b", "c", "d"})
	if err != nil {
		t.Fatal(err)
	}
	cells := ringCells(r, 3, func(ring.NodeID) bool { return true }, map[int]string{70: "a → b"})
	svg := ringSVG(cells, nil)
	if got := strings.Count(svg, `class="arc`); got != ringArcsMax {
		t.Fatalf("%d arcs, want %d", got, ringArcsMax)
	}
	if got := strings.Count(svg, `class="transfer-mark"`); got != 1 {
		t.Fatalf("%d transfer marks, want 1", got)
	}
	if len(svg) > 512<<10 {
		t.Fatalf("the picture is %d bytes", len(svg))
	}
}
