package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// The comparison table: JSON reports of several runs (rounds of the same load against several targets, in
// several scenarios) reduced to one markdown table of medians and ratios against a baseline target. Pure:
// ParseSummary decodes, BuildTable computes, WriteMarkdown prints.

// Summary is what the comparison table needs from one JSON report (gokai bench -json): its labels, the load it
// ran and its headline results.
type Summary struct {
	Scenario       string            // config.scenario; "" when the run was not labelled
	Target         string            // config.target, or config.addr when the run was not labelled
	Load           map[string]string // the config without addr and labels, as raw JSON values by field name
	Command        []string          // the argv that made the run; nil when not recorded
	OpsPerSec      float64
	P50, P99, P999 time.Duration // over all operations
	Errors         uint64
	Stop           string
}

// errNotReport is returned by ParseSummary for JSON that is not a gokai bench report.
var errNotReport = errors.New("bench: not a gokai bench JSON report")

// ParseSummary decodes a JSON report written by `gokai bench -json`.
func ParseSummary(data []byte) (Summary, error) {
	var rep struct {
		Config  *jsonConfig  `json:"config"`
		Results *jsonResults `json:"results"`
		Command []string     `json:"command"`
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		return Summary{}, fmt.Errorf("%w: %v", errNotReport, err)
	}
	if rep.Config == nil || rep.Results == nil || rep.Config.Protocol == "" {
		return Summary{}, fmt.Errorf("%w: no config.protocol or no results", errNotReport)
	}
	all, ok := rep.Results.LatencyUS["all"]
	if !ok {
		return Summary{}, fmt.Errorf("%w: no results.latency_us.all", errNotReport)
	}
	var raw struct {
		Config map[string]json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return Summary{}, fmt.Errorf("%w: %v", errNotReport, err)
	}
	load := make(map[string]string, len(raw.Config))
	for k, v := range raw.Config {
		switch k {
		case "addr", "scenario", "target":
		default:
			load[k] = string(v)
		}
	}
	c, r := rep.Config, rep.Results
	s := Summary{Scenario: c.Scenario, Target: c.Target, Load: load, Command: rep.Command, OpsPerSec: r.OpsPerSec,
		P50: fromUS(all.P50), P99: fromUS(all.P99), P999: fromUS(all.P999), Errors: r.Errors, Stop: r.Stop}
	if s.Target == "" {
		s.Target = c.Addr
	}
	return s, nil
}

// fromUS converts the report's microseconds back to a duration (the report rounds them to nanoseconds).
func fromUS(us float64) time.Duration { return time.Duration(math.Round(us * 1000)) }

// TableRow is one target in one scenario, over its rounds.
type TableRow struct {
	Scenario, Target string
	Rounds           int
	OpsPerSec        float64       // median over the rounds
	P50, P99, P999   time.Duration // medians over the rounds, each on its own
	Errors           uint64        // sum over the rounds
	// Ratios of this row's medians over the baseline's in the same scenario (1 on the baseline's own row);
	// nil when the scenario has no baseline row or the baseline's value is 0.
	OpsRatio, P999Ratio *float64
}

// Table is the comparison of targets, scenario by scenario.
type Table struct {
	Baseline string     // the target the ratios divide by
	Rows     []TableRow // scenarios in order of first appearance; in each, the baseline first, then the others in order of appearance
	Commands []string   // distinct commands that made the runs (without -json FILE), shell-quoted, in order of appearance
	Notes    []string   // runs that did not end by their duration or op count
}

// BuildTable groups summaries by scenario and target and computes medians over rounds and ratios against
// baseline. Every target of a scenario must have run the same load (the config apart from address and labels).
func BuildTable(sums []Summary, baseline string) (*Table, error) {
	if len(sums) == 0 {
		return nil, errors.New("bench: table: no reports")
	}
	type key struct{ scenario, target string }
	var (
		scenarios []string
		targets   = map[string][]string{} // scenario -> targets in order of appearance
		groups    = map[key][]Summary{}
		first     = map[string]Summary{} // scenario -> its first summary, the load the others must match
		t         = &Table{Baseline: baseline}
		seenCmd   = map[string]bool{}
	)
	for _, s := range sums {
		f, ok := first[s.Scenario]
		if !ok {
			scenarios = append(scenarios, s.Scenario)
			first[s.Scenario] = s
		} else if diff := loadDiff(f.Load, s.Load); diff != "" {
			return nil, fmt.Errorf("bench: table: scenario %q: %s ran another load than %s: %s", s.Scenario, s.Target, f.Target, diff)
		}
		k := key{s.Scenario, s.Target}
		if _, ok := groups[k]; !ok {
			targets[s.Scenario] = append(targets[s.Scenario], s.Target)
		}
		groups[k] = append(groups[k], s)
		if s.Command != nil {
			if cmd := shellJoin(withoutFlag(s.Command, "json")); !seenCmd[cmd] {
				seenCmd[cmd] = true
				t.Commands = append(t.Commands, cmd)
			}
		}
		if s.Stop != StopDuration && s.Stop != StopOps {
			t.Notes = append(t.Notes, fmt.Sprintf("%s, %s: a round stopped by %q", label(s.Scenario), s.Target, s.Stop))
		}
	}
	for _, sc := range scenarios {
		ts := targets[sc]
		if i := slices.Index(ts, baseline); i > 0 {
			ts = append(append([]string{baseline}, ts[:i]...), ts[i+1:]...)
		}
		var base *TableRow
		for _, tg := range ts {
			row := summarize(sc, tg, groups[key{sc, tg}])
			if tg == baseline {
				base = &row
			}
			if base != nil {
				row.OpsRatio = ratio(row.OpsPerSec, base.OpsPerSec)
				row.P999Ratio = ratio(float64(row.P999), float64(base.P999))
			}
			t.Rows = append(t.Rows, row)
		}
	}
	return t, nil
}

// summarize reduces the rounds of one target in one scenario.
func summarize(scenario, target string, rounds []Summary) TableRow {
	row := TableRow{Scenario: scenario, Target: target, Rounds: len(rounds)}
	ops := make([]float64, len(rounds))
	var p50, p99, p999 []time.Duration
	for i, s := range rounds {
		ops[i] = s.OpsPerSec
		p50, p99, p999 = append(p50, s.P50), append(p99, s.P99), append(p999, s.P999)
		row.Errors += s.Errors
	}
	row.OpsPerSec, row.P50, row.P99, row.P999 = median(ops), median(p50), median(p99), median(p999)
	return row
}

// median of a non-empty slice (the mean of the two middle values for an even count); xs is sorted in place.
func median[T ~int64 | ~float64](xs []T) T {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

func ratio(x, base float64) *float64 {
	if base == 0 {
		return nil
	}
	r := x / base
	return &r
}

// loadDiff names the fields where two loads differ ("" when they agree).
func loadDiff(a, b map[string]string) string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var diffs []string
	for _, k := range keys {
		va, oka := a[k]
		vb, okb := b[k]
		if va != vb || oka != okb {
			diffs = append(diffs, fmt.Sprintf("%s %s vs %s", k, orNone(va, oka), orNone(vb, okb)))
		}
	}
	return strings.Join(diffs, ", ")
}

func orNone(v string, ok bool) string {
	if !ok {
		return "(none)"
	}
	return v
}

// withoutFlag drops -name VALUE, --name VALUE, -name=VALUE and --name=VALUE from argv.
func withoutFlag(argv []string, name string) []string {
	out := make([]string, 0, len(argv))
	for i := 0; i < len(argv); i++ {
		a := strings.TrimPrefix(strings.TrimPrefix(argv[i], "-"), "-")
		switch {
		case !strings.HasPrefix(argv[i], "-"):
		case a == name:
			i++ // and its value
			continue
		case strings.HasPrefix(a, name+"="):
			continue
		}
		out = append(out, argv[i])
	}
	return out
}

// shellJoin quotes each argument for a POSIX shell where it needs it.
func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,+@%", r)) {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}

// label shows an empty scenario as "-".
func label(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// WriteMarkdown prints the table, a line on how to read it, the commands and the notes.
func (t *Table) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	cell := func(s string) string { return strings.ReplaceAll(label(s), "|", `\|`) }
	fmtRatio := func(r *float64) string {
		if r == nil {
			return "-"
		}
		return fmt.Sprintf("%.2f", *r)
	}
	fmt.Fprintf(&b, "| scenario | target | rounds | ops/s | p50 | p99 | p99.9 | errors | ops/s ratio | p99.9 ratio |\n")
	fmt.Fprintf(&b, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range t.Rows {
		fmt.Fprintf(&b, "| %s | %s | %d | %.0f | %s | %s | %s | %d | %s | %s |\n", cell(r.Scenario), cell(r.Target),
			r.Rounds, r.OpsPerSec, fmtLatency(r.P50), fmtLatency(r.P99), fmtLatency(r.P999), r.Errors,
			fmtRatio(r.OpsRatio), fmtRatio(r.P999Ratio))
	}
	fmt.Fprintf(&b, "\nMedians over rounds. Ratios: a target's median over %s's in the same scenario "+
		"(ops/s: higher is better; p99.9: lower is better).\n", cell(t.Baseline))
	if len(t.Commands) > 0 {
		b.WriteString("\nCommands:\n")
		for _, c := range t.Commands {
			fmt.Fprintf(&b, "- `%s`\n", c)
		}
	}
	if len(t.Notes) > 0 {
		b.WriteString("\nNotes:\n")
		for _, n := range t.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
