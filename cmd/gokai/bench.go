package main

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
// -json FILE).
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := bench.Default()
	fs := flag.NewFlagSet("gokai bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: gokai bench [flags]\n\n"+
			"Drives a memcache or msgpack-RPC server with gets and sets and reports throughput and latency quantiles.\n"+
			"Closed loop by default; -rate makes it open loop (latency charged from the intended send time).\n\n")
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
