package node

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/client"
	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/internal/logbuf"
	"github.com/gokai-kv/gokai/kv"
)

// Multi-node tests of several services run each node in its own process (two protoactor remotes in one
// process trip the race detector): this test binary, started again with GOKAI_NODE_TEST_CHILD=1, runs a
// node with KV and the reg service (testservice_test.go) on the flags it is given.

func TestMain(m *testing.M) {
	if os.Getenv("GOKAI_NODE_TEST_CHILD") == "1" {
		os.Exit(runChildNode(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// runChildNode is a child process's main: a node with KV and reg until SIGTERM.
func runChildNode(args []string) int {
	cfg, kvOpts := Default(), kv.DefaultOptions()
	fs := flag.NewFlagSet("child", flag.ContinueOnError)
	cfg.Bind(fs)
	kvOpts.Bind(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	n, err := New(cfg, logger, nil, WithService(kv.Service(kvOpts)), WithService(regService()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := n.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "CHILD READY rpc=%s transport=%s\n", n.RPCAddr(), n.TransportAddr())
	select {
	case <-ctx.Done():
	case err := <-n.Done():
		fmt.Fprintln(os.Stderr, "child: node failed:", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Stop(sctx); err != nil {
		fmt.Fprintln(os.Stderr, "child: stop:", err)
		return 1
	}
	return 0
}

// child is one node process.
type child struct {
	name, rpc, transport string
	dir                  string // data dir, when the test chose it
	cmd                  *exec.Cmd
	log                  *logbuf.Buffer
	exited               chan struct{}
	c                    *client.Client
}

var childReadyRE = regexp.MustCompile(`CHILD READY rpc=(\S+) transport=(\S+)`)

// startChild starts node process name; extra flags follow (and so override) the defaults.
func startChild(t testing.TB, name string, extra ...string) *child {
	t.Helper()
	ch := &child{name: name, log: &logbuf.Buffer{}, exited: make(chan struct{})}
	args := []string{"-name", name, "-data-dir", t.TempDir(), "-q", "16",
		"-memcache-listen", "", "-http-listen", "127.0.0.1:0", "-rpc-listen", "127.0.0.1:0", "-gossip-listen", "127.0.0.1:0", "-transport-listen", "127.0.0.1:0",
		"-gossip-probe-interval", "200ms", "-linger", "200ms"}
	ch.cmd = exec.Command(os.Args[0], append(args, extra...)...)
	ch.cmd.Env = append(os.Environ(), "GOKAI_NODE_TEST_CHILD=1")
	stderr, err := ch.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			ch.log.Write([]byte(sc.Text() + "\n"))
			if m := childReadyRE.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m
			}
		}
	}()
	go func() {
		_ = ch.cmd.Wait()
		close(ch.exited)
	}()
	t.Cleanup(func() {
		ch.stop(t)
		if t.Failed() {
			t.Logf("%s's log:\n%s", name, ch.log.String())
		}
	})
	select {
	case m := <-ready:
		ch.rpc, ch.transport = m[1], m[2]
	case <-ch.exited:
		t.Fatalf("%s exited before it was ready:\n%s", name, ch.log.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("%s not ready after 60s:\n%s", name, ch.log.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch.c, err = client.New(ctx, client.Config{Seeds: []string{ch.rpc}, DisableRouting: true, RequestTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.c.Close() })
	return ch
}

// stop ends the process with SIGTERM (SIGKILL after 30s) and waits for it.
func (ch *child) stop(t testing.TB) {
	select {
	case <-ch.exited:
		return
	default:
	}
	_ = ch.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ch.exited:
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not stop on SIGTERM", ch.name)
		_ = ch.cmd.Process.Kill()
		<-ch.exited
	}
}

func (ch *child) call(method string, params []any, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return ch.c.Call(ctx, method, params, out, false)
}

// servicesStatus is what cluster_status tells the tests.
type servicesStatus struct {
	Version uint64 `msgpack:"version"`
	Members []struct {
		Name   string `msgpack:"name"`
		Status string `msgpack:"status"`
		Alive  bool   `msgpack:"alive"`
	} `msgpack:"members"`
	Staged    []any `msgpack:"staged"`
	Transfers []any `msgpack:"transfers"`
}

// settled polls the nodes until each sees exactly members, all valid and alive, nothing staged or
// transferring, at one version.
func settled(t testing.TB, nodes []*child, members ...string) {
	t.Helper()
	eventually.NoError(t, 120*time.Second, "the cluster settled on "+strings.Join(members, ","), func() error {
		var version uint64
		for i, ch := range nodes {
			var st servicesStatus
			if err := ch.call("cluster_status", nil, &st); err != nil {
				return fmt.Errorf("%s: %v", ch.name, err)
			}
			var names []string
			for _, m := range st.Members {
				if m.Status != "valid" || !m.Alive {
					return fmt.Errorf("%s sees %s %s alive=%v", ch.name, m.Name, m.Status, m.Alive)
				}
				names = append(names, m.Name)
			}
			switch {
			case !slices.Equal(names, members):
				return fmt.Errorf("%s sees members %v", ch.name, names)
			case len(st.Staged) > 0 || len(st.Transfers) > 0:
				return fmt.Errorf("%s sees %d staged, %d transfers", ch.name, len(st.Staged), len(st.Transfers))
			case i > 0 && st.Version != version:
				return fmt.Errorf("%s at version %d, %s at %d", ch.name, st.Version, nodes[0].name, version)
			}
			version = st.Version
		}
		return nil
	})
}

// commit plans and commits what is staged, through ch, once want changes are staged.
func commit(t testing.TB, ch *child, want int) {
	t.Helper()
	eventually.NoError(t, 30*time.Second, fmt.Sprintf("%d changes staged", want), func() error {
		var st servicesStatus
		if err := ch.call("cluster_status", nil, &st); err != nil {
			return err
		}
		if len(st.Staged) != want {
			return fmt.Errorf("%d staged", len(st.Staged))
		}
		return nil
	})
	for _, m := range []string{"cluster_plan", "cluster_commit"} {
		if err := ch.call(m, nil, nil); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
	}
}

// replicasHold checks, for each key, that every primary replica of its current preference list holds its
// value, in both services: KV's vnode_get, reg's reg.vnode_get on the replica's node.
func replicasHold(nodes []*child, keys map[string]uint64) error {
	byName := map[string]*child{}
	for _, ch := range nodes {
		byName[ch.name] = ch
	}
	for k, v := range keys {
		var pl []struct {
			Partition int    `msgpack:"partition"`
			Node      string `msgpack:"node"`
			Primary   bool   `msgpack:"primary"`
		}
		if err := nodes[0].call("preflist", []any{[]byte(k)}, &pl); err != nil {
			return err
		}
		for _, e := range pl {
			if !e.Primary {
				continue
			}
			ch := byName[e.Node]
			if ch == nil {
				return fmt.Errorf("%s's list names %s, not a running member", k, e.Node)
			}
			var got struct {
				Found  bool     `msgpack:"found"`
				Values [][]byte `msgpack:"values"`
			}
			if err := ch.call("vnode_get", []any{e.Partition, []byte(k)}, &got); err != nil {
				return fmt.Errorf("kv %s on %s/%d: %v", k, e.Node, e.Partition, err)
			}
			if !got.Found || len(got.Values) != 1 || string(got.Values[0]) != fmt.Sprint(v) {
				return fmt.Errorf("kv %s on %s/%d: %+v, want %d", k, e.Node, e.Partition, got, v)
			}
			var rv uint64
			if err := ch.call("reg.vnode_get", []any{e.Partition, []byte(k)}, &rv); err != nil {
				return fmt.Errorf("reg %s on %s/%d: %v", k, e.Node, e.Partition, err)
			}
			if rv != v {
				return fmt.Errorf("reg %s on %s/%d: %d, want %d", k, e.Node, e.Partition, rv, v)
			}
		}
	}
	return nil
}

// writer writes keys to both services through the nodes given, one after another, until stopped, and
// records those both services acknowledged.
type writer struct {
	stopc chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	acked map[string]uint64
}

func startWriter(nodes []*child) *writer {
	w := &writer{stopc: make(chan struct{}), done: make(chan struct{}), acked: map[string]uint64{}}
	go func() {
		defer close(w.done)
		for i := 1; ; i++ {
			select {
			case <-w.stopc:
				return
			default:
			}
			ch, k := nodes[i%len(nodes)], fmt.Sprintf("live-%d", i)
			v := uint64(1000 + i)
			if ch.call("put", []any{[]byte(k), []byte(fmt.Sprint(v)), nil, map[string]any{}}, nil) != nil {
				continue
			}
			if ch.call("reg.put", []any{[]byte(k), v}, nil) != nil {
				continue
			}
			w.mu.Lock()
			w.acked[k] = v
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *writer) stop() map[string]uint64 {
	close(w.stopc)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acked
}

// readable checks that every key reads its value through every node, in both services (quorum reads).
func readable(nodes []*child, keys map[string]uint64) error {
	for k, v := range keys {
		for _, ch := range nodes {
			var kvv struct {
				Values [][]byte `msgpack:"values"`
			}
			if err := ch.call("get", []any{[]byte(k), map[string]any{}}, &kvv); err != nil {
				return fmt.Errorf("get %s through %s: %v", k, ch.name, err)
			}
			if len(kvv.Values) != 1 || string(kvv.Values[0]) != fmt.Sprint(v) {
				return fmt.Errorf("get %s through %s: %q, want %d", k, ch.name, kvv.Values, v)
			}
			var rv uint64
			if err := ch.call("reg.get", []any{[]byte(k)}, &rv); err != nil || rv != v {
				return fmt.Errorf("reg.get %s through %s: %d %v, want %d", k, ch.name, rv, err, v)
			}
		}
	}
	return nil
}

// TestServicesHandOffOnJoinAndLeave runs KV and reg on three node processes: data written to both services
// is on every replica of its preference list; a fourth node joins and the first leaves, with writes to both
// services going on meanwhile; after each change every replica of the current lists holds each preloaded
// key in both services (ownership handoff of every service, and re-home), and every acknowledged write
// reads back through every node.
func TestServicesHandOffOnJoinAndLeave(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	a, b, c := startChild(t, "a"), startChild(t, "b"), startChild(t, "c")
	for _, ch := range []*child{b, c} {
		if err := ch.call("cluster_join", []any{a.transport}, nil); err != nil {
			t.Fatalf("%s joins: %v", ch.name, err)
		}
	}
	commit(t, a, 2)
	settled(t, []*child{a, b, c}, "a", "b", "c")

	keys := map[string]uint64{}
	nodes := []*child{a, b, c}
	for i := range 60 {
		k, v := fmt.Sprintf("pre-%d", i), uint64(i+1)
		ch := nodes[i%3]
		// NB: a generous deadline: W=3 waits for the slowest replica, and a child process of a loaded machine
		// (under -race) missed the default one (failed about one run in ten).
		if err := ch.call("put", []any{[]byte(k), []byte(fmt.Sprint(v)), nil, map[string]any{"w": 3, "timeout_ms": 15000}}, nil); err != nil {
			t.Fatal(err)
		}
		if err := ch.call("reg.put", []any{[]byte(k), v}, nil); err != nil {
			t.Fatal(err)
		}
		keys[k] = v
	}
	eventually.NoError(t, 30*time.Second, "every replica holds the preloaded keys", func() error { return replicasHold(nodes, keys) })

	w := startWriter([]*child{b, c})
	d := startChild(t, "d")
	if err := d.call("cluster_join", []any{a.transport}, nil); err != nil {
		t.Fatal(err)
	}
	commit(t, a, 1)
	nodes = []*child{a, b, c, d}
	settled(t, nodes, "a", "b", "c", "d")
	eventually.NoError(t, 60*time.Second, "after the join, every replica holds the preloaded keys", func() error { return replicasHold(nodes, keys) })

	if err := a.call("cluster_leave", nil, nil); err != nil {
		t.Fatal(err)
	}
	commit(t, b, 1)
	nodes = []*child{b, c, d}
	settled(t, nodes, "b", "c", "d")
	live := w.stop()
	a.stop(t)
	eventually.NoError(t, 60*time.Second, "after the leave, every replica holds the preloaded keys", func() error { return replicasHold(nodes, keys) })
	if len(live) == 0 {
		t.Fatal("no write was acknowledged during the join and the leave")
	}
	if err := readable(nodes, live); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d writes acknowledged by both services during the join and the leave", len(live))
	for _, ch := range nodes {
		st, err := ch.c.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if vn, _ := st.Int("gokai_vnodes"); vn != 2*16 {
			t.Errorf("%s runs %d vnodes, want both services' 16", ch.name, vn)
		}
	}
}
