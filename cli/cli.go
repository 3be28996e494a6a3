package cli

// The client commands: gokai get | put | delete | status | ring | members (and keys, cli_keys.go), over msgpack-RPC with the Go
// client (package client). Each is a func(ctx, args, stdout, stderr) error; exitCode maps its error to
// the process exit code.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gokai-kv/gokai/client"
	"github.com/gokai-kv/gokai/internal/pki"
)

// Exit codes of the client commands.
const (
	exitOK       = 0
	exitNotFound = 1
	exitUsage    = 2
	exitServer   = 3
)

// cliStdin is where `put KEY -` reads the value (tests replace it).
var cliStdin io.Reader = os.Stdin

// DefaultCLIAddr is the node address the client commands use without --addr or GOKAI_ADDR.
const DefaultCLIAddr = "127.0.0.1:11011"

// exitError carries a client command's exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// exitCode maps a command's error to the exit code: 0 ok, 1 not found, 2 usage, 3 server or connection
// error.
func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, flag.ErrHelp):
		return exitUsage
	case errors.Is(err, client.ErrNotFound):
		return exitNotFound
	default:
		return exitServer
	}
}

// cliFlags are the flags every client command takes.
type cliFlags struct {
	addr     string
	timeout  time.Duration
	json     bool
	certsDir string // a certs dir holding ca.crt (and the operator's client.USER.crt/.key): speak TLS
	user     string // the operator certificate to present
}

func newCLIFlagSet(name, usage string, stderr io.Writer, cf *cliFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("gokai "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: gokai %s\n\n", usage)
		fs.PrintDefaults()
	}
	addr := os.Getenv("GOKAI_ADDR")
	if addr == "" {
		addr = DefaultCLIAddr
	}
	fs.StringVar(&cf.addr, "addr", addr, "node msgpack-RPC address (default from GOKAI_ADDR when set)")
	fs.DurationVar(&cf.timeout, "timeout", 10*time.Second, "deadline for the whole command")
	fs.BoolVar(&cf.json, "json", false, "print machine-readable JSON")
	fs.StringVar(&cf.certsDir, "certs-dir", os.Getenv("GOKAI_CERTS_DIR"), "speak TLS, checking the node against ca.crt here, presenting client.USER.crt when present (default from GOKAI_CERTS_DIR)")
	user := os.Getenv("GOKAI_USER")
	if user == "" {
		user = "admin"
	}
	fs.StringVar(&cf.user, "user", user, "the operator certificate (client.USER.crt) to present with --certs-dir (default from GOKAI_USER, else admin)")
	return fs
}

// tlsConfig is the TLS configuration of --certs-dir, or nil.
func (cf *cliFlags) tlsConfig() (*tls.Config, error) {
	if cf.certsDir == "" {
		return nil, nil
	}
	if _, err := os.Stat(filepath.Join(cf.certsDir, pki.ClientCert(cf.user))); err != nil {
		ca, err := os.ReadFile(filepath.Join(cf.certsDir, pki.CACert))
		if err != nil {
			return nil, &exitError{code: exitUsage, err: fmt.Errorf("--certs-dir: %w", err)}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, &exitError{code: exitUsage, err: errors.New("--certs-dir: ca.crt holds no certificate")}
		}
		return pki.ClientConfig(pool, nil), nil
	}
	cert, pool, err := pki.LoadClient(cf.certsDir, cf.user)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	return pki.ClientConfig(pool, &cert), nil
}

// parseInterspersed parses flags before, between and after positional arguments (Go's flag package stops
// at the first positional one). "--" ends the flags; "-" is positional (stdin).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &exitError{code: exitUsage, err: err}
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// dial makes a client for one command. It talks to --addr only (no partition-aware routing: for one
// request, reading the ring first would cost two round trips, and --addr coordinates the request as well
// as any node).
func (cf *cliFlags) dial(ctx context.Context) (*client.Client, error) {
	tc, err := cf.tlsConfig()
	if err != nil {
		return nil, err
	}
	c, err := client.New(ctx, client.Config{
		TLS:            tc,
		Seeds:          []string{cf.addr},
		PoolSize:       1,
		DialTimeout:    min(cf.timeout, client.DefaultDialTimeout),
		RequestTimeout: cf.timeout,
		DisableRouting: true,
	})
	if err != nil {
		return nil, &exitError{code: exitServer, err: err}
	}
	return c, nil
}

func writeJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

func decodeHexContext(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, usageErr("--context: not hex: %v", err)
	}
	return b, nil
}

// --- get --------------------------------------------------------------------------------------------

func cliGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf cliFlags
	fs := newCLIFlagSet("get", "get [flags] KEY\n\nPrints every sibling of KEY and the causal context (hex) to pass to put --context.\n"+
		"Values are shown as text when printable UTF-8, else as 0x-prefixed hex; --raw writes the bytes.", stderr, &cf)
	r := fs.Int("r", 0, "read quorum R (0 = node default)")
	pr := fs.Int("pr", 0, "primary read quorum PR (0 = node default)")
	raw := fs.Bool("raw", false, "write only the value's bytes (fails when the key has siblings)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return usageErr("get: want KEY, got %d arguments", len(pos))
	}
	key := []byte(pos[0])
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	obj, err := c.Get(ctx, key, &client.ReadOptions{R: *r, PR: *pr})
	if err != nil {
		if errors.Is(err, client.ErrNotFound) {
			return &exitError{code: exitNotFound, err: fmt.Errorf("get %q: not found", key)}
		}
		return fmt.Errorf("get %q: %w", key, err)
	}
	if *raw {
		if len(obj.Values) != 1 {
			return &exitError{code: exitServer, err: fmt.Errorf("get %q --raw: %d siblings (use --json, or resolve them)", key, len(obj.Values))}
		}
		_, err := stdout.Write(obj.Values[0].Data)
		return err
	}
	return printObject(stdout, cf.json, key, obj)
}

// jsonSibling is one sibling in --json output. value is present when the bytes are valid UTF-8.
type jsonSibling struct {
	Index        int     `json:"index"`
	Flags        uint32  `json:"flags"`
	Size         int     `json:"size"`
	LastModified int64   `json:"last_modified"`
	Expiry       int64   `json:"expiry"`
	Value        *string `json:"value,omitempty"`
	ValueHex     string  `json:"value_hex"`
}

type jsonObject struct {
	Key      string        `json:"key"`
	Siblings []jsonSibling `json:"siblings"`
	Context  string        `json:"context"`
}

// maxShown bounds a value shown in the human table (in runes of text, or bytes of hex).
const maxShown = 120

func printObject(w io.Writer, asJSON bool, key []byte, obj *client.Object) error {
	if asJSON {
		out := jsonObject{Key: string(key), Siblings: []jsonSibling{}, Context: hex.EncodeToString(obj.Context)}
		for i, v := range obj.Values {
			s := jsonSibling{Index: i, Flags: v.Flags, Size: len(v.Data), LastModified: v.LastModified,
				Expiry: v.Expiry, ValueHex: hex.EncodeToString(v.Data)}
			if utf8.Valid(v.Data) {
				text := string(v.Data)
				s.Value = &text
			}
			out.Siblings = append(out.Siblings, s)
		}
		return writeJSON(w, out)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(obj.Values) != 1 {
		fmt.Fprintf(tw, "%d siblings\n", len(obj.Values))
	}
	fmt.Fprintln(tw, "SIBLING\tFLAGS\tSIZE\tLAST-MODIFIED\tEXPIRES\tVALUE")
	for i, v := range obj.Values {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%s\n", i, v.Flags, len(v.Data), fmtUnixNano(v.LastModified),
			fmtExpiry(v.Expiry), showValue(v.Data, maxShown))
	}
	fmt.Fprintf(tw, "context\t%s\n", hex.EncodeToString(obj.Context))
	return tw.Flush()
}

// showValue renders a value for a table: as text when it is printable UTF-8, else as 0x-prefixed hex;
// longer than max runes (text) or bytes (hex) is cut with "...".
func showValue(b []byte, max int) string {
	if len(b) == 0 {
		return `""`
	}
	if printable(b) {
		s := string(b)
		if utf8.RuneCountInString(s) > max {
			return string([]rune(s)[:max]) + "..."
		}
		return s
	}
	if len(b) > max {
		return "0x" + hex.EncodeToString(b[:max]) + "..."
	}
	return "0x" + hex.EncodeToString(b)
}

// printable reports whether b is valid UTF-8 made of printable characters (spaces included; tabs,
// newlines and other controls not, since they would break the table).
func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func fmtUnixNano(ns int64) string {
	if ns == 0 {
		return "-"
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

func fmtExpiry(s int64) string {
	if s == 0 {
		return "never"
	}
	return time.Unix(s, 0).UTC().Format(time.RFC3339)
}

// --- put and delete -----------------------------------------------------------------------------------

func cliPut(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf cliFlags
	fs := newCLIFlagSet("put", "put [flags] KEY VALUE | KEY - | KEY --file F\n\n"+
		"Writes VALUE (or stdin with -, or a file's bytes). With the --context of a previous get it supersedes\n"+
		"exactly the siblings that get returned. Without one it supersedes nothing: it becomes a sibling of\n"+
		"what the key holds. --blind overwrites what the key's coordinating replica holds, read or not.", stderr, &cf)
	ctxHex := fs.String("context", "", "causal context (hex) from a previous get")
	blind := fs.Bool("blind", false, "blind write: supersede what the coordinating replica holds (no --context)")
	file := fs.String("file", "", "read the value from this file")
	w := fs.Int("w", 0, "write quorum W (0 = node default)")
	pw := fs.Int("pw", 0, "primary write quorum PW (0 = node default)")
	returnBody := fs.Bool("return-body", false, "print the object as stored after the write")
	flags := fs.Uint("flags", 0, "opaque client flags stored with the value (uint32)")
	expiry := fs.Int64("expiry", 0, "expiry time, unix seconds (0 = never)")
	ttl := fs.Duration("ttl", 0, "expire this long from now (instead of --expiry)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	var value []byte
	switch {
	case *file != "" && len(pos) == 1:
		if value, err = os.ReadFile(*file); err != nil {
			return usageErr("put --file: %v", err)
		}
	case *file == "" && len(pos) == 2 && pos[1] == "-":
		if value, err = io.ReadAll(cliStdin); err != nil {
			return usageErr("put: reading stdin: %v", err)
		}
	case *file == "" && len(pos) == 2:
		value = []byte(pos[1])
	default:
		fs.Usage()
		return usageErr("put: want KEY VALUE, KEY - or KEY --file F")
	}
	if *flags > 1<<32-1 {
		return usageErr("put: --flags %d out of uint32 range", *flags)
	}
	if *ttl != 0 && *expiry != 0 {
		return usageErr("put: --ttl and --expiry are exclusive")
	}
	if *ttl < 0 {
		return usageErr("put: --ttl %v must be positive", *ttl)
	}
	if *ttl > 0 {
		*expiry = time.Now().Add(*ttl).Unix()
	}
	if *blind && *ctxHex != "" {
		return usageErr("put: --blind and --context are exclusive")
	}
	vctx, err := decodeHexContext(*ctxHex)
	if err != nil {
		return err
	}
	key := []byte(pos[0])
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	obj, err := c.Put(ctx, key, value, vctx, &client.WriteOptions{W: *w, PW: *pw, ReturnBody: *returnBody,
		Flags: uint32(*flags), Expiry: *expiry, Blind: *blind})
	if err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	if *returnBody && obj != nil {
		return printObject(stdout, cf.json, key, obj)
	}
	if cf.json {
		return writeJSON(stdout, map[string]any{"ok": true})
	}
	_, err = fmt.Fprintln(stdout, "ok")
	return err
}

func cliDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf cliFlags
	fs := newCLIFlagSet("delete", "delete [flags] KEY\n\nWrites a tombstone: under --context (from a get) it supersedes exactly what that get\n"+
		"returned; without it the node reads the key and deletes what that read returns (values written since\n"+
		"survive). --blind supersedes what the key's coordinating replica holds, read or not.", stderr, &cf)
	ctxHex := fs.String("context", "", "causal context (hex) from a previous get")
	blind := fs.Bool("blind", false, "blind delete: supersede what the coordinating replica holds (no --context)")
	w := fs.Int("w", 0, "write quorum W (0 = node default)")
	pw := fs.Int("pw", 0, "primary write quorum PW (0 = node default)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return usageErr("delete: want KEY, got %d arguments", len(pos))
	}
	if *blind && *ctxHex != "" {
		return usageErr("delete: --blind and --context are exclusive")
	}
	vctx, err := decodeHexContext(*ctxHex)
	if err != nil {
		return err
	}
	key := []byte(pos[0])
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Delete(ctx, key, vctx, &client.WriteOptions{W: *w, PW: *pw, Blind: *blind}); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	if cf.json {
		return writeJSON(stdout, map[string]any{"ok": true})
	}
	_, err = fmt.Fprintln(stdout, "deleted")
	return err
}

// --- admin ------------------------------------------------------------------------------------------

// adminCmd parses an admin command's flags (no positional arguments) and dials --addr. The returned
// context carries the --timeout deadline; cancel releases it.
func adminCmd(ctx context.Context, name, usage string, args []string, stderr io.Writer) (context.Context, *client.Client, *cliFlags, context.CancelFunc, error) {
	var cf cliFlags
	fs := newCLIFlagSet(name, usage, stderr, &cf)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if len(pos) != 0 {
		fs.Usage()
		return nil, nil, nil, nil, usageErr("%s: unexpected arguments %s", name, strings.Join(pos, " "))
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	c, err := cf.dial(ctx)
	if err != nil {
		cancel()
		return nil, nil, nil, nil, err
	}
	return ctx, c, &cf, func() { c.Close(); cancel() }, nil
}

// statusHighlights are the stats `gokai status` shows: one line per group, each stat as short=value (a
// group of one shows the value alone). Stats the node does not report are left out.
var statusHighlights = []struct {
	label string
	stats [][2]string // stat name, short name
}{
	{"node", [][2]string{{"gokai_node", ""}}},
	{"ring", [][2]string{{"gokai_ring_q", "q"}, {"gokai_n", "n"}, {"gokai_r", "r"}, {"gokai_w", "w"}, {"gokai_vnodes", "vnodes"}}},
	{"requests", [][2]string{{"gokai_coord_gets", "gets"}, {"gokai_coord_puts", "puts"}, {"gokai_coord_deletes", "deletes"}, {"gokai_coord_active", "active"}}},
	{"conflicts", [][2]string{{"gokai_siblings_seen", "siblings_seen"}, {"gokai_read_repairs", "read_repairs"}}},
	{"failures", [][2]string{{"gokai_coord_timeouts", "timeouts"}, {"gokai_coord_quorum_failures", "quorum_failures"}, {"gokai_coord_overloads", "overloads"}, {"gokai_vnode_restarts", "vnode_restarts"}}},
	{"rpc", [][2]string{{"gokai_rpc_conns", "conns"}, {"gokai_rpc_requests", "requests"}, {"gokai_rpc_errors", "errors"}, {"gokai_rpc_bad_frames", "bad_frames"}}},
}

func cliStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	ctx, c, cf, done, err := adminCmd(ctx, "status", "status [flags]\n\nShows the node's version, ping latency and main counters.", args, stderr)
	if err != nil {
		return err
	}
	defer done()
	v, err := c.Version(ctx)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	rtt, err := c.Ping(ctx) // the connection is open: this is the round trip alone
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	st, err := c.Stats(ctx)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if cf.json {
		return writeJSON(stdout, map[string]any{"addr": cf.addr, "version": v.Version, "protocol": v.Protocol,
			"ping_us": rtt.Microseconds(), "stats": st})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "addr\t%s\n", cf.addr)
	fmt.Fprintf(tw, "version\t%s (protocol %d)\n", v.Version, v.Protocol)
	fmt.Fprintf(tw, "ping\t%s\n", rtt.Round(time.Microsecond))
	for _, h := range statusHighlights {
		var parts []string
		for _, st2 := range h.stats {
			if _, ok := st[st2[0]]; !ok {
				continue
			}
			if st2[1] == "" {
				parts = append(parts, st.String(st2[0]))
			} else {
				parts = append(parts, st2[1]+"="+st.String(st2[0]))
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(tw, "%s\t%s\n", h.label, strings.Join(parts, " "))
		}
	}
	return tw.Flush()
}

// ownerRun is a run of consecutive partitions with one owner.
type ownerRun struct {
	First, Last int
	Owner       string
}

// ownerRuns compresses a partition → owner list into runs of consecutive partitions.
func ownerRuns(owners []string) []ownerRun {
	var runs []ownerRun
	for p, o := range owners {
		if n := len(runs); n > 0 && runs[n-1].Owner == o && runs[n-1].Last == p-1 {
			runs[n-1].Last = p
			continue
		}
		runs = append(runs, ownerRun{First: p, Last: p, Owner: o})
	}
	return runs
}

func cliRing(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	ctx, c, cf, done, err := adminCmd(ctx, "ring", "ring [flags]\n\nShows which node owns each partition (consecutive partitions of one owner on one line).", args, stderr)
	if err != nil {
		return err
	}
	defer done()
	r, err := c.Ring(ctx)
	if err != nil {
		return fmt.Errorf("ring: %w", err)
	}
	if cf.json {
		return writeJSON(stdout, r)
	}
	counts := map[string]int{}
	for _, o := range r.Owners {
		counts[o]++
	}
	fmt.Fprintf(stdout, "ring version %d: %d partitions, %d nodes, n=%d\n", r.Version, r.Q, len(counts), r.N)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITIONS\tCOUNT\tOWNER")
	for _, run := range ownerRuns(r.Owners) {
		span := fmt.Sprint(run.First)
		if run.Last > run.First {
			span = fmt.Sprintf("%d-%d", run.First, run.Last)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", span, run.Last-run.First+1, run.Owner)
	}
	return tw.Flush()
}

func cliMembers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	ctx, c, cf, done, err := adminCmd(ctx, "members", "members [flags]\n\nLists the cluster's nodes as the node at --addr knows them.", args, stderr)
	if err != nil {
		return err
	}
	defer done()
	ms, err := c.Members(ctx)
	if err != nil {
		return fmt.Errorf("members: %w", err)
	}
	if cf.json {
		if ms == nil {
			ms = []client.Member{}
		}
		return writeJSON(stdout, ms)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tPARTITIONS\tRPC\tMEMCACHE")
	for _, m := range ms {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", m.Name, m.Status, m.Partitions, dash(m.RPCAddr), dash(m.MemcacheAddr))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
