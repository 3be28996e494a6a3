package gctune

import (
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestDecide(t *testing.T) {
	const gib = int64(1) << 30
	for _, tc := range []struct {
		name     string
		c        Config
		getenv   func(string) (string, bool)
		memTotal int64
		want     Plan
		err      string
	}{
		{name: "defaults", c: Default(), getenv: env(), memTotal: 16 * gib,
			want: Plan{SetPercent: true, Percent: DefaultPercent, PercentBy: "flag", SetLimit: true, Limit: 12 * gib, LimitBy: "flag", MinHeap: 256 << 20}},
		{name: "auto without a known memory size sets no limit", c: Default(), getenv: env(), memTotal: 0,
			want: Plan{SetPercent: true, Percent: DefaultPercent, PercentBy: "flag", SetLimit: true, Limit: 0, LimitBy: "flag", MinHeap: 256 << 20}},
		{name: "a floor", c: Config{Percent: 100, MemoryLimit: "off", MinHeap: "64MiB"}, getenv: env(),
			want: Plan{SetPercent: true, Percent: 100, PercentBy: "flag", SetLimit: true, LimitBy: "flag", MinHeap: 64 << 20}},
		{name: "GOGC wins over the floor too", c: Config{Percent: 100, MemoryLimit: "off", MinHeap: "64MiB"}, getenv: env("GOGC", "200"),
			want: Plan{PercentBy: "GOGC", SetLimit: true, LimitBy: "flag"}},
		{name: "no floor when the collector is off", c: Config{Percent: -1, MemoryLimit: "1GiB", MinHeap: "64MiB"}, getenv: env(),
			want: Plan{SetPercent: true, Percent: -1, PercentBy: "flag", SetLimit: true, Limit: gib, LimitBy: "flag"}},
		{name: "floor smallest", c: Config{Percent: 100, MemoryLimit: "off", MinHeap: "4MiB"}, getenv: env(),
			want: Plan{SetPercent: true, Percent: 100, PercentBy: "flag", SetLimit: true, LimitBy: "flag", MinHeap: 4 << 20}},
		{name: "floor largest", c: Config{Percent: 100, MemoryLimit: "off", MinHeap: "1TiB"}, getenv: env(),
			want: Plan{SetPercent: true, Percent: 100, PercentBy: "flag", SetLimit: true, LimitBy: "flag", MinHeap: 1 << 40}},
		{name: "floor too small", c: Config{Percent: 100, MemoryLimit: "off", MinHeap: "4194303"}, getenv: env(), err: `gc-min-heap "4194303"`},
		{name: "floor too large", c: Config{Percent: 100, MemoryLimit: "off", MinHeap: "1025GiB"}, getenv: env(), err: `gc-min-heap "1025GiB"`},
		{name: "floor garbage", c: Config{Percent: 100, MemoryLimit: "off", MinHeap: "big"}, getenv: env(), err: `gc-min-heap "big"`},
		{name: "floor empty", c: Config{Percent: 100, MemoryLimit: "off", MinHeap: ""}, getenv: env(), err: `gc-min-heap ""`},
		{name: "GOGC wins over the flag", c: Config{Percent: 300, MemoryLimit: "1GiB", MinHeap: "off"}, getenv: env("GOGC", "50"),
			want: Plan{PercentBy: "GOGC", SetLimit: true, Limit: gib, LimitBy: "flag"}},
		{name: "GOMEMLIMIT wins over the flag", c: Config{Percent: 300, MemoryLimit: "1GiB", MinHeap: "off"}, getenv: env("GOMEMLIMIT", "100MiB"),
			want: Plan{SetPercent: true, Percent: 300, PercentBy: "flag", LimitBy: "GOMEMLIMIT"}},
		{name: "empty variables are unset", c: Config{Percent: 300, MemoryLimit: "off", MinHeap: "off"}, getenv: env("GOGC", "", "GOMEMLIMIT", ""),
			want: Plan{SetPercent: true, Percent: 300, PercentBy: "flag", SetLimit: true, LimitBy: "flag"}},
		{name: "sizes", c: Config{Percent: 100, MemoryLimit: "512MiB", MinHeap: "off"}, getenv: env(),
			want: Plan{SetPercent: true, Percent: 100, PercentBy: "flag", SetLimit: true, Limit: 512 << 20, LimitBy: "flag"}},
		{name: "bytes", c: Config{Percent: 100, MemoryLimit: "134217728", MinHeap: "off"}, getenv: env(),
			want: Plan{SetPercent: true, Percent: 100, PercentBy: "flag", SetLimit: true, Limit: 128 << 20, LimitBy: "flag"}},
		{name: "B suffix", c: Config{Percent: 100, MemoryLimit: "134217728B", MinHeap: "off"}, getenv: env(),
			want: Plan{SetPercent: true, Percent: 100, PercentBy: "flag", SetLimit: true, Limit: 128 << 20, LimitBy: "flag"}},
		{name: "off with a limit", c: Config{Percent: -1, MemoryLimit: "2GiB", MinHeap: "off"}, getenv: env(),
			want: Plan{SetPercent: true, Percent: -1, PercentBy: "flag", SetLimit: true, Limit: 2 * gib, LimitBy: "flag"}},
		{name: "off with the environment's limit", c: Config{Percent: -1, MemoryLimit: "off", MinHeap: "off"}, getenv: env("GOMEMLIMIT", "1GiB"),
			want: Plan{SetPercent: true, Percent: -1, PercentBy: "flag", LimitBy: "GOMEMLIMIT"}},
		{name: "off without a limit", c: Config{Percent: -1, MemoryLimit: "off", MinHeap: "off"}, getenv: env(), err: "gc-percent -1 needs a memory limit"},
		{name: "off with auto and unknown memory", c: Config{Percent: -1, MemoryLimit: "auto", MinHeap: "off"}, getenv: env(), err: "gc-percent -1 needs"},
		{name: "percent 0", c: Config{Percent: 0, MemoryLimit: "auto", MinHeap: "off"}, getenv: env(), err: "gc-percent 0"},
		{name: "percent -2", c: Config{Percent: -2, MemoryLimit: "auto", MinHeap: "off"}, getenv: env(), err: "gc-percent -2"},
		{name: "percent too large", c: Config{Percent: 1000001, MemoryLimit: "auto", MinHeap: "off"}, getenv: env(), err: "gc-percent 1000001"},
		{name: "a bad flag fails even when the environment wins", c: Config{Percent: 0, MemoryLimit: "auto", MinHeap: "off"}, getenv: env("GOGC", "100"), err: "gc-percent 0"},
		{name: "limit too small", c: Config{Percent: 100, MemoryLimit: "1MiB", MinHeap: "off"}, getenv: env(), err: "at least 64MiB"},
		{name: "limit garbage", c: Config{Percent: 100, MemoryLimit: "lots", MinHeap: "off"}, getenv: env(), err: `memory-limit "lots"`},
		{name: "limit lower-case unit", c: Config{Percent: 100, MemoryLimit: "1gib", MinHeap: "off"}, getenv: env(), err: `memory-limit "1gib"`},
		{name: "limit negative", c: Config{Percent: 100, MemoryLimit: "-1GiB", MinHeap: "off"}, getenv: env(), err: `memory-limit "-1GiB"`},
		{name: "limit overflows", c: Config{Percent: 100, MemoryLimit: "9000000TiB", MinHeap: "off"}, getenv: env(), err: `memory-limit "9000000TiB"`},
		{name: "limit unit only", c: Config{Percent: 100, MemoryLimit: "GiB", MinHeap: "off"}, getenv: env(), err: `memory-limit "GiB"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decide(tc.c, tc.getenv, tc.memTotal)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "gctune: ") {
					t.Fatalf("Decide = %+v, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Decide = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestApply: a plan changes the runtime's settings, and Attrs reads back what is in force.
func TestApply(t *testing.T) {
	oldPct := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(oldPct); debug.SetMemoryLimit(oldLimit) })

	Plan{SetPercent: true, Percent: 250, PercentBy: "flag", SetLimit: true, Limit: 3 << 30, LimitBy: "flag"}.Apply()
	if got := debug.SetGCPercent(250); got != 250 {
		t.Fatalf("GC percent %d after Apply, want 250", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 3<<30 {
		t.Fatalf("memory limit %d after Apply, want %d", got, int64(3<<30))
	}
	attrs := Plan{PercentBy: "flag", LimitBy: "flag"}.Attrs()
	if want := []any{"gc_percent", "250", "gc_percent_from", "flag", "memory_limit", "3072MiB", "memory_limit_from", "flag", "gc_min_heap", "off"}; !equal(attrs, want) {
		t.Fatalf("Attrs = %v, want %v", attrs, want)
	}
	// The floor, capped at half the limit.
	for floor, want := range map[int64]string{256 << 20: "256MiB", 2 << 30: "1536MiB"} {
		if a := (Plan{PercentBy: "flag", LimitBy: "flag", MinHeap: floor}).Attrs(); a[9] != want {
			t.Fatalf("Attrs = %v, want gc_min_heap %s", a, want)
		}
	}

	// A plan that leaves a setting to the environment does not touch it; limit 0 means none.
	Plan{PercentBy: "GOGC", SetLimit: true, Limit: 0, LimitBy: "flag"}.Apply()
	if got := debug.SetGCPercent(250); got != 250 {
		t.Fatalf("GC percent %d after a plan that leaves it alone, want 250", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("memory limit %d after a plan of none, want MaxInt64", got)
	}
	if a := (Plan{PercentBy: "GOGC", LimitBy: "flag", MinHeap: 256 << 20}).Attrs(); a[5] != "off" || a[9] != "256MiB" {
		t.Fatalf("Attrs = %v, want memory_limit off, gc_min_heap 256MiB", a)
	}
}

func equal(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestBind(t *testing.T) {
	c := Default()
	fs := flag.NewFlagSet("start", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.Bind(fs)
	if c.MinHeap != DefaultMinHeap {
		t.Fatalf("default gc-min-heap %q", c.MinHeap)
	}
	if err := fs.Parse([]string{"-gc-percent", "200", "-memory-limit", "1GiB", "-gc-min-heap", "off"}); err != nil {
		t.Fatal(err)
	}
	if c.Percent != 200 || c.MemoryLimit != "1GiB" || c.MinHeap != "off" {
		t.Fatalf("bound %+v", c)
	}
}

func TestParseMemInfoAndCgroup(t *testing.T) {
	for _, tc := range []struct {
		line string
		want int64
		ok   bool
	}{
		{"MemTotal:       24683520 kB", 24683520 << 10, true},
		{"MemFree:        100 kB", 0, false},
		{"MemTotal: 12 MB", 0, false},
		{"MemTotal: x kB", 0, false},
		{"MemTotal: -5 kB", 0, false},
		{"MemTotal: 99999999999999999 kB", 0, false},
	} {
		if got, ok := parseMemInfoLine(tc.line); got != tc.want || ok != tc.ok {
			t.Errorf("parseMemInfoLine(%q) = %d, %v; want %d, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
	for in, want := range map[string]int64{"max\n": 0, "1073741824\n": 1 << 30, "9223372036854771712\n": 0, "": 0, "-1": 0} {
		if got := parseCgroupLimit(in); got != want {
			t.Errorf("parseCgroupLimit(%q) = %d, want %d", in, got, want)
		}
	}
	dir := t.TempDir()
	mi, cg := filepath.Join(dir, "meminfo"), filepath.Join(dir, "memory.max")
	if err := os.WriteFile(mi, []byte("MemFree: 1 kB\nMemTotal:  2048 kB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cg, []byte("1048576\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := memInfoTotal(mi); got != 2048<<10 {
		t.Errorf("memInfoTotal = %d, want %d", got, 2048<<10)
	}
	if got := cgroupLimit(cg); got != 1<<20 {
		t.Errorf("cgroupLimit = %d, want %d", got, 1<<20)
	}
	if memInfoTotal(filepath.Join(dir, "none")) != 0 || cgroupLimit(filepath.Join(dir, "none")) != 0 {
		t.Error("a missing file gives a size")
	}
}
