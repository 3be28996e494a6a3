package bench

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sum is a summary of one round with the default load.
func sum(scenario, target string, ops float64, p50, p99, p999 time.Duration) Summary {
	return Summary{Scenario: scenario, Target: target, Load: map[string]string{"conns": "50", "rate": "0"},
		OpsPerSec: ops, P50: p50, P99: p99, P999: p999, Stop: StopDuration}
}

func ms(x float64) time.Duration { return time.Duration(x * float64(time.Millisecond)) }

func fp(x float64) *float64 { return &x }

func TestBuildTable(t *testing.T) {
	withLoad := func(s Summary, k, v string) Summary {
		l := map[string]string{}
		for kk, vv := range s.Load {
			l[kk] = vv
		}
		l[k] = v
		s.Load = l
		return s
	}
	withErrs := func(s Summary, n uint64, stop string) Summary { s.Errors, s.Stop = n, stop; return s }
	withCmd := func(s Summary, argv ...string) Summary { s.Command = argv; return s }
	tests := []struct {
		name     string
		sums     []Summary
		want     []TableRow
		commands []string
		notes    []string
		err      string // substring of the error; "" = none
	}{
		{name: "no reports", err: "no reports"},
		{
			name: "one round each",
			sums: []Summary{sum("s", "gokai", 50, ms(2), ms(8), ms(12)), sum("s", "memcached", 100, ms(1), ms(4), ms(8))},
			want: []TableRow{
				{Scenario: "s", Target: "memcached", Rounds: 1, OpsPerSec: 100, P50: ms(1), P99: ms(4), P999: ms(8), OpsRatio: fp(1), P999Ratio: fp(1)},
				{Scenario: "s", Target: "gokai", Rounds: 1, OpsPerSec: 50, P50: ms(2), P99: ms(8), P999: ms(12), OpsRatio: fp(0.5), P999Ratio: fp(1.5)},
			},
		},
		{
			name: "medians over three alternating rounds, each quantile on its own",
			sums: []Summary{
				sum("s", "gokai", 30, ms(3), ms(9), ms(30)), sum("s", "memcached", 100, ms(1), ms(5), ms(10)),
				sum("s", "memcached", 80, ms(2), ms(4), ms(6)), sum("s", "gokai", 20, ms(1), ms(7), ms(12)),
				sum("s", "gokai", 40, ms(2), ms(8), ms(9)), sum("s", "memcached", 120, ms(3), ms(3), ms(8)),
			},
			want: []TableRow{
				{Scenario: "s", Target: "memcached", Rounds: 3, OpsPerSec: 100, P50: ms(2), P99: ms(4), P999: ms(8), OpsRatio: fp(1), P999Ratio: fp(1)},
				{Scenario: "s", Target: "gokai", Rounds: 3, OpsPerSec: 30, P50: ms(2), P99: ms(8), P999: ms(12), OpsRatio: fp(0.3), P999Ratio: fp(1.5)},
			},
		},
		{
			name: "even rounds: mean of the middle two; errors add up",
			sums: []Summary{
				withErrs(sum("s", "gokai", 10, ms(1), ms(2), ms(4)), 2, StopDuration), withErrs(sum("s", "gokai", 30, ms(3), ms(4), ms(8)), 3, StopOps),
				sum("s", "memcached", 40, ms(1), ms(1), ms(4)), sum("s", "memcached", 40, ms(1), ms(1), ms(2)),
			},
			want: []TableRow{
				{Scenario: "s", Target: "memcached", Rounds: 2, OpsPerSec: 40, P50: ms(1), P99: ms(1), P999: ms(3), OpsRatio: fp(1), P999Ratio: fp(1)},
				{Scenario: "s", Target: "gokai", Rounds: 2, OpsPerSec: 20, P50: ms(2), P99: ms(3), P999: ms(6), Errors: 5, OpsRatio: fp(0.5), P999Ratio: fp(2)},
			},
		},
		{
			name: "scenarios in order of appearance, labels of either kind",
			sums: []Summary{
				sum("1 node", "gokai", 50, ms(1), ms(1), ms(1)), sum("3 nodes", "gokai", 25, ms(1), ms(1), ms(1)),
				sum("3 nodes", "memcached", 100, ms(1), ms(1), ms(1)), sum("1 node", "memcached", 100, ms(1), ms(1), ms(2)),
				withLoad(sum("open", "memcached", 10, ms(1), ms(1), ms(1)), "rate", "10000"),
			},
			want: []TableRow{
				{Scenario: "1 node", Target: "memcached", Rounds: 1, OpsPerSec: 100, P50: ms(1), P99: ms(1), P999: ms(2), OpsRatio: fp(1), P999Ratio: fp(1)},
				{Scenario: "1 node", Target: "gokai", Rounds: 1, OpsPerSec: 50, P50: ms(1), P99: ms(1), P999: ms(1), OpsRatio: fp(0.5), P999Ratio: fp(0.5)},
				{Scenario: "3 nodes", Target: "memcached", Rounds: 1, OpsPerSec: 100, P50: ms(1), P99: ms(1), P999: ms(1), OpsRatio: fp(1), P999Ratio: fp(1)},
				{Scenario: "3 nodes", Target: "gokai", Rounds: 1, OpsPerSec: 25, P50: ms(1), P99: ms(1), P999: ms(1), OpsRatio: fp(0.25), P999Ratio: fp(1)},
				{Scenario: "open", Target: "memcached", Rounds: 1, OpsPerSec: 10, P50: ms(1), P99: ms(1), P999: ms(1), OpsRatio: fp(1), P999Ratio: fp(1)},
			},
		},
		{
			name: "no baseline in the scenario: no ratios",
			sums: []Summary{sum("s", "gokai", 50, ms(1), ms(2), ms(3)), sum("s", "127.0.0.1:1", 60, ms(1), ms(2), ms(3))},
			want: []TableRow{
				{Scenario: "s", Target: "gokai", Rounds: 1, OpsPerSec: 50, P50: ms(1), P99: ms(2), P999: ms(3)},
				{Scenario: "s", Target: "127.0.0.1:1", Rounds: 1, OpsPerSec: 60, P50: ms(1), P99: ms(2), P999: ms(3)},
			},
		},
		{
			name: "a zero baseline gives no ratio, a zero target gives 0",
			sums: []Summary{sum("s", "memcached", 0, 0, 0, 0), sum("s", "gokai", 0, ms(1), ms(1), ms(1)),
				sum("t", "memcached", 10, ms(1), ms(1), ms(1)), sum("t", "gokai", 0, 0, 0, 0)},
			want: []TableRow{
				{Scenario: "s", Target: "memcached", Rounds: 1},
				{Scenario: "s", Target: "gokai", Rounds: 1, P50: ms(1), P99: ms(1), P999: ms(1)},
				{Scenario: "t", Target: "memcached", Rounds: 1, OpsPerSec: 10, P50: ms(1), P99: ms(1), P999: ms(1), OpsRatio: fp(1), P999Ratio: fp(1)},
				{Scenario: "t", Target: "gokai", Rounds: 1, OpsRatio: fp(0), P999Ratio: fp(0)},
			},
		},
		{
			name: "targets of a scenario ran different loads",
			sums: []Summary{sum("s", "memcached", 1, 0, 0, 0), withLoad(sum("s", "gokai", 1, 0, 0, 0), "conns", "10")},
			err:  `scenario "s": gokai ran another load than memcached: conns 50 vs 10`,
		},
		{
			name: "a field only one load has",
			sums: []Summary{sum("s", "memcached", 1, 0, 0, 0), withLoad(sum("s", "gokai", 1, 0, 0, 0), "pipeline", "4")},
			err:  "pipeline (none) vs 4",
		},
		{
			name: "commands without -json, deduplicated and quoted; odd stops noted",
			sums: []Summary{
				withCmd(sum("a b", "memcached", 1, 0, 0, 0), "gokai", "bench", "-scenario", "a b", "-json", "/tmp/x/1.json", "-keys", "10"),
				withCmd(sum("a b", "memcached", 1, 0, 0, 0), "gokai", "bench", "-scenario", "a b", "-json", "/tmp/x/2.json", "-keys", "10"),
				withErrs(withCmd(sum("a b", "gokai", 1, 0, 0, 0), "gokai", "bench", "-scenario=a b", "--json=/tmp/3.json", "-target", "it's"), 1, StopFailed),
			},
			want: []TableRow{
				{Scenario: "a b", Target: "memcached", Rounds: 2, OpsPerSec: 1, OpsRatio: fp(1)},
				{Scenario: "a b", Target: "gokai", Rounds: 1, OpsPerSec: 1, Errors: 1, OpsRatio: fp(1)},
			},
			commands: []string{"gokai bench -scenario 'a b' -keys 10", `gokai bench '-scenario=a b' -target 'it'\''s'`},
			notes:    []string{`a b, gokai: a round stopped by "failed"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := BuildTable(tt.sums, "memcached")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !rowsEqual(tab.Rows, tt.want) {
				t.Errorf("rows:\n got %s\nwant %s", showRows(tab.Rows), showRows(tt.want))
			}
			if !reflect.DeepEqual(tab.Commands, tt.commands) {
				t.Errorf("commands = %q, want %q", tab.Commands, tt.commands)
			}
			if !reflect.DeepEqual(tab.Notes, tt.notes) {
				t.Errorf("notes = %q, want %q", tab.Notes, tt.notes)
			}
		})
	}
}

// rowsEqual compares rows with ratios equal to 1e-9.
func rowsEqual(a, b []TableRow) bool {
	if len(a) != len(b) {
		return false
	}
	near := func(x, y *float64) bool {
		if x == nil || y == nil {
			return x == y
		}
		d := *x - *y
		return d < 1e-9 && d > -1e-9
	}
	for i := range a {
		x, y := a[i], b[i]
		if !near(x.OpsRatio, y.OpsRatio) || !near(x.P999Ratio, y.P999Ratio) {
			return false
		}
		x.OpsRatio, x.P999Ratio, y.OpsRatio, y.P999Ratio = nil, nil, nil, nil
		if x != y {
			return false
		}
	}
	return true
}

func showRows(rows []TableRow) string {
	var b strings.Builder
	r := func(p *float64) any {
		if p == nil {
			return nil
		}
		return *p
	}
	for _, row := range rows {
		b.WriteString("\n  ")
		raw, _ := json.Marshal(row)
		b.Write(raw)
		b.WriteString(" ratios ")
		raw, _ = json.Marshal([]any{r(row.OpsRatio), r(row.P999Ratio)})
		b.Write(raw)
	}
	return b.String()
}

func TestTableMarkdown(t *testing.T) {
	sums := []Summary{
		sum("1 node | closed", "gokai", 17901.4, 2470*time.Microsecond, ms(8.68), ms(12.1)),
		sum("1 node | closed", "memcached", 76612, 372*time.Microsecond, ms(4.15), ms(7.09)),
		sum("", "127.0.0.1:1", 5, time.Microsecond, 2*time.Microsecond, 900*time.Nanosecond),
	}
	sums[0].Command = []string{"gokai", "bench", "-target", "gokai", "-json", "out.json"}
	tab, err := BuildTable(sums, "memcached")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := tab.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	want := `| scenario | target | rounds | ops/s | p50 | p99 | p99.9 | errors | ops/s ratio | p99.9 ratio |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| 1 node \| closed | memcached | 1 | 76612 | 372µs | 4.15ms | 7.09ms | 0 | 1.00 | 1.00 |
| 1 node \| closed | gokai | 1 | 17901 | 2.47ms | 8.68ms | 12.1ms | 0 | 0.23 | 1.71 |
| - | 127.0.0.1:1 | 1 | 5 | 1µs | 2µs | 900ns | 0 | - | - |

Medians over rounds. Ratios: a target's median over memcached's in the same scenario (ops/s: higher is better; p99.9: lower is better).

Commands:
- ` + "`gokai bench -target gokai`" + `
`
	if b.String() != want {
		t.Errorf("markdown:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestParseSummary reads back what Report.MarshalJSON writes.
func TestParseSummary(t *testing.T) {
	cfg := Default()
	cfg.Addr, cfg.Scenario, cfg.Target = "127.0.0.1:21211", "1 node, closed loop", "gokai"
	rep := Report{Config: cfg, Elapsed: 2 * time.Second, Stop: StopDuration, OpsPerSec: 1234.5,
		Counts:  Counts{Ops: 2469, Gets: 2000, Sets: 469, Errors: 3},
		Command: []string{"gokai", "bench", "-target", "gokai"}}
	for i := 1; i <= 1000; i++ {
		rep.Latency.Record(time.Duration(i) * time.Microsecond)
	}
	raw, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSummary(raw)
	if err != nil {
		t.Fatal(err)
	}
	// The histogram's quantiles are exact to its bucket width; the report rounds to nanoseconds.
	h := &rep.Latency
	if s.P50 != h.Quantile(0.5) || s.P99 != h.Quantile(0.99) || s.P999 != h.Quantile(0.999) {
		t.Errorf("quantiles %v %v %v, want %v %v %v", s.P50, s.P99, s.P999, h.Quantile(0.5), h.Quantile(0.99), h.Quantile(0.999))
	}
	if s.Scenario != cfg.Scenario || s.Target != "gokai" || s.OpsPerSec != 1234.5 || s.Errors != 3 || s.Stop != StopDuration ||
		!reflect.DeepEqual(s.Command, rep.Command) {
		t.Errorf("summary %+v", s)
	}
	if _, ok := s.Load["addr"]; ok || s.Load["conns"] != "50" || s.Load["duration"] != `"10s"` || s.Load["scenario"] != "" {
		t.Errorf("load %v: want the config without addr and labels", s.Load)
	}

	// Another target of the same load has the same Load; an unlabelled run is named by its address.
	cfg.Addr, cfg.Scenario, cfg.Target = "127.0.0.1:21212", "", ""
	rep.Config, rep.Command = cfg, nil
	raw, _ = json.Marshal(rep)
	s2, err := ParseSummary(raw)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Target != "127.0.0.1:21212" || s2.Command != nil || !reflect.DeepEqual(s.Load, s2.Load) {
		t.Errorf("unlabelled summary %+v, load %v vs %v", s2, s2.Load, s.Load)
	}

	for _, bad := range []string{``, `[]`, `{}`, `{"config":{"protocol":"memcache"}}`,
		`{"config":{"protocol":"memcache"},"results":{"ops":1}}`, `{"config":{},"results":{"latency_us":{"all":{}}}}`} {
		if _, err := ParseSummary([]byte(bad)); !errors.Is(err, errNotReport) {
			t.Errorf("ParseSummary(%q) = %v, want errNotReport", bad, err)
		}
	}
}

func TestConfigValidateLabels(t *testing.T) {
	tests := []struct {
		scenario, target string
		err              string // substring; "" = valid
	}{
		{"1 node, closed loop", "gokai", ""},
		{"3 nœuds | ouvert", "", ""},
		{strings.Repeat("s", maxLabel), "", ""},
		{strings.Repeat("s", maxLabel+1), "", "scenario"},
		{"a\nb", "", "scenario \"a\\nb\": control character U+000A"},
		{"", "x\x7f", "target"},
		{"", "\xff", "target \"\\xff\": not UTF-8"},
	}
	for _, tt := range tests {
		cfg := Default()
		cfg.Scenario, cfg.Target = tt.scenario, tt.target
		err := cfg.Validate()
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("scenario %q target %q: err = %v, want %q", tt.scenario, tt.target, err, tt.err)
		}
	}
}
