package membership

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/gokai-kv/gokai/ring"
)

// Errors of the gossip shell.
var (
	// ErrForeignCluster: a peer (or every seed) belongs to another cluster.
	ErrForeignCluster = errors.New("membership: node of another cluster")
	// ErrNotAdopted: a Join with adopt reached no seed whose state it could take.
	ErrNotAdopted = errors.New("membership: join adopted no cluster state")
	// ErrNotAlone: a Join with adopt on a node that already has peers.
	ErrNotAlone = errors.New("membership: a node joining with adopt must be alone")
	// ErrClosed: the Gossip was shut down.
	ErrClosed = errors.New("membership: gossip shut down")
)

// GossipConfig configures StartGossip. Zero durations and counts take the
// defaults of memberlist's local-network config (DefaultLocalConfig).
type GossipConfig struct {
	// Self is this node: Self.Name is the memberlist node name (unique in
	// the cluster), and the addresses travel in the node meta. Required.
	Self Member
	// BindAddr is the IP memberlist binds (UDP and TCP) and advertises.
	// Default "127.0.0.1".
	BindAddr string
	// BindPort is the memberlist port, UDP and TCP; 0 picks a free one
	// (Gossip.Addr tells which). Default 0.
	BindPort int
	// ProbeInterval is the time between failure-detector probes of one
	// random peer. Default 1s.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe waits for an ack before it asks
	// other nodes to probe indirectly. Default 200ms.
	ProbeTimeout time.Duration
	// SuspicionMult scales how long a suspect node may refute before it is
	// declared dead (SuspicionMult * max(1, log10(nodes)) * ProbeInterval,
	// longer while few other nodes confirm the suspicion). Default 3.
	SuspicionMult int
	// GossipInterval is the time between gossip rounds, which carry the
	// small state-version broadcasts. Default 100ms.
	GossipInterval time.Duration
	// PushPullInterval is the time between full state exchanges (node
	// lists and the cluster state) with one random peer, the anti-entropy
	// behind the version broadcasts. Default 15s.
	PushPullInterval time.Duration
	// TCPTimeout bounds each TCP exchange: a join's or push-pull's state
	// exchange, a reliable send. Default 1s.
	TCPTimeout time.Duration
	// RetransmitMult sets how many times a broadcast is sent before it is
	// dropped: RetransmitMult * ceil(log10(nodes+1)) sends to random peers
	// (memberlist's own alive/dead messages and the state versions).
	// Default 4 (memberlist's LAN value; its local-network value, 2, left
	// one node of five without a broadcast about 6% of the time in tests).
	RetransmitMult int
	// AnnounceInterval is how often a node re-broadcasts its state version
	// even when nothing changed, so that a node that missed a broadcast
	// catches up (it pulls the newer state, or is sent it) within about
	// this time instead of waiting for push-pull. Default 1s.
	AnnounceInterval time.Duration
	// DeadNodeReclaimTime is how long a node must have been dead before its
	// name may come back from another address (a node restarted on new
	// ports after a crash). 0 (the default) never: the name is free again
	// once it left gracefully or memberlist forgot it (15s after its death).
	DeadNodeReclaimTime time.Duration
	// ReconnectInterval is the first wait before re-joining a member of the
	// cluster state that memberlist reports dead or left, or has not seen
	// (see reconnect.go); it doubles per attempt up to ReconnectMaxInterval.
	// Without it two sides of a partition longer than memberlist's
	// GossipToTheDeadTime (15s) never merge again. Default 1s.
	ReconnectInterval time.Duration
	// ReconnectMaxInterval caps the reconnect backoff: after a partition
	// heals, the two sides find each other within about this time.
	// Default 8s.
	ReconnectMaxInterval time.Duration
	// Peers are gossip addresses of members saved by an earlier run
	// (memberlist keeps nothing across restarts). The reconnect loop tries
	// them while some member of the state has not been seen. Optional.
	Peers []string
	// Logger receives the shell's and memberlist's logs, at debug. Default:
	// discard.
	Logger *slog.Logger
	// State is the initial cluster state (for a new node, a one-node
	// cluster of its own from NewClusterState). Required, must Validate.
	State *ClusterState
	// Signed is State's signed form as StateDoc returned it (saved by an
	// earlier run), so a state another node signed can be passed on. nil:
	// this node signs State if it is its claimant.
	Signed []byte
	// Keys, when set, encrypt gossip (memberlist's keyring: AES-GCM with
	// 16, 24 or 32-byte keys). Keys[0] encrypts; every key decrypts, so a
	// key can be rotated in without downtime (InstallKey, UseKey, RemoveKey).
	Keys [][]byte
	// Label is authenticated with every gossip packet and stream; a peer
	// with another label is refused. Set it to the cluster's identity
	// (≤ 255 bytes). Default "" (none).
	Label string
	// Signer signs the states this node proposes and checks received ones
	// (signed.go). nil: states travel unsigned, and a received state's
	// claimant must be a member of the current state.
	Signer StateSigner

	// ignoreVersions makes the node drop received version broadcasts, so
	// that only push-pull spreads states (tests).
	ignoreVersions bool
	// deadTime overrides memberlist's GossipToTheDeadTime (tests).
	deadTime time.Duration
	// wrapTransport, when set, wraps memberlist's network transport (tests:
	// a transport that drops traffic to partition nodes).
	wrapTransport func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport
}

// withDefaults fills the zero fields.
func (c GossipConfig) withDefaults() GossipConfig {
	d := memberlist.DefaultLocalConfig()
	if c.BindAddr == "" {
		c.BindAddr = "127.0.0.1"
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = d.ProbeInterval
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = d.ProbeTimeout
	}
	if c.SuspicionMult == 0 {
		c.SuspicionMult = d.SuspicionMult
	}
	if c.GossipInterval == 0 {
		c.GossipInterval = d.GossipInterval
	}
	if c.PushPullInterval == 0 {
		c.PushPullInterval = d.PushPullInterval
	}
	if c.TCPTimeout == 0 {
		c.TCPTimeout = d.TCPTimeout
	}
	if c.RetransmitMult == 0 {
		c.RetransmitMult = 4
	}
	if c.AnnounceInterval == 0 {
		c.AnnounceInterval = time.Second
	}
	if c.ReconnectInterval == 0 {
		c.ReconnectInterval = time.Second
	}
	if c.ReconnectMaxInterval == 0 {
		c.ReconnectMaxInterval = 8 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first field out of range, naming field and value.
// Zero fields are valid (defaults).
func (c GossipConfig) Validate() error {
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("membership: GossipConfig.%s = %v, want %s", field, v, want)
	}
	self := c.Self
	self.Status = StatusValid
	switch {
	case checkMember(self) != nil:
		return fmt.Errorf("membership: GossipConfig.Self: %w", checkMember(self))
	case c.BindAddr != "" && net.ParseIP(c.BindAddr) == nil:
		return bad("BindAddr", c.BindAddr, "an IP address")
	case c.BindPort < 0 || c.BindPort > 65535:
		return bad("BindPort", c.BindPort, "0..65535")
	case c.ProbeInterval < 0:
		return bad("ProbeInterval", c.ProbeInterval, "> 0")
	case c.ProbeTimeout < 0:
		return bad("ProbeTimeout", c.ProbeTimeout, "> 0")
	case c.SuspicionMult < 0:
		return bad("SuspicionMult", c.SuspicionMult, ">= 1")
	case c.GossipInterval < 0:
		return bad("GossipInterval", c.GossipInterval, "> 0")
	case c.PushPullInterval < 0:
		return bad("PushPullInterval", c.PushPullInterval, "> 0")
	case c.TCPTimeout < 0:
		return bad("TCPTimeout", c.TCPTimeout, "> 0")
	case c.RetransmitMult < 0:
		return bad("RetransmitMult", c.RetransmitMult, ">= 1")
	case c.AnnounceInterval < 0:
		return bad("AnnounceInterval", c.AnnounceInterval, "> 0")
	case c.ReconnectInterval < 0:
		return bad("ReconnectInterval", c.ReconnectInterval, "> 0")
	case c.ReconnectMaxInterval < 0 || (c.ReconnectMaxInterval > 0 && c.ReconnectMaxInterval < c.ReconnectInterval):
		return bad("ReconnectMaxInterval", c.ReconnectMaxInterval, ">= ReconnectInterval")
	case c.DeadNodeReclaimTime < 0:
		return bad("DeadNodeReclaimTime", c.DeadNodeReclaimTime, ">= 0")
	case c.State == nil:
		return bad("State", "nil", "a cluster state")
	case len(c.Label) > memberlist.LabelMaxSize:
		return bad("Label", len(c.Label), fmt.Sprintf("at most %d bytes", memberlist.LabelMaxSize))
	}
	for i, k := range c.Keys {
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return bad(fmt.Sprintf("Keys[%d]", i), fmt.Sprintf("%d bytes", n), "16, 24 or 32 bytes")
		}
	}
	if err := c.State.Validate(); err != nil {
		return fmt.Errorf("membership: GossipConfig.State: %w", err)
	}
	return nil
}

// LiveState is a node's state in the failure detector's view.
type LiveState string

// Live states. memberlist exposes no race-free way to read its "suspect"
// state (Members() returns pointers it rewrites in place), so a suspect
// node stays alive here until it is declared dead.
const (
	LiveAlive LiveState = "alive"
	LiveDead  LiveState = "dead" // failed probes and suspicion timed out
	LiveLeft  LiveState = "left" // left gracefully (Leave)
)

// LiveMember is one node as memberlist sees it, with its node meta.
type LiveMember struct {
	Name          ring.NodeID
	State         LiveState
	Since         time.Time // when this node saw State begin
	Addr          string    // memberlist host:port
	Cluster       string    // from the meta; "" while the node joins with adopt
	RPCAddr       string
	TransportAddr string
	MemcacheAddr  string
}

// liveEntry is a LiveMember plus the address to send to.
type liveEntry struct {
	LiveMember
	ip   net.IP
	port uint16
}

// installed is the current state with its encoding, signed form and hash.
type installed struct {
	s    *ClusterState
	enc  []byte
	doc  []byte // signed form (signed.go): what gossip sends
	hash uint64
}

// stateKey names a state by version and hash.
type stateKey struct{ version, hash uint64 }

// Tuning of the pull protocol.
const (
	// retryAfter is how long a pull of one state version, or an unasked
	// push to one node, is not repeated.
	retryAfter = 300 * time.Millisecond
	// maxSends bounds the reliable (TCP) sends in flight; more are dropped
	// (push-pull and later broadcasts repair).
	maxSends = 8
	// maxRateKeys bounds the states and nodes remembered for retryAfter.
	maxRateKeys = 1024
)

// Gossip is the memberlist shell: it runs the failure detector, carries
// node metadata and spreads the ClusterState.
//
// Spreading: a node that installs a state (Propose, a pull, a push-pull)
// broadcasts its [cluster, version, hash, node] through memberlist's
// gossip, and again every AnnounceInterval; a node that hears of a newer
// state of its cluster pulls it from that node with a reliable request
// (msgPullState / msgStateReply), one that hears of an older one sends its
// own to that node, and push-pull every PushPullInterval exchanges full
// states as anti-entropy. The winner of two
// states is decided by Newer, so every node converges to the same state.
//
// All methods are safe for concurrent use. memberlist's callbacks never
// block: decoding is bounded and reliable sends run on their own
// goroutines (at most maxSends).
type Gossip struct {
	cfg   GossipConfig
	self  ring.NodeID
	log   *slog.Logger
	addr  string
	ml    atomic.Pointer[memberlist.Memberlist]
	queue *memberlist.TransmitLimitedQueue
	keys  *memberlist.Keyring // nil: gossip unencrypted; the Keyring is safe for concurrent use

	mu  sync.Mutex // serialises installs; publication happens under it
	cur atomic.Pointer[installed]

	leaving  atomic.Bool            // Leave was called
	adopting atomic.Bool            // a Join with adopt is running
	adopted  atomic.Bool            // ... and took a seed's state
	rejected atomic.Pointer[string] // why the last merge was refused

	reconnects    atomic.Int64 // successful re-joins (reconnect.go)
	refusedStates atomic.Int64 // received states refused (signed.go)

	viewMu     sync.RWMutex
	view       map[ring.NodeID]*liveEntry
	aliveCount atomic.Int64

	subMu      sync.Mutex
	subs       map[int]chan *ClusterState
	nextSub    int
	subsClosed bool

	rateMu   sync.Mutex
	pulled   map[stateKey]time.Time    // last pull per state
	pushed   map[ring.NodeID]time.Time // last unasked push per node
	sendMu   sync.Mutex                // guards closed and sends.Add
	closed   bool
	stop     chan struct{}  // closed by Shutdown
	sends    sync.WaitGroup // reliable sends and join goroutines
	sendSem  chan struct{}
	joinMu   sync.Mutex
	lifeMu   sync.Mutex // serialises Leave and Shutdown
	stopOnce sync.Once
	stopErr  error
}

// StartGossip starts memberlist on cfg.BindAddr:cfg.BindPort with
// cfg.State as the current state. The node is alone until Join.
func StartGossip(cfg GossipConfig) (*Gossip, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Gossip{
		cfg:     cfg,
		self:    cfg.Self.Name,
		log:     cfg.Logger.With("node", string(cfg.Self.Name)),
		view:    make(map[ring.NodeID]*liveEntry),
		subs:    make(map[int]chan *ClusterState),
		pulled:  make(map[stateKey]time.Time),
		pushed:  make(map[ring.NodeID]time.Time),
		sendSem: make(chan struct{}, maxSends),
		stop:    make(chan struct{}),
	}
	in, err := g.local(cfg.State)
	if err != nil {
		return nil, err
	}
	if cfg.Signed != nil {
		if s, doc, err := OpenSignedState(cfg.Signed); err == nil && s.Hash() == in.hash && s.Version == in.s.Version {
			in.doc = doc
		}
	}
	g.cur.Store(in)
	// The longest meta this node can advertise: any cluster id it may adopt.
	if n := len(g.encodeMeta(strings.Repeat("x", MaxNameBytes), true)); n > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("membership: GossipConfig.Self: node meta of %d bytes (max %d)", n, memberlist.MetaMaxSize)
	}

	mc := memberlist.DefaultLocalConfig()
	mc.Name = string(cfg.Self.Name)
	mc.BindAddr = cfg.BindAddr
	mc.BindPort = cfg.BindPort
	mc.ProbeInterval = cfg.ProbeInterval
	mc.ProbeTimeout = cfg.ProbeTimeout
	mc.SuspicionMult = cfg.SuspicionMult
	mc.GossipInterval = cfg.GossipInterval
	mc.PushPullInterval = cfg.PushPullInterval
	mc.TCPTimeout = cfg.TCPTimeout
	mc.RetransmitMult = cfg.RetransmitMult
	mc.DeadNodeReclaimTime = cfg.DeadNodeReclaimTime
	mc.Logger = log.New(memberlistLog{g.log}, "", 0)
	if len(cfg.Keys) > 0 {
		kr, err := memberlist.NewKeyring(cfg.Keys[1:], cfg.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("membership: gossip keys: %w", err)
		}
		mc.Keyring, g.keys = kr, kr
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	mc.Label = cfg.Label
	if cfg.deadTime > 0 {
		mc.GossipToTheDeadTime = cfg.deadTime
	}
	if cfg.wrapTransport != nil {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{cfg.BindAddr},
			BindPort: cfg.BindPort, Logger: mc.Logger})
		if err != nil {
			return nil, fmt.Errorf("membership: starting memberlist on %s:%d: %w", cfg.BindAddr, cfg.BindPort, err)
		}
		mc.BindPort, mc.AdvertisePort = nt.GetAutoBindPort(), nt.GetAutoBindPort()
		mc.Transport = cfg.wrapTransport(nt)
	}
	g.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return max(1, int(g.aliveCount.Load())) },
		RetransmitMult: mc.RetransmitMult,
	}
	d := &gossipDelegate{g}
	mc.Delegate, mc.Events, mc.Alive, mc.Merge = d, d, d, d
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("membership: starting memberlist on %s:%d: %w", cfg.BindAddr, cfg.BindPort, err)
	}
	g.ml.Store(ml)
	g.addr = net.JoinHostPort(cfg.BindAddr, fmt.Sprint(mc.BindPort))
	g.goTracked(g.reannounce)
	g.goTracked(g.reconnect)
	g.log.Debug("membership: gossip started", "addr", g.addr, "state", cfg.State.String())
	return g, nil
}

// Addr returns the host:port memberlist listens on: the seed address to
// give other nodes.
func (g *Gossip) Addr() string { return g.addr }

// State returns the current cluster state (immutable; never nil).
func (g *Gossip) State() *ClusterState { return g.cur.Load().s }

// Propose installs s if it is valid and Newer than the current state (same
// cluster), and broadcasts its version. It reports whether s was
// installed.
func (g *Gossip) Propose(s *ClusterState) bool {
	if g.isClosed() || s == nil {
		return false
	}
	in, err := g.local(s)
	if err != nil {
		g.log.Debug("membership: refusing an invalid cluster state", "source", "propose", "err", err)
		return false
	}
	return g.install(in, false, "propose")
}

// Install installs a state another node sent directly (its signed form, as StateDoc returns it) under the
// same rules as one gossip delivers: signature and claimant checks, and only if it is Newer. It returns the
// current state afterwards, so a caller can tell whether this node now holds that state or a newer one.
func (g *Gossip) Install(doc []byte) *ClusterState {
	if !g.isClosed() {
		g.install(g.remote(doc, false, "direct"), false, "direct")
	}
	return g.State()
}

// StateDoc returns the current state's signed form, to save and hand back as GossipConfig.Signed.
func (g *Gossip) StateDoc() []byte { return g.cur.Load().doc }

// Signed returns the current state and its signed form, together.
func (g *Gossip) Signed() (*ClusterState, []byte) {
	in := g.cur.Load()
	return in.s, in.doc
}

// local encodes (validating) and, when this node is its claimant and there is a Signer, signs a state this
// node holds on its own authority.
func (g *Gossip) local(s *ClusterState) (*installed, error) {
	enc, err := s.MarshalBinary() // validates
	if err != nil {
		return nil, err
	}
	var sig, cert []byte
	if g.cfg.Signer != nil && s.Claimant == g.self {
		if sig, cert, err = g.cfg.Signer.Sign(enc); err != nil {
			return nil, fmt.Errorf("membership: signing the cluster state: %w", err)
		}
	}
	return &installed{s: s, enc: enc, doc: encodeSigned(enc, sig, cert), hash: s.Hash()}, nil
}

// remote decodes a signed state from another node and applies the signature and claimant rules.
func (g *Gossip) remote(b []byte, adopt bool, source string) *installed {
	ss, err := decodeSigned(b)
	if err != nil {
		g.log.Debug("membership: dropping a malformed state", "source", source, "err", err)
		return nil
	}
	s, err := UnmarshalClusterState(ss.State)
	if err != nil {
		g.log.Debug("membership: dropping a malformed state", "source", source, "err", err)
		return nil
	}
	cur := g.State()
	if !adopt && s.Cluster != cur.Cluster {
		return nil // another cluster's state: install would refuse it anyway
	}
	if err := checkRemote(g.cfg.Signer, s, ss, cur, adopt); err != nil {
		g.refusedStates.Add(1)
		g.log.Warn("membership: refusing a cluster state", "source", source, "version", s.Version, "claimant", string(s.Claimant), "err", err)
		return nil
	}
	return &installed{s: s, enc: ss.State, doc: b, hash: s.Hash()}
}

// RefusedStates is the number of received cluster states refused by the signature or claimant rules.
func (g *Gossip) RefusedStates() int64 { return g.refusedStates.Load() }

// Join contacts seeds (memberlist host:port addresses) and exchanges node
// lists and states with them. Without adopt, seeds must be of this node's
// cluster (a seed of another cluster fails with ErrForeignCluster and
// nothing is merged). With adopt, the node must be alone: it takes the
// first seed's state even though its cluster differs (the node joins an
// existing cluster) and fails with ErrNotAdopted when no seed answered.
// ctx bounds the wait; the join itself gives up after memberlist's TCP
// timeout per seed.
func (g *Gossip) Join(ctx context.Context, seeds []string, adopt bool) error {
	if len(seeds) == 0 {
		return errors.New("membership: join: no seeds")
	}
	done := make(chan error, 1)
	if !g.goTracked(func() { done <- g.join(seeds, adopt) }) {
		return ErrClosed
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// join runs a Join to completion.
func (g *Gossip) join(seeds []string, adopt bool) error {
	g.joinMu.Lock()
	defer g.joinMu.Unlock()
	ml := g.ml.Load()
	if adopt {
		if others := g.aliveCount.Load() - 1; others > 0 {
			return fmt.Errorf("%w: %d other live nodes", ErrNotAlone, others)
		}
		g.adopted.Store(false)
		g.adopting.Store(true)
		g.updateMeta(ml) // cluster "" while adopting; no peers, returns at once
	}
	g.rejected.Store(nil)
	n, err := ml.Join(seeds)
	if adopt {
		g.adopting.Store(false)
		if !g.isClosed() {
			g.updateMeta(ml) // the adopted cluster (or our own again)
			if n > 0 && g.adopted.Load() {
				// The seeds hold this node with the meta of the adopting
				// join (no cluster); a second push-pull hands them the new
				// meta now rather than when gossip gets to it.
				if _, err := ml.Join(seeds); err != nil {
					g.log.Debug("membership: second push-pull after adopting", "err", err)
				}
			}
		}
	}
	if why := g.rejected.Swap(nil); why != nil && n == 0 {
		return fmt.Errorf("%w: %s", ErrForeignCluster, *why)
	}
	if n == 0 {
		return fmt.Errorf("membership: join %v: %w", seeds, err)
	}
	if adopt && !g.adopted.Load() {
		return fmt.Errorf("%w: seeds %v", ErrNotAdopted, seeds)
	}
	g.log.Debug("membership: joined", "seeds", seeds, "adopt", adopt, "state", g.State().String())
	return nil
}

// updateMeta re-advertises this node's meta, waiting a few gossip rounds at
// most for the broadcast to go out.
func (g *Gossip) updateMeta(ml *memberlist.Memberlist) {
	if err := ml.UpdateNode(max(5*g.cfg.GossipInterval, 100*time.Millisecond)); err != nil {
		g.log.Debug("membership: advertising node meta", "err", err)
	}
}

// Alive reports whether memberlist considers n alive (not dead or left; a
// suspect node counts as alive, see LiveState).
func (g *Gossip) Alive(n ring.NodeID) bool {
	g.viewMu.RLock()
	defer g.viewMu.RUnlock()
	e, ok := g.view[n]
	return ok && e.State == LiveAlive
}

// Members returns every node memberlist has reported since start, dead and
// left ones included, sorted by name.
func (g *Gossip) Members() []LiveMember {
	g.viewMu.RLock()
	out := make([]LiveMember, 0, len(g.view))
	for _, e := range g.view {
		out = append(out, e.LiveMember)
	}
	g.viewMu.RUnlock()
	slices.SortFunc(out, func(a, b LiveMember) int { return strings.Compare(string(a.Name), string(b.Name)) })
	return out
}

// Subscribe returns a channel that receives the current state at once and
// then every newly installed state. It holds one state: a slow reader
// misses intermediate states but always gets the latest (installs never
// wait for it). cancel (idempotent) unsubscribes and closes the channel;
// Shutdown closes every channel.
func (g *Gossip) Subscribe() (<-chan *ClusterState, func()) {
	ch := make(chan *ClusterState, 1)
	g.subMu.Lock()
	defer g.subMu.Unlock()
	if g.subsClosed {
		close(ch)
		return ch, func() {}
	}
	id := g.nextSub
	g.nextSub++
	g.subs[id] = ch
	ch <- g.cur.Load().s
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			g.subMu.Lock()
			defer g.subMu.Unlock()
			if c, ok := g.subs[id]; ok {
				delete(g.subs, id)
				close(c)
			}
		})
	}
}

// publish hands s to every subscriber, replacing a state not yet read.
// REQUIRES: g.mu held (one publisher at a time).
func (g *Gossip) publishLocked(s *ClusterState) {
	g.subMu.Lock()
	defer g.subMu.Unlock()
	for _, ch := range g.subs {
		select {
		case ch <- s:
		default:
			select { // latest wins: drop the unread state
			case <-ch:
			default:
			}
			ch <- s // cannot block: only publishers send, and g.mu is held
		}
	}
}

// Leave announces that this node leaves (others see it as left) and waits
// up to timeout for the announcement to go out. The node keeps answering
// until Shutdown.
//
// memberlist tells its delegates that a node is gone but not whether it
// left or died (the state it passes is always "alive"), so Leave first
// advertises a leaving flag in the node meta (using up to half of timeout):
// peers that got it report the node as left, the others as dead.
func (g *Gossip) Leave(timeout time.Duration) error {
	g.lifeMu.Lock() // NB: memberlist panics on a Leave after Shutdown
	defer g.lifeMu.Unlock()
	if g.isClosed() {
		return ErrClosed
	}
	ml := g.ml.Load()
	g.leaving.Store(true)
	if err := ml.UpdateNode(timeout / 2); err != nil {
		g.log.Debug("membership: advertising the leave in the node meta", "err", err)
	}
	return ml.Leave(timeout - timeout/2)
}

// Shutdown stops memberlist without announcing a leave (others detect the
// node as dead), waits for the reliable sends in flight and closes the
// subscriptions. Idempotent.
func (g *Gossip) Shutdown() error {
	g.stopOnce.Do(func() {
		g.lifeMu.Lock()
		defer g.lifeMu.Unlock()
		g.sendMu.Lock()
		g.closed = true
		close(g.stop)
		g.sendMu.Unlock()
		g.stopErr = g.ml.Load().Shutdown()
		g.sends.Wait()
		g.subMu.Lock()
		for id, ch := range g.subs {
			delete(g.subs, id)
			close(ch)
		}
		g.subsClosed = true
		g.subMu.Unlock()
		g.log.Debug("membership: gossip stopped")
	})
	return g.stopErr
}

func (g *Gossip) isClosed() bool {
	g.sendMu.Lock()
	defer g.sendMu.Unlock()
	return g.closed
}

// goTracked runs f on a goroutine Shutdown waits for; false once closed.
func (g *Gossip) goTracked(f func()) bool {
	g.sendMu.Lock()
	defer g.sendMu.Unlock()
	if g.closed {
		return false
	}
	g.sends.Add(1)
	go func() {
		defer g.sends.Done()
		f()
	}()
	return true
}

// install makes in the current state when it is Newer than the current one
// (or, for an adopting join, of another cluster), publishes it and
// broadcasts its version. It reports whether in was installed.
func (g *Gossip) install(in *installed, adopt bool, source string) bool {
	if in == nil {
		return false
	}
	s, h := in.s, in.hash
	g.mu.Lock()
	defer g.mu.Unlock()
	cur := g.cur.Load()
	switch {
	case adopt && s.Cluster != cur.s.Cluster:
	case s.Cluster == cur.s.Cluster && newerVersion(s.Version, h, cur.s.Version, cur.hash):
	default:
		return false
	}
	g.cur.Store(in)
	g.publishLocked(s)
	g.announceLocked(in)
	g.log.Debug("membership: installed cluster state", "source", source, "version", s.Version,
		"hash", h, "state", s.String())
	return true
}

// reannounce re-broadcasts the current state version every
// AnnounceInterval until Shutdown.
func (g *Gossip) reannounce() {
	t := time.NewTicker(g.cfg.AnnounceInterval)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
			g.mu.Lock()
			g.announceLocked(g.cur.Load())
			g.mu.Unlock()
		}
	}
}

// announceLocked queues the broadcast of cur's version, replacing a queued
// one. REQUIRES: g.mu held.
func (g *Gossip) announceLocked(cur *installed) {
	g.queue.QueueBroadcast(&versionBroadcast{msg: encodeStateVersion(msgStateVersion,
		stateVersion{Cluster: cur.s.Cluster, Version: cur.s.Version, Hash: cur.hash, From: g.self})})
}

// onStateVersion handles a version broadcast: pull a newer state from its
// holder, push ours to a holder of an older one.
func (g *Gossip) onStateVersion(body []byte) {
	if g.cfg.ignoreVersions {
		return
	}
	v, err := decodeStateVersion(body)
	if err != nil {
		g.log.Debug("membership: dropping a malformed state version", "err", err)
		return
	}
	cur := g.cur.Load()
	if v.From == g.self || v.Cluster != cur.s.Cluster {
		return
	}
	switch {
	case newerVersion(v.Version, v.Hash, cur.s.Version, cur.hash):
		if firstWithin(g, g.pulled, stateKey{v.Version, v.Hash}) {
			g.send(v.From, encodeStateVersion(msgPullState,
				stateVersion{Cluster: cur.s.Cluster, Version: cur.s.Version, Hash: cur.hash, From: g.self}))
		}
	case newerVersion(cur.s.Version, cur.hash, v.Version, v.Hash):
		if firstWithin(g, g.pushed, v.From) {
			g.send(v.From, append([]byte{msgStateReply}, cur.doc...))
		}
	}
}

// firstWithin reports whether key was not used in the last retryAfter and
// records its use now. Old entries are dropped as the map grows; with
// maxRateKeys recent ones, every new key is refused.
func firstWithin[K comparable](g *Gossip, m map[K]time.Time, key K) bool {
	now := time.Now()
	g.rateMu.Lock()
	defer g.rateMu.Unlock()
	if t, ok := m[key]; ok && now.Sub(t) < retryAfter {
		return false
	}
	if len(m) >= 64 {
		for k, t := range m {
			if now.Sub(t) >= retryAfter {
				delete(m, k)
			}
		}
		if len(m) >= maxRateKeys { // a flood of distinct announcements
			return false
		}
	}
	m[key] = now
	return true
}

// onPullState answers a pull with the current state.
func (g *Gossip) onPullState(body []byte) {
	v, err := decodeStateVersion(body)
	if err != nil {
		g.log.Debug("membership: dropping a malformed pull", "err", err)
		return
	}
	cur := g.cur.Load()
	if v.Cluster != cur.s.Cluster || v.From == g.self {
		return
	}
	g.send(v.From, append([]byte{msgStateReply}, cur.doc...))
}

// onStateReply installs a state sent by a peer when it is newer.
func (g *Gossip) onStateReply(body []byte) {
	g.install(g.remote(body, false, "pull"), false, "pull")
}

// onRemoteState handles the state of a push-pull exchange. During an
// adopting join, the first state received is taken whatever its cluster.
func (g *Gossip) onRemoteState(buf []byte, join bool) {
	if join && g.adopting.Load() {
		in := g.remote(buf, true, "adopt")
		if in == nil || !g.adopted.CompareAndSwap(false, true) {
			return
		}
		if in.s.Cluster == g.State().Cluster { // already of this cluster
			g.install(in, false, "join")
			return
		}
		g.install(in, true, "adopt")
		return
	}
	g.install(g.remote(buf, false, "push-pull"), false, "push-pull")
}

// send delivers msg reliably (TCP) to node to on its own goroutine; it is
// dropped when to is unknown or dead, or maxSends are in flight.
func (g *Gossip) send(to ring.NodeID, msg []byte) {
	g.viewMu.RLock()
	e, ok := g.view[to]
	var node *memberlist.Node
	if ok && e.State == LiveAlive && e.ip != nil {
		node = &memberlist.Node{Name: string(to), Addr: e.ip, Port: e.port}
	}
	g.viewMu.RUnlock()
	if node == nil {
		g.log.Debug("membership: no live address to send to", "to", string(to))
		return
	}
	select {
	case g.sendSem <- struct{}{}:
	default:
		g.log.Debug("membership: too many sends in flight, dropping one", "to", string(to))
		return
	}
	ml := g.ml.Load()
	if ml == nil { // a message during StartGossip, before anyone knows the port
		<-g.sendSem
		return
	}
	if !g.goTracked(func() {
		defer func() { <-g.sendSem }()
		if err := ml.SendReliable(node, msg); err != nil {
			g.log.Debug("membership: reliable send failed", "to", string(to), "err", err)
		}
	}) {
		<-g.sendSem
	}
}

// encodeMeta returns this node's meta advertising cluster.
func (g *Gossip) encodeMeta(cluster string, leaving bool) []byte {
	b, err := msgpack.Marshal(&nodeMeta{
		Leaving:   leaving,
		Name:      string(g.self),
		RPC:       g.cfg.Self.RPCAddr,
		Transport: g.cfg.Self.TransportAddr,
		Memcache:  g.cfg.Self.MemcacheAddr,
		Cluster:   cluster,
	})
	if err != nil {
		panic(fmt.Sprintf("membership: encoding node meta: %v", err))
	}
	return b
}

// acceptPeer decides whether a node whose meta says meta may be a peer:
// same cluster, or a node joining with adopt (cluster ""), or anything
// while this node joins with adopt.
func (g *Gossip) acceptPeer(name string, meta []byte) error {
	if ring.NodeID(name) == g.self || g.adopting.Load() {
		return nil
	}
	m, err := decodeNodeMeta(meta)
	if err != nil {
		return fmt.Errorf("membership: node %q: bad meta: %w", name, err)
	}
	if m.Name != name {
		return fmt.Errorf("membership: node %q: meta names %q", name, m.Name)
	}
	if own := g.State().Cluster; m.Cluster != "" && m.Cluster != own {
		return fmt.Errorf("%w: %s is in cluster %q, %s in %q", ErrForeignCluster, name, m.Cluster, g.self, own)
	}
	return nil
}

// observe records a memberlist event for n. REQUIRES: called from a
// memberlist event callback (n is safe to read only there).
func (g *Gossip) observe(n *memberlist.Node, state LiveState) {
	now := time.Now()
	meta, _ := decodeNodeMeta(n.Meta) // a bad meta leaves the addresses empty
	g.viewMu.Lock()
	defer g.viewMu.Unlock()
	name := ring.NodeID(n.Name)
	e, ok := g.view[name]
	if !ok {
		e = &liveEntry{LiveMember: LiveMember{Name: name}}
		g.view[name] = e
	}
	if state == "" { // update: keep the state
		state = e.State
	}
	if e.State != state {
		if e.State == LiveAlive {
			g.aliveCount.Add(-1)
		}
		if state == LiveAlive {
			g.aliveCount.Add(1)
		}
		e.State, e.Since = state, now
	}
	e.ip, e.port = slices.Clone(n.Addr), n.Port
	e.Addr = net.JoinHostPort(n.Addr.String(), fmt.Sprint(n.Port))
	e.Cluster, e.RPCAddr, e.TransportAddr, e.MemcacheAddr = meta.Cluster, meta.RPC, meta.Transport, meta.Memcache
}

// versionBroadcast is a queued msgStateVersion. A newer one replaces it in
// the queue (same Name).
type versionBroadcast struct{ msg []byte }

var _ memberlist.NamedBroadcast = (*versionBroadcast)(nil)

func (b *versionBroadcast) Invalidates(o memberlist.Broadcast) bool {
	_, ok := o.(*versionBroadcast)
	return ok
}
func (b *versionBroadcast) Name() string    { return "gokai/state-version" }
func (b *versionBroadcast) Message() []byte { return b.msg }
func (b *versionBroadcast) Finished()       {}

// memberlistLog adapts memberlist's log.Logger output ("[LEVEL] memberlist:
// text") to slog at debug.
type memberlistLog struct{ log *slog.Logger }

func (w memberlistLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := ""
	if strings.HasPrefix(msg, "[") {
		if i := strings.IndexByte(msg, ']'); i > 0 {
			level, msg = msg[1:i], strings.TrimSpace(msg[i+1:])
		}
	}
	w.log.Debug(msg, "memberlist_level", level)
	return len(p), nil
}
