package layers_test

import (
	"go/build"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/gokai-kv/gokai"

// role is a package's layer; allowed lists the roles it may import.
type role string

const (
	base       role = "base"       // ring, storage, supervisor: pure, import nothing of gokai
	internal   role = "internal"   // internal/* helpers
	harness    role = "harness"    // internal/itest, internal/faults: test harnesses, may drive anything
	wire       role = "wire"       // actors, protocol/*: the transports and client protocols
	client     role = "client"     // the Go client
	bench      role = "bench"      // the load generator
	membership role = "membership" // gossip shell
	runtime    role = "runtime"    // vnode, coordinator, handoff, coverage, entropy, aae
	svcAPI     role = "service"    // what an application registers
	svc        role = "svc"        // a service: kv, examples/*
	nodeRole   role = "node"       // the node
	cliRole    role = "cli"        // the command line, shared by binaries
	binary     role = "binary"     // cmd/*, examples/*/cmd/*
)

var allowed = map[role][]role{
	base:       {},
	internal:   {internal},
	harness:    {base, internal, harness, wire, client, bench, membership, runtime, svcAPI, svc, nodeRole, cliRole},
	wire:       {internal, wire},
	client:     {base, internal},
	bench:      {internal, client},
	membership: {base, internal},
	runtime:    {base, internal, wire, runtime},
	svcAPI:     {base, internal, wire, runtime},
	svc:        {base, internal, wire, runtime, svcAPI},
	nodeRole:   {base, internal, wire, runtime, svcAPI, membership, client},
	// NB: cli may import the KV service (cli.KV registers it for cmd/gokai), no other service.
	cliRole: {base, internal, wire, client, bench, membership, svcAPI, nodeRole, svc},
	binary:  {base, internal, client, svcAPI, svc, cliRole},
}

// roleOf names the layer of a package path relative to the module.
func roleOf(rel string) role {
	first, _, _ := strings.Cut(rel, "/")
	switch {
	case rel == "internal/itest" || rel == "internal/faults":
		return harness
	case first == "internal":
		return internal
	case rel == "ring" || rel == "storage" || rel == "supervisor":
		return base
	case rel == "actors" || first == "protocol":
		return wire
	case rel == "client":
		return client
	case rel == "bench":
		return bench
	case rel == "membership":
		return membership
	case rel == "vnode" || rel == "coordinator" || rel == "handoff" || rel == "coverage" || rel == "entropy" || rel == "aae":
		return runtime
	case rel == "service":
		return svcAPI
	case rel == "node":
		return nodeRole
	case rel == "cli":
		return cliRole
	case first == "cmd" || (first == "examples" && strings.Contains(rel, "/cmd/")):
		return binary
	case rel == "kv" || first == "examples":
		return svc
	}
	return ""
}

// TestImportRules: every package of the module imports only what its layer may.
func TestImportRules(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if name := d.Name(); path != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		pkg, err := build.Default.ImportDir(path, 0)
		if err != nil {
			return nil // NB: no Go files here (or only tests): nothing to check
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		r := roleOf(rel)
		if r == "" {
			t.Errorf("%s: no layer; add it to roleOf and docs/architecture.md", rel)
			return nil
		}
		checked++
		for _, imp := range pkg.Imports {
			dep, ok := strings.CutPrefix(imp, module+"/")
			if !ok {
				continue
			}
			if dr := roleOf(dep); !slices.Contains(allowed[r], dr) {
				t.Errorf("%s (%s) imports %s (%s): not allowed (docs/architecture.md)", rel, r, dep, dr)
			}
		}
		// NB: cli's one service is KV (cli.KV); other services reach binaries directly.
		if r == cliRole {
			for _, imp := range pkg.Imports {
				if dep, ok := strings.CutPrefix(imp, module+"/"); ok && roleOf(dep) == svc && dep != "kv" {
					t.Errorf("cli imports the service %s: only kv", dep)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 20 {
		t.Fatalf("checked %d packages: the walk missed the module", checked)
	}
}

// TestRulesCatchABreak: the checker flags an import that breaks a rule (a runtime package importing a
// service, a service importing the node), so TestImportRules cannot pass by checking nothing.
func TestRulesCatchABreak(t *testing.T) {
	for _, c := range []struct {
		from, to string
		ok       bool
	}{
		{"vnode", "kv", false},
		{"kv", "node", false},
		{"node", "kv", false},
		{"ring", "membership", false},
		{"client", "membership", false},
		{"examples/counter", "kv", false},
		{"examples/counter", "service", true},
		{"kv", "vnode", true},
		{"examples/counter/cmd/gokai-counter", "cli", true},
		{"node", "membership", true},
	} {
		got := slices.Contains(allowed[roleOf(c.from)], roleOf(c.to))
		if got != c.ok {
			t.Errorf("%s -> %s allowed=%v, want %v", c.from, c.to, got, c.ok)
		}
	}
}
