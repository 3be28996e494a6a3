package itest

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// cliResult is one run of the gokai binary.
type cliResult struct {
	stdout, stderr string
	code           int
}

// gokaiCLI runs the built gokai binary with GOKAI_ADDR set to addr (so --addr is optional).
func gokaiCLI(t *testing.T, addr, stdin string, args ...string) cliResult {
	t.Helper()
	return binCLI(t, gokaiBinary(t), addr, stdin, args...)
}

// binCLI is gokaiCLI with another binary of gokai's command line.
func binCLI(t *testing.T, bin, addr, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "GOKAI_ADDR="+addr)
	if secureMode != nil {
		cmd.Env = append(cmd.Env, "GOKAI_CERTS_DIR="+secureMode.ca)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := cliResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("gokai %v: %v", args, err)
	}
	return res
}

func (r cliResult) ok(t *testing.T, what string) cliResult {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", what, r.code, r.stdout, r.stderr)
	}
	return r
}

func mustMatch(t *testing.T, what, re, s string) {
	t.Helper()
	if !regexp.MustCompile(re).MatchString(s) {
		t.Fatalf("%s: output does not match %s:\n%s", what, re, s)
	}
}

type cliSibling struct {
	Index    int     `json:"index"`
	Flags    uint32  `json:"flags"`
	Size     int     `json:"size"`
	Value    *string `json:"value"`
	ValueHex string  `json:"value_hex"`
}

type cliObject struct {
	Key      string       `json:"key"`
	Siblings []cliSibling `json:"siblings"`
	Context  string       `json:"context"`
}

func getJSON(t *testing.T, addr, key string) cliObject {
	t.Helper()
	r := gokaiCLI(t, addr, "", "get", key, "--json").ok(t, "get --json "+key)
	var obj cliObject
	if err := json.Unmarshal([]byte(r.stdout), &obj); err != nil {
		t.Fatalf("get --json: %v\n%s", err, r.stdout)
	}
	return obj
}

// TestRPCCLI runs the gokai binary's client commands against a node, with and without --json.
func TestRPCCLI(t *testing.T) {
	p := startNode(t, "")
	addr := p.rpcAddr

	// Not found: nothing on stdout, an error on stderr, a non-zero exit (1 once main maps exit codes).
	r := gokaiCLI(t, addr, "", "get", "fruit")
	if r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("get missing: %+v", r)
	}

	if r := gokaiCLI(t, addr, "", "put", "fruit", "apple", "--flags", "9").ok(t, "put"); r.stdout != "ok\n" {
		t.Fatalf("put output %q", r.stdout)
	}
	r = gokaiCLI(t, "", "", "get", "fruit", "--addr", addr).ok(t, "get --addr")
	mustMatch(t, "get", `(?m)^SIBLING +FLAGS +SIZE +LAST-MODIFIED +EXPIRES +VALUE$`, r.stdout)
	mustMatch(t, "get", `(?m)^0 +9 +5 +\d{4}-\d\d-\d\dT\S+Z +never +apple$`, r.stdout)
	mustMatch(t, "get", `(?m)^context +[0-9a-f]+$`, r.stdout)
	obj := getJSON(t, addr, "fruit")
	if obj.Key != "fruit" || len(obj.Siblings) != 1 || *obj.Siblings[0].Value != "apple" || obj.Siblings[0].Flags != 9 || obj.Context == "" {
		t.Fatalf("get --json: %+v", obj)
	}

	// Siblings: two puts over the context of the get, one from stdin and one from a file.
	gokaiCLI(t, addr, "pear", "put", "fruit", "-", "--context", obj.Context).ok(t, "put from stdin")
	file := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(file, []byte{0xde, 0xad, 0x00}, 0o644); err != nil {
		t.Fatal(err)
	}
	gokaiCLI(t, addr, "", "put", "--file", file, "fruit", "--context", obj.Context, "-w", "3").ok(t, "put --file")
	r = gokaiCLI(t, addr, "", "get", "fruit").ok(t, "get siblings")
	mustMatch(t, "siblings", `^2 siblings\n`, r.stdout)
	mustMatch(t, "siblings", `(?m)^\d +0 +4 .* pear$`, r.stdout)
	mustMatch(t, "siblings", `(?m)^\d +0 +3 .* 0xdead00$`, r.stdout)
	sib := getJSON(t, addr, "fruit")
	if len(sib.Siblings) != 2 {
		t.Fatalf("siblings --json: %+v", sib)
	}
	hexes := sib.Siblings[0].ValueHex + "," + sib.Siblings[1].ValueHex
	if hexes != "70656172,dead00" && hexes != "dead00,70656172" {
		t.Fatalf("sibling values %s", hexes)
	}

	// Resolve with the siblings' context and --return-body: one value.
	r = gokaiCLI(t, addr, "", "put", "fruit", "pear+dead", "--context", sib.Context, "--return-body", "--json").ok(t, "merge put")
	var merged cliObject
	if err := json.Unmarshal([]byte(r.stdout), &merged); err != nil || len(merged.Siblings) != 1 || *merged.Siblings[0].Value != "pear+dead" {
		t.Fatalf("put --return-body --json: %v %s", err, r.stdout)
	}
	if r := gokaiCLI(t, addr, "", "get", "fruit", "--raw").ok(t, "get --raw"); r.stdout != "pear+dead" {
		t.Fatalf("get --raw: %q", r.stdout)
	}

	// Delete with the context, with and without --json.
	if r := gokaiCLI(t, addr, "", "delete", "fruit", "--context", merged.Context).ok(t, "delete"); r.stdout != "deleted\n" {
		t.Fatalf("delete output %q", r.stdout)
	}
	gokaiCLI(t, addr, "", "put", "veg", "leek").ok(t, "put veg")
	if r := gokaiCLI(t, addr, "", "delete", "veg", "--json").ok(t, "delete --json"); r.stdout != "{\"ok\":true}\n" {
		t.Fatalf("delete --json output %q", r.stdout)
	}
	for _, k := range []string{"fruit", "veg"} {
		if r := gokaiCLI(t, addr, "", "get", k); r.code == 0 {
			t.Fatalf("get %s after delete: %+v", k, r)
		}
	}

	// Usage and server errors are failures with a message.
	for _, args := range [][]string{{"get"}, {"put", "k"}, {"put", "k", "v", "--context", "xyz"}, {"get", "k", "-r", "99"},
		{"status", "--addr", "127.0.0.1:1"}} {
		if r := gokaiCLI(t, addr, "", args...); r.code == 0 || r.stderr == "" {
			t.Fatalf("%v: %+v", args, r)
		}
	}

	// status
	r = gokaiCLI(t, addr, "", "status").ok(t, "status")
	mustMatch(t, "status", `(?m)^addr +`+regexp.QuoteMeta(addr)+`$`, r.stdout)
	mustMatch(t, "status", `(?m)^version +\S+ \(protocol 1\)$`, r.stdout)
	mustMatch(t, "status", `(?m)^ping +[0-9.]+(µs|ms|s)$`, r.stdout)
	mustMatch(t, "status", `(?m)^ring +q=64 n=3 r=2 w=2 vnodes=\d+$`, r.stdout)
	mustMatch(t, "status", `(?m)^requests +gets=\d+ puts=\d+ deletes=\d+ active=\d+$`, r.stdout)
	r = gokaiCLI(t, addr, "", "status", "--json").ok(t, "status --json")
	var st struct {
		Addr     string         `json:"addr"`
		Version  string         `json:"version"`
		Protocol int            `json:"protocol"`
		PingUS   *int64         `json:"ping_us"`
		Stats    map[string]any `json:"stats"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Addr != addr || st.Protocol != 1 || st.PingUS == nil ||
		st.Stats["gokai_ring_q"] != float64(64) || st.Stats["gokai_coord_puts"].(float64) < 5 {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}

	// ring
	r = gokaiCLI(t, addr, "", "ring").ok(t, "ring")
	mustMatch(t, "ring", `^ring version \d+: 64 partitions, 1 nodes, n=3\nPARTITIONS +COUNT +OWNER\n0-63 +64 +\S+\n$`, r.stdout)
	r = gokaiCLI(t, addr, "", "ring", "--json").ok(t, "ring --json")
	var ring struct {
		Q, N    int
		Version uint64
		Owners  []string
	}
	if err := json.Unmarshal([]byte(r.stdout), &ring); err != nil || ring.Q != 64 || ring.N != 3 || len(ring.Owners) != 64 {
		t.Fatalf("ring --json: %v\n%s", err, r.stdout)
	}

	// members
	r = gokaiCLI(t, addr, "", "members").ok(t, "members")
	mustMatch(t, "members", `^NAME +STATUS +PARTITIONS +RPC +MEMCACHE\n`+regexp.QuoteMeta(ring.Owners[0])+` +up +64 +`+
		regexp.QuoteMeta(addr)+` +`+regexp.QuoteMeta(p.mcAddr)+`\n$`, r.stdout)
	r = gokaiCLI(t, addr, "", "members", "--json").ok(t, "members --json")
	var ms []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &ms); err != nil || len(ms) != 1 || ms[0]["rpc_addr"] != addr ||
		ms[0]["memcache_addr"] != p.mcAddr || ms[0]["name"] != ring.Owners[0] {
		t.Fatalf("members --json: %v\n%s", err, r.stdout)
	}
}
