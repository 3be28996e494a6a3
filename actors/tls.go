package actors

import (
	"context"
	"crypto/tls"
	"errors"
	"net"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// TransportTLS runs the transport over mutual TLS (see internal/pki for how the configurations are made).
//
// Every connection is authenticated both ways: the listener requires a client certificate the cluster CA
// signed (Server), a dialler checks the server's against the CA and the node it meant to reach (Dial). The
// peer's name (its certificate's) is then bound to the address it claims to speak for (Verify, on the
// connect request of every stream), and stamped on every envelope it sends (PeerHeader), so an actor can
// tell which node a message came from (Peer). A peer cannot forge the stamp: any value it sends is replaced.
type TransportTLS struct {
	// Server is the listener's configuration; it must require and verify client certificates.
	Server *tls.Config
	// Dial returns the configuration to dial the node at addr (host:port) with.
	Dial func(addr string) *tls.Config
	// Identify returns the node name a connection's verified certificate chains prove (an error refuses the
	// connection: not a node certificate).
	Identify func(cs tls.ConnectionState) (string, error)
	// Verify checks that the node named name may speak for the transport address claimed (the address its
	// PIDs carry). nil accepts every claim.
	Verify func(name, claimed string) error
}

// Message headers the transport sets on every envelope it receives from another node.
const (
	// RemoteHeader is "1" on every message that came from another node.
	RemoteHeader = "gokai-remote"
	// PeerHeader is the authenticated name of the node that sent it (TLS only; absent otherwise).
	PeerHeader = "gokai-peer"
)

// Peer reports whether the message ctx is handling came from another node, and that node's authenticated
// name ("" when the transport runs without TLS).
func Peer(ctx actor.Context) (name string, remote bool) {
	h := ctx.MessageHeader()
	if h == nil || h.Get(RemoteHeader) != "1" {
		return "", false
	}
	return h.Get(PeerHeader), true
}

// dialCreds hands each dial its own TLS configuration, made for the address it dials (gRPC's own TLS
// credentials take one configuration for every address, and see only the host, not the port, in
// ServerName: several nodes on one host would look alike).
type dialCreds struct {
	dial func(addr string) *tls.Config
	info credentials.ProtocolInfo
}

var _ credentials.TransportCredentials = (*dialCreds)(nil)

func newDialCreds(dial func(string) *tls.Config) *dialCreds {
	return &dialCreds{dial: dial, info: credentials.NewTLS(&tls.Config{}).Info()}
}

func (c *dialCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return credentials.NewTLS(c.dial(authority)).ClientHandshake(ctx, authority, raw)
}

func (c *dialCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("actors: dial credentials do not serve")
}

func (c *dialCreds) Info() credentials.ProtocolInfo { return c.info }
func (c *dialCreds) Clone() credentials.TransportCredentials {
	return &dialCreds{dial: c.dial, info: c.info}
}
func (c *dialCreds) OverrideServerName(string) error { return nil }

// streamPeer returns the verified node name of a stream's peer; "" without TLS.
func (g *guard) streamPeer(ctx context.Context) (string, error) {
	if g.tls == nil {
		return "", nil
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", errors.New("actors: no peer information")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "", errors.New("actors: connection without TLS")
	}
	return g.tls.Identify(ti.State)
}
