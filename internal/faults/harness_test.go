package faults

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/client"
	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/internal/pki"
)

// The cluster harness: real gokai processes, one per node namespace, formed into a cluster over
// msgpack-RPC from the hub, and the faults as methods. The nodes listen on their namespaces' addresses, off
// loopback, so they run as a real deployment must: on certificates (a CA per harness, a node certificate
// each, mutual TLS between nodes, encrypted gossip), with the msgpack-RPC port over TLS and the harness's
// clients holding an operator certificate. The memcache port stays plaintext.

// Ports every node listens on, at its own address.
const (
	memcachePort  = "11211"
	rpcPort       = "11011"
	gossipPort    = "11012"
	transportPort = "11013"
	httpPort      = "11080"
)

// nodeFlags are passed to every node besides its name, data dir and addresses: fast probes, so memberlist
// declares an unreachable node dead within a second or two.
var nodeFlags = []string{"-gossip-probe-interval", "200ms", "-log-level", "info"}

// Bounds of the harness's waits.
const (
	startBound = 30 * time.Second // a node answers ping
	formBound  = 60 * time.Second // a new cluster settles
	adminCall  = 3 * time.Second  // one admin call
)

// fnode is one gokai node: its namespace, its process (replaced by restart) and an admin client.
type fnode struct {
	idx     int
	name    string // "nK@10.200.X.K"
	short   string // "nK"
	ns, ip  string
	dataDir string
	logPath string
	certs   string // its certs dir
	// admin is set once, when the node first answers; the test goroutine reads it directly, others
	// (the view sampler) through adminClient.
	admin *client.Client

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	paused bool
}

func (n *fnode) rpcAddr() string { return n.ip + ":" + rpcPort }
func (n *fnode) mcAddr() string  { return n.ip + ":" + memcachePort }

// transportAddr is the node-to-node address: the SEED of a cluster_join.
func (n *fnode) transportAddr() string { return n.ip + ":" + transportPort }

// running reports whether n's process is alive (paused counts as alive).
func (n *fnode) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// harness is one test's cluster.
type harness struct {
	t     *testing.T
	topo  *Topology
	dir   string // node logs, histories, samples
	data  string // data dirs
	ca    string // the cluster CA, the gossip key and the operator certificate (client.admin)
	tls   *tls.Config
	start time.Time
	flags []string // more node flags, after nodeFlags (set before form)

	mu     sync.Mutex
	nodes  map[int]*fnode
	events []event

	// bindAll makes nodes listen on 0.0.0.0 (the same ports) and advertise their own address
	// (-advertise-host), as a host with several interfaces is run; set before the first node starts.
	bindAll bool
}

type event struct {
	at   time.Time
	what string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	topo := newTopology(t)
	// NB: not t.TempDir: an interrupted run skips the testing package's cleanups, not ours (live).
	base, err := os.MkdirTemp("", tempPrefix())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, topo: topo, data: filepath.Join(base, "data"), dir: filepath.Join(base, "logs"), nodes: map[int]*fnode{},
		ca: filepath.Join(base, "ca"), start: time.Now()}
	if err := pki.CreateCA(h.ca, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := pki.CreateClient(h.ca, "", "admin", time.Now()); err != nil {
		t.Fatal(err)
	}
	cert, pool, err := pki.LoadClient(h.ca, "admin")
	if err != nil {
		t.Fatal(err)
	}
	h.tls = pki.ClientConfig(pool, &cert)
	if err := os.MkdirAll(h.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if *logsFlag != "" {
		h.dir = filepath.Join(*logsFlag, strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.MkdirAll(h.dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	done := live.add(func() {
		h.stopAll()
		os.RemoveAll(base)
	})
	t.Cleanup(func() {
		if t.Failed() {
			h.stopAll()
			h.dumpLogs(60)
		}
		done()
	})
	t.Logf("topology %s: subnet %s, hub %s; logs in %s", topo.Prefix(), topo.Subnet(), topo.HubIP(), h.dir)
	return h
}

// event records a step of the schedule (shown in the report, relative to the harness start).
func (h *harness) event(format string, args ...any) time.Time {
	now := time.Now()
	what := fmt.Sprintf(format, args...)
	h.mu.Lock()
	h.events = append(h.events, event{now, what})
	h.mu.Unlock()
	h.t.Logf("[%6.1fs] %s", now.Sub(h.start).Seconds(), what)
	return now
}

func (h *harness) node(i int) *fnode {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.nodes[i]
	if n == nil {
		h.t.Fatalf("no node %d", i)
	}
	return n
}

// all returns the nodes by index.
func (h *harness) all() []*fnode {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*fnode
	for _, n := range h.nodes {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].idx < out[j].idx })
	return out
}

// byName finds a node by its full name.
func (h *harness) byName(name string) *fnode {
	for _, n := range h.all() {
		if n.name == name {
			return n
		}
	}
	return nil
}

// names lists the full names of the nodes with the given indexes, sorted.
func (h *harness) names(idx ...int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, h.node(i).name)
	}
	sort.Strings(out)
	return out
}

// addNode creates node i's namespace and starts its process.
func (h *harness) addNode(i int) *fnode {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns, err := h.topo.AddNode(ctx, i)
	if err != nil {
		h.t.Fatal(err)
	}
	ip := h.topo.NodeIP(i).String()
	n := &fnode{idx: i, short: fmt.Sprintf("n%d", i), name: fmt.Sprintf("n%d@%s", i, ip), ns: ns, ip: ip,
		dataDir: filepath.Join(h.data, fmt.Sprintf("n%d", i)), logPath: filepath.Join(h.dir, fmt.Sprintf("n%d.log", i)),
		certs: filepath.Join(h.ca, fmt.Sprintf("n%d", i))}
	h.nodeCerts(n)
	h.mu.Lock()
	h.nodes[i] = n
	h.mu.Unlock()
	h.launch(n)
	return n
}

// nodeCerts makes n's certs dir: the CA certificate, the gossip key and n's node certificate.
func (h *harness) nodeCerts(n *fnode) {
	h.t.Helper()
	if err := os.MkdirAll(n.certs, 0o700); err != nil {
		h.t.Fatal(err)
	}
	for _, f := range []string{pki.CACert, pki.GossipKey} {
		b, err := os.ReadFile(filepath.Join(h.ca, f))
		if err != nil {
			h.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(n.certs, f), b, 0o600); err != nil {
			h.t.Fatal(err)
		}
	}
	if err := pki.CreateNode(n.certs, filepath.Join(h.ca, pki.CAKey), n.name, []string{n.ip}, time.Now()); err != nil {
		h.t.Fatal(err)
	}
}

// launch starts n's process (on its data dir, at its addresses) and waits until it answers ping.
func (h *harness) launch(n *fnode) {
	h.t.Helper()
	args := append([]string{"start", "-name", n.name, "-data-dir", n.dataDir, "-memcache-listen", n.mcAddr(),
		"-rpc-listen", n.rpcAddr(), "-gossip-listen", n.ip + ":" + gossipPort, "-transport-listen", n.transportAddr(),
		"-certs-dir", n.certs, "-rpc-tls", "-http-listen", "127.0.0.1:0"}, append(append([]string{}, nodeFlags...), h.flags...)...)
	if h.bindAll {
		args = append([]string{"start", "-name", n.name, "-data-dir", n.dataDir, "-memcache-listen", "0.0.0.0:" + memcachePort,
			"-rpc-listen", "0.0.0.0:" + rpcPort, "-gossip-listen", "0.0.0.0:" + gossipPort, "-transport-listen", "0.0.0.0:" + transportPort,
			"-http-listen", "0.0.0.0:" + httpPort, "-advertise-host", n.ip, "-certs-dir", n.certs, "-rpc-tls"}, append(append([]string{}, nodeFlags...), h.flags...)...)
	}
	cmd := h.topo.NodeCommand(n.idx, gokaiBinary(h.t), args...) // its pid is gokai's
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		h.t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== %s harness: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(cmd.Args, " "))
	cmd.Stdout, cmd.Stderr = logf, logf
	// NB: if the test binary dies without its cleanups, the node dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		h.t.Fatal(err)
	}
	logf.Close()
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	n.mu.Lock()
	n.cmd, n.exited, n.paused = cmd, exited, false
	n.mu.Unlock()

	var dialErr error
	if !eventually.WithinEvery(startBound, 50*time.Millisecond, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := h.topo.Dial(ctx, "tcp", n.rpcAddr())
		cancel()
		if err == nil {
			c.Close()
			return true
		}
		dialErr = err
		select {
		case <-exited:
			h.t.Fatalf("%s exited before it listened:\n%s", n.short, tail(n.logPath, 40))
		default:
		}
		return false
	}) {
		h.t.Fatalf("%s not listening after %v: %v\n%s", n.short, startBound, dialErr, tail(n.logPath, 40))
	}
	if n.admin == nil {
		c := h.rpcClient(n, adminCall)
		n.mu.Lock()
		n.admin = c
		n.mu.Unlock()
	}
	eventually.NoError(h.t, startBound, n.short+" answers ping", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), adminCall)
		defer cancel()
		_, err := n.admin.Ping(ctx)
		return err
	})
}

// rpcClient is a msgpack-RPC client of one node, routing off, connecting from the hub.
func (h *harness) rpcClient(n *fnode, wait time.Duration) *client.Client {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.Config{Seeds: []string{n.rpcAddr()}, PoolSize: 1, DisableRouting: true,
		RequestTimeout: wait, DialTimeout: time.Second, Dial: h.topo.Dial, TLS: h.tls})
	if err != nil {
		h.t.Fatalf("client of %s: %v", n.short, err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c
}

// stopAll kills every node (resuming paused ones first) and waits for the exits.
func (h *harness) stopAll() {
	for _, n := range h.all() {
		n.mu.Lock()
		cmd, exited := n.cmd, n.exited
		n.mu.Unlock()
		if cmd == nil || cmd.Process == nil {
			continue
		}
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			fmt.Fprintf(os.Stderr, "faults: %s (pid %d) did not exit after SIGKILL\n", n.short, cmd.Process.Pid)
		}
	}
}

func (h *harness) dumpLogs(lines int) {
	for _, n := range h.all() {
		h.t.Logf("--- last %d lines of %s (%s) ---\n%s", lines, n.short, n.logPath, tail(n.logPath, lines))
	}
}

// tail returns the last lines of a file.
func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	ls := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return string(bytes.Join(ls, []byte("\n")))
}

// --- faults -------------------------------------------------------------------------------------------

func (h *harness) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

func (h *harness) shorts(idx []int) string {
	var s []string
	for _, i := range idx {
		s = append(s, fmt.Sprintf("n%d", i))
	}
	return strings.Join(s, ",")
}

// partition cuts the network between groups of nodes (by index); clients in the hub reach every node.
func (h *harness) partition(groups ...[]int) time.Time {
	h.t.Helper()
	ctx, cancel := h.ctx()
	defer cancel()
	if err := h.topo.Partition(ctx, groups...); err != nil {
		h.t.Fatal(err)
	}
	var gs []string
	for _, g := range groups {
		gs = append(gs, "{"+h.shorts(g)+"}")
	}
	return h.event("partition %s", strings.Join(gs, " | "))
}

// heal removes every partition.
func (h *harness) heal() time.Time {
	h.t.Helper()
	ctx, cancel := h.ctx()
	defer cancel()
	if err := h.topo.Heal(ctx); err != nil {
		h.t.Fatal(err)
	}
	return h.event("heal")
}

// kill9 kills node i with SIGKILL and waits for the exit.
func (h *harness) kill9(i int) time.Time {
	h.t.Helper()
	n := h.node(i)
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if err := cmd.Process.Kill(); err != nil {
		h.t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		h.t.Fatalf("%s did not exit after SIGKILL", n.short)
	}
	return h.event("kill -9 %s", n.short)
}

// restart starts node i again: same data dir, same addresses.
func (h *harness) restart(i int) time.Time {
	h.t.Helper()
	n := h.node(i)
	if n.running() {
		h.t.Fatalf("restart %s: still running", n.short)
	}
	at := h.event("restart %s", n.short)
	h.launch(n)
	h.event("%s answers again", n.short)
	return at
}

// pause stops node i with SIGSTOP; resume continues it with SIGCONT.
func (h *harness) pause(i int) time.Time {
	h.t.Helper()
	return h.signal(i, syscall.SIGSTOP, true, "SIGSTOP")
}

func (h *harness) resume(i int) time.Time {
	h.t.Helper()
	return h.signal(i, syscall.SIGCONT, false, "SIGCONT")
}

func (h *harness) signal(i int, sig syscall.Signal, paused bool, what string) time.Time {
	h.t.Helper()
	n := h.node(i)
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.cmd.Process.Signal(sig); err != nil {
		h.t.Fatal(err)
	}
	n.paused = paused
	return h.event("%s %s", what, n.short)
}

// recoverAll ends every fault: heals the network, resumes paused nodes and restarts killed ones.
func (h *harness) recoverAll() {
	h.t.Helper()
	ctx, cancel := h.ctx()
	defer cancel()
	if err := h.topo.Heal(ctx); err != nil {
		h.t.Fatal(err)
	}
	for _, n := range h.all() {
		n.mu.Lock()
		paused := n.paused
		n.mu.Unlock()
		switch {
		case paused:
			h.resume(n.idx)
		case !n.running():
			h.restart(n.idx)
		}
	}
}

// --- cluster methods ----------------------------------------------------------------------------------

// cStatus is cluster_status (the fields the suite reads).
type cStatus struct {
	Cluster  string `msgpack:"cluster"`
	Version  uint64 `msgpack:"version"`
	Claimant string `msgpack:"claimant"`
	Q        int    `msgpack:"q"`
	Node     string `msgpack:"node"`
	Members  []struct {
		Name       string `msgpack:"name"`
		Status     string `msgpack:"status"`
		Alive      bool   `msgpack:"alive"`
		Partitions int    `msgpack:"partitions"`
	} `msgpack:"members"`
	Staged []struct {
		Kind string `msgpack:"kind"`
		Node string `msgpack:"node"`
	} `msgpack:"staged"`
	Transfers []struct {
		Partition int    `msgpack:"partition"`
		From      string `msgpack:"from"`
		To        string `msgpack:"to"`
		State     string `msgpack:"state"`
	} `msgpack:"transfers"`
}

// shape is what must agree across nodes: the version, claimant, members with status and partitions, and
// the pending transfers.
func (s *cStatus) shape() string {
	var parts []string
	for _, m := range s.Members {
		parts = append(parts, fmt.Sprintf("%s/%s/%d", shortName(m.Name), m.Status, m.Partitions))
	}
	return fmt.Sprintf("v%d claimant=%s %s transfers=%d staged=%d", s.Version, shortName(s.Claimant),
		strings.Join(parts, ","), len(s.Transfers), len(s.Staged))
}

// alive lists the members s sees alive (short names).
func (s *cStatus) alive() []string {
	var out []string
	for _, m := range s.Members {
		if m.Alive {
			out = append(out, shortName(m.Name))
		}
	}
	return out
}

// shortName is "n3" for "n3@10.200.7.3".
func shortName(name string) string {
	if i := strings.IndexByte(name, '@'); i > 0 {
		return name[:i]
	}
	return name
}

// adminClient is n's admin client, nil until the node first answered (a node the view sampler sees
// running may still be starting).
func (n *fnode) adminClient() *client.Client {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.admin
}

func (h *harness) status(n *fnode) (*cStatus, error) {
	admin := n.adminClient()
	if admin == nil {
		return nil, fmt.Errorf("%s: starting, no admin client yet", n.short)
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminCall)
	defer cancel()
	var st cStatus
	if err := admin.Call(ctx, "cluster_status", nil, &st, true); err != nil {
		return nil, err
	}
	return &st, nil
}

// form starts nodes 1..count and makes one cluster of them: cluster_join sent to every node after the
// first (seeded with n1's transport address), cluster_commit, then waits until every node reports the same
// settled state.
func (h *harness) form(count int) {
	h.t.Helper()
	for i := 1; i <= count; i++ {
		h.addNode(i)
	}
	for i := 2; i <= count; i++ {
		h.join(i, 1)
	}
	h.waitStaged(h.node(1), count-1)
	h.commit(1)
	var idx []int
	for i := 1; i <= count; i++ {
		idx = append(idx, i)
	}
	if d, why := h.waitCluster(h.names(idx...), true, formBound); why != "" {
		h.t.Fatalf("the new cluster did not settle in %v: %s", d, why)
	}
	h.event("cluster of %d formed", count)
}

// join makes node i join the cluster of node seed (cluster_join with the seed's transport address).
func (h *harness) join(i, seed int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	n := h.node(i)
	if err := n.admin.Call(ctx, "cluster_join", []any{h.node(seed).transportAddr()}, nil, false); err != nil {
		h.t.Fatalf("%s: cluster_join %s: %v", n.short, h.node(seed).short, err)
	}
	h.event("%s: cluster_join %s", n.short, h.node(seed).short)
}

// leave stages node i's leave, through node via (any member forwards it to the claimant).
func (h *harness) leave(i, via int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.node(via).admin.Call(ctx, "cluster_leave", []any{h.node(i).name}, nil, false); err != nil {
		h.t.Fatalf("cluster_leave %s via %s: %v", h.node(i).short, h.node(via).short, err)
	}
	h.event("cluster_leave %s (via %s)", h.node(i).short, h.node(via).short)
}

// commit plans and commits the staged changes through node via.
func (h *harness) commit(via int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n := h.node(via)
	var plan struct {
		Transfers []any  `msgpack:"transfers"`
		Warning   string `msgpack:"warning"`
	}
	if err := n.admin.Call(ctx, "cluster_plan", nil, &plan, false); err != nil {
		h.t.Fatalf("cluster_plan via %s: %v", n.short, err)
	}
	if err := n.admin.Call(ctx, "cluster_commit", nil, nil, false); err != nil {
		h.t.Fatalf("cluster_commit via %s: %v", n.short, err)
	}
	h.event("plan + commit via %s: %d transfers %s", n.short, len(plan.Transfers), plan.Warning)
}

// waitStaged polls n until its cluster state lists want staged changes.
func (h *harness) waitStaged(n *fnode, want int) {
	h.t.Helper()
	eventually.NoError(h.t, 20*time.Second, fmt.Sprintf("%s lists %d staged changes", n.short, want), func() error {
		st, err := h.status(n)
		if err != nil {
			return err
		}
		if len(st.Staged) != want {
			return fmt.Errorf("staged %+v", st.Staged)
		}
		return nil
	})
}

// waitCut waits until each side of a cut (groups of node indexes) sees every node of the other side dead,
// and returns how long that took: the fault has been detected.
func (h *harness) waitCut(a, b []int) time.Duration {
	h.t.Helper()
	var why string
	seesDead := func(from, to []int) string {
		for _, i := range from {
			n := h.node(i)
			st, err := h.status(n)
			if err != nil {
				return fmt.Sprintf("%s: %v", n.short, err)
			}
			if alive := st.alive(); slices.ContainsFunc(to, func(j int) bool { return slices.Contains(alive, h.node(j).short) }) {
				return fmt.Sprintf("%s sees alive %v", n.short, alive)
			}
		}
		return ""
	}
	start := time.Now()
	if !eventually.WithinEvery(30*time.Second, 100*time.Millisecond, func() bool {
		if why = seesDead(a, b); why == "" {
			why = seesDead(b, a)
		}
		return why == ""
	}) {
		h.t.Fatalf("the cut {%s} | {%s} not seen by both sides within 30s: %s", h.shorts(a), h.shorts(b), why)
	}
	took := time.Since(start)
	h.event("cut {%s} | {%s} seen by both sides after %v", h.shorts(a), h.shorts(b), took.Round(time.Millisecond))
	return took
}

// clusterOnce checks the cluster once: every member (of the names given) that runs answers, sees exactly
// those members, every one alive, and all report the same shape. With settled it also wants every member
// valid, nothing staged, no transfer pending, and every partition owned. It returns "" or why not.
func (h *harness) clusterOnce(members []string, settled bool) string {
	want := strings.Join(members, ",")
	var first *cStatus
	var firstNode string
	for _, name := range members {
		n := h.byName(name)
		if n == nil {
			return "no node " + name
		}
		st, err := h.status(n)
		if err != nil {
			return fmt.Sprintf("%s: %v", n.short, err)
		}
		var names []string
		total := 0
		for _, m := range st.Members {
			names = append(names, m.Name)
			total += m.Partitions
			if !m.Alive {
				return fmt.Sprintf("%s sees %s dead", n.short, shortName(m.Name))
			}
			if settled && m.Status != "valid" {
				return fmt.Sprintf("%s sees %s %s", n.short, shortName(m.Name), m.Status)
			}
		}
		sort.Strings(names)
		switch {
		case strings.Join(names, ",") != want:
			return fmt.Sprintf("%s sees members %v, want %v", n.short, names, members)
		case settled && (len(st.Transfers) > 0 || len(st.Staged) > 0):
			return fmt.Sprintf("%s sees %d transfers pending, %d staged (version %d)", n.short, len(st.Transfers), len(st.Staged), st.Version)
		case settled && total != st.Q:
			return fmt.Sprintf("%s: members own %d of %d partitions", n.short, total, st.Q)
		case first != nil && st.shape() != first.shape():
			return fmt.Sprintf("%s sees %s; %s sees %s", firstNode, first.shape(), n.short, st.shape())
		}
		if first == nil {
			first, firstNode = st, n.short
		}
	}
	return ""
}

// waitCluster polls clusterOnce (a status call to every member: every 100 ms, not faster) until it holds
// or bound passes; it returns how long it waited and "" or the last reason.
func (h *harness) waitCluster(members []string, settled bool, bound time.Duration) (time.Duration, string) {
	start := time.Now()
	var why string
	eventually.WithinEvery(bound, 100*time.Millisecond, func() bool {
		why = h.clusterOnce(members, settled)
		return why == ""
	})
	return time.Since(start), why
}

// --- what the nodes see: a liveness sampler ----------------------------------------------------------

// viewSample is what one node reported at one time.
type viewSample struct {
	at    time.Time
	node  string
	alive string // members seen alive, or "no answer: ..."
	shape string
}

// viewSampler polls every running node's cluster_status in the background, for the evidence of what
// each node saw during a fault (failure detection, healing).
type viewSampler struct {
	mu      sync.Mutex
	samples []viewSample
	stopCh  chan struct{}
	done    chan struct{}
}

func (h *harness) startSampler(every time.Duration) *viewSampler {
	s := &viewSampler{stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			var wg sync.WaitGroup
			for _, n := range h.all() {
				if !n.running() {
					continue
				}
				wg.Add(1)
				go func(n *fnode) {
					defer wg.Done()
					st, err := h.status(n)
					v := viewSample{at: time.Now(), node: n.short}
					if err != nil {
						v.alive = "no answer"
					} else {
						v.alive, v.shape = "alive="+strings.Join(st.alive(), ","), st.shape()
					}
					s.mu.Lock()
					s.samples = append(s.samples, v)
					s.mu.Unlock()
				}(n)
			}
			wg.Wait()
			select {
			case <-s.stopCh:
				return
			case <-time.After(every):
			}
		}
	}()
	return s
}

func (s *viewSampler) stop() {
	select {
	case <-s.stopCh:
	default:
		close(s.stopCh)
	}
	<-s.done
}

// timeline summarises, per node, the changes of what it saw, relative to t0 ("+3.2s n3: alive=n1,n2,n3").
func (s *viewSampler) timeline(t0 time.Time) string {
	s.mu.Lock()
	samples := append([]viewSample(nil), s.samples...)
	s.mu.Unlock()
	sort.SliceStable(samples, func(i, j int) bool {
		return samples[i].node < samples[j].node || samples[i].node == samples[j].node && samples[i].at.Before(samples[j].at)
	})
	var b strings.Builder
	last := map[string]string{}
	var end time.Time
	for _, v := range samples {
		state := v.alive
		if v.shape != "" {
			state += " [" + v.shape + "]"
		}
		if v.at.After(end) {
			end = v.at
		}
		if last[v.node] == state {
			continue
		}
		last[v.node] = state
		fmt.Fprintf(&b, "  %+7.1fs %s: %s\n", v.at.Sub(t0).Seconds(), v.node, state)
	}
	if !end.IsZero() {
		fmt.Fprintf(&b, "  (last sample %+.1fs)\n", end.Sub(t0).Seconds())
	}
	return b.String()
}

// detection says when observer first saw peer dead after from (the fault's start), and when it saw it
// alive again after healAt: "n3 dead after 4.1s; alive again 0.8s after the heal", from the samples.
func (s *viewSampler) detection(observer, peer string, from, to, healAt time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var dead, again, last time.Time
	answered, during := false, false
	for _, v := range s.samples {
		if v.node != observer || v.at.Before(from) || v.alive == "no answer" {
			continue
		}
		answered = true
		during = during || v.at.Before(to)
		alive := slices.Contains(strings.Split(strings.TrimPrefix(v.alive, "alive="), ","), peer)
		switch {
		case v.at.Before(to) && !alive && dead.IsZero():
			dead = v.at
		case !v.at.Before(healAt) && alive && again.IsZero():
			again = v.at
		}
		if v.at.After(last) {
			last = v.at
		}
	}
	if !answered {
		return fmt.Sprintf("%s gave no answer", observer)
	}
	out := fmt.Sprintf("%s saw %s ", observer, peer)
	switch {
	case !during:
		out = fmt.Sprintf("%s gave no answer during the fault; it saw %s ", observer, peer)
		if again.IsZero() {
			out += "dead"
		} else {
			out += "alive"
		}
		return out + fmt.Sprintf(" %.1fs after the fault ended", last.Sub(healAt).Seconds())
	case dead.IsZero():
		out += fmt.Sprintf("ALIVE throughout the fault (%.1fs)", to.Sub(from).Seconds())
	default:
		out += fmt.Sprintf("dead %.1fs after the fault began", dead.Sub(from).Seconds())
	}
	switch {
	case !again.IsZero():
		out += fmt.Sprintf(", alive %.1fs after it ended", again.Sub(healAt).Seconds())
	case last.After(healAt):
		out += fmt.Sprintf(", and STILL DEAD at the last sample, %.1fs after it ended", last.Sub(healAt).Seconds())
	}
	return out
}
