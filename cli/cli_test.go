package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/client"
	"github.com/gokai-kv/gokai/kv"
	"github.com/gokai-kv/gokai/node"
)

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		pos     []string
		ctx     string
		w       int
		wantErr bool
	}{
		{[]string{"k", "v"}, []string{"k", "v"}, "", 0, false},
		{[]string{"k", "v", "--context", "ab", "-w", "2"}, []string{"k", "v"}, "ab", 2, false},
		{[]string{"--context=ab", "k", "-w=3", "v"}, []string{"k", "v"}, "ab", 3, false},
		{[]string{"k", "-"}, []string{"k", "-"}, "", 0, false},
		{[]string{"-w", "1", "--", "-k", "--context"}, []string{"-k", "--context"}, "", 1, false},
		{[]string{"k", "--nope"}, nil, "", 0, true},
		{[]string{"k", "-w", "x"}, nil, "", 0, true},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		ctx := fs.String("context", "", "")
		w := fs.Int("w", 0, "")
		pos, err := parseInterspersed(fs, tc.args)
		if (err != nil) != tc.wantErr {
			t.Fatalf("%v: err %v", tc.args, err)
		}
		if err != nil {
			if exitCode(err) != exitUsage {
				t.Errorf("%v: exit code %d, want usage", tc.args, exitCode(err))
			}
			continue
		}
		if !reflect.DeepEqual(pos, tc.pos) || *ctx != tc.ctx || *w != tc.w {
			t.Errorf("%v: pos %q context %q w %d", tc.args, pos, *ctx, *w)
		}
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{fmt.Errorf("get: %w", &client.Error{Code: client.CodeNotFound}), 1},
		{usageErr("bad"), 2},
		{flag.ErrHelp, 2},
		{&client.Error{Code: client.CodeBadRequest}, 3},
		{fmt.Errorf("x: %w", client.ErrUnavailable), 3},
		{errors.New("anything"), 3},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestOwnerRuns(t *testing.T) {
	got := ownerRuns([]string{"a", "a", "b", "a", "c", "c", "c", "a"})
	want := []ownerRun{{0, 1, "a"}, {2, 2, "b"}, {3, 3, "a"}, {4, 6, "c"}, {7, 7, "a"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ownerRuns = %v, want %v", got, want)
	}
	if ownerRuns(nil) != nil {
		t.Fatal("no owners: want no runs")
	}
}

func TestShowValue(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		max  int
		want string
	}{
		{[]byte("hello world"), 20, "hello world"},
		{[]byte("héllo ✓"), 20, "héllo ✓"},
		{[]byte{}, 20, `""`},
		{[]byte{0, 1, 0xff}, 20, "0x0001ff"},
		{[]byte("tab\there"), 20, "0x7461620968657265"},
		{[]byte{0xc3}, 20, "0xc3"}, // invalid UTF-8
		{[]byte("abcdefgh"), 4, "abcd..."},
		{[]byte("ééééé"), 4, "éééé..."},
		{[]byte{1, 2, 3, 4, 5, 6}, 4, "0x01020304..."},
	} {
		if got := showValue(tc.in, tc.max); got != tc.want {
			t.Errorf("showValue(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

// startCLINode runs a node in this process with loopback port 0 and returns its rpc address.
func startCLINode(t *testing.T) string {
	t.Helper()
	cfg := node.Default()
	cfg.DataDir = t.TempDir()
	cfg.MemcacheListen = "127.0.0.1:0"
	cfg.RPCListen = "127.0.0.1:0"
	cfg.GossipListen = "127.0.0.1:0"
	cfg.TransportListen = "127.0.0.1:0"
	cfg.HTTPListen = "127.0.0.1:0"
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
	return n.RPCAddr()
}

// runCLI runs one command through run() and returns stdout, stderr and the exit code it maps to.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	if err != nil {
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), exitCode(err)
}

// TestCLICommands drives every client command against a node in this process, with exit codes.
func TestCLICommands(t *testing.T) {
	addr := startCLINode(t)
	t.Setenv("GOKAI_ADDR", addr)

	if _, errs, code := runCLI(t, "get", "k"); code != exitNotFound || !strings.Contains(errs, "not found") {
		t.Fatalf("get missing: code %d, %s", code, errs)
	}
	if out, errs, code := runCLI(t, "put", "k", "v1", "--flags", "7"); code != 0 || out != "ok\n" {
		t.Fatalf("put: %d %q %s", code, out, errs)
	}
	out, errs, code := runCLI(t, "get", "k", "--json")
	if code != 0 {
		t.Fatalf("get: %d %s", code, errs)
	}
	var obj jsonObject
	if err := json.Unmarshal([]byte(out), &obj); err != nil {
		t.Fatalf("get --json: %v: %s", err, out)
	}
	if len(obj.Siblings) != 1 || *obj.Siblings[0].Value != "v1" || obj.Siblings[0].Flags != 7 || obj.Context == "" {
		t.Fatalf("get --json: %s", out)
	}
	// Two writes over one context: siblings; the human table lists both and the context.
	for _, v := range []string{"a", "b"} {
		if _, errs, code := runCLI(t, "put", "--context", obj.Context, "k", v); code != 0 {
			t.Fatalf("put %s: %s", v, errs)
		}
	}
	out, _, _ = runCLI(t, "get", "k")
	if !strings.HasPrefix(out, "2 siblings\n") || !strings.Contains(out, "SIBLING") || !regexpMatch(`(?m)^0 .* a$`, out) ||
		!regexpMatch(`(?m)^1 .* b$`, out) || !regexpMatch(`(?m)^context +[0-9a-f]+$`, out) {
		t.Fatalf("get with siblings:\n%s", out)
	}
	out, _, _ = runCLI(t, "get", "k", "--json")
	if err := json.Unmarshal([]byte(out), &obj); err != nil || len(obj.Siblings) != 2 {
		t.Fatalf("siblings --json: %v %s", err, out)
	}
	// Resolve them: the value comes from a file this time, the stored object is printed back.
	file := filepath.Join(t.TempDir(), "v")
	if err := os.WriteFile(file, []byte{0, 1, 0xfe}, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code = runCLI(t, "put", "k", "--file", file, "--context", obj.Context, "--return-body")
	if code != 0 || !regexpMatch(`(?m)^0 +0 +3 .* 0x0001fe$`, out) || strings.Contains(out, "siblings") {
		t.Fatalf("put --return-body: %d %s\n%s", code, errs, out)
	}
	if out, _, _ := runCLI(t, "get", "k", "--raw"); out != "\x00\x01\xfe" {
		t.Fatalf("get --raw: %q", out)
	}
	// stdin
	cliStdin = strings.NewReader("from stdin")
	defer func() { cliStdin = os.Stdin }()
	if _, errs, code := runCLI(t, "put", "s", "-"); code != 0 {
		t.Fatalf("put -: %s", errs)
	}
	if out, _, _ := runCLI(t, "get", "s", "--raw"); out != "from stdin" {
		t.Fatalf("stdin value: %q", out)
	}
	if out, errs, code := runCLI(t, "delete", "k", "--json"); code != 0 || out != "{\"ok\":true}\n" {
		t.Fatalf("delete: %d %q %s", code, out, errs)
	}
	if _, _, code := runCLI(t, "get", "k"); code != exitNotFound {
		t.Fatalf("get deleted: code %d", code)
	}
	// Without --context a put becomes a sibling of what is there; --blind overwrites; a delete without
	// --context deletes what it reads.
	for _, v := range []string{"p1", "p2"} {
		if _, errs, code := runCLI(t, "put", "x", v); code != 0 {
			t.Fatalf("put x %s: %s", v, errs)
		}
	}
	if out, _, _ := runCLI(t, "get", "x"); !strings.HasPrefix(out, "2 siblings\n") {
		t.Fatalf("two puts without a context:\n%s", out)
	}
	if out, errs, code := runCLI(t, "put", "x", "p3", "--blind", "--json", "--return-body"); code != 0 ||
		json.Unmarshal([]byte(out), &obj) != nil || len(obj.Siblings) != 1 ||
		*obj.Siblings[0].Value != "p3" {
		t.Fatalf("put --blind: %d %s %s", code, out, errs)
	}
	if out, errs, code := runCLI(t, "delete", "x"); code != 0 || out != "deleted\n" {
		t.Fatalf("delete without a context: %d %q %s", code, out, errs)
	}
	if _, _, code := runCLI(t, "get", "x"); code != exitNotFound {
		t.Fatalf("get x after delete: code %d", code)
	}
	if _, errs, code := runCLI(t, "put", "x", "p4"); code != 0 {
		t.Fatalf("put x p4: %s", errs)
	}
	if out, errs, code := runCLI(t, "delete", "x", "--blind"); code != 0 || out != "deleted\n" {
		t.Fatalf("delete --blind: %d %q %s", code, out, errs)
	}
	if _, _, code := runCLI(t, "get", "x"); code != exitNotFound {
		t.Fatalf("get x after blind delete: code %d", code)
	}

	// Usage and server errors.
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"get"}, exitUsage},
		{[]string{"get", "a", "b"}, exitUsage},
		{[]string{"put", "k"}, exitUsage},
		{[]string{"put", "k", "v", "--context", "zz"}, exitUsage},
		{[]string{"put", "k", "v", "--flags", "4294967296"}, exitUsage},
		{[]string{"put", "k", "v", "--blind", "--context", "00"}, exitUsage},
		{[]string{"delete", "k", "--blind", "--context", "00"}, exitUsage},
		{[]string{"get", "k", "--bogus"}, exitUsage},
		{[]string{"get", "-h"}, exitUsage},
		{[]string{"ring", "extra"}, exitUsage},
		{[]string{"get", "k", "-r", "99"}, exitServer},
		{[]string{"put", "k", "v", "--context", "00"}, exitServer},
		{[]string{"status", "--addr", "127.0.0.1:1", "--timeout", "2s"}, exitServer},
	} {
		if _, errs, code := runCLI(t, tc.args...); code != tc.code {
			t.Errorf("%v: exit code %d, want %d (%s)", tc.args, code, tc.code, errs)
		}
	}

	out, errs, code = runCLI(t, "status")
	if code != 0 || !regexpMatch(`(?m)^version +\S+ \(protocol 1\)$`, out) || !regexpMatch(`(?m)^ping +\S+$`, out) ||
		!regexpMatch(`(?m)^ring +q=16 n=3 r=2 w=2`, out) || !regexpMatch(`(?m)^addr +`+regexpQuote(addr)+`$`, out) {
		t.Fatalf("status: %d %s\n%s", code, errs, out)
	}
	out, _, _ = runCLI(t, "status", "--json")
	var st struct {
		Version  string         `json:"version"`
		Protocol int            `json:"protocol"`
		PingUS   *int64         `json:"ping_us"`
		Stats    map[string]any `json:"stats"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Protocol != 1 || st.PingUS == nil || st.Stats["gokai_ring_q"] != float64(16) {
		t.Fatalf("status --json: %v %s", err, out)
	}
	out, _, _ = runCLI(t, "ring")
	if !regexpMatch(`(?m)^ring version \d+: 16 partitions, 1 nodes, n=3$`, out) || !regexpMatch(`(?m)^0-15 +16 +\S+$`, out) {
		t.Fatalf("ring:\n%s", out)
	}
	out, _, _ = runCLI(t, "ring", "--json")
	var ri client.RingInfo
	if err := json.Unmarshal([]byte(out), &ri); err != nil || ri.Q != 16 || len(ri.Owners) != 16 || ri.N != 3 {
		t.Fatalf("ring --json: %v %s", err, out)
	}
	out, _, _ = runCLI(t, "members")
	if !regexpMatch(`(?m)^NAME +STATUS +PARTITIONS +RPC +MEMCACHE$`, out) || !regexpMatch(`(?m)^\S+ +up +16 +`+regexpQuote(addr)+` +127\.0\.0\.1:\d+$`, out) {
		t.Fatalf("members:\n%s", out)
	}
	out, _, _ = runCLI(t, "members", "--json", "--addr", addr)
	var ms []client.Member
	if err := json.Unmarshal([]byte(out), &ms); err != nil || len(ms) != 1 || ms[0].RPCAddr != addr || ms[0].Partitions != 16 {
		t.Fatalf("members --json: %v %s", err, out)
	}
}

// TestBenchRPCRewritesKeysBlind: `gokai bench -protocol msgpack-rpc` writes a few keys over and over (far more
// often than the default max-siblings, 100). Its puts carry no context, so they must ask for blind writes:
// otherwise each would add a sibling until the node refused them with too_many_siblings.
func TestBenchRPCRewritesKeysBlind(t *testing.T) {
	addr := startCLINode(t)
	report := filepath.Join(t.TempDir(), "bench.json")
	const keys, ops = 3, 1200 // ~400 writes per key
	out, errs, code := runCLI(t, "bench", "-protocol", "msgpack-rpc", "-addr", addr, "-conns", "2", "-pipeline", "4",
		"-keys", fmt.Sprint(keys), "-get-ratio", "0", "-ops", fmt.Sprint(ops), "-duration", "60s", "-json", report)
	if code != 0 {
		t.Fatalf("bench: exit %d\n%s\n%s", code, out, errs)
	}
	raw, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Results struct {
			Sets   uint64 `json:"sets"`
			Errors uint64 `json:"errors"`
		} `json:"results"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Results.Errors != 0 || rep.Results.Sets < ops {
		t.Fatalf("bench: %d sets, %d errors; want %d sets and no error\n%s", rep.Results.Sets, rep.Results.Errors, ops, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.Config{Seeds: []string{addr}, DisableRouting: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range keys {
		key := fmt.Sprintf("bench:%d", i)
		if obj, err := c.Get(ctx, []byte(key), nil); err != nil || len(obj.Values) != 1 {
			t.Errorf("%s after the bench: %+v %v, want one value", key, obj, err)
		}
	}
}

// TestStartGCFlags: start takes the collector's settings, and refuses bad ones before it makes a node.
func TestStartGCFlags(t *testing.T) {
	var errb bytes.Buffer
	if err := run(context.Background(), []string{"start", "-h"}, io.Discard, &errb); !errors.Is(err, flag.ErrHelp) && ExitCode(err) != exitUsage {
		t.Fatalf("start -h: %v", err)
	}
	if h := errb.String(); !strings.Contains(h, "-gc-percent") || !strings.Contains(h, "-memory-limit") || !strings.Contains(h, "-gc-min-heap") || !strings.Contains(h, "GOGC") {
		t.Fatalf("start -h does not describe the collector's flags:\n%s", h)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-gc-percent", "0"}, "gctune: gc-percent 0"},
		{[]string{"-memory-limit", "lots"}, `gctune: memory-limit "lots"`},
		{[]string{"-gc-min-heap", "1MiB"}, `gctune: gc-min-heap "1MiB"`},
		{[]string{"-gc-percent", "-1", "-memory-limit", "off"}, "gctune: gc-percent -1 needs a memory limit"},
	} {
		t.Setenv("GOMEMLIMIT", "")
		dir := t.TempDir()
		args := append([]string{"start", "-data-dir", dir, "-memcache-listen", "127.0.0.1:0", "-rpc-listen", "127.0.0.1:0",
			"-gossip-listen", "127.0.0.1:0", "-transport-listen", "127.0.0.1:0", "-http-listen", "127.0.0.1:0"}, tc.args...)
		err := run(context.Background(), args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("start %v: %v; want %q", tc.args, err, tc.want)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("start %v made a node in its data dir before refusing the settings", tc.args)
		}
	}
}
