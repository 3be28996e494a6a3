package main

import (
	"flag"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/kv"
	"github.com/gokai-kv/gokai/node"
)

// TestDeployConfigExampleIsValid: deploy/gokai.conf loads with gokai start's flags (node, KV and the
// command's own) and makes a valid configuration: every port on 0.0.0.0, advertised at the host's
// address, certificates on.
func TestDeployConfigExampleIsValid(t *testing.T) {
	cfg, kvOpts := node.Default(), kv.DefaultOptions()
	fs := flag.NewFlagSet("gokai start", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.Bind(fs)
	kvOpts.Bind(fs)
	fs.String("config", "", "")
	fs.Duration("shutdown-timeout", 30*time.Second, "")
	if err := node.LoadFile(fs, "../../deploy/gokai.conf"); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.AdvertiseHost != "10.0.0.1" || cfg.GossipListen != "0.0.0.0:11012" || cfg.HTTPListen != "0.0.0.0:11080" || cfg.CertsDir == "" {
		t.Fatalf("the example is not the documented one: %+v", cfg)
	}
}

// TestDeploySystemdUnit: the unit runs gokai start with the example's path, and systemd-analyze verify
// accepts it where systemd is installed.
func TestDeploySystemdUnit(t *testing.T) {
	unit, err := os.ReadFile("../../deploy/gokai.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/gokai start -config /etc/gokai/gokai.conf") {
		t.Fatal("the unit does not start gokai with /etc/gokai/gokai.conf")
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: the unit's syntax is not checked")
	}
	// NB: verify resolves ExecStart's binary; point it at this test binary's path for the check.
	dir := t.TempDir()
	self, _ := os.Executable()
	patched := strings.ReplaceAll(string(unit), "/usr/local/bin/gokai", self)
	if err := os.WriteFile(dir+"/gokai.service", []byte(patched), 0o644); err != nil {
		t.Fatal(err)
	}
	// NB: verify exits 0 on unknown keys; it names the file on every complaint about it.
	out, err := exec.Command(sa, "verify", dir+"/gokai.service").CombinedOutput()
	if err != nil || strings.Contains(string(out), "gokai.service") {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
