package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gokai-kv/gokai/kv"
	"github.com/gokai-kv/gokai/node"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "gokai:", err)
		}
		os.Exit(exitCode(err))
	}
}

const usage = `usage: gokai <command> [flags]

commands:
  start     run a node (gokai start -h for its settings)
  bench     load generator (memcache text, binary or meta; msgpack-RPC)
  get       read a key: every sibling and the causal context (gokai get -h)
  put       write a key over a context from get, or as a new sibling, or --blind (gokai put -h)
  delete    delete a key: over a context from get, or what a read finds, or --blind
  status    a node's version, ping latency and main counters
  ring      which node owns each partition
  members   the cluster's nodes
  cluster   join|leave|plan|commit|clear|status: change the cluster (gokai cluster help)
  transfers ownership transfers in progress on every node (--watch to follow)
  aae       status: active anti-entropy per partition (hash trees, exchanges, repairs)
  certs     create-ca|create-node|create-client|gossip-key: certificates for a secure cluster
  version   print the version

client commands (get put delete status ring members cluster transfers aae) take --addr (default 127.0.0.1:11011 or
$GOKAI_ADDR), --timeout, --json, and --certs-dir/--user for a node with -rpc-tls (an operator's certificate
for cluster changes); they exit 0 ok, 1 not found, 2 usage, 3 server or connection error.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command")
	}
	switch args[0] {
	case "start":
		return start(ctx, args[1:], stdout, stderr)
	case "bench":
		return benchCmd(ctx, args[1:], stdout, stderr)
	case "get":
		return cliGet(ctx, args[1:], stdout, stderr)
	case "put":
		return cliPut(ctx, args[1:], stdout, stderr)
	case "delete":
		return cliDelete(ctx, args[1:], stdout, stderr)
	case "status":
		return cliStatus(ctx, args[1:], stdout, stderr)
	case "ring":
		return cliRing(ctx, args[1:], stdout, stderr)
	case "members":
		return cliMembers(ctx, args[1:], stdout, stderr)
	case "cluster":
		return cliCluster(ctx, args[1:], stdout, stderr)
	case "transfers":
		return cliTransfers(ctx, args[1:], stdout, stderr)
	case "aae":
		return cliAAE(ctx, args[1:], stdout, stderr)
	case "certs":
		return certsCmd(ctx, args[1:], stdout, stderr)
	case "version", "-v", "--version":
		fmt.Fprintln(stdout, "gokai", node.Version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

// newLogger makes the process logger; level was validated with the rest of the config.
func newLogger(w io.Writer, level string, json bool) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: l}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func start(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, kvOpts := node.Default(), kv.DefaultOptions()
	fs := flag.NewFlagSet("gokai start", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.Bind(fs)
	kvOpts.Bind(fs)
	configPath := fs.String("config", "", "config file (lines of name = value, names as these flags)")
	stopTimeout := fs.Duration("shutdown-timeout", 30*time.Second, "how long a graceful stop may take")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("start: unexpected arguments %s", strings.Join(fs.Args(), " "))
	}
	if *configPath != "" {
		if err := node.LoadFile(fs, *configPath); err != nil {
			return err
		}
	}
	logger := newLogger(stderr, cfg.LogLevel, cfg.LogJSON)
	n, err := node.New(cfg, logger, nil, node.WithService(kv.Service(kvOpts)))
	if err != nil {
		return err
	}
	logger.Info("gokai starting", append([]any{"version", node.Version}, node.Attrs(fs)...)...)
	if err := n.Start(ctx); err != nil {
		return err
	}
	logger.Info("gokai ready", "memcache", n.MemcacheAddr(), "rpc", n.RPCAddr(), "transport", n.TransportAddr())
	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("gokai stopping: signal received")
	case runErr = <-n.Done():
		logger.Error("gokai stopping: unrecoverable failure", "err", runErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), *stopTimeout)
	defer cancel()
	if err := n.Stop(sctx); err != nil {
		logger.Error("gokai stop", "err", err)
		return errors.Join(runErr, err)
	}
	logger.Info("gokai stopped")
	return runErr
}
