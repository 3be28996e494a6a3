package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gokai-kv/gokai/bench"
)

// benchCmd is `gokai bench`: load-generate against a server and print the results (and a JSON report with
// -json FILE); `gokai bench table` compares JSON reports.
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "table" {
		return benchTable(args[1:], stdout, stderr)
	}
	cfg := bench.Default()
	fs := flag.NewFlagSet("gokai bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: gokai bench [flags]\n       gokai bench table [-baseline TARGET] FILE.json...\n\n"+
			"Drives a memcache (text, binary or meta commands) or msgpack-RPC server with gets and sets and reports\n"+
			"throughput and latency quantiles.\n"+
			"Closed loop by default; -rate makes it open loop (latency charged from the intended send time).\n"+
			"`gokai bench table` prints one markdown table of JSON reports labelled with -scenario and -target.\n\n")
		fs.PrintDefaults()
	}
	cfg.Bind(fs)
	jsonPath := fs.String("json", "", "also write a JSON report (config and results) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected arguments %s", strings.Join(fs.Args(), " "))
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	rep, runErr := bench.Run(ctx, cfg)
	if rep == nil {
		return runErr
	}
	if err := rep.WriteTable(stdout); err != nil {
		return err
	}
	if *jsonPath != "" {
		rep.Command = append([]string{"gokai", "bench"}, args...)
		raw, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonPath, append(raw, '\n'), 0o644); err != nil {
			return fmt.Errorf("bench: json report: %w", err)
		}
	}
	return runErr
}

// benchTable is `gokai bench table`: the JSON reports of several runs as one markdown table of medians over
// rounds and ratios against a baseline target, scenario by scenario.
func benchTable(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gokai bench table", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: gokai bench table [-baseline TARGET] FILE.json...\n\n"+
			"Prints one markdown table of `gokai bench -json` reports: per scenario and target (their -scenario and\n"+
			"-target labels) the median ops/s, p50, p99 and p99.9 over the rounds, and the ratios of ops/s and p99.9\n"+
			"over the baseline target's in the same scenario. The targets of a scenario must have run the same load.\n\n")
		fs.PrintDefaults()
	}
	baseline := fs.String("baseline", "memcached", "the target the ratios divide by")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return usageErr("bench table: no JSON reports given")
	}
	sums := make([]bench.Summary, 0, fs.NArg())
	for _, path := range fs.Args() {
		raw, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("bench table: %w", err)
		}
		s, err := bench.ParseSummary(raw)
		if err != nil {
			return fmt.Errorf("bench table: %s: %w", path, err)
		}
		sums = append(sums, s)
	}
	t, err := bench.BuildTable(sums, *baseline)
	if err != nil {
		return err
	}
	return t.WriteMarkdown(stdout)
}
