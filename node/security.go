package node

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/internal/pki"
	"github.com/gokai-kv/gokai/membership"
	rpc "github.com/gokai-kv/gokai/protocol/msgpackrpc"
	"github.com/gokai-kv/gokai/ring"
)

// A node's trust: with certs-dir, node-to-node traffic is authenticated and encrypted (the transport over
// mutual TLS, gossip with memberlist's keyring and the CA's fingerprint as label, cluster states signed by
// their claimant), and operator methods need an operator's certificate. Without it everything is plaintext
// and must stay on loopback unless -insecure says the network is trusted. docs/security.md has the model.

// errInsecureBind explains the secure-by-default rule.
var errInsecureBind = errors.New("config: a listener on a non-loopback address needs -certs-dir (mutual TLS between nodes, encrypted gossip), or -insecure on a network you trust")

// isLoopback reports whether host:port binds loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkBinds refuses non-loopback listeners without certificates unless insecure (CockroachDB's rule).
func (c Config) checkBinds() error {
	if c.CertsDir != "" || c.Insecure {
		return nil
	}
	for _, l := range []struct{ flag, addr string }{{"memcache-listen", c.MemcacheListen}, {"rpc-listen", c.RPCListen},
		{"gossip-listen", c.GossipListen}, {"transport-listen", c.TransportListen}, {"debug-listen", c.DebugListen}, {"http-listen", c.HTTPListen}} {
		if l.addr != "" && !isLoopback(l.addr) {
			return fmt.Errorf("%w (%s %s)", errInsecureBind, l.flag, l.addr)
		}
	}
	return nil
}

// loadSecurity loads the certs directory, if any, and checks that the node certificate names this node.
func (n *Node) loadSecurity() error {
	if n.cfg.CertsDir == "" {
		return nil
	}
	b, err := pki.LoadNode(n.cfg.CertsDir)
	if err != nil {
		return fmt.Errorf("config: certs-dir: %w", err)
	}
	if b.Name != n.cfg.Name {
		return fmt.Errorf("config: certs-dir: the node certificate names %q, this node is %q (gokai certs create-node %s)", b.Name, n.cfg.Name, n.cfg.Name)
	}
	n.pki = b
	return nil
}

// transportTLS is the transport's mutual TLS: every peer proves a node certificate of the cluster CA, a
// dialled node must be the member whose transport address it was dialled at, and a peer may speak only for
// a transport address that is its own (or that no other member holds).
func (n *Node) transportTLS() *actors.TransportTLS {
	if n.pki == nil {
		return nil
	}
	b := n.pki
	return &actors.TransportTLS{
		Server: b.ServerConfig(true),
		Dial:   func(addr string) *tls.Config { return b.PeerConfig(string(n.memberAtTransport(addr))) },
		Identify: func(cs tls.ConnectionState) (string, error) {
			return pki.PeerIdentity(cs.VerifiedChains, pki.KindNode)
		},
		Verify: func(name, claimed string) error {
			if m := n.memberAtTransport(claimed); m != "" && string(m) != name {
				return fmt.Errorf("%s is %s's transport address", claimed, m)
			}
			return nil
		},
	}
}

// memberAtTransport is the member whose transport address is addr ("" if none is known). It reads the
// cluster state and gossip's view; before gossip starts it knows nothing.
func (n *Node) memberAtTransport(addr string) ring.NodeID {
	if n.cl == nil || n.cl.gossip == nil {
		return ""
	}
	for _, m := range n.state().Members {
		if m.TransportAddr == addr {
			return m.Name
		}
	}
	for _, m := range n.cl.gossip.Members() {
		if m.TransportAddr == addr {
			return m.Name
		}
	}
	return ""
}

// stateSigner signs cluster states with the node's certificate key.
type stateSigner struct{ b *pki.Bundle }

func (s stateSigner) Sign(enc []byte) ([]byte, []byte, error) { return s.b.Sign(enc) }
func (s stateSigner) Verify(claimant ring.NodeID, enc, sig, cert []byte) error {
	return s.b.VerifySigned(string(claimant), enc, sig, cert)
}

// gossipSecurity returns the gossip keys (primary first), label and state signer: none without certs.
func (n *Node) gossipSecurity() (keys [][]byte, label string, signer membership.StateSigner, err error) {
	if n.pki == nil {
		return nil, "", nil, nil
	}
	keys, err = n.loadKeyring()
	if err != nil {
		return nil, "", nil, err
	}
	return keys, "gokai:" + n.pki.Fingerprint(), stateSigner{n.pki}, nil
}

// keyringPath keeps the gossip keys installed by rotation (primary first): memberlist keeps nothing across
// restarts, and the certs directory holds only the first key.
func (n *Node) keyringPath() string { return filepath.Join(n.cfg.DataDir, "keyring") }

// loadKeyring reads the saved keyring, or starts one with the certs directory's gossip key.
func (n *Node) loadKeyring() ([][]byte, error) {
	raw, err := os.ReadFile(n.keyringPath())
	if errors.Is(err, os.ErrNotExist) || n.cfg.Backend != "leveldb" {
		return [][]byte{n.pki.GossipKey}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	var keys [][]byte
	for _, l := range strings.Split(string(raw), "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		k, err := pki.ParseGossipKey(l)
		if err != nil {
			return nil, fmt.Errorf("keyring: %w", err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return [][]byte{n.pki.GossipKey}, nil
	}
	return keys, nil
}

// saveKeyring writes keys (primary first).
func (n *Node) saveKeyring(primary []byte, keys [][]byte) error {
	if n.cfg.Backend != "leveldb" {
		return nil
	}
	lines := []string{base64.StdEncoding.EncodeToString(primary)}
	for _, k := range keys {
		if !slices.Equal(k, primary) {
			lines = append(lines, base64.StdEncoding.EncodeToString(k))
		}
	}
	return writeFileAtomicMode(n.keyringPath(), []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// isOperator reports whether the msgpack-RPC call in ctx comes from an operator: with certificates, a TLS
// client whose certificate the cluster CA signed (an operator's, or a node's); without, a client on
// loopback (the port then faces no network unless -insecure).
func (n *Node) isOperator(ctx context.Context) bool {
	nc := rpc.ConnOf(ctx)
	if nc == nil {
		return false
	}
	if n.pki == nil {
		host, _, err := net.SplitHostPort(nc.RemoteAddr().String())
		ip := net.ParseIP(host)
		return err == nil && ip != nil && ip.IsLoopback()
	}
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return false
	}
	chains := tc.ConnectionState().VerifiedChains
	if _, err := pki.PeerIdentity(chains, pki.KindClient); err == nil {
		return true
	}
	_, err := pki.PeerIdentity(chains, pki.KindNode)
	return err == nil
}
