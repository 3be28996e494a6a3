package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/kv"
	"github.com/gokai-kv/gokai/node"
)

func TestGroupMoves(t *testing.T) {
	got := groupMoves([]clusterTransfer{
		{Partition: 9, From: "b", To: "c"}, {Partition: 3, From: "a", To: "c"}, {Partition: 1, From: "a", To: "c"},
		{Partition: 2, From: "a", To: "b"}, {Partition: 4, From: "b", To: "c"},
	})
	want := []moveGroup{{"a", "b", []int{2}}, {"a", "c", []int{1, 3}}, {"b", "c", []int{4, 9}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("groupMoves = %+v, want %+v", got, want)
	}
	if groupMoves(nil) != nil {
		t.Fatal("no moves: want no groups")
	}
}

func TestFmtPartitions(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		want string
	}{
		{nil, ""},
		{[]int{5}, "5"},
		{[]int{1, 2, 3}, "1-3"},
		{[]int{0, 3, 6}, "0,3,6"},
		{[]int{0, 1, 3, 4, 5, 9}, "0-1,3-5,9"},
	} {
		if got := fmtPartitions(tc.in); got != tc.want {
			t.Errorf("fmtPartitions(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFmtETA(t *testing.T) {
	for _, tc := range []struct {
		ms   int64
		want string
	}{{0, "-"}, {-5, "-"}, {400, "<1s"}, {1400, "1s"}, {125_600, "2m6s"}} {
		if got := fmtETA(tc.ms); got != tc.want {
			t.Errorf("fmtETA(%d) = %q, want %q", tc.ms, got, tc.want)
		}
	}
}

// TestMergeTransfers: the senders' rows plus the cluster state's waiting moves nobody reported; done
// moves of the state are not shown twice, and the rows are in partition order.
func TestMergeTransfers(t *testing.T) {
	st := &clusterStatus{Version: 7, Transfers: []clusterTransfer{
		{Partition: 1, From: "a", To: "b", State: "done"},
		{Partition: 2, From: "a", To: "b", State: "waiting"},
		{Partition: 3, From: "c", To: "b", State: "waiting"}, // c is down
		{Partition: 0, From: "a", To: "b", State: "waiting"},
	}}
	ps := []transferProgress{
		{Partition: 2, From: "a", To: "b", State: "sending", Keys: 10, TotalKeys: 40, Bytes: 1000, Rate: 50, ETAms: 600},
		{Partition: 0, From: "a", To: "b", State: "queued"},
		{Partition: 5, From: "a", To: "c", State: "done", Keys: 3, TotalKeys: 3, Hinted: true},
	}
	v := mergeTransfers(st, ps, []string{"c"})
	if v.Version != 7 || v.Pending != 3 || !reflect.DeepEqual(v.Unreachable, []string{"c"}) {
		t.Fatalf("view: %+v", v)
	}
	var got []string
	for _, r := range v.Transfers {
		got = append(got, strings.Join([]string{r.From, r.To, r.State}, " "))
	}
	want := []string{"a b queued", "a b sending", "c b waiting", "a c done"}
	if !reflect.DeepEqual(got, want) || v.Transfers[2].Reported || !v.Transfers[1].Reported {
		t.Fatalf("rows %q (reported %v %v), want %q", got, v.Transfers[1].Reported, v.Transfers[2].Reported, want)
	}
	if bps := v.Transfers[1].bytesPerSec(); bps != 5000 {
		t.Fatalf("bytes/s = %v, want 5000 (50 keys/s of 100 bytes)", bps)
	}

	var b bytes.Buffer
	if err := renderTransfers(&b, v); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, re := range []string{
		`(?m)^cluster version 7: 3 transfers pending$`,
		`(?m)^not answering: c$`,
		`(?m)^PARTITION +FROM +TO +STATE +KEYS +MB +KEYS/S +MB/S +ETA +ATTEMPTS +LAST ERROR$`,
		`(?m)^2 +a +-> +b +sending +10/40 +0\.00 +50 +0\.01 +<1s +0 +-$`,
		`(?m)^3 +c +-> +b +waiting +- +- +- +- +- +0 +-$`,
		`(?m)^5 +a +-> +c +done \(hinted\) +3/3 +`,
	} {
		if !regexpMatch(re, out) {
			t.Errorf("transfers table does not match %s:\n%s", re, out)
		}
	}
	b.Reset()
	// A node running several services moves each partition once per service: a SERVICE column.
	multi := mergeTransfers(&clusterStatus{Version: 8}, []transferProgress{
		{Service: "kv", Partition: 4, From: "a", To: "b", State: "done", Keys: 2, TotalKeys: 2},
		{Service: "counter", Partition: 4, From: "a", To: "b", State: "sending", Keys: 1, TotalKeys: 5},
	}, nil)
	if err := renderTransfers(&b, multi); err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{
		`(?m)^PARTITION +SERVICE +FROM +TO +STATE +KEYS `,
		`(?m)^4 +counter +a +-> +b +sending +1/5 `,
		`(?m)^4 +kv +a +-> +b +done +2/2 `,
	} {
		if !regexpMatch(re, b.String()) {
			t.Errorf("transfers table of two services does not match %s:\n%s", re, b.String())
		}
	}
	b.Reset()
	if err := renderTransfers(&b, mergeTransfers(&clusterStatus{Version: 9}, nil, nil)); err != nil {
		t.Fatal(err)
	}
	if b.String() != "cluster version 9: 0 transfers pending\nno transfers\n" {
		t.Fatalf("empty transfers: %q", b.String())
	}
}

func TestRenderPlanAndStatus(t *testing.T) {
	var b bytes.Buffer
	p := &clusterPlan{Version: 4, Changes: []clusterChange{{"join", "n4"}},
		Transfers:       []clusterTransfer{{Partition: 3, From: "n1", To: "n4"}, {Partition: 4, From: "n1", To: "n4"}, {Partition: 8, From: "n2", To: "n4"}},
		PartitionsAfter: map[string]int{"n1": 3, "n2": 3, "n4": 3}, Warning: "membership: cannot place"}
	if err := renderPlan(&b, p); err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{`(?m)^plan over cluster version 4$`, `(?m)^join +n4$`, `(?m)^3 partitions move$`,
		`(?m)^n1 +-> +n4 +2 +3-4$`, `(?m)^n2 +-> +n4 +1 +8$`, `(?m)^n4 +3$`, `(?m)^warning: membership: cannot place$`} {
		if !regexpMatch(re, b.String()) {
			t.Errorf("plan does not match %s:\n%s", re, b.String())
		}
	}
	b.Reset()
	st := &clusterStatus{Cluster: "c1", Version: 12, Claimant: "n1", N: 3, Q: 8, Node: "n2",
		Members: []clusterMember{
			{Name: "n1", Status: "valid", Alive: true, Partitions: 5, PartitionsAfter: 4, RPCAddr: "h:1", MemcacheAddr: "h:2", GossipAddr: "h:3"},
			{Name: "n4", Status: "valid", Alive: false, Partitions: 3, PartitionsAfter: 4},
		},
		Staged:    []clusterChange{{"leave", "n4"}},
		Transfers: []clusterTransfer{{Partition: 1, From: "n1", To: "n4", State: "waiting"}, {Partition: 2, From: "n1", To: "n4", State: "done"}}}
	if err := renderStatus(&b, st); err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{`(?m)^cluster c1, version 12, claimant n1, q=8 n=3 \(as seen by n2\)$`,
		`(?m)^NAME +STATUS +UP +PARTITIONS +RPC +MEMCACHE +GOSSIP$`, `(?m)^n1 +valid +up +5 -> 4 +h:1 +h:2 +h:3$`,
		`(?m)^n4 +valid +down +3 -> 4 +- +- +-$`, `(?m)^staged +leave n4$`, `(?m)^pending transfers +1 of 2$`} {
		if !regexpMatch(re, b.String()) {
			t.Errorf("status does not match %s:\n%s", re, b.String())
		}
	}
}

func TestClusterUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"cluster"}, exitUsage},
		{[]string{"cluster", "bogus"}, exitUsage},
		{[]string{"cluster", "join"}, exitUsage},
		{[]string{"cluster", "join", "a", "b"}, exitUsage},
		{[]string{"cluster", "leave", "a", "b"}, exitUsage},
		{[]string{"cluster", "plan", "x"}, exitUsage},
		{[]string{"cluster", "status", "--nope"}, exitUsage},
		{[]string{"cluster", "commit", "-h"}, exitUsage},
		{[]string{"transfers", "x"}, exitUsage},
		{[]string{"transfers", "--interval", "0s"}, exitUsage},
		{[]string{"cluster", "help"}, exitOK},
		{[]string{"cluster", "status", "--addr", "127.0.0.1:1", "--timeout", "2s"}, exitServer},
		{[]string{"transfers", "--addr", "127.0.0.1:1", "--timeout", "2s"}, exitServer},
	} {
		if _, errs, code := runCLI(t, tc.args...); code != tc.code {
			t.Errorf("%v: exit code %d, want %d (%s)", tc.args, code, tc.code, errs)
		}
	}
}

// startNamedNode runs a named node in this process with loopback port 0 everywhere; it returns its rpc
// address.
func startNamedNode(t *testing.T, name string) string {
	t.Helper()
	cfg := node.Default()
	cfg.Name = name
	cfg.DataDir = t.TempDir()
	cfg.MemcacheListen, cfg.RPCListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.GossipListen, cfg.TransportListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Q = 16
	n, err := node.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, node.WithService(kv.Service(kv.DefaultOptions())))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	transportOf.Store(n.RPCAddr(), n.TransportAddr())
	return n.RPCAddr()
}

// transportOf maps the nodes' rpc addresses (what startNamedNode returns) to their transport addresses
// (the SEED of a join).
var transportOf sync.Map

func seedOf(rpcAddr string) string {
	v, _ := transportOf.Load(rpcAddr)
	s, _ := v.(string)
	return s
}

// pollCLI runs a command until ok(stdout) (the cluster state spreads by gossip) and returns that stdout.
func pollCLI(t *testing.T, what string, ok func(string) bool, args ...string) string {
	t.Helper()
	var out string
	eventually.NoError(t, 15*time.Second, what, func() error {
		o, errs, code := runCLI(t, args...)
		if code == 0 && ok(o) {
			out = o
			return nil
		}
		return fmt.Errorf("%v: exit %d\n%s\n%s", args, code, o, errs)
	})
	return out
}

// TestClusterCommands drives the cluster commands against two nodes in this process: join, plan (table
// and JSON), clear, commit, transfers --watch until the move is done, status, and a staged leave.
func TestClusterCommands(t *testing.T) {
	a := startNamedNode(t, "a@127.0.0.1")
	b := startNamedNode(t, "b@127.0.0.1")

	// Nothing staged: plan and commit are refused by the claimant (server error).
	if _, errs, code := runCLI(t, "cluster", "plan", "--addr", a); code != exitServer || errs == "" {
		t.Fatalf("plan with nothing staged: exit %d %s", code, errs)
	}
	out, errs, code := runCLI(t, "cluster", "join", seedOf(a), "--addr", b)
	if code != 0 || !regexpMatch(`^b@127\.0\.0\.1 joined cluster \S+ \(claimant a@127\.0\.0\.1\)`, out) {
		t.Fatalf("join: exit %d %s\n%s", code, errs, out)
	}
	// Joining twice is refused.
	if _, _, code := runCLI(t, "cluster", "join", seedOf(a), "--addr", b); code != exitServer {
		t.Fatalf("second join: exit %d", code)
	}
	out = pollCLI(t, "plan", func(s string) bool { return strings.Contains(s, "join    b@127.0.0.1") },
		"cluster", "plan", "--addr", b)
	if !regexpMatch(`(?m)^a@127\.0\.0\.1 +-> +b@127\.0\.0\.1 +8 +\S+$`, out) || !regexpMatch(`(?m)^b@127\.0\.0\.1 +8$`, out) {
		t.Fatalf("plan:\n%s", out)
	}
	out, _, _ = runCLI(t, "cluster", "plan", "--addr", a, "--json")
	var plan clusterPlan
	if err := json.Unmarshal([]byte(out), &plan); err != nil || len(plan.Changes) != 1 || len(plan.Transfers) != 8 ||
		plan.PartitionsAfter["a@127.0.0.1"] != 8 || plan.Warning != "" {
		t.Fatalf("plan --json: %v %s", err, out) // fewer nodes than n: no warning (ring.Claim)
	}
	// clear drops the join; join again.
	if out, errs, code := runCLI(t, "cluster", "clear", "--addr", a); code != 0 || out != "staged changes cleared\n" {
		t.Fatalf("clear: exit %d %q %s", code, out, errs)
	}
	pollCLI(t, "status after clear", func(s string) bool { return !strings.Contains(s, "b@127.0.0.1") },
		"cluster", "status", "--addr", a)

	// b stays out; a third node goes through the whole flow.
	c := startNamedNode(t, "c@127.0.0.1")
	if _, errs, code := runCLI(t, "cluster", "join", seedOf(a), "--addr", c, "--json"); code != 0 {
		t.Fatalf("join c: %s", errs)
	}
	pollCLI(t, "staged", func(s string) bool { return strings.Contains(s, "join c@127.0.0.1") }, "cluster", "status", "--addr", a)
	if out, errs, code := runCLI(t, "cluster", "commit", "--addr", c); code != 0 || !strings.HasPrefix(out, "committed") {
		t.Fatalf("commit: exit %d %q %s", code, out, errs)
	}
	// transfers --watch returns once nothing is pending; --json prints one document per round.
	out, errs, code = runCLI(t, "transfers", "--watch", "--interval", "50ms", "--timeout", "30s", "--json", "--addr", a)
	if code != 0 {
		t.Fatalf("transfers --watch: exit %d %s\n%s", code, errs, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var last transfersView
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Pending != 0 {
		t.Fatalf("transfers --watch --json, last round: %v %s", err, lines[len(lines)-1])
	}
	out = pollCLI(t, "status after the move", func(s string) bool {
		return regexpMatch(`(?m)^c@127\.0\.0\.1 +valid +up +8 `, s) && regexpMatch(`(?m)^pending transfers +0 of 0$`, s)
	}, "cluster", "status", "--addr", c)
	if !regexpMatch(`(?m)^a@127\.0\.0\.1 +valid +up +8 +`+regexpQuote(a)+` `, out) {
		t.Fatalf("status:\n%s", out)
	}
	out, _, _ = runCLI(t, "cluster", "status", "--json", "--addr", c)
	var st struct {
		clusterStatus
		Pending int `json:"pending_transfers"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Members) != 2 || st.Claimant != "a@127.0.0.1" || st.Q != 16 || st.Pending != 0 || st.Node != "c@127.0.0.1" {
		t.Fatalf("status --json: %v %s", err, out)
	}
	out, _, code = runCLI(t, "transfers", "--addr", c)
	if code != 0 || !strings.HasPrefix(out, "cluster version ") {
		t.Fatalf("transfers: %d\n%s", code, out)
	}

	// leave (default: the node asked) is staged; the last valid member cannot leave alone.
	if out, errs, code := runCLI(t, "cluster", "leave", "--addr", c); code != 0 || !strings.HasPrefix(out, "leave of the node at "+c) {
		t.Fatalf("leave: exit %d %q %s", code, out, errs)
	}
	if _, _, code := runCLI(t, "cluster", "leave", "a@127.0.0.1", "--addr", c); code != exitServer {
		t.Fatalf("leave of the last valid member: exit %d", code)
	}
	out = pollCLI(t, "plan of the leave", func(s string) bool { return strings.Contains(s, "leave   c@127.0.0.1") },
		"cluster", "plan", "--addr", a)
	if !regexpMatch(`(?m)^c@127\.0\.0\.1 +-> +a@127\.0\.0\.1 +8 `, out) {
		t.Fatalf("plan of the leave:\n%s", out)
	}
	if _, errs, code := runCLI(t, "cluster", "clear", "--addr", a, "--json"); code != 0 {
		t.Fatalf("clear: %s", errs)
	}
}
