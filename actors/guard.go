package actors

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gokai-kv/gokai/internal/ratelog"
)

// The transport guard: what another node's bytes may do to this one.
//
// protoactor's gRPC server trusts its peers: its ListProcesses and GetProcessDiagnostics methods panic
// ("implement me"), a MessageBatch whose type id, target or sender index is out of range panics in the
// receive loop, an unknown type name dereferences nil, and any remote envelope may carry a system message
// (Stop, Watch, PoisonPill...) to any actor of the node, vnode supervisors included. One malformed packet
// killed a node. The guard sits in front of protoactor as gRPC interceptors:
//
//   - every unary method answers Unimplemented (gokai uses none); the stream handler recovers from panics
//     (the stream ends with Internal, the node keeps serving);
//   - every received MessageBatch is checked before protoactor sees it (checkBatch): an envelope survives
//     only if its indexes are in range, its PIDs are present, its serializer is protobuf, its type is one
//     gokai's protocol uses (a wire envelope, wrapperspb.BytesValue, or protoactor's DeadLetterResponse), and
//     its target is an actor other nodes are meant to reach (AllowRemoteTarget). Dropped envelopes are
//     counted (RemoteStats.Rejected) and logged at most once a second.
//
// The guard is not authentication: with node-to-node TLS the transport also refuses peers whose certificate
// the cluster CA did not sign (see the security docs).

// remoteTypes are the protobuf type names a peer may send.
var remoteTypes = map[string]bool{
	string(proto.MessageName(&wrapperspb.BytesValue{})):    true, // every gokai wire message
	string(proto.MessageName(&actor.DeadLetterResponse{})): true, // a peer's answer to a request it cannot deliver
}

// protoSerializerID is protoactor's protobuf serializer (remote.RegisterSerializer appends after it).
const protoSerializerID = 0

var (
	targetsMu sync.Mutex
	// targetPrefixes are the actor-name prefixes other nodes may address; immutable once published.
	targetPrefixes atomic.Pointer[[]string]
)

func init() {
	// Replies to a request go to the requester's future; pings to the ping actor.
	AllowRemoteTarget("future")
	AllowRemoteTarget(PingName)
}

// AllowRemoteTarget lets other nodes address the local actors whose names start with prefix. Packages that
// own remotely reachable actors (vnodes, coordinators) call it from init. Everything else is unreachable
// from the network.
func AllowRemoteTarget(prefix string) {
	targetsMu.Lock()
	defer targetsMu.Unlock()
	var next []string
	if cur := targetPrefixes.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, prefix)
	targetPrefixes.Store(&next)
}

// remoteTargetAllowed reports whether a peer may address the local actor id.
func remoteTargetAllowed(id string) bool {
	if p := targetPrefixes.Load(); p != nil {
		for _, prefix := range *p {
			if strings.HasPrefix(id, prefix) {
				return true
			}
		}
	}
	return false
}

// checkBatch removes from b every envelope protoactor's reader must not see, and returns why the first one
// was dropped ("" when none was) and how many were. It rewrites b.Envelopes in place; the type, target and
// sender tables are left as they are (only surviving envelopes index them).
func checkBatch(b *remote.MessageBatch) (dropped int, why string) {
	kept := b.Envelopes[:0]
	for _, e := range b.Envelopes {
		if reason := checkEnvelope(b, e); reason != "" {
			if why == "" {
				why = reason
			}
			dropped++
			continue
		}
		kept = append(kept, e)
	}
	clear(b.Envelopes[len(kept):]) // NB: no stale pointers past the kept ones
	b.Envelopes = kept
	return dropped, why
}

func checkEnvelope(b *remote.MessageBatch, e *remote.MessageEnvelope) string {
	switch {
	case e == nil:
		return "nil envelope"
	case e.SerializerId != protoSerializerID:
		return fmt.Sprintf("serializer %d", e.SerializerId)
	case e.TypeId < 0 || int(e.TypeId) >= len(b.TypeNames):
		return fmt.Sprintf("type index %d of %d", e.TypeId, len(b.TypeNames))
	case !remoteTypes[b.TypeNames[e.TypeId]]:
		return fmt.Sprintf("type %.64q", b.TypeNames[e.TypeId])
	case e.Target < 0 || int(e.Target) >= len(b.Targets):
		return fmt.Sprintf("target index %d of %d", e.Target, len(b.Targets))
	case b.Targets[e.Target] == nil:
		return "nil target"
	case !remoteTargetAllowed(b.Targets[e.Target].Id):
		return fmt.Sprintf("target %.64q", b.Targets[e.Target].Id)
	case e.Sender < 0 || int(e.Sender) > len(b.Senders):
		return fmt.Sprintf("sender index %d of %d", e.Sender, len(b.Senders))
	case e.Sender > 0 && b.Senders[e.Sender-1] == nil:
		return "nil sender"
	}
	return ""
}

// guard is the Remote's gRPC interceptors and their counters.
type guard struct {
	log      *slog.Logger
	tls      *TransportTLS // nil: no TLS
	rejected atomic.Uint64 // envelopes dropped by checkBatch
	refused  atomic.Uint64 // streams refused: no valid certificate, or a claim the certificate does not back
	panics   atomic.Uint64 // handler panics recovered
	warn     ratelog.Limiter
}

func (g *guard) serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(g.unary), grpc.ChainStreamInterceptor(g.stream)}
}

// unary refuses every unary method: gokai's protocol is the Receive stream only.
func (g *guard) unary(context.Context, any, *grpc.UnaryServerInfo, grpc.UnaryHandler) (any, error) {
	return nil, status.Error(codes.Unimplemented, "gokai: method not served")
}

// stream serves the stream through the batch check and recovers a panic in its handler.
func (g *guard) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			g.panics.Add(1)
			g.warn.Warn(g.log, "actors: transport stream handler panicked; the stream is closed", "method", info.FullMethod, "panic", fmt.Sprint(p))
			err = status.Error(codes.Internal, "gokai: transport error")
		}
	}()
	name, err := g.streamPeer(ss.Context())
	if err != nil {
		g.refused.Add(1)
		g.warn.Warn(g.log, "actors: transport peer refused", "err", err)
		return status.Error(codes.Unauthenticated, "gokai: peer refused")
	}
	return handler(srv, &checkedStream{ServerStream: ss, g: g, peer: name})
}

// checkedStream runs checkBatch on every message the handler receives, binds a TLS peer to the address it
// claims, and stamps the envelopes it keeps with where they came from.
type checkedStream struct {
	grpc.ServerStream
	g       *guard
	peer    string                // the peer's verified node name; "" without TLS
	claimed string                // the transport address the peer's connect request claimed (verified with TLS)
	header  *remote.MessageHeader // what stamp puts on every envelope; made on first use, then read-only
}

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	rm, ok := m.(*remote.RemoteMessage)
	if !ok {
		return nil
	}
	if c := rm.GetConnectRequest(); c != nil {
		if sc := c.GetServerConnection(); sc != nil {
			if s.g.tls != nil && s.g.tls.Verify != nil {
				if err := s.g.tls.Verify(s.peer, sc.Address); err != nil {
					s.g.refused.Add(1)
					s.g.warn.Warn(s.g.log, "actors: transport peer refused", "peer", s.peer, "claims", sc.Address, "err", err)
					return status.Error(codes.PermissionDenied, "gokai: peer refused")
				}
			}
			s.claimed = sc.Address
		}
		return nil
	}
	b := rm.GetMessageBatch()
	if b == nil {
		return nil
	}
	if s.g.tls != nil && s.claimed == "" {
		s.g.refused.Add(1)
		return status.Error(codes.PermissionDenied, "gokai: messages before the connect request")
	}
	n, why := checkBatch(b)
	if s.g.tls != nil {
		n2, why2 := s.checkSenders(b)
		if why == "" {
			why = why2
		}
		n += n2
	}
	if n > 0 {
		s.g.rejected.Add(uint64(n))
		s.g.warn.Warn(s.g.log, "actors: dropped transport envelopes a peer may not send", "peer", s.peer, "dropped", n, "first", why)
	}
	for _, e := range b.Envelopes {
		s.stamp(e)
	}
	return nil
}

// checkSenders drops envelopes whose sender PID names another node than the one the peer proved to be:
// with TLS a node speaks only for itself. It runs after checkBatch (indexes are in range).
func (s *checkedStream) checkSenders(b *remote.MessageBatch) (dropped int, why string) {
	kept := b.Envelopes[:0]
	for _, e := range b.Envelopes {
		if e.Sender > 0 && b.Senders[e.Sender-1].Address != s.claimed {
			if why == "" {
				why = fmt.Sprintf("sender address %.64q is not the peer's", b.Senders[e.Sender-1].Address)
			}
			dropped++
			continue
		}
		kept = append(kept, e)
	}
	clear(b.Envelopes[len(kept):])
	b.Envelopes = kept
	return dropped, why
}

// stamp marks e as received from another node, with the peer's verified name when there is one; whatever
// headers the peer sent are replaced (gokai sends none of its own). Every envelope of the stream gets the
// same header, made once: nothing writes to a received message's header (protoactor's MessageEnvelope.
// SetHeader is called only by its tracing middlewares, which gokai does not use), and a fresh map per
// envelope was three allocations of every message a node received.
func (s *checkedStream) stamp(e *remote.MessageEnvelope) {
	if s.header == nil {
		h := map[string]string{RemoteHeader: "1"}
		if s.peer != "" {
			h[PeerHeader] = s.peer
		}
		s.header = &remote.MessageHeader{HeaderData: h}
	}
	e.MessageHeader = s.header
}
