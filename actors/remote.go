package actors

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gokai-kv/gokai/internal/mpscan"
	"github.com/gokai-kv/gokai/internal/ratelog"
)

// Defaults and ranges of RemoteConfig.
const (
	DefaultRemoteListen    = "127.0.0.1:0"
	DefaultQueueSize       = 4096
	MaxQueueSize           = 1 << 20
	DefaultMaxMessageBytes = 32 << 20
	MinMaxMessageBytes     = 1 << 10
	MaxMaxMessageBytes     = 256 << 20
)

// Transport tuning that is not configuration.
const (
	// writerBatchSize is how many queued messages protoactor's endpoint writer puts in one gRPC message.
	writerBatchSize = 64
	// envelopeOverhead bounds what protoactor adds around one message in a batch (type name, PIDs, ids).
	envelopeOverhead = 4 << 10
	// Keepalive finds a peer that vanished without closing its connection (a pulled cable, not a killed
	// process: that closes the socket at once).
	keepaliveTime    = 10 * time.Second
	keepaliveTimeout = 5 * time.Second
	connectTimeout   = 2 * time.Second
)

// RemoteConfig configures a node's transport.
type RemoteConfig struct {
	// Listen is the host:port the transport binds. Default "127.0.0.1:0" (loopback, a port the OS picks).
	// Binding an unspecified address (0.0.0.0, ::) requires Advertise.
	Listen string
	// Advertise is the host:port other nodes use to reach this one (it is the Address of every PID on this
	// node). Default: the bound address.
	Advertise string
	// QueueSize bounds the messages queued for one peer and not yet written to its connection. A send
	// beyond it is dropped at once (a request fails with actor.ErrDeadLetter instead of timing out). Default
	// 4096, range 1..1<<20.
	QueueSize int
	// MaxMessageBytes bounds one encoded message, sent or received, in bytes. Default 32 MiB, range
	// 1 KiB..256 MiB.
	MaxMessageBytes int
	// Logger receives decode failures and dropped sends. Default: the actor system's logger.
	Logger *slog.Logger
	// TLS runs the transport over mutual TLS (tls.go). nil: plaintext, for loopback and trusted networks.
	TLS *TransportTLS
}

func (c RemoteConfig) withDefaults() RemoteConfig {
	if c.Listen == "" {
		c.Listen = DefaultRemoteListen
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	return c
}

// Validate reports the first field out of range, naming field and value. Zero fields are valid (defaults).
func (c RemoteConfig) Validate() error {
	c = c.withDefaults()
	host, _, err := splitHostPort(c.Listen, true)
	if err != nil {
		return fmt.Errorf("actors: RemoteConfig.Listen = %q: %w", c.Listen, err)
	}
	if c.Advertise != "" {
		if _, _, err := splitHostPort(c.Advertise, false); err != nil {
			return fmt.Errorf("actors: RemoteConfig.Advertise = %q: %w", c.Advertise, err)
		}
	} else if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return fmt.Errorf("actors: RemoteConfig.Listen = %q binds every interface: set Advertise", c.Listen)
	}
	if c.QueueSize < 1 || c.QueueSize > MaxQueueSize {
		return fmt.Errorf("actors: RemoteConfig.QueueSize = %d, want 1..%d (0 = default %d)",
			c.QueueSize, MaxQueueSize, DefaultQueueSize)
	}
	if c.MaxMessageBytes < MinMaxMessageBytes || c.MaxMessageBytes > MaxMaxMessageBytes {
		return fmt.Errorf("actors: RemoteConfig.MaxMessageBytes = %d, want %d..%d (0 = default %d)",
			c.MaxMessageBytes, MinMaxMessageBytes, MaxMaxMessageBytes, DefaultMaxMessageBytes)
	}
	return nil
}

// splitHostPort splits host:port; port 0 is allowed only with zeroOK.
func splitHostPort(s string, zeroOK bool) (string, int, error) {
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 || (port == 0 && !zeroOK) {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	return host, port, nil
}

// RemoteStats counts transport events since StartRemote.
type RemoteStats struct {
	Sent         uint64 // messages wrapped and handed to a peer's queue
	Dropped      uint64 // sends refused because the peer's queue was full
	EncodeErrors uint64 // sends refused because the message could not be encoded or was too large
	DecodeErrors uint64 // received wire messages dropped because they did not decode
	Rejected     uint64 // received envelopes the transport guard dropped (guard.go: bad indexes, types, targets)
	Refused      uint64 // peer streams refused (TLS: no valid node certificate, or a claim it does not back)
	Panics       uint64 // transport handler panics recovered (the stream was closed)
}

// Remote is a node's transport: protoactor-go remote (gRPC) carrying gokai wire messages.
type Remote struct {
	system *actor.ActorSystem
	rem    *remote.Remote
	cfg    RemoteConfig
	lim    mpscan.Limits
	log    *slog.Logger
	addr   string
	sub    *eventstream.Subscription

	peers sync.Map // address -> *peerGate

	guard guard
	// decodeWarn rate-limits the warning for wire messages that do not decode: a peer can send many.
	decodeWarn ratelog.Limiter

	sent, dropped, encodeErrors, decodeErrors atomic.Uint64
	pings                                     atomic.Uint64 // Ping sequence numbers
	stopOnce                                  sync.Once
}

// remotes maps an actor system to its running Remote, for the middleware (which only sees contexts).
var remotes sync.Map // *actor.ActorSystem -> *Remote

func remoteOf(system *actor.ActorSystem) *Remote {
	if r, ok := remotes.Load(system); ok {
		return r.(*Remote)
	}
	return nil
}

// StartRemote binds the transport and returns once its listener accepts connections (gRPC serves them from a
// goroutine). One Remote per actor system. Start it before the system carries traffic (protoactor reads the
// node address it sets without synchronisation), and before spawning actors whose PIDs other nodes must
// learn: an actor spawned earlier keeps the placeholder address "nonhost".
//
// NB: protoactor's remote sets gRPC's global logger on every start; two Remotes in one process race on it
// (tests run one per process).
func StartRemote(system *actor.ActorSystem, cfg RemoteConfig) (*Remote, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if remoteOf(system) != nil {
		return nil, errors.New("actors: the actor system already has a remote")
	}
	if cfg.Logger == nil {
		cfg.Logger = system.Logger()
	}
	host, port, _ := splitHostPort(cfg.Listen, true)
	if net.ParseIP(host) != nil && net.ParseIP(host).To4() == nil {
		host = "[" + host + "]" // NB: protoactor joins host and port with a plain ":"
	}
	recvLimit := min(int64(writerBatchSize)*int64(cfg.MaxMessageBytes+envelopeOverhead), math.MaxInt32)
	r := &Remote{
		system: system,
		cfg:    cfg,
		lim:    mpscan.Limits{MaxBytes: cfg.MaxMessageBytes},
		log:    cfg.Logger.With("component", "remote"),
	}
	r.guard.log, r.guard.tls = r.log, cfg.TLS
	creds, serverCreds := insecure.NewCredentials(), []grpc.ServerOption(nil)
	if t := cfg.TLS; t != nil {
		if t.Server == nil || t.Dial == nil || t.Identify == nil {
			return nil, errors.New("actors: RemoteConfig.TLS needs Server, Dial and Identify")
		}
		creds = newDialCreds(t.Dial)
		serverCreds = []grpc.ServerOption{grpc.Creds(credentials.NewTLS(t.Server))}
	}
	opts := []remote.ConfigOption{
		// NB: protoactor's "queue size" is only the initial capacity of a ring that grows without bound; the
		// bound is our per-peer gate. Size the ring so it never grows below the gate.
		remote.WithEndpointWriterQueueSize(cfg.QueueSize + 64),
		remote.WithEndpointWriterBatchSize(writerBatchSize),
		remote.WithEndpointManagerQueueSize(1024),
		remote.WithEndpointManagerBatchSize(writerBatchSize),
		remote.WithServerOptions(append([]grpc.ServerOption{
			grpc.MaxRecvMsgSize(int(recvLimit)),
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveTime / 2, PermitWithoutStream: true}),
		}, append(serverCreds, r.guard.serverOptions()...)...)...),
		remote.WithDialOptions(
			grpc.WithTransportCredentials(creds),
			// NB: bound each connection attempt, so a peer that drops packets (rather than refusing) holds its
			// endpoint writer about as long as a refusing one: protoactor makes 5 attempts 2 s apart.
			grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.DefaultConfig, MinConnectTimeout: connectTimeout}),
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: keepaliveTimeout, PermitWithoutStream: true}),
		),
	}
	if cfg.Advertise != "" {
		opts = append(opts, remote.WithAdvertisedHost(cfg.Advertise))
	}
	r.sub = system.EventStream.SubscribeWithPredicate(r.onEndpointEvent, func(m any) bool {
		_, ok := m.(*remote.EndpointTerminatedEvent)
		return ok
	})
	r.rem = remote.NewRemote(system, remote.Configure(host, port, opts...))
	if err := startRecovering(r.rem); err != nil {
		system.EventStream.Unsubscribe(r.sub)
		return nil, fmt.Errorf("actors: start remote on %s: %w", cfg.Listen, err)
	}
	r.addr = system.Address()
	remotes.Store(system, r)
	if err := spawnPing(system); err != nil {
		r.Stop(false)
		return nil, err
	}
	r.log.Info("remote started", "listen", cfg.Listen, "address", r.addr)
	return r, nil
}

// startRecovering runs protoactor's Start, which panics when it cannot bind.
func startRecovering(rem *remote.Remote) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	rem.Start()
	return nil
}

// Address is the host:port other nodes use in PIDs of this node's actors.
func (r *Remote) Address() string { return r.addr }

// PID names actor id on the node at address.
func (r *Remote) PID(address, id string) *actor.PID { return actor.NewPID(address, id) }

// Limits are the bounds every received wire message is checked against.
func (r *Remote) Limits() mpscan.Limits { return r.lim }

// Stats returns the transport's counters.
func (r *Remote) Stats() RemoteStats {
	return RemoteStats{Sent: r.sent.Load(), Dropped: r.dropped.Load(),
		EncodeErrors: r.encodeErrors.Load(), DecodeErrors: r.decodeErrors.Load(),
		Rejected: r.guard.rejected.Load(), Refused: r.guard.refused.Load(), Panics: r.guard.panics.Load()}
}

// Stop shuts the transport down. graceful tells connected peers first and waits (at most ~10 s, protoactor's
// limit) for their streams to close; otherwise the listener and its streams are cut at once. Idempotent.
func (r *Remote) Stop(graceful bool) {
	r.stopOnce.Do(func() {
		r.rem.Shutdown(graceful)
		r.system.EventStream.Unsubscribe(r.sub)
		remotes.CompareAndDelete(r.system, r)
		r.log.Info("remote stopped", "address", r.addr, "graceful", graceful)
	})
}

func (r *Remote) isRemote(pid *actor.PID) bool {
	return pid != nil && pid.Address != "" && pid.Address != "nonhost" && pid.Address != r.addr
}

func (r *Remote) onEndpointEvent(m any) {
	if ev, ok := m.(*remote.EndpointTerminatedEvent); ok {
		if g, ok := r.peers.Load(ev.Address); ok {
			g.(*peerGate).reset()
		}
	}
}

func (r *Remote) gate(address string) *peerGate {
	if g, ok := r.peers.Load(address); ok {
		return g.(*peerGate)
	}
	g, _ := r.peers.LoadOrStore(address, &peerGate{})
	return g.(*peerGate)
}

// peerGate bounds the messages queued for one peer. protoactor's endpoint writer calls outbound.Serialize
// when it takes a message from its queue, which releases a slot. When the peer's endpoint terminates, the
// writer and its queue are discarded, so the gate starts a new generation with an empty count (releases of
// the old generation are ignored).
type peerGate struct {
	mu      sync.Mutex
	gen     uint64 // REQUIRES: mu held
	pending int    // REQUIRES: mu held
}

func (g *peerGate) acquire(limit int) (gen uint64, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pending >= limit {
		return 0, false
	}
	g.pending++
	return g.gen, true
}

func (g *peerGate) release(gen uint64) {
	g.mu.Lock()
	if gen == g.gen && g.pending > 0 {
		g.pending--
	}
	g.mu.Unlock()
}

func (g *peerGate) reset() {
	g.mu.Lock()
	g.gen++
	g.pending = 0
	g.mu.Unlock()
}

func (g *peerGate) queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pending
}

// outbound is what the sender middleware hands protoactor for a peer: protoactor's endpoint writer turns it
// into the BytesValue (remote.RootSerializable) when it dequeues it, which releases the gate's slot.
type outbound struct {
	bv   *wrapperspb.BytesValue
	gate *peerGate
	gen  uint64
}

var _ remote.RootSerializable = (*outbound)(nil)

func (o *outbound) Serialize() (remote.RootSerialized, error) {
	o.gate.release(o.gen)
	return wireBytes{o.bv}, nil
}

// wireBytes is a BytesValue as protoactor's remote.RootSerialized: it marshals as google.protobuf.BytesValue,
// and the receiver decodes a plain *wrapperspb.BytesValue, so Deserialize is never called.
type wireBytes struct{ *wrapperspb.BytesValue }

func (wireBytes) Deserialize() (remote.RootSerializable, error) {
	return nil, errors.New("actors: wireBytes is never deserialized")
}

// WireProps makes actors of props able to exchange gokai wire messages with other nodes: a receiver middleware
// decodes BytesValue envelopes into registered messages (undecodable ones are logged and dropped), and a
// sender middleware wraps registered messages addressed to another node (Send, Request, Forward and Respond
// all pass through it). Other middleware on props sees the raw BytesValue if it was added before WireProps.
// Like props.Configure, it modifies props and returns it.
func WireProps(props *actor.Props) *actor.Props {
	return props.Configure(actor.WithReceiverMiddleware(wireReceiver), actor.WithSenderMiddleware(wireSender))
}

// WireSenderProps is WireProps without the receiver middleware, for an actor whose Receive passes every
// message through DecodeReceived itself. Why: with a receiver middleware protoactor wraps every message it
// hands the actor in a new envelope, its lifecycle messages (Started, Stopping, Stopped) included; an actor
// spawned per request pays three allocations for them. Like props.Configure, it modifies props and returns it.
func WireSenderProps(props *actor.Props) *actor.Props {
	return props.Configure(actor.WithSenderMiddleware(wireSender))
}

// Tell is ctx.Send for an actor made with WireProps or WireSenderProps: a message to an actor of this node
// goes to its process bare, as a Send without middleware delivers it (no sender, ctx.Message() the message);
// one to another node goes through ctx.Send and the sender middleware. Why: with a sender middleware
// protoactor wraps every message in a new envelope before the middleware looks at the target, local ones
// included; a vnode's reply to a coordinator is on every request's path.
func Tell(ctx actor.SenderContext, pid *actor.PID, msg any) {
	sys := ctx.ActorSystem()
	if r := remoteOf(sys); r != nil && r.isRemote(pid) {
		ctx.Send(pid, msg)
		return
	}
	ref, _ := sys.ProcessRegistry.Get(pid) // NB: an unknown pid gets the dead-letter process, as Send does
	ref.SendUserMessage(pid, msg)
}

// Ask is ctx.Request in Tell's manner: to an actor of this node the envelope (msg, ctx's actor as its
// sender) goes to its process directly; to another node through ctx.Request and the sender middleware. Why:
// the first message an actor sends through a sender middleware makes protoactor allocate the context's
// extras (for the middleware's context), three allocations of every request actor that would otherwise never
// need them.
func Ask(ctx actor.SenderContext, pid *actor.PID, msg any) {
	sys := ctx.ActorSystem()
	if r := remoteOf(sys); r != nil && r.isRemote(pid) {
		ctx.Request(pid, msg)
		return
	}
	ref, _ := sys.ProcessRegistry.Get(pid) // NB: an unknown pid gets the dead-letter process, as Request does
	ref.SendUserMessage(pid, &actor.MessageEnvelope{Message: msg, Sender: ctx.Self()})
}

// DecodeReceived is WireProps's receiver middleware as a function, for actors made with WireSenderProps: a
// wire message from another node (a BytesValue) comes back decoded, any other message as it is. ok is false
// when a wire message does not decode (it is logged and counted as the middleware does): drop it.
func DecodeReceived(c actor.Context, msg any) (_ any, ok bool) {
	bv, isWire := msg.(*wrapperspb.BytesValue)
	if !isWire {
		return msg, true
	}
	m, err := decodeReceived(c, c.Sender(), bv)
	return m, err == nil
}

// decodeReceived decodes a wire message that reached c from sender, logging and counting what does not
// decode.
func decodeReceived(c interface {
	Self() *actor.PID
	ActorSystem() *actor.ActorSystem
	Logger() *slog.Logger
}, sender *actor.PID, bv *wrapperspb.BytesValue) (any, error) {
	r := remoteOf(c.ActorSystem())
	lim := mpscan.Limits{MaxBytes: DefaultMaxMessageBytes}
	if r != nil {
		lim = r.lim
	}
	msg, err := DecodeWire(bv, lim)
	if err != nil {
		log := c.Logger()
		if r != nil {
			r.decodeErrors.Add(1)
			log = r.log
		}
		args := []any{"to", pidString(c.Self()), "from", pidString(sender), "bytes", len(bv.GetValue()), "err", err}
		if r != nil {
			r.decodeWarn.Warn(log, "actors: dropped a wire message that does not decode", args...)
		} else {
			log.Warn("actors: dropped a wire message that does not decode", args...)
		}
	}
	return msg, err
}

func wireReceiver(next actor.ReceiverFunc) actor.ReceiverFunc {
	return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
		bv, ok := env.Message.(*wrapperspb.BytesValue)
		if !ok {
			next(c, env)
			return
		}
		msg, err := decodeReceived(c, env.Sender, bv)
		if err != nil {
			return
		}
		next(c, &actor.MessageEnvelope{Header: env.Header, Message: msg, Sender: env.Sender})
	}
}

func wireSender(next actor.SenderFunc) actor.SenderFunc {
	return func(c actor.SenderContext, target *actor.PID, env *actor.MessageEnvelope) {
		r := remoteOf(c.ActorSystem())
		if r == nil || !r.isRemote(target) {
			next(c, target, env)
			return
		}
		r.send(next, c, target, env)
	}
}

// rootWireSender is wireSender for an actor system's Root context (see NewSystem).
func rootWireSender(next actor.SenderFunc) actor.SenderFunc {
	return func(c actor.SenderContext, target *actor.PID, env *actor.MessageEnvelope) {
		system := c.ActorSystem()
		if r := remoteOf(system); r != nil && r.isRemote(target) {
			r.send(next, c, target, env)
			return
		}
		if env.Sender == nil && len(env.Header) == 0 {
			// NB: without middleware, a Root send delivers the bare message, and protoactor's internals depend
			// on it (the remote's endpoint writer mailbox takes only bare messages, and crashes on an
			// envelope). The chain's last sender would deliver the envelope, so deliver the message here.
			ref, _ := system.ProcessRegistry.Get(target)
			ref.SendUserMessage(target, env.Message)
			return
		}
		next(c, target, env)
	}
}

// send wraps env's message for target (on another node) and queues it, or refuses it at once.
func (r *Remote) send(next actor.SenderFunc, c actor.SenderContext, target *actor.PID, env *actor.MessageEnvelope) {
	var bv *wrapperspb.BytesValue
	switch m := env.Message.(type) {
	case *wrapperspb.BytesValue: // already wrapped (Request, or a relayed envelope)
		bv = m
	case *outbound, proto.Message: // queued already (WireProps applied twice), or protoactor's own messages
		next(c, target, env)
		return
	default:
		var err error
		if bv, err = EncodeWire(m); err != nil {
			r.encodeErrors.Add(1)
			r.log.Error("actors: cannot send to another node", "to", pidString(target), "type", fmt.Sprintf("%T", m), "err", err)
			r.refuse(target, env)
			return
		}
	}
	if len(bv.Value) > r.cfg.MaxMessageBytes {
		r.encodeErrors.Add(1)
		r.log.Error("actors: message too large for the wire", "to", pidString(target),
			"type", fmt.Sprintf("%T", env.Message), "bytes", len(bv.Value), "max", r.cfg.MaxMessageBytes)
		r.refuse(target, env)
		return
	}
	g := r.gate(target.Address)
	gen, ok := g.acquire(r.cfg.QueueSize)
	if !ok {
		if n := r.dropped.Add(1); n&(n-1) == 0 { // log on powers of two: a dead peer must not flood the log
			r.log.Warn("actors: peer queue full, dropping", "peer", target.Address, "dropped_total", n)
		}
		r.refuse(target, env)
		return
	}
	r.sent.Add(1)
	sender := env.Sender
	if sender != nil && (sender.Address == "" || sender.Address == "nonhost") {
		// NB: an actor spawned before StartRemote has the placeholder address; the peer must answer here.
		sender = &actor.PID{Address: r.addr, Id: sender.Id, RequestId: sender.RequestId}
	}
	next(c, target, &actor.MessageEnvelope{Header: env.Header, Message: &outbound{bv: bv, gate: g, gen: gen}, Sender: sender})
}

// refuse makes a request that cannot be sent fail at once (its future completes with actor.ErrDeadLetter;
// an actor gets *actor.DeadLetterResponse) instead of timing out.
func (r *Remote) refuse(target *actor.PID, env *actor.MessageEnvelope) {
	if env.Sender != nil {
		r.system.Root.Send(env.Sender, &actor.DeadLetterResponse{Target: target})
	}
}

// queued reports how many messages wait in address's queue (tests).
func (r *Remote) queued(address string) int {
	if g, ok := r.peers.Load(address); ok {
		return g.(*peerGate).queued()
	}
	return 0
}

// DecodeReply turns a reply that came back from another node as a raw envelope (a future's result: futures
// bypass the receiver middleware) into its message, with the system's transport limits. Other values pass
// through unchanged.
func DecodeReply(system *actor.ActorSystem, res any) (any, error) {
	bv, ok := res.(*wrapperspb.BytesValue)
	if !ok {
		return res, nil
	}
	lim := mpscan.Limits{MaxBytes: DefaultMaxMessageBytes}
	if r := remoteOf(system); r != nil {
		lim = r.lim
	}
	return DecodeWire(bv, lim)
}

// pidString renders a PID as address/id (PID.String is protobuf text).
func pidString(pid *actor.PID) string {
	switch {
	case pid == nil:
		return "<nil>"
	case pid.Address == "" || pid.Address == "nonhost":
		return pid.Id
	}
	return pid.Address + "/" + pid.Id
}
