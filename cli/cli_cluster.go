package cli

// The cluster commands: gokai cluster join|leave|plan|commit|clear|status and gokai transfers, over the
// msgpack-RPC cluster methods (docs/msgpack-rpc.md, docs/cluster.md). Fetching and rendering are apart:
// the render functions take decoded results and a clock reading, so tests drive them with fixed data.

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/gokai-kv/gokai/client"
)

const clusterUsage = `usage: gokai cluster <command> [flags]

commands:
  join SEED           make the node at --addr (a new, empty node) join the cluster of the node whose
                      transport address (host:port, shown by status) is SEED, and stage its join
  leave [NODE]        stage NODE's leave (default: the node at --addr)
  plan                show what a commit of the staged changes would do
  commit              apply the staged changes: partitions start moving (follow with gokai transfers --watch)
  clear               drop the staged changes
  status              members, partitions now -> after, claimant, ring version, staged changes, transfers
  keys list|install|use|remove [KEY]
                      rotate the gossip encryption key on every member (install the new key, use it,
                      remove the old one; gokai certs gossip-key makes a key)

Every command takes --addr, --timeout and --json like the client commands, and the same exit codes.
`

// clusterMember is one entry of cluster_status's members.
type clusterMember struct {
	Name            string `msgpack:"name" json:"name"`
	Status          string `msgpack:"status" json:"status"`
	Alive           bool   `msgpack:"alive" json:"alive"`
	Partitions      int    `msgpack:"partitions" json:"partitions"`
	PartitionsAfter int    `msgpack:"partitions_after" json:"partitions_after"`
	RPCAddr         string `msgpack:"rpc_addr" json:"rpc_addr"`
	MemcacheAddr    string `msgpack:"memcache_addr" json:"memcache_addr"`
	GossipAddr      string `msgpack:"gossip_addr" json:"gossip_addr"`
	TransportAddr   string `msgpack:"transport_addr" json:"transport_addr"`
}

// clusterChange is a staged (or planned) change.
type clusterChange struct {
	Kind string `msgpack:"kind" json:"kind"`
	Node string `msgpack:"node" json:"node"`
}

// clusterTransfer is a pending ownership move in the cluster state (state: waiting or done).
type clusterTransfer struct {
	Partition int    `msgpack:"partition" json:"partition"`
	From      string `msgpack:"from" json:"from"`
	To        string `msgpack:"to" json:"to"`
	State     string `msgpack:"state,omitempty" json:"state,omitempty"`
}

// clusterStatus is the result of cluster_status: the node's view of the cluster.
type clusterStatus struct {
	Cluster   string            `msgpack:"cluster" json:"cluster"`
	Version   uint64            `msgpack:"version" json:"version"`
	Claimant  string            `msgpack:"claimant" json:"claimant"`
	N         int               `msgpack:"n" json:"n"`
	Q         int               `msgpack:"q" json:"q"`
	Node      string            `msgpack:"node" json:"node"`
	Members   []clusterMember   `msgpack:"members" json:"members"`
	Staged    []clusterChange   `msgpack:"staged" json:"staged"`
	Transfers []clusterTransfer `msgpack:"transfers" json:"transfers"`
}

// pending counts the transfers still waiting.
func (s *clusterStatus) pending() int {
	n := 0
	for _, t := range s.Transfers {
		if t.State != "done" {
			n++
		}
	}
	return n
}

// clusterPlan is the result of cluster_plan.
type clusterPlan struct {
	Version         uint64            `msgpack:"version" json:"version"`
	Changes         []clusterChange   `msgpack:"changes" json:"changes"`
	Transfers       []clusterTransfer `msgpack:"transfers" json:"transfers"`
	PartitionsAfter map[string]int    `msgpack:"partitions_after" json:"partitions_after"`
	Warning         string            `msgpack:"warning" json:"warning,omitempty"`
}

// transferProgress is one entry of `transfers`: an outgoing transfer of the node asked.
type transferProgress struct {
	Partition int     `msgpack:"partition" json:"partition"`
	From      string  `msgpack:"from" json:"from"`
	To        string  `msgpack:"to" json:"to"`
	State     string  `msgpack:"state" json:"state"`
	Keys      int64   `msgpack:"keys" json:"keys"`
	TotalKeys int64   `msgpack:"total_keys" json:"total_keys"`
	Bytes     int64   `msgpack:"bytes" json:"bytes"`
	Forwarded int64   `msgpack:"forwarded" json:"forwarded"`
	Attempts  int     `msgpack:"attempts" json:"attempts"`
	LastError string  `msgpack:"last_error" json:"last_error,omitempty"`
	Rate      float64 `msgpack:"rate" json:"rate"` // keys/s this attempt
	ETAms     int64   `msgpack:"eta_ms" json:"eta_ms"`
	Started   int64   `msgpack:"started" json:"started"` // unix ns of this attempt's start
	// Hinted marks a hinted handoff (a fallback's data going to its owner) rather than an ownership move,
	// for nodes that report it.
	Hinted bool `msgpack:"hinted" json:"hinted,omitempty"`
	// Service is the service whose vnode moves (a node running several moves each partition once per
	// service), for nodes that report it.
	Service string `msgpack:"service" json:"service,omitempty"`
}

// bytesPerSec estimates the byte rate from the key rate and the mean size of the keys sent so far.
func (p *transferProgress) bytesPerSec() float64 {
	if p.Keys <= 0 {
		return 0
	}
	return p.Rate * float64(p.Bytes) / float64(p.Keys)
}

// clusterCmd parses a cluster command's flags and between minPos and maxPos positional arguments, and
// dials --addr. The returned context carries the --timeout deadline; done releases it and the client.
func clusterCmd(ctx context.Context, name, usage string, args []string, minPos, maxPos int, stderr io.Writer) (context.Context, *client.Client, *cliFlags, []string, context.CancelFunc, error) {
	var cf cliFlags
	fs := newCLIFlagSet(name, usage, stderr, &cf)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, nil, nil, nil, nil, err
	}
	if len(pos) < minPos || len(pos) > maxPos {
		fs.Usage()
		return nil, nil, nil, nil, nil, usageErr("%s: want %d to %d arguments, got %d", name, minPos, maxPos, len(pos))
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	c, err := cf.dial(ctx)
	if err != nil {
		cancel()
		return nil, nil, nil, nil, nil, err
	}
	return ctx, c, &cf, pos, func() { c.Close(); cancel() }, nil
}

// cliCluster dispatches gokai cluster SUBCOMMAND.
func cliCluster(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, clusterUsage)
		return usageErr("cluster: no command")
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "join":
		return clusterJoin(ctx, rest, stdout, stderr)
	case "leave":
		return clusterLeave(ctx, rest, stdout, stderr)
	case "plan":
		return clusterPlanCmd(ctx, rest, stdout, stderr)
	case "commit":
		return clusterSimple(ctx, "commit", "cluster_commit", "commit [flags]\n\nApplies the staged changes: joining nodes become valid, leaving ones exiting, and the\n"+
			"partitions that change owner start moving (gokai transfers --watch follows them).", rest, stdout, stderr)
	case "clear":
		return clusterSimple(ctx, "clear", "cluster_clear", "clear [flags]\n\nDrops the staged changes (joining nodes are removed, leaving ones are valid again).", rest, stdout, stderr)
	case "status":
		return clusterStatusCmd(ctx, rest, stdout, stderr)
	case "keys":
		return clusterKeysCmd(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, clusterUsage)
		return nil
	default:
		fmt.Fprint(stderr, clusterUsage)
		return usageErr("cluster: unknown command %q", sub)
	}
}

// fetchStatus asks c's node for cluster_status.
func fetchStatus(ctx context.Context, c *client.Client) (*clusterStatus, error) {
	var st clusterStatus
	if err := c.Call(ctx, "cluster_status", nil, &st, true); err != nil {
		return nil, err
	}
	return &st, nil
}

func clusterJoin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	ctx, c, cf, pos, done, err := clusterCmd(ctx, "cluster join", "cluster join [flags] SEED\n\n"+
		"Run against the new, empty node (--addr): it asks the node whose transport address is SEED (host:port;\n"+
		"gokai cluster status shows it) for its gossip address, joins its gossip, takes its cluster state and\n"+
		"asks the claimant to stage its join. Review with plan, apply with commit.", args, 1, 1, stderr)
	if err != nil {
		return err
	}
	defer done()
	seed := pos[0]
	if err := c.Call(ctx, "cluster_join", []any{seed}, nil, false); err != nil {
		return fmt.Errorf("cluster join %s: %w", seed, err)
	}
	st, err := fetchStatus(ctx, c)
	if err != nil {
		return fmt.Errorf("cluster join %s: joined, but status: %w", seed, err)
	}
	// NB: the node's own state may not show its staged join yet (it comes back from the claimant by gossip).
	if cf.json {
		return writeJSON(stdout, map[string]any{"ok": true, "node": st.Node, "cluster": st.Cluster, "claimant": st.Claimant})
	}
	_, err = fmt.Fprintf(stdout, "%s joined cluster %s (claimant %s); its join is staged\nnext: gokai cluster plan, then gokai cluster commit\n",
		st.Node, st.Cluster, st.Claimant)
	return err
}

func clusterLeave(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	ctx, c, cf, pos, done, err := clusterCmd(ctx, "cluster leave", "cluster leave [flags] [NODE]\n\n"+
		"Stages NODE's leave (default: the node at --addr). It keeps its partitions until a commit moves them.", args, 0, 1, stderr)
	if err != nil {
		return err
	}
	defer done()
	var params []any
	if len(pos) == 1 {
		params = []any{pos[0]}
	}
	if err := c.Call(ctx, "cluster_leave", params, nil, false); err != nil {
		return fmt.Errorf("cluster leave: %w", err)
	}
	node := "the node at " + cf.addr
	if len(pos) == 1 {
		node = pos[0]
	}
	if cf.json {
		return writeJSON(stdout, map[string]any{"ok": true})
	}
	_, err = fmt.Fprintf(stdout, "leave of %s staged\nnext: gokai cluster plan, then gokai cluster commit\n", node)
	return err
}

// clusterSimple runs a cluster method without parameters whose result is only success.
func clusterSimple(ctx context.Context, name, method, usage string, args []string, stdout, stderr io.Writer) error {
	ctx, c, cf, _, done, err := clusterCmd(ctx, "cluster "+name, "cluster "+usage, args, 0, 0, stderr)
	if err != nil {
		return err
	}
	defer done()
	if err := c.Call(ctx, method, nil, nil, false); err != nil {
		return fmt.Errorf("cluster %s: %w", name, err)
	}
	if cf.json {
		return writeJSON(stdout, map[string]any{"ok": true})
	}
	msg := "staged changes cleared"
	if name == "commit" {
		msg = "committed; follow the moves with gokai transfers --watch"
	}
	_, err = fmt.Fprintln(stdout, msg)
	return err
}

func clusterPlanCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	ctx, c, cf, _, done, err := clusterCmd(ctx, "cluster plan", "cluster plan [flags]\n\n"+
		"Shows what a commit would do: the staged changes, the partitions that move (grouped from -> to)\n"+
		"and the partitions of each node afterwards.", args, 0, 0, stderr)
	if err != nil {
		return err
	}
	defer done()
	var p clusterPlan
	if err := c.Call(ctx, "cluster_plan", nil, &p, true); err != nil {
		return fmt.Errorf("cluster plan: %w", err)
	}
	if cf.json {
		if p.Changes == nil {
			p.Changes = []clusterChange{}
		}
		if p.Transfers == nil {
			p.Transfers = []clusterTransfer{}
		}
		return writeJSON(stdout, p)
	}
	return renderPlan(stdout, &p)
}

// moveGroup is the partitions that move from one node to another.
type moveGroup struct {
	From, To   string
	Partitions []int
}

// groupMoves groups moves by (from, to), sorted by from then to, partitions ascending.
func groupMoves(ts []clusterTransfer) []moveGroup {
	idx := map[[2]string]int{}
	var out []moveGroup
	for _, t := range ts {
		k := [2]string{t.From, t.To}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, moveGroup{From: t.From, To: t.To})
		}
		out[i].Partitions = append(out[i].Partitions, t.Partition)
	}
	for i := range out {
		sort.Ints(out[i].Partitions)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].From != out[j].From {
			return out[i].From < out[j].From
		}
		return out[i].To < out[j].To
	})
	return out
}

// fmtPartitions lists partitions compactly: runs of consecutive ones as a-b.
func fmtPartitions(ps []int) string {
	var parts []string
	for i := 0; i < len(ps); {
		j := i
		for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", ps[i], ps[j]))
		} else {
			parts = append(parts, fmt.Sprint(ps[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

func renderPlan(w io.Writer, p *clusterPlan) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "plan over cluster version %d\n\n", p.Version)
	fmt.Fprintln(tw, "CHANGE\tNODE")
	for _, c := range p.Changes {
		fmt.Fprintf(tw, "%s\t%s\n", c.Kind, c.Node)
	}
	fmt.Fprintf(tw, "\n%d partitions move\n", len(p.Transfers))
	if len(p.Transfers) > 0 {
		fmt.Fprintln(tw, "FROM\t\tTO\tCOUNT\tPARTITIONS")
		for _, g := range groupMoves(p.Transfers) {
			fmt.Fprintf(tw, "%s\t->\t%s\t%d\t%s\n", g.From, g.To, len(g.Partitions), fmtPartitions(g.Partitions))
		}
	}
	names := make([]string, 0, len(p.PartitionsAfter))
	for n := range p.PartitionsAfter {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(tw, "\nNODE\tPARTITIONS AFTER")
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t%d\n", n, p.PartitionsAfter[n])
	}
	if p.Warning != "" {
		fmt.Fprintf(tw, "\nwarning: %s\n", p.Warning)
	}
	return tw.Flush()
}

func clusterStatusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	ctx, c, cf, _, done, err := clusterCmd(ctx, "cluster status", "cluster status [flags]\n\n"+
		"Shows the cluster as the node at --addr sees it: members (status, up/down, partitions now -> after\n"+
		"the pending transfers, addresses), the claimant, the cluster version, staged changes and transfers.", args, 0, 0, stderr)
	if err != nil {
		return err
	}
	defer done()
	st, err := fetchStatus(ctx, c)
	if err != nil {
		return fmt.Errorf("cluster status: %w", err)
	}
	if cf.json {
		out := *st
		if out.Members == nil {
			out.Members = []clusterMember{}
		}
		out.Staged = nonNilChanges(out.Staged)
		if out.Transfers == nil {
			out.Transfers = []clusterTransfer{}
		}
		return writeJSON(stdout, struct {
			clusterStatus
			Pending int `json:"pending_transfers"`
		}{out, st.pending()})
	}
	return renderStatus(stdout, st)
}

func nonNilChanges(cs []clusterChange) []clusterChange {
	if cs == nil {
		return []clusterChange{}
	}
	return cs
}

func fmtChanges(cs []clusterChange) string {
	if len(cs) == 0 {
		return "none"
	}
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.Kind + " " + c.Node
	}
	return strings.Join(parts, ", ")
}

func renderStatus(w io.Writer, st *clusterStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "cluster %s, version %d, claimant %s, q=%d n=%d (as seen by %s)\n\n", st.Cluster, st.Version, st.Claimant, st.Q, st.N, st.Node)
	fmt.Fprintln(tw, "NAME\tSTATUS\tUP\tPARTITIONS\tRPC\tMEMCACHE\tGOSSIP")
	for _, m := range st.Members {
		up := "down"
		if m.Alive {
			up = "up"
		}
		parts := fmt.Sprint(m.Partitions)
		if m.PartitionsAfter != m.Partitions {
			parts = fmt.Sprintf("%d -> %d", m.Partitions, m.PartitionsAfter)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Status, up, parts, dash(m.RPCAddr), dash(m.MemcacheAddr), dash(m.GossipAddr))
	}
	fmt.Fprintf(tw, "\nstaged\t%s\n", fmtChanges(st.Staged))
	fmt.Fprintf(tw, "pending transfers\t%d of %d\n", st.pending(), len(st.Transfers))
	return tw.Flush()
}

// --- transfers --------------------------------------------------------------------------------------

// transferRow is one line of `gokai transfers`: a sender's progress, or a pending move no sender reported
// (its sender is down, or has not started it).
type transferRow struct {
	transferProgress
	Reported bool `json:"reported"` // false: from the cluster state only
}

// transfersView is one round of `gokai transfers`.
type transfersView struct {
	Version     uint64        `json:"version"`
	Pending     int           `json:"pending"` // waiting transfers in the cluster state of --addr
	Transfers   []transferRow `json:"transfers"`
	Unreachable []string      `json:"unreachable"` // members that did not answer `transfers`
}

// transfersPoller asks every member for its transfers, keeping one client per address across rounds.
type transfersPoller struct {
	seed    *client.Client
	timeout time.Duration // per member call
	tls     *tls.Config   // --certs-dir

	mu      sync.Mutex
	clients map[string]*client.Client // REQUIRES: mu held
}

func (tp *transfersPoller) close() {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	for _, c := range tp.clients {
		c.Close()
	}
	tp.clients = nil
}

func (tp *transfersPoller) client(ctx context.Context, addr string) (*client.Client, error) {
	tp.mu.Lock()
	c, ok := tp.clients[addr]
	tp.mu.Unlock()
	if ok {
		return c, nil
	}
	c, err := client.New(ctx, client.Config{Seeds: []string{addr}, PoolSize: 1, DisableRouting: true,
		DialTimeout: min(tp.timeout, client.DefaultDialTimeout), RequestTimeout: tp.timeout, TLS: tp.tls})
	if err != nil {
		return nil, err
	}
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if old, ok := tp.clients[addr]; ok {
		c.Close()
		return old, nil
	}
	tp.clients[addr] = c
	return c, nil
}

// round reads the cluster state from the seed, then every member's transfers in parallel.
func (tp *transfersPoller) round(ctx context.Context) (*transfersView, error) {
	st, err := fetchStatus(ctx, tp.seed)
	if err != nil {
		return nil, err
	}
	type answer struct {
		node string
		ps   []transferProgress
		err  error
	}
	answers := make([]answer, len(st.Members))
	var wg sync.WaitGroup
	for i, m := range st.Members {
		answers[i].node = m.Name
		if m.RPCAddr == "" {
			answers[i].err = errors.New("no rpc address (down)")
			continue
		}
		wg.Add(1)
		go func(i int, addr string) {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, tp.timeout)
			defer cancel()
			c, err := tp.client(cctx, addr)
			if err == nil {
				err = c.Call(cctx, "transfers", nil, &answers[i].ps, true)
			}
			answers[i].err = err
		}(i, m.RPCAddr)
	}
	wg.Wait()
	var ps []transferProgress
	var unreachable []string
	for _, a := range answers {
		if a.err != nil {
			unreachable = append(unreachable, a.node)
			continue
		}
		ps = append(ps, a.ps...)
	}
	return mergeTransfers(st, ps, unreachable), nil
}

// mergeTransfers makes one view of the senders' progress and the cluster state's pending moves: every
// reported transfer, plus the waiting moves no sender reported. Sorted by partition, then from.
func mergeTransfers(st *clusterStatus, ps []transferProgress, unreachable []string) *transfersView {
	v := &transfersView{Version: st.Version, Pending: st.pending(), Transfers: []transferRow{}, Unreachable: unreachable}
	if v.Unreachable == nil {
		v.Unreachable = []string{}
	}
	seen := map[clusterTransfer]bool{}
	for _, p := range ps {
		seen[clusterTransfer{Partition: p.Partition, From: p.From, To: p.To}] = true
		v.Transfers = append(v.Transfers, transferRow{transferProgress: p, Reported: true})
	}
	for _, t := range st.Transfers {
		if t.State == "done" || seen[clusterTransfer{Partition: t.Partition, From: t.From, To: t.To}] {
			continue
		}
		v.Transfers = append(v.Transfers, transferRow{transferProgress: transferProgress{Partition: t.Partition, From: t.From, To: t.To, State: t.State}})
	}
	sort.Slice(v.Transfers, func(i, j int) bool {
		a, b := v.Transfers[i], v.Transfers[j]
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		if a.From != b.From {
			return a.From < b.From
		}
		return a.Service < b.Service
	})
	return v
}

// maxErrShown bounds the last error shown in the table.
const maxErrShown = 60

func fmtETA(ms int64) string {
	if ms <= 0 {
		return "-"
	}
	d := time.Duration(ms) * time.Millisecond
	if d < time.Second {
		return "<1s"
	}
	return d.Round(time.Second).String()
}

func renderTransfers(w io.Writer, v *transfersView) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "cluster version %d: %d transfers pending\n", v.Version, v.Pending)
	if len(v.Unreachable) > 0 {
		fmt.Fprintf(tw, "not answering: %s\n", strings.Join(v.Unreachable, ", "))
	}
	if len(v.Transfers) == 0 {
		fmt.Fprintln(tw, "no transfers")
		return tw.Flush()
	}
	// NB: a SERVICE column only when the nodes move more than one service's vnodes.
	services := map[string]bool{}
	for _, r := range v.Transfers {
		if r.Service != "" {
			services[r.Service] = true
		}
	}
	multi := len(services) > 1
	if multi {
		fmt.Fprintln(tw, "\nPARTITION\tSERVICE\tFROM\t\tTO\tSTATE\tKEYS\tMB\tKEYS/S\tMB/S\tETA\tATTEMPTS\tLAST ERROR")
	} else {
		fmt.Fprintln(tw, "\nPARTITION\tFROM\t\tTO\tSTATE\tKEYS\tMB\tKEYS/S\tMB/S\tETA\tATTEMPTS\tLAST ERROR")
	}
	for _, r := range v.Transfers {
		keys, mb, rate, mbs := "-", "-", "-", "-"
		if r.Reported {
			keys = fmt.Sprintf("%d/%d", r.Keys, r.TotalKeys)
			mb = fmt.Sprintf("%.2f", float64(r.Bytes)/1e6)
			if r.Rate > 0 {
				rate = fmt.Sprintf("%.0f", r.Rate)
				mbs = fmt.Sprintf("%.2f", r.bytesPerSec()/1e6)
			}
		}
		lastErr := r.LastError
		if lastErr == "" {
			lastErr = "-"
		} else if len([]rune(lastErr)) > maxErrShown {
			lastErr = string([]rune(lastErr)[:maxErrShown]) + "..."
		}
		state := r.State
		if r.Hinted {
			state += " (hinted)"
		}
		part := fmt.Sprint(r.Partition)
		if multi {
			svc := r.Service
			if svc == "" {
				svc = "-" // a waiting move no sender reported: every service's
			}
			part += "\t" + svc
		}
		fmt.Fprintf(tw, "%s\t%s\t->\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", part, r.From, r.To, state, keys, mb,
			rate, mbs, fmtETA(r.ETAms), r.Attempts, lastErr)
	}
	return tw.Flush()
}

// isTerminal reports whether w is a character device (a terminal), where --watch redraws in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// ansiClear moves the cursor home and clears the screen.
const ansiClear = "\x1b[H\x1b[2J"

// watchDefaultTimeout bounds `transfers --watch` when --timeout is not given.
const watchDefaultTimeout = time.Hour

func cliTransfers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf cliFlags
	fs := newCLIFlagSet("transfers", "transfers [flags]\n\n"+
		"Asks every member of the cluster of --addr for its outgoing ownership transfers and shows them in one\n"+
		"table: partition, from -> to, state, keys done/total, MB sent, rate, ETA, attempts, last error. Moves\n"+
		"the cluster state lists as pending but no sender reports (sender down or not started) show as waiting.\n"+
		"--watch redraws every second until no transfer is pending (exit 0), Ctrl-C (exit 0) or --timeout\n"+
		"(default 1h with --watch; exit 3 while transfers are pending).", stderr, &cf)
	watch := fs.Bool("watch", false, "redraw every second until no transfer is pending")
	interval := fs.Duration("interval", time.Second, "redraw interval with --watch")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		fs.Usage()
		return usageErr("transfers: unexpected arguments %s", strings.Join(pos, " "))
	}
	if *interval <= 0 {
		return usageErr("transfers: --interval %v must be positive", *interval)
	}
	timeoutSet := false
	fs.Visit(func(f *flag.Flag) { timeoutSet = timeoutSet || f.Name == "timeout" })
	total := cf.timeout
	if *watch && !timeoutSet {
		total = watchDefaultTimeout
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, total)
	defer cancel()
	seed, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer seed.Close()
	tc, err := cf.tlsConfig()
	if err != nil {
		return err
	}
	tp := &transfersPoller{seed: seed, timeout: min(cf.timeout, 5*time.Second), clients: map[string]*client.Client{}, tls: tc}
	defer tp.close()
	term := isTerminal(stdout)
	for frame := 0; ; frame++ {
		v, err := tp.round(ctx)
		if err != nil {
			if *watch && parent.Err() != nil {
				return nil // interrupted
			}
			return fmt.Errorf("transfers: %w", err)
		}
		switch {
		case cf.json:
			err = writeJSON(stdout, v)
		case *watch && term:
			fmt.Fprint(stdout, ansiClear)
			fmt.Fprintf(stdout, "%s  (every %v, Ctrl-C to stop)\n", time.Now().Format(time.TimeOnly), *interval)
			err = renderTransfers(stdout, v)
		default:
			if frame > 0 {
				fmt.Fprintln(stdout)
			}
			if *watch {
				fmt.Fprintln(stdout, time.Now().Format(time.TimeOnly))
			}
			err = renderTransfers(stdout, v)
		}
		if err != nil || !*watch {
			return err
		}
		if v.Pending == 0 {
			return nil
		}
		select {
		case <-time.After(*interval):
		case <-ctx.Done():
			if parent.Err() != nil {
				return nil // interrupted
			}
			return &exitError{code: exitServer, err: fmt.Errorf("transfers: %d still pending after %v", v.Pending, total)}
		}
	}
}

func clusterKeysCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	ctx, c, cf, pos, done, err := clusterCmd(ctx, "cluster keys", "cluster keys [flags] list | install KEY | use KEY | remove KEY\n\n"+
		"Runs one step of a gossip key rotation on every member: install the new key everywhere, make it the\n"+
		"key every node encrypts with (use), then remove the old one. Keys are base64 (gokai certs gossip-key);\n"+
		"list shows each node's keys by their SHA-256 prefix. A step that some node missed fails: run it again.", args, 1, 2, stderr)
	if err != nil {
		return err
	}
	defer done()
	params := make([]any, len(pos))
	for i, p := range pos {
		params[i] = p
	}
	if (pos[0] == "list") != (len(pos) == 1) {
		return usageErr("cluster keys: list takes no key; install, use and remove take one")
	}
	var out map[string]struct {
		Primary string   `msgpack:"primary" json:"primary"`
		Keys    []string `msgpack:"keys" json:"keys"`
		Error   string   `msgpack:"error" json:"error,omitempty"`
	}
	if err := c.Call(ctx, "cluster_keys", params, &out, false); err != nil {
		return fmt.Errorf("cluster keys %s: %w", pos[0], err)
	}
	if cf.json {
		return writeJSON(stdout, out)
	}
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPRIMARY\tKEYS")
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", n, out[n].Primary, strings.Join(out[n].Keys, " "))
	}
	return tw.Flush()
}
