package cli

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
	"text/tabwriter"
	"time"

	"github.com/gokai-kv/gokai/client"
	"github.com/gokai-kv/gokai/internal/gctune"
	"github.com/gokai-kv/gokai/kv"
	"github.com/gokai-kv/gokai/node"
	"github.com/gokai-kv/gokai/service"
)

// Program is one gokai binary: its name, the services its nodes run, and client commands of its own besides
// gokai's. cmd/gokai is Program{Name: "gokai", Services: []Service{KV}}.
type Program struct {
	// Name is the binary's name, in its usage and version lines.
	Name string
	// Services are what `start` runs on the node, in registration order (node.WithService). Every node of
	// a cluster must run the same services.
	Services []Service
	// Commands are client commands of the program's own (a service's methods); their names must not be
	// gokai's.
	Commands []Command
}

// Service adds one service to a program's `start`: it registers the service's settings on fs (flags of
// `start`, and keys of its -config file) and returns what makes the service once they are parsed. It is
// called once per `start`.
type Service func(fs *flag.FlagSet) func() service.Service

// KV is gokai's KV service with its settings (kv.Options: lww, max-siblings, vclock-*, delete-mode,
// reap-delay, object-cache-mib). It is the default service: it serves memcache and answers get, put and
// delete without a name space.
func KV(fs *flag.FlagSet) func() service.Service {
	o := kv.DefaultOptions()
	o.Bind(fs)
	return func() service.Service { return kv.Service(o) }
}

// Fixed is a service without settings of its own.
func Fixed(s service.Service) Service {
	return func(*flag.FlagSet) func() service.Service { return func() service.Service { return s } }
}

// Command is a client command of a program's own: `NAME [flags] ARGS...`. It takes the flags every client
// command takes (--addr, --timeout, --json, --certs-dir, --user) and gets a client connected to --addr.
type Command struct {
	Name    string // the command's word; lower case
	Summary string // one line for the program's usage
	// Usage is shown by -h and on a usage error: the synopsis, a blank line, what the command does.
	Usage string
	// MinArgs and MaxArgs bound the positional arguments.
	MinArgs, MaxArgs int
	// Run does the work: args are the positional arguments, asJSON is --json, ctx carries --timeout. An
	// error from Usage exits 2, client.ErrNotFound 1, any other 3.
	Run func(ctx context.Context, c *client.Client, args []string, asJSON bool, stdout io.Writer) error
}

// Usage is a command's usage error (exit code 2).
func Usage(format string, args ...any) error { return usageErr(format, args...) }

// ExitCode is the process exit code of a command's error: 0 ok, 1 not found, 2 usage, 3 server or
// connection error.
func ExitCode(err error) int { return exitCode(err) }

// Main runs the program on the process's arguments until it finishes (a node: until SIGINT or SIGTERM),
// and exits with ExitCode of its error.
func Main(p Program) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := p.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", p.Name, err)
	}
	os.Exit(exitCode(err))
}

const usage = `usage: %[1]s <command> [flags]

commands:
  start     run a node (%[1]s start -h for its settings)
  bench     load generator (memcache text, binary or meta; msgpack-RPC)
  get       read a key: every sibling and the causal context (gokai get -h)
  put       write a key over a context from get, or as a new sibling, or --blind (gokai put -h)
  delete    delete a key: over a context from get, or what a read finds, or --blind
  keys      list the live keys, each once (--prefix P, --max N), or --count them; progress on stderr
  status    a node's version, ping latency and main counters
  ring      which node owns each partition
  members   the cluster's nodes
  cluster   join|leave|plan|commit|clear|status: change the cluster (gokai cluster help)
  transfers ownership transfers in progress on every node (--watch to follow)
  aae       status: active anti-entropy per partition (hash trees, exchanges, repairs)
  certs     create-ca|create-node|create-client|gossip-key: certificates for a secure cluster
  version   print the version

client commands (get put delete keys status ring members cluster transfers aae) take --addr (default 127.0.0.1:11011 or
$GOKAI_ADDR), --timeout, --json, and --certs-dir/--user for a node with -rpc-tls (an operator's certificate
for cluster changes); they exit 0 ok, 1 not found, 2 usage, 3 server or connection error.
`

// builtin are the commands of every program (Run's switch).
var builtin = map[string]bool{"start": true, "bench": true, "get": true, "put": true, "delete": true,
	"keys": true, "status": true, "ring": true, "members": true, "cluster": true, "transfers": true, "aae": true, "certs": true,
	"version": true, "-v": true, "--version": true, "help": true, "-h": true, "--help": true}

// Run runs one command: args are the process's arguments after its name. main calls it through Main;
// tests call it directly.
func (p Program) Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		p.usage(stderr)
		return errors.New("no command")
	}
	for _, c := range p.Commands {
		if builtin[c.Name] {
			return fmt.Errorf("cli: %s's command %q shadows gokai's", p.Name, c.Name)
		}
	}
	for _, c := range p.Commands {
		if c.Name == args[0] {
			return p.command(ctx, c, args[1:], stdout, stderr)
		}
	}
	switch args[0] {
	case "start":
		return p.start(ctx, args[1:], stdout, stderr)
	case "bench":
		return benchCmd(ctx, args[1:], stdout, stderr)
	case "get":
		return cliGet(ctx, args[1:], stdout, stderr)
	case "put":
		return cliPut(ctx, args[1:], stdout, stderr)
	case "delete":
		return cliDelete(ctx, args[1:], stdout, stderr)
	case "keys":
		return cliKeys(ctx, args[1:], stdout, stderr)
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
		fmt.Fprintln(stdout, p.Name, node.Version)
		return nil
	case "help", "-h", "--help":
		p.usage(stdout)
		return nil
	default:
		p.usage(stderr)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

// usage writes the program's usage: gokai's commands, then its own.
func (p Program) usage(w io.Writer) {
	fmt.Fprintf(w, usage, p.Name)
	if len(p.Commands) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s's own client commands (the client flags and exit codes above):\n", p.Name)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range p.Commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.Name, c.Summary)
	}
	tw.Flush()
}

// command runs one of the program's own commands.
func (p Program) command(ctx context.Context, c Command, args []string, stdout, stderr io.Writer) error {
	ctx, cl, cf, pos, cancel, err := clusterCmd(ctx, c.Name, c.Usage, args, c.MinArgs, c.MaxArgs, stderr)
	if err != nil {
		return err
	}
	defer cancel()
	return c.Run(ctx, cl, pos, cf.json, stdout)
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

func (p Program) start(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := node.Default()
	fs := flag.NewFlagSet(p.Name+" start", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.Bind(fs)
	makers := make([]func() service.Service, len(p.Services))
	for i, s := range p.Services {
		makers[i] = s(fs)
	}
	gc := gctune.Default()
	gc.Bind(fs)
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
	gcPlan, err := gctune.Decide(gc, os.LookupEnv, gctune.MemTotal())
	if err != nil {
		return err
	}
	gcPlan.Apply() // NB: process-wide, so here in the process's shell and not in node.New
	logger := newLogger(stderr, cfg.LogLevel, cfg.LogJSON)
	opts := make([]node.Option, len(makers))
	for i, mk := range makers {
		opts[i] = node.WithService(mk())
	}
	n, err := node.New(cfg, logger, nil, opts...)
	if err != nil {
		return err
	}
	// NB: "node" last on these lines: tools match their start ("gokai ready" memcache=... rpc=...).
	self := cfg.Name
	logger.Info("gokai starting", append(append([]any{"version", node.Version}, node.Attrs(fs)...), "node", self)...)
	logger.Info("go collector", append(gcPlan.Attrs(), "node", self)...)
	tuner := gcPlan.Start() // NB: after Attrs, which reads back the configured percent
	defer tuner.Stop()
	if err := n.Start(ctx); err != nil {
		return err
	}
	logger.Info("gokai ready", "memcache", n.MemcacheAddr(), "rpc", n.RPCAddr(), "transport", n.TransportAddr(), "http", n.HTTPAddr(), "node", self)
	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("gokai stopping: signal received", "node", self)
	case runErr = <-n.Done():
		logger.Error("gokai stopping: unrecoverable failure", "err", runErr, "node", self)
	}
	sctx, cancel := context.WithTimeout(context.Background(), *stopTimeout)
	defer cancel()
	if err := n.Stop(sctx); err != nil {
		logger.Error("gokai stop", "err", err, "node", self)
		return errors.Join(runErr, err)
	}
	logger.Info("gokai stopped", "node", self)
	return runErr
}
