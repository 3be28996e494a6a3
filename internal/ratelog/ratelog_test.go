package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAllowOneLinePerIntervalWithTheSuppressedCount(t *testing.T) {
	var l Limiter
	t0 := time.Unix(1000, 0)
	for _, step := range []struct {
		at         time.Duration
		ok         bool
		suppressed int
	}{
		{0, true, 0},
		{time.Millisecond, false, 0},
		{500 * time.Millisecond, false, 0},
		{999 * time.Millisecond, false, 0},
		{time.Second, true, 3},
		{time.Second + time.Nanosecond, false, 0},
		{5 * time.Second, true, 1},
		{7 * time.Second, true, 0},
	} {
		ok, n := l.Allow(t0.Add(step.at))
		if ok != step.ok || n != step.suppressed {
			t.Fatalf("at %v: Allow = %v, %d; want %v, %d", step.at, ok, n, step.ok, step.suppressed)
		}
	}
}

func TestAllowHonoursEvery(t *testing.T) {
	l := Limiter{Every: 10 * time.Second}
	t0 := time.Unix(0, 0)
	if ok, _ := l.Allow(t0); !ok {
		t.Fatal("first line refused")
	}
	if ok, _ := l.Allow(t0.Add(9 * time.Second)); ok {
		t.Fatal("a line 9s later went through a 10s limiter")
	}
	if ok, n := l.Allow(t0.Add(10 * time.Second)); !ok || n != 1 {
		t.Fatalf("10s later: %v, %d", ok, n)
	}
}

// TestLogFloodWritesBoundedLines: 10000 warnings in a simulated 2.5 s come out as 3 lines, and the counts
// they carry add up to every warning.
func TestLogFloodWritesBoundedLines(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	now := time.Unix(0, 0)
	l := Limiter{Now: func() time.Time { return now }}
	written := 0
	for i := 0; i < 10000; i++ {
		now = time.Unix(0, 0).Add(time.Duration(i) * 250 * time.Microsecond)
		if l.Warn(log, "shed", "i", i) {
			written++
		}
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if written != 3 || len(lines) != 3 {
		t.Fatalf("%d lines written (%d reported):\n%s", len(lines), written, buf.String())
	}
	if !strings.Contains(lines[1], "suppressed=3999") || !strings.Contains(lines[2], "suppressed=3999") {
		t.Fatalf("suppressed counts:\n%s", buf.String())
	}
	if !strings.Contains(lines[0], "level=WARN") || strings.Contains(lines[0], "suppressed") {
		t.Fatalf("first line: %s", lines[0])
	}
}

func TestKindsDoNotHideEachOther(t *testing.T) {
	now := time.Unix(0, 0)
	k := Kinds{Now: func() time.Time { return now }}
	if !k.Of("overload").Warn(nil, "x") || !k.Of("disk_full").Warn(nil, "y") {
		t.Fatal("the first line of each kind must go through")
	}
	if k.Of("overload").Warn(nil, "x") {
		t.Fatal("a second overload line within the interval went through")
	}
	if k.Of("overload") != k.Of("overload") {
		t.Fatal("Of made two limiters for one kind")
	}
}

func TestLimiterConcurrentUse(t *testing.T) {
	var l Limiter
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				if ok, _ := l.Allow(time.Unix(0, 0)); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if allowed != 1 {
		t.Fatalf("%d lines allowed at one instant, want 1", allowed)
	}
}
