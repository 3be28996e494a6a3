package bench

import (
	"math"
	"testing"
)

func TestWorkloadMixAndRange(t *testing.T) {
	for _, dist := range []string{"uniform", "zipfian"} {
		cfg := Default()
		cfg.Dist, cfg.Keys, cfg.GetRatio = dist, 1000, 0.8
		w := NewWorkload(cfg, 3)
		const n = 100000
		var gets int
		hits := make([]int, cfg.Keys)
		for range n {
			op := w.Next()
			if op.Key >= uint64(cfg.Keys) {
				t.Fatalf("%s: key %d out of range", dist, op.Key)
			}
			hits[op.Key]++
			if op.Kind == OpGet {
				gets++
			}
		}
		if r := float64(gets) / n; math.Abs(r-0.8) > 0.01 {
			t.Errorf("%s: get ratio %.3f, want 0.8", dist, r)
		}
		// uniform: key 0 gets about 1/1000 of the ops; zipfian (s=1.01): far more.
		share := float64(hits[0]) / n
		if dist == "uniform" && share > 0.003 || dist == "zipfian" && share < 0.05 {
			t.Errorf("%s: key 0 share %.4f", dist, share)
		}
	}
}

func TestWorkloadDeterministic(t *testing.T) {
	cfg := Default()
	cfg.Dist = "zipfian"
	a, b, c := NewWorkload(cfg, 1), NewWorkload(cfg, 1), NewWorkload(cfg, 2)
	same := true
	for range 1000 {
		x, y, z := a.Next(), b.Next(), c.Next()
		if x != y {
			t.Fatal("same seed and stream gave different operations")
		}
		same = same && x == z
	}
	if same {
		t.Fatal("different streams gave the same operations")
	}
}

func TestWorkloadNextAllocs(t *testing.T) {
	for _, dist := range []string{"uniform", "zipfian"} {
		cfg := Default()
		cfg.Dist = dist
		w := NewWorkload(cfg, 0)
		buf := make([]byte, 0, 64)
		if n := testing.AllocsPerRun(1000, func() { buf = AppendKey(buf[:0], cfg.KeyPrefix, w.Next().Key) }); n != 0 {
			t.Fatalf("%s: Next+AppendKey allocate %v times", dist, n)
		}
	}
}

func TestAppendKey(t *testing.T) {
	if got := string(AppendKey([]byte("x"), "bench:", 9876)); got != "xbench:9876" {
		t.Fatalf("AppendKey = %q", got)
	}
}
