package itest

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/pki"
)

// Secure mode of the cluster harness: while secureMode is set, every node the harness starts gets its own
// certs dir (a node certificate of one CA, made on its first start) with -certs-dir and -rpc-tls, and the
// harness's clients and CLI speak TLS with an operator certificate. The memcache port stays plaintext.

// secureEnv is one CA and the certs dirs made from it.
type secureEnv struct {
	ca    string // CA dir: ca.crt, ca.key, gossip.key, client.admin.crt/.key
	mu    sync.Mutex
	nodes map[string]string // node name -> certs dir
}

// secureMode is the harness's current secure environment (nil: plaintext, loopback).
var secureMode *secureEnv

// newSecureEnv makes a CA and an operator certificate in a temp dir.
func newSecureEnv(t *testing.T) *secureEnv {
	t.Helper()
	ca := t.TempDir()
	if err := pki.CreateCA(ca, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := pki.CreateClient(ca, "", "admin", time.Now()); err != nil {
		t.Fatal(err)
	}
	return &secureEnv{ca: ca, nodes: map[string]string{}}
}

// useSecure runs the rest of t with the harness in secure mode.
func useSecure(t *testing.T) *secureEnv {
	t.Helper()
	env := newSecureEnv(t)
	secureMode = env
	t.Cleanup(func() { secureMode = nil })
	return env
}

// nodeDir returns name's certs dir, making it on first use.
func (e *secureEnv) nodeDir(t *testing.T, name string) string {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if d, ok := e.nodes[name]; ok {
		return d
	}
	// NB: under the CA dir, which lives as long as the test that made the environment (a subtest's temp
	// dir would vanish with the subtest while the name's certificate stays cached).
	d := filepath.Join(e.ca, "nodes", strings.NewReplacer("@", "_", "/", "_", ":", "_").Replace(name))
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{pki.CACert, pki.GossipKey} {
		b, err := os.ReadFile(filepath.Join(e.ca, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := pki.CreateNode(d, filepath.Join(e.ca, pki.CAKey), name, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	e.nodes[name] = d
	return d
}

// flags are the start flags of node name in secure mode (none in plaintext mode).
func secureFlags(t *testing.T, name string) []string {
	if secureMode == nil {
		return nil
	}
	return []string{"-certs-dir", secureMode.nodeDir(t, name), "-rpc-tls"}
}

// clientTLS is the harness clients' TLS configuration: an operator's certificate (nil in plaintext mode).
func clientTLS(t *testing.T) *tls.Config {
	if secureMode == nil {
		return nil
	}
	return operatorTLS(t, secureMode.ca, "admin")
}

// operatorTLS loads client.NAME from a CA dir.
func operatorTLS(t *testing.T, dir, name string) *tls.Config {
	t.Helper()
	cert, pool, err := pki.LoadClient(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return pki.ClientConfig(pool, &cert)
}
