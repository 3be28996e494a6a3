package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// Counts are the operation counters of a run. Ops = Gets + Sets; every get ends as a hit, a miss or an error.
type Counts struct {
	Ops        uint64 `json:"ops"`
	Gets       uint64 `json:"gets"`
	Sets       uint64 `json:"sets"`
	Hits       uint64 `json:"hits"`
	Misses     uint64 `json:"misses"`
	Errors     uint64 `json:"errors"`     // unexpected replies and operations lost to I/O errors
	Reconnects uint64 `json:"reconnects"` // dials after a lost connection
	Unsent     uint64 `json:"unsent"`     // open loop: operations scheduled before the end but never sent (overload)
}

func (c *Counts) count(k OpKind) {
	c.Ops++
	if k == OpGet {
		c.Gets++
	} else {
		c.Sets++
	}
}

func (c *Counts) outcome(o Outcome) {
	switch o {
	case Hit:
		c.Hits++
	case Miss:
		c.Misses++
	}
}

func (c *Counts) add(o Counts) {
	c.Ops += o.Ops
	c.Gets += o.Gets
	c.Sets += o.Sets
	c.Hits += o.Hits
	c.Misses += o.Misses
	c.Errors += o.Errors
	c.Reconnects += o.Reconnects
	c.Unsent += o.Unsent
}

// Prefill describes the prefill phase.
type Prefill struct {
	Keys    int64         // keys set
	Elapsed time.Duration // wall time
}

// Report is the result of one run. Latencies cover every operation that got a reply (including error
// replies); in open loop they are measured from the intended send time.
type Report struct {
	Config  Config
	Start   time.Time     // when measuring began (after the prefill)
	Elapsed time.Duration // measuring wall time, until the last worker stopped
	Stop    string        // why the run ended: StopDuration, StopOps, StopHardCap, StopCanceled, StopFailed
	Counts
	OpsPerSec                       float64
	Latency, GetLatency, SetLatency Histogram
	Prefill                         *Prefill // nil without prefill
	WorkerErrors                    []string // workers that gave up, and why
	Command                         []string // the command line that made the run, when the caller sets it (JSON only)
}

// WriteTable writes the human-readable summary.
func (r *Report) WriteTable(w io.Writer) error {
	c := r.Config
	var b strings.Builder
	mode := "closed loop"
	if c.Rate > 0 {
		mode = fmt.Sprintf("open loop at %g ops/s", c.Rate)
	}
	fmt.Fprintf(&b, "gokai bench: %s %s, %d conns, pipeline %d, %s\n", c.Protocol, c.Addr, c.Conns, c.Pipeline, mode)
	dist := c.Dist
	if dist == "zipfian" {
		dist = fmt.Sprintf("zipfian s=%g", c.ZipfS)
	}
	fmt.Fprintf(&b, "workload: %.0f%% gets, %d keys %s, %d B values, seed %d\n", 100*c.GetRatio, c.Keys, dist, c.ValueSize, c.Seed)
	if p := r.Prefill; p != nil {
		fmt.Fprintf(&b, "prefill: %d keys in %v\n", p.Keys, p.Elapsed.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "ran %v, stopped by %s\n\n", r.Elapsed.Round(time.Millisecond), r.Stop)

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\tcount\tops/s\tmean\tp50\tp90\tp99\tp99.9\tmax\t")
	secs := r.Elapsed.Seconds()
	for _, row := range []struct {
		name string
		n    uint64
		h    *Histogram
	}{{"all", r.Ops, &r.Latency}, {"get", r.Gets, &r.GetLatency}, {"set", r.Sets, &r.SetLatency}} {
		rate := 0.0
		if secs > 0 {
			rate = float64(row.n) / secs
		}
		h := row.h
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t\n", row.name, row.n, rate, fmtLatency(h.Mean()),
			fmtLatency(h.Quantile(0.5)), fmtLatency(h.Quantile(0.9)), fmtLatency(h.Quantile(0.99)),
			fmtLatency(h.Quantile(0.999)), fmtLatency(h.Max()))
	}
	tw.Flush()
	hitRate := 0.0
	if r.Hits+r.Misses > 0 {
		hitRate = 100 * float64(r.Hits) / float64(r.Hits+r.Misses)
	}
	fmt.Fprintf(&b, "\nhits %d, misses %d (%.1f%% hit), errors %d, reconnects %d", r.Hits, r.Misses, hitRate, r.Errors, r.Reconnects)
	if c.Rate > 0 {
		fmt.Fprintf(&b, ", unsent %d (scheduled, never sent: the server fell behind the rate)", r.Unsent)
	}
	b.WriteString("\n")
	for _, e := range r.WorkerErrors {
		fmt.Fprintf(&b, "worker gave up: %s\n", e)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fmtLatency prints a latency with three significant digits in a unit that suits it.
func fmtLatency(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.3gµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.3gms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.3gs", d.Seconds())
}

// The JSON report: {"config": ..., "results": ..., "command": [...]}; durations as Go duration strings in the
// config and as seconds or microseconds (named so) in the results; "command" (the argv that made the run) only
// when the caller set it. Field names are append-only.
type (
	jsonReport struct {
		Config  jsonConfig  `json:"config"`
		Results jsonResults `json:"results"`
		Command []string    `json:"command,omitempty"`
	}
	jsonConfig struct {
		Protocol       string  `json:"protocol"`
		Addr           string  `json:"addr"`
		Conns          int     `json:"conns"`
		Pipeline       int     `json:"pipeline"`
		Rate           float64 `json:"rate"`
		GetRatio       float64 `json:"get_ratio"`
		Keys           int     `json:"keys"`
		KeyPrefix      string  `json:"key_prefix"`
		Dist           string  `json:"dist"`
		ZipfS          float64 `json:"zipf_s"`
		ValueSize      int     `json:"value_size"`
		Duration       string  `json:"duration"`
		Ops            int64   `json:"ops"`
		Seed           uint64  `json:"seed"`
		Prefill        bool    `json:"prefill"`
		PrefillTimeout string  `json:"prefill_timeout"`
		Scenario       string  `json:"scenario,omitempty"`
		Target         string  `json:"target,omitempty"`
	}
	jsonResults struct {
		Start     time.Time `json:"start"`
		ElapsedS  float64   `json:"elapsed_s"`
		Stop      string    `json:"stop"`
		OpsPerSec float64   `json:"ops_per_sec"`
		Counts
		LatencyUS    map[string]jsonLatency `json:"latency_us"`
		Prefill      *jsonPrefill           `json:"prefill,omitempty"`
		WorkerErrors []string               `json:"worker_errors,omitempty"`
	}
	jsonLatency struct {
		Count uint64  `json:"count"`
		Min   float64 `json:"min"`
		Mean  float64 `json:"mean"`
		P50   float64 `json:"p50"`
		P90   float64 `json:"p90"`
		P99   float64 `json:"p99"`
		P999  float64 `json:"p99.9"`
		Max   float64 `json:"max"`
	}
	jsonPrefill struct {
		Keys     int64   `json:"keys"`
		ElapsedS float64 `json:"elapsed_s"`
	}
)

// MarshalJSON encodes the report as {"config": ..., "results": ..., "command": ...}.
func (r Report) MarshalJSON() ([]byte, error) {
	c := r.Config
	out := jsonReport{
		Config: jsonConfig{Protocol: c.Protocol, Addr: c.Addr, Conns: c.Conns, Pipeline: c.Pipeline, Rate: c.Rate,
			GetRatio: c.GetRatio, Keys: c.Keys, KeyPrefix: c.KeyPrefix, Dist: c.Dist, ZipfS: c.ZipfS,
			ValueSize: c.ValueSize, Duration: c.Duration.String(), Ops: c.Ops, Seed: c.Seed, Prefill: c.Prefill,
			PrefillTimeout: c.PrefillTimeout.String(), Scenario: c.Scenario, Target: c.Target},
		Results: jsonResults{Start: r.Start, ElapsedS: r.Elapsed.Seconds(), Stop: r.Stop, OpsPerSec: r.OpsPerSec,
			Counts: r.Counts, WorkerErrors: r.WorkerErrors, LatencyUS: map[string]jsonLatency{
				"all": latencyUS(&r.Latency), "get": latencyUS(&r.GetLatency), "set": latencyUS(&r.SetLatency)}},
		Command: r.Command,
	}
	if p := r.Prefill; p != nil {
		out.Results.Prefill = &jsonPrefill{Keys: p.Keys, ElapsedS: p.Elapsed.Seconds()}
	}
	return json.Marshal(out)
}

func latencyUS(h *Histogram) jsonLatency {
	us := func(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Microsecond)*1000) / 1000 }
	return jsonLatency{Count: h.Count(), Min: us(h.Min()), Mean: us(h.Mean()), P50: us(h.Quantile(0.5)),
		P90: us(h.Quantile(0.9)), P99: us(h.Quantile(0.99)), P999: us(h.Quantile(0.999)), Max: us(h.Max())}
}
