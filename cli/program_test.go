package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gokai-kv/gokai/client"
	"github.com/gokai-kv/gokai/node"
	"github.com/gokai-kv/gokai/service"
	"github.com/gokai-kv/gokai/vnode"
)

// TestProgramOfOtherServices: a program's services add their settings to start's flags, its own commands
// are listed in its usage and run with the client flags and exit codes of gokai's.
func TestProgramOfOtherServices(t *testing.T) {
	var made int
	extra := func(fs *flag.FlagSet) func() service.Service {
		level := fs.Int("extra-level", 3, "a setting of the extra service")
		return func() service.Service {
			made = *level
			return service.Service{Name: "extra", ID: 4000,
				Vnode: func(service.NodeInfo) (vnode.Factory, error) { return nil, errors.New("extra: not in this test") }}
		}
	}
	var gotArgs []string
	p := Program{Name: "gokai-extra", Services: []Service{KV, extra}, Commands: []Command{{
		Name: "pingall", Summary: "ping the node", Usage: "pingall [flags] [WORD]\n\nPings.", MinArgs: 0, MaxArgs: 1,
		Run: func(ctx context.Context, c *client.Client, args []string, asJSON bool, stdout io.Writer) error {
			gotArgs = args
			if len(args) == 1 && args[0] == "missing" {
				return fmt.Errorf("pingall: %w", client.ErrNotFound)
			}
			if len(args) == 1 && args[0] == "bad" {
				return Usage("pingall: bad word")
			}
			_, err := c.Ping(ctx)
			fmt.Fprintln(stdout, "pong", asJSON)
			return err
		},
	}}}
	runP := func(args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		err := p.Run(context.Background(), args, &out, &errb)
		if err != nil {
			errb.WriteString(err.Error())
		}
		return out.String(), errb.String(), ExitCode(err)
	}
	if out, _, code := runP("help"); code != 0 || !strings.Contains(out, "usage: gokai-extra <command>") ||
		!strings.Contains(out, "pingall") || !strings.Contains(out, "ping the node") {
		t.Fatalf("help: %d\n%s", code, out)
	}
	if out, _, _ := runP("version"); out != "gokai-extra "+node.Version+"\n" {
		t.Fatalf("version: %q", out)
	}
	// start takes every service's settings, and makes each service once they are parsed.
	if _, errs, code := runP("start", "-h"); code != exitUsage || !strings.Contains(errs, "-extra-level") ||
		!strings.Contains(errs, "-max-siblings") || !strings.Contains(errs, "-rpc-listen") {
		t.Fatalf("start -h: %d\n%s", code, errs)
	}
	dir := t.TempDir()
	if _, errs, code := runP("start", "-data-dir", dir, "-extra-level", "9", "-memcache-listen", "127.0.0.1:0",
		"-rpc-listen", "127.0.0.1:0", "-gossip-listen", "127.0.0.1:0", "-transport-listen", "127.0.0.1:0"); code == 0 ||
		made != 9 || !strings.Contains(errs, "extra: not in this test") {
		t.Fatalf("start: code %d, extra made with level %d:\n%s", code, made, errs)
	}

	shadow := Program{Name: "x", Commands: []Command{{Name: "get"}}}
	if err := shadow.Run(context.Background(), []string{"version"}, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "shadows") {
		t.Fatalf("a command named get: %v", err)
	}

	t.Setenv("GOKAI_ADDR", startCLINode(t))
	if out, errs, code := runP("pingall", "--json", "w"); code != 0 || out != "pong true\n" || len(gotArgs) != 1 {
		t.Fatalf("pingall: %d %q %s (args %q)", code, out, errs, gotArgs)
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"pingall", "a", "b"}, exitUsage},
		{[]string{"pingall", "bad"}, exitUsage},
		{[]string{"pingall", "missing"}, exitNotFound},
		{[]string{"pingall", "--addr", "127.0.0.1:1", "--timeout", "2s"}, exitServer},
		{[]string{"pingall", "--nope"}, exitUsage},
	} {
		if _, errs, code := runP(tc.args...); code != tc.code {
			t.Errorf("%v: exit %d, want %d (%s)", tc.args, code, tc.code, errs)
		}
	}
}

// TestBuiltinIsRunsSwitch: the commands a program may not shadow are exactly those Run's switch serves (a
// command added to the switch must be added to builtin).
func TestBuiltinIsRunsSwitch(t *testing.T) {
	src, err := os.ReadFile("program.go")
	if err != nil {
		t.Fatal(err)
	}
	body := string(src)
	i := strings.Index(body, "\tswitch args[0] {")
	if i < 0 {
		t.Fatal("Run's switch not found")
	}
	j := strings.Index(body[i:], "\n\t}\n")
	if j < 0 {
		t.Fatal("the end of Run's switch not found")
	}
	served := map[string]bool{}
	quoted := regexp.MustCompile(`"([^"]+)"`)
	for _, line := range strings.Split(body[i:i+j], "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "case ") {
			for _, m := range quoted.FindAllStringSubmatch(line, -1) {
				served[m[1]] = true
			}
		}
	}
	if !maps.Equal(served, builtin) {
		t.Fatalf("Run's switch serves %v; builtin lists %v", slices.Sorted(maps.Keys(served)), slices.Sorted(maps.Keys(builtin)))
	}
}
