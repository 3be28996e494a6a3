package itest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/client"
	"github.com/gokai-kv/gokai/internal/eventually"
)

// The cluster harness: real gokai processes with names, the cluster methods over the Go client, memcache
// loads that record what the cluster acknowledged, and polling helpers.

// cnode is one gokai process of a cluster.
type cnode struct {
	*proc
	name          string
	gossipAddr    string
	transportAddr string
	extra         []string // flags it was started with (besides the addresses)
}

var clusterReadyRE = regexp.MustCompile(`msg="cluster ready" .*gossip=(\S+) transport=(\S+)`)

// startCNode starts a named node on a data dir ("" for a new temp dir) with loopback port 0 for every
// listener unless extra sets them.
func startCNode(t *testing.T, name, dataDir string, extra ...string) *cnode {
	t.Helper()
	return startCNodeOf(t, gokaiBinary(t), name, dataDir, extra...)
}

// startCNodeOf is startCNode with another binary of gokai's command line.
func startCNodeOf(t *testing.T, bin, name, dataDir string, extra ...string) *cnode {
	t.Helper()
	p := startNodeOf(t, bin, dataDir, append(append([]string{"-name", name}, secureFlags(t, name)...), extra...)...)
	m := clusterReadyRE.FindStringSubmatch(p.logText())
	if m == nil {
		t.Fatalf("%s: no cluster ready line in the log:\n%s", name, p.logText())
	}
	return &cnode{proc: p, name: name, gossipAddr: m[1], transportAddr: m[2], extra: extra}
}

// restart starts c again on its data dir, name, flags and addresses (as a node with fixed ports in its
// config comes back): its peers see the same node at the same place. c must have exited.
func (c *cnode) restart(t *testing.T) *cnode {
	t.Helper()
	args := append(append([]string{}, c.extra...), "-memcache-listen", c.mcAddr, "-rpc-listen", c.rpcAddr,
		"-gossip-listen", c.gossipAddr, "-transport-listen", c.transportAddr)
	return startCNodeOf(t, c.bin, c.name, c.dataDir, args...)
}

// kill9 kills c with SIGKILL and waits for the exit.
func (c *cnode) kill9(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not exit after SIGKILL", c.name)
	}
}

// rpcClient is a client of one node (no routing: every call goes to addr).
func rpcClient(t *testing.T, addr string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.Config{Seeds: []string{addr}, PoolSize: 1, DisableRouting: true, RequestTimeout: 5 * time.Second,
		TLS: clientTLS(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// cStatus is cluster_status (the fields the tests look at).
type cStatus struct {
	Cluster  string `msgpack:"cluster" json:"cluster"`
	Version  uint64 `msgpack:"version" json:"version"`
	Claimant string `msgpack:"claimant" json:"claimant"`
	N        int    `msgpack:"n" json:"n"`
	Q        int    `msgpack:"q" json:"q"`
	Node     string `msgpack:"node" json:"node"`
	Members  []struct {
		Name            string `msgpack:"name" json:"name"`
		Status          string `msgpack:"status" json:"status"`
		Alive           bool   `msgpack:"alive" json:"alive"`
		Partitions      int    `msgpack:"partitions" json:"partitions"`
		PartitionsAfter int    `msgpack:"partitions_after" json:"partitions_after"`
		RPCAddr         string `msgpack:"rpc_addr" json:"rpc_addr"`
		MemcacheAddr    string `msgpack:"memcache_addr" json:"memcache_addr"`
	} `msgpack:"members" json:"members"`
	Staged []struct {
		Kind string `msgpack:"kind" json:"kind"`
		Node string `msgpack:"node" json:"node"`
	} `msgpack:"staged" json:"staged"`
	Transfers []struct {
		Partition int    `msgpack:"partition" json:"partition"`
		From      string `msgpack:"from" json:"from"`
		To        string `msgpack:"to" json:"to"`
		State     string `msgpack:"state" json:"state"`
	} `msgpack:"transfers" json:"transfers"`
}

// shape is what must agree across nodes once the cluster settled: members with status and partitions.
func (s *cStatus) shape() string {
	var parts []string
	for _, m := range s.Members {
		parts = append(parts, fmt.Sprintf("%s/%s/%d", m.Name, m.Status, m.Partitions))
	}
	return fmt.Sprintf("v%d claimant=%s %s transfers=%d", s.Version, s.Claimant, strings.Join(parts, ","), len(s.Transfers))
}

// partitions maps member name to its partition count.
func (s *cStatus) partitions() map[string]int {
	out := map[string]int{}
	for _, m := range s.Members {
		out[m.Name] = m.Partitions
	}
	return out
}

// tProgress is one entry of `transfers`.
type tProgress struct {
	Partition int     `msgpack:"partition" json:"partition"`
	From      string  `msgpack:"from" json:"from"`
	To        string  `msgpack:"to" json:"to"`
	State     string  `msgpack:"state" json:"state"`
	Keys      int64   `msgpack:"keys" json:"keys"`
	TotalKeys int64   `msgpack:"total_keys" json:"total_keys"`
	Bytes     int64   `msgpack:"bytes" json:"bytes"`
	Attempts  int     `msgpack:"attempts" json:"attempts"`
	LastError string  `msgpack:"last_error" json:"last_error"`
	Rate      float64 `msgpack:"rate" json:"rate"`
}

func callStatus(ctx context.Context, c *client.Client) (*cStatus, error) {
	var st cStatus
	return &st, c.Call(ctx, "cluster_status", nil, &st, true)
}

func callTransfers(ctx context.Context, c *client.Client) ([]tProgress, error) {
	var ps []tProgress
	return ps, c.Call(ctx, "transfers", nil, &ps, true)
}

// cluster is a set of running nodes and a client per node.
type cluster struct {
	t     *testing.T
	bin   string // the binary its nodes and CLI run ("": gokai's)
	nodes []*cnode
	cls   map[string]*client.Client // by node name
}

// binary is the binary the cluster's nodes and CLI commands run.
func (cl *cluster) binary() string {
	if cl.bin == "" {
		return gokaiBinary(cl.t)
	}
	return cl.bin
}

func newCluster(t *testing.T) *cluster {
	return &cluster{t: t, cls: map[string]*client.Client{}}
}

// add starts a node and keeps it in the cluster's list (it is not a member until it joins).
func (cl *cluster) add(name string, extra ...string) *cnode {
	cl.t.Helper()
	n := startCNodeOf(cl.t, cl.binary(), name, "", extra...)
	cl.nodes = append(cl.nodes, n)
	cl.cls[name] = rpcClient(cl.t, n.rpcAddr)
	return n
}

// replace swaps the process of a node (after a restart), by name.
func (cl *cluster) replace(n *cnode) {
	cl.t.Helper()
	for i, o := range cl.nodes {
		if o.name == n.name {
			cl.nodes[i] = n
		}
	}
	cl.cls[n.name] = rpcClient(cl.t, n.rpcAddr)
}

func (cl *cluster) remove(name string) {
	for i, o := range cl.nodes {
		if o.name == name {
			cl.nodes = append(cl.nodes[:i], cl.nodes[i+1:]...)
			return
		}
	}
}

func (cl *cluster) names() []string {
	var out []string
	for _, n := range cl.nodes {
		out = append(out, n.name)
	}
	sort.Strings(out)
	return out
}

// cli runs the gokai binary against node n and fails the test on a non-zero exit.
func (cl *cluster) cli(n *cnode, args ...string) string {
	cl.t.Helper()
	return binCLI(cl.t, cl.binary(), n.rpcAddr, "", args...).ok(cl.t, "gokai "+strings.Join(args, " ")).stdout
}

// cliJSON runs a --json command against n and decodes its output into v.
func (cl *cluster) cliJSON(n *cnode, v any, args ...string) {
	cl.t.Helper()
	out := cl.cli(n, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		cl.t.Fatalf("gokai %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// join makes n join the cluster of seed with `gokai cluster join`.
func (cl *cluster) join(n, seed *cnode) {
	cl.t.Helper()
	cl.cli(n, "cluster", "join", seed.transportAddr)
}

// settled polls every node in the cluster's list until all report the same cluster state with no
// transfers, the members named (all valid) and every partition owned by a member. onPoll, when not nil,
// runs on every round (sampling progress). It returns the final state.
func (cl *cluster) settled(timeout time.Duration, members []string, onPoll func()) *cStatus {
	cl.t.Helper()
	want := strings.Join(members, ",")
	var st *cStatus
	var why string
	// NB: a status call to every node per poll: every 50 ms, not faster.
	if !eventually.WithinEvery(timeout, 50*time.Millisecond, func() bool {
		if onPoll != nil {
			onPoll()
		}
		st, why = cl.settledOnce(want)
		return why == ""
	}) {
		cl.t.Fatalf("cluster not settled after %v: %s", timeout, why)
	}
	return st
}

func (cl *cluster) settledOnce(want string) (*cStatus, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var first *cStatus
	for _, n := range cl.nodes {
		st, err := callStatus(ctx, cl.cls[n.name])
		if err != nil {
			return nil, fmt.Sprintf("%s: %v", n.name, err)
		}
		var names []string
		total := 0
		for _, m := range st.Members {
			names = append(names, m.Name)
			total += m.Partitions
			if m.Status != "valid" || !m.Alive {
				return nil, fmt.Sprintf("%s sees %s %s alive=%v", n.name, m.Name, m.Status, m.Alive)
			}
		}
		switch {
		case strings.Join(names, ",") != want:
			return nil, fmt.Sprintf("%s sees members %v, want %s", n.name, names, want)
		case len(st.Transfers) > 0 || len(st.Staged) > 0:
			return nil, fmt.Sprintf("%s sees %d transfers, %d staged (version %d)", n.name, len(st.Transfers), len(st.Staged), st.Version)
		case total != st.Q:
			return nil, fmt.Sprintf("%s: members own %d of %d partitions", n.name, total, st.Q)
		case first != nil && st.shape() != first.shape():
			return nil, fmt.Sprintf("%s sees %s, %s sees %s", cl.nodes[0].name, first.shape(), n.name, st.shape())
		}
		if first == nil {
			first = st
		}
	}
	return first, ""
}

// form starts the named nodes, makes every one after the first join the first with the CLI, plans,
// commits and waits until the cluster settled.
func (cl *cluster) form(names []string, extra ...string) {
	cl.t.Helper()
	for _, name := range names {
		cl.add(name, extra...)
	}
	for _, n := range cl.nodes[1:] {
		cl.join(n, cl.nodes[0])
	}
	cl.waitStaged(cl.nodes[0], len(names)-1)
	cl.cli(cl.nodes[0], "cluster", "plan")
	cl.cli(cl.nodes[0], "cluster", "commit")
	cl.settled(60*time.Second, cl.names(), nil)
}

// waitStaged polls n until its cluster state lists want staged changes.
func (cl *cluster) waitStaged(n *cnode, want int) {
	cl.t.Helper()
	eventually.NoError(cl.t, 15*time.Second, fmt.Sprintf("%s lists %d staged changes", n.name, want), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := callStatus(ctx, cl.cls[n.name])
		if err != nil {
			return err
		}
		if len(st.Staged) != want {
			return fmt.Errorf("staged %+v", st.Staged)
		}
		return nil
	})
}

// --- memcache loads ---------------------------------------------------------------------------------

// mcConn is a raw memcache text connection (for goroutines: errors are returned, never t.Fatal).
type mcConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialMCConn(addr string) (*mcConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &mcConn{c: c, r: bufio.NewReaderSize(c, 64<<10)}, nil
}

func (m *mcConn) Close() { m.c.Close() }

// setMany pipelines sets of kvs and reports which were acknowledged (STORED).
func (m *mcConn) setMany(kvs [][2]string) ([]bool, error) {
	var b bytes.Buffer
	for _, kv := range kvs {
		fmt.Fprintf(&b, "set %s 0 0 %d\r\n%s\r\n", kv[0], len(kv[1]), kv[1])
	}
	_ = m.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := m.c.Write(b.Bytes()); err != nil {
		return nil, err
	}
	acked := make([]bool, len(kvs))
	for i := range kvs {
		line, err := m.r.ReadString('\n')
		if err != nil {
			return acked, err
		}
		acked[i] = line == "STORED\r\n"
	}
	return acked, nil
}

// getMany reads keys with one multi-get and returns the values found.
func (m *mcConn) getMany(keys []string) (map[string]string, error) {
	got, err := m.retrieve("get", keys)
	out := make(map[string]string, len(got))
	for k, vs := range got {
		out[k] = vs[len(vs)-1]
	}
	return out, err
}

// retrieve sends one get or gets of keys and returns the values of every VALUE line, per key, in order.
func (m *mcConn) retrieve(cmd string, keys []string) (map[string][]string, error) {
	_ = m.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(m.c, "%s %s\r\n", cmd, strings.Join(keys, " ")); err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for {
		line, err := m.r.ReadString('\n')
		if err != nil {
			return out, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "END" {
			return out, nil
		}
		f := strings.Fields(line)
		if len(f) < 4 || f[0] != "VALUE" {
			return out, fmt.Errorf("%s: unexpected line %q", cmd, line)
		}
		size, err := strconv.Atoi(f[3])
		if err != nil || size < 0 {
			return out, fmt.Errorf("%s: unexpected line %q", cmd, line)
		}
		data := make([]byte, size+2)
		if _, err := io.ReadFull(m.r, data); err != nil {
			return out, err
		}
		out[f[1]] = append(out[f[1]], string(data[:size]))
	}
}

// acked is a concurrent record of acknowledged writes.
type acked struct {
	mu sync.Mutex
	m  map[string]string
}

func newAcked() *acked { return &acked{m: map[string]string{}} }

func (a *acked) add(k, v string) {
	a.mu.Lock()
	a.m[k] = v
	a.mu.Unlock()
}

func (a *acked) snapshot() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]string, len(a.m))
	for k, v := range a.m {
		out[k] = v
	}
	return out
}

// preload writes count keys prefix-000000... through addr with conns connections, pipelined in batches,
// and records the acknowledged ones.
func preload(t *testing.T, addr, prefix string, count, conns int, into *acked) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			m, err := dialMCConn(addr)
			if err != nil {
				errs <- err
				return
			}
			defer m.Close()
			const batch = 100
			for i := w * batch; i < count; i += conns * batch {
				var kvs [][2]string
				for j := i; j < min(i+batch, count); j++ {
					k := fmt.Sprintf("%s%06d", prefix, j)
					kvs = append(kvs, [2]string{k, "v-" + k})
				}
				ok, err := m.setMany(kvs)
				if err != nil {
					errs <- err
					return
				}
				for j, a := range ok {
					if a {
						into.add(kvs[j][0], kvs[j][1])
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("preload: %v", err)
	}
}

// writer is a bounded background load: one connection per address, round robin, one set at a time, until
// max keys, the time bound or stop.
type writer struct {
	into     *acked
	stopCh   chan struct{}
	done     chan struct{}
	sent     int
	failures int
}

func startWriter(addrs []string, prefix string, max int, bound time.Duration, into *acked) *writer {
	w := &writer{into: into, stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		conns := map[string]*mcConn{}
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		end := time.Now().Add(bound)
		for i := 0; i < max && time.Now().Before(end); i++ {
			select {
			case <-w.stopCh:
				return
			default:
			}
			addr := addrs[i%len(addrs)]
			c := conns[addr]
			if c == nil {
				var err error
				if c, err = dialMCConn(addr); err != nil {
					w.failures++
					continue
				}
				conns[addr] = c
			}
			k := fmt.Sprintf("%s%06d", prefix, i)
			v := fmt.Sprintf("w-%s-%d", k, i)
			w.sent++
			ok, err := c.setMany([][2]string{{k, v}})
			if err != nil {
				c.Close()
				delete(conns, addr)
				w.failures++
				continue
			}
			if ok[0] {
				w.into.add(k, v)
			} else {
				w.failures++
			}
		}
	}()
	return w
}

// stop ends the load and waits for it.
func (w *writer) stop() {
	select {
	case <-w.stopCh:
	default:
		close(w.stopCh)
	}
	<-w.done
}

// checkReadable reads every acknowledged key through each address (multi-gets of 100 keys over a few
// connections per address) and fails on a missing or wrong value.
func checkReadable(t *testing.T, want map[string]string, addrs map[string]string) {
	t.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	const conns, chunk = 3, 100
	var (
		mu   sync.Mutex
		bad  = map[string][]string{}
		errs []error
		wg   sync.WaitGroup
	)
	for name, addr := range addrs {
		for c := 0; c < conns; c++ {
			wg.Add(1)
			go func(name, addr string, c int) {
				defer wg.Done()
				m, err := dialMCConn(addr)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				defer m.Close()
				for i := c * chunk; i < len(keys); i += conns * chunk {
					part := keys[i:min(i+chunk, len(keys))]
					got, err := m.getMany(part)
					mu.Lock()
					if err != nil {
						errs = append(errs, fmt.Errorf("read through %s: %w", name, err))
						mu.Unlock()
						return
					}
					for _, k := range part {
						if got[k] != want[k] {
							bad[name] = append(bad[name], fmt.Sprintf("%s=%q (want %q)", k, got[k], want[k]))
						}
					}
					mu.Unlock()
				}
			}(name, addr, c)
		}
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	for name, b := range bad {
		sort.Strings(b)
		t.Errorf("through %s: %d of %d acknowledged keys missing or wrong, e.g. %v", name, len(b), len(keys), b[:min(5, len(b))])
	}
}
