package gctune

import (
	"bufio"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// DefaultPercent is -gc-percent's default, the runtime's own: the collector runs once the heap has grown by
// what was live after the last cycle. 400 ran it a quarter as often (docs/benchmarks.md), but a node's
// transient garbage then piled up to five times its live heap: under a pipelined big-value load the RSS
// peaked at 2.2 GiB against 0.4 GiB, past the memory bounds the node promises its clients
// (internal/itest TestRPCBigGetPipelineStaysBounded). Raise it by flag where memory is plentiful.
const DefaultPercent = 100

// autoShare is the share of the machine's memory (the smaller of physical memory and the cgroup's limit)
// that -memory-limit auto sets as the soft limit.
const autoNum, autoDen = 3, 4

// Config is the flags' values.
type Config struct {
	// Percent is the GC percent: 1..1000000, or -1 for no collection until the memory limit is near (the
	// runtime's GOGC=off; needs a memory limit). Default DefaultPercent.
	Percent int
	// MemoryLimit is the soft memory limit: "auto" (default: three quarters of the machine's memory, none
	// when it cannot be read), "off" (none), or a size in GOMEMLIMIT's syntax: a number of bytes with an
	// optional unit B, KiB, MiB, GiB or TiB ("512MiB", "2GiB").
	MemoryLimit string
	// MinHeap is the heap floor: "off", or a size in MemoryLimit's syntax, at least 4MiB and at most 1TiB.
	// While the percent would set the next heap target below it, a hook run once per collection raises the
	// percent so that the target is the floor (never above half the soft memory limit); a live heap whose
	// target at the percent reaches the floor (at 100: half the floor or more) gets the percent alone.
	// Default DefaultMinHeap. Ignored when the percent is -1 or comes from GOGC.
	MinHeap string
}

// DefaultMinHeap is -gc-min-heap's default (docs/benchmarks.md, "The collector, third pass").
const DefaultMinHeap = "256MiB"

// Default returns the defaults documented on Config.
func Default() Config {
	return Config{Percent: DefaultPercent, MemoryLimit: "auto", MinHeap: DefaultMinHeap}
}

// Bind registers -gc-percent and -memory-limit on fs, writing into c (whose values are the defaults).
func (c *Config) Bind(fs *flag.FlagSet) {
	fs.IntVar(&c.Percent, "gc-percent", c.Percent,
		"Go collector: run once the heap grew by this percent of the live heap (-1: only near the memory limit); the GOGC environment variable wins")
	fs.StringVar(&c.MemoryLimit, "memory-limit", c.MemoryLimit,
		"Go collector's soft memory limit: auto (3/4 of the machine's or cgroup's memory), off, or a size such as 512MiB or 2GiB; the GOMEMLIMIT environment variable wins")
	fs.StringVar(&c.MinHeap, "gc-min-heap", c.MinHeap,
		"Go collector's heap floor: let the heap grow to this size before a collection even when the live heap is small (at most half the memory limit); off, or a size such as 256MiB; unused when GOGC is set or gc-percent is -1")
}

// Plan is what Decide decided: which settings to apply, and where each effective one comes from.
type Plan struct {
	SetPercent bool   // apply Percent with debug.SetGCPercent
	Percent    int    // the effective percent when SetPercent (-1 = off)
	PercentBy  string // "flag" or "GOGC" (the environment's, applied by the runtime)
	SetLimit   bool   // apply Limit with debug.SetMemoryLimit
	Limit      int64  // bytes, when SetLimit; 0 with LimitBy "flag" means no limit
	LimitBy    string // "flag" or "GOMEMLIMIT"
	MinHeap    int64  // the heap floor in bytes for Start; 0: none (off, GOGC set, or percent -1)
}

// Decide turns c into a Plan. getenv looks up an environment variable (os.LookupEnv); memTotal is the
// machine's memory in bytes for "auto" (MemTotal; 0 when unknown). A variable set to a non-empty value
// wins over its flag.
func Decide(c Config, getenv func(string) (string, bool), memTotal int64) (Plan, error) {
	var p Plan
	if c.Percent != -1 && (c.Percent < 1 || c.Percent > 1000000) {
		return p, fmt.Errorf("gctune: gc-percent %d: want 1..1000000, or -1 (off until the memory limit)", c.Percent)
	}
	limit, err := parseLimit(c.MemoryLimit, memTotal)
	if err != nil {
		return p, err
	}
	minHeap, err := parseMinHeap(c.MinHeap)
	if err != nil {
		return p, err
	}
	if v, ok := getenv("GOGC"); ok && v != "" {
		p.PercentBy = "GOGC"
	} else {
		p.SetPercent, p.Percent, p.PercentBy = true, c.Percent, "flag"
	}
	if v, ok := getenv("GOMEMLIMIT"); ok && v != "" {
		p.LimitBy = "GOMEMLIMIT"
	} else {
		p.SetLimit, p.Limit, p.LimitBy = true, limit, "flag"
	}
	if p.SetPercent && p.Percent == -1 && p.SetLimit && p.Limit == 0 {
		// NB: with GOMEMLIMIT set the runtime has a limit; without one the heap would grow without bound.
		return Plan{}, fmt.Errorf("gctune: gc-percent -1 needs a memory limit (memory-limit %q sets none)", c.MemoryLimit)
	}
	if p.SetPercent && p.Percent > 0 {
		p.MinHeap = minHeap
	}
	return p, nil
}

// Apply applies p to this process's runtime.
func (p Plan) Apply() {
	if p.SetPercent {
		debug.SetGCPercent(p.Percent)
	}
	if p.SetLimit {
		l := p.Limit
		if l == 0 {
			l = math.MaxInt64 // the runtime's "no limit"
		}
		debug.SetMemoryLimit(l)
	}
}

// Attrs describes the effective settings for a log line: the percent and limit in force (read back from
// the runtime, so the environment's count too), where each comes from, and the heap floor Start keeps
// (after the memory limit's cap; "off" when there is none). Call it before Start: the percent read back is
// the tuner's once it runs.
func (p Plan) Attrs() []any {
	pct := debug.SetGCPercent(-1)
	debug.SetGCPercent(pct)
	limit := debug.SetMemoryLimit(-1) // NB: a negative value reads the limit without changing it
	ls := "off"
	if limit != math.MaxInt64 {
		ls = strconv.FormatInt(limit>>20, 10) + "MiB"
	}
	ps := strconv.Itoa(pct)
	if pct < 0 {
		ps = "off"
	}
	fs := "off"
	if f := capFloor(p.MinHeap, runtimeLimit(limit)); f > 0 {
		fs = strconv.FormatInt(f>>20, 10) + "MiB"
	}
	return []any{"gc_percent", ps, "gc_percent_from", p.PercentBy, "memory_limit", ls, "memory_limit_from", p.LimitBy,
		"gc_min_heap", fs}
}

var units = []struct {
	suffix string
	shift  uint
}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

// parseMinHeap reads -gc-min-heap: off (0), or a size from 4MiB (the runtime's own smallest heap target) to
// 1TiB.
func parseMinHeap(s string) (int64, error) {
	if s == "off" {
		return 0, nil
	}
	n, ok := parseSize(s)
	if !ok || n < minHeap || n > 1<<40 {
		return 0, fmt.Errorf("gctune: gc-min-heap %q: want off or a size from 4MiB to 1TiB such as 256MiB", s)
	}
	return n, nil
}

// parseSize reads a size in GOMEMLIMIT's syntax: a positive number of bytes with an optional unit B, KiB,
// MiB, GiB or TiB.
func parseSize(s string) (int64, bool) {
	num, shift := s, uint(0)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, shift = strings.TrimSuffix(s, u.suffix), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 1 || n > math.MaxInt64>>shift {
		return 0, false
	}
	return n << shift, true
}

// parseLimit reads -memory-limit: auto, off, or a size in GOMEMLIMIT's syntax. 0 means no limit.
func parseLimit(s string, memTotal int64) (int64, error) {
	switch s {
	case "auto":
		if memTotal <= 0 {
			return 0, nil
		}
		return memTotal / autoDen * autoNum, nil
	case "off":
		return 0, nil
	}
	l, ok := parseSize(s)
	if !ok {
		return 0, fmt.Errorf("gctune: memory-limit %q: want auto, off or a size such as 512MiB or 2GiB", s)
	}
	if l >= 64<<20 {
		return l, nil
	}
	return 0, fmt.Errorf("gctune: memory-limit %q: want at least 64MiB (a node idles at about 24 MB)", s)
}

// MemTotal returns the memory this process may use, in bytes: the smaller of the machine's MemTotal
// (/proc/meminfo) and the cgroup's limit (v2 memory.max, v1 memory.limit_in_bytes), whichever can be
// read; 0 when none can.
func MemTotal() int64 {
	total := memInfoTotal("/proc/meminfo")
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		if l := cgroupLimit(f); l > 0 && (total == 0 || l < total) {
			total = l
		}
	}
	return total
}

// memInfoTotal reads the MemTotal line of a /proc/meminfo file; 0 when it cannot.
func memInfoTotal(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := parseMemInfoLine(sc.Text())
		if ok {
			return v
		}
	}
	return 0
}

// parseMemInfoLine parses "MemTotal:       24683520 kB".
func parseMemInfoLine(line string) (int64, bool) {
	rest, ok := strings.CutPrefix(line, "MemTotal:")
	if !ok {
		return 0, false
	}
	f := strings.Fields(rest)
	if len(f) != 2 || f[1] != "kB" {
		return 0, false
	}
	kb, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || kb <= 0 || kb > math.MaxInt64>>10 {
		return 0, false
	}
	return kb << 10, true
}

// cgroupLimit reads a cgroup memory limit file; 0 when it cannot or there is no limit ("max", or v1's
// huge "unlimited" value).
func cgroupLimit(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return parseCgroupLimit(string(b))
}

func parseCgroupLimit(s string) int64 {
	s = strings.TrimSpace(s)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= 1<<62 {
		return 0 // "max", garbage, or v1's page-rounded MaxInt64
	}
	return n
}
