package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/handoff"
	"github.com/gokai-kv/gokai/membership"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/vnode"
)

// cluster is the node's distributed part: the actor transport, memberlist gossip of the cluster state,
// and the ownership handoff manager.
type cluster struct {
	remote  *actors.Remote
	gossip  *membership.Gossip
	handoff *handoff.Manager

	// claimMu serialises the claimant's read-modify-propose of the cluster state.
	claimMu sync.Mutex
	// saveMu serialises writes of the saved cluster state (saveCurrentState).
	saveMu sync.Mutex

	// fd is this node's own failure detection: peers whose requests failed or went unanswered.
	fd *failureDetector

	// live maps each alive member to its transport address (refreshed from memberlist's view).
	live atomic.Pointer[map[ring.NodeID]string]

	// peers is the last saved list of other members' gossip addresses (data-dir/peers), for rejoining
	// after a restart. Only the cluster-watch goroutine touches it after start.
	peers []string

	// dropping holds the vnodes whose leftover data a dropLeftover goroutine is deleting (the hint scan
	// leaves them alone meanwhile).
	dropMu   sync.Mutex
	dropping map[slot]bool // REQUIRES: dropMu held

	// rehome moves keys out of vnodes their preference lists no longer name (rehome.go).
	rehome rehomeState
}

// statePath is where the cluster state is kept between runs.
func (n *Node) statePath() string { return filepath.Join(n.cfg.DataDir, "cluster") }

func (n *Node) self() ring.NodeID { return nodeID(n.cfg.Name) }

func (n *Node) selfMember() membership.Member {
	m := membership.Member{Name: n.self(), RPCAddr: n.rpcAdvertised(), MemcacheAddr: n.memcacheAdvertised()}
	if n.cl != nil && n.cl.remote != nil {
		m.TransportAddr = n.cl.remote.Address()
	}
	return m
}

// state is the cluster state this node currently holds.
func (n *Node) state() *membership.ClusterState { return n.cl.gossip.State() }

// loadState reads the saved cluster state (and its signed form), or makes a new single-node cluster.
func (n *Node) loadState() (*membership.ClusterState, []byte, error) {
	if n.cfg.Backend == "leveldb" {
		raw, err := os.ReadFile(n.statePath())
		switch {
		case err == nil:
			s, signed, err := membership.OpenSignedState(raw)
			if err != nil {
				return nil, nil, fmt.Errorf("cluster: %s: %w", n.statePath(), err)
			}
			if s.Ring.Q() != n.cfg.Q {
				return nil, nil, fmt.Errorf("cluster: data dir has q=%d, config says q=%d (q is fixed when the data dir is created)", s.Ring.Q(), n.cfg.Q)
			}
			if _, ok := s.Member(n.self()); !ok && len(s.Members) > 0 && s.Claimant != n.self() {
				n.logger.Warn("this node is not a member of its saved cluster state (it left, or the state is older than the cluster's: it catches up when the peers answer)", "members", len(s.Members), "version", s.Version)
			}
			return s, signed, nil
		case !errors.Is(err, os.ErrNotExist):
			return nil, nil, fmt.Errorf("cluster: %w", err)
		}
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, nil, err
	}
	s, err := membership.NewClusterState(hex.EncodeToString(id[:]), n.selfMember(), n.cfg.Q, n.cfg.N)
	if err != nil && !errors.Is(err, ring.ErrTargetN) {
		return nil, nil, err
	}
	raw, err := s.MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	return s, nil, n.saveState(raw)
}

// saveState writes a state's signed form (gossip's StateDoc; a bare encoded state is read back too).
func (n *Node) saveState(doc []byte) error {
	if n.cfg.Backend != "leveldb" {
		return nil
	}
	return writeFileAtomic(n.statePath(), doc)
}

// saveCurrentState saves the current cluster state and returns it. Under saveMu, and reading the state
// inside it, so of two concurrent saves the later writes the newer state.
func (n *Node) saveCurrentState() (*membership.ClusterState, error) {
	n.cl.saveMu.Lock()
	defer n.cl.saveMu.Unlock()
	s, doc := n.cl.gossip.Signed()
	return s, n.saveState(doc)
}

// startCluster starts the transport and the gossip shell (before any vnode or coordinator is spawned:
// actors spawned before the transport carry unreachable PIDs).
func (n *Node) startCluster(ctx context.Context) error {
	n.cl = &cluster{dropping: map[slot]bool{}}
	empty := map[ring.NodeID]string{}
	n.cl.live.Store(&empty)
	r, err := actors.StartRemote(n.system, actors.RemoteConfig{Listen: n.cfg.TransportListen, Advertise: n.transportAdvertise(),
		Logger: n.logger, TLS: n.transportTLS()})
	if err != nil {
		return fmt.Errorf("transport: %w", err)
	}
	n.cl.remote = r
	st, signed, err := n.loadState()
	if err != nil {
		r.Stop(false)
		return err
	}
	keys, label, signer, err := n.gossipSecurity()
	if err != nil {
		r.Stop(false)
		return err
	}
	host, port, err := splitHostPort(n.cfg.GossipListen)
	if err != nil {
		r.Stop(false)
		return err
	}
	// A restarted member finds the peers it knew at their saved addresses (memberlist forgets everything
	// at exit); gossip's reconnect loop keeps re-joining members it sees dead, so partitions heal.
	n.cl.peers = n.loadPeers()
	advHost, advPort := n.gossipAdvertise()
	g, err := membership.StartGossip(membership.GossipConfig{Self: n.selfMember(), BindAddr: host, BindPort: port,
		AdvertiseAddr: advHost, AdvertisePort: advPort,
		Peers: n.cl.peers,
		// A node restarted after a crash comes back under its name from new ports as soon as it is dead.
		DeadNodeReclaimTime: time.Second,
		ProbeInterval:       n.cfg.GossipProbeInterval, SuspicionMult: n.cfg.GossipSuspicionMult,
		Keys: keys, Label: label, Signer: signer,
		Logger: n.logger.With("component", "gossip"), State: st, Signed: signed})
	if err != nil {
		r.Stop(false)
		return fmt.Errorf("gossip: %w", err)
	}
	n.cl.gossip = g
	n.refreshLive()
	// Log lines that name a member's transport address name the member too (logging.go). NB: reads only
	// the cluster state (an atomic load): the handler may run under any lock of any part.
	self := n.self()
	peerOf := func(addr string) string {
		for _, m := range g.State().Members {
			if m.TransportAddr == addr && m.Name != self {
				return string(m.Name)
			}
		}
		return ""
	}
	n.logs.peerOf.Store(&peerOf)
	n.cl.fd = newFailureDetector(n.cfg.FailureSuspicion, n.cfg.FailureProbe, n.pingPeer, g.Alive,
		func(x ring.NodeID) bool { _, ok := n.state().Member(x); return ok }, n.now, n.logger)
	if err := n.startControl(ctx); err != nil {
		g.Shutdown()
		r.Stop(false)
		return err
	}
	n.logger.Info("cluster ready", "cluster", st.Cluster, "version", st.Version, "gossip", g.Addr(), "transport", r.Address())
	return nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("config: gossip-listen %q: %w", addr, err)
	}
	var port int
	if _, err := fmt.Sscanf(p, "%d", &port); err != nil {
		return "", 0, fmt.Errorf("config: gossip-listen %q: bad port", addr)
	}
	return host, port, nil
}

// peersPath keeps the other members' gossip addresses between runs.
func (n *Node) peersPath() string { return filepath.Join(n.cfg.DataDir, "peers") }

func (n *Node) loadPeers() []string {
	if n.cfg.Backend != "leveldb" {
		return nil
	}
	raw, err := os.ReadFile(n.peersPath())
	if err != nil {
		return nil
	}
	var peers []string
	for _, l := range strings.Split(string(raw), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			peers = append(peers, l)
		}
	}
	return peers
}

// savePeers records the gossip addresses of the other alive members, when they changed.
func (n *Node) savePeers() {
	if n.cfg.Backend != "leveldb" {
		return
	}
	s := n.state()
	var peers []string
	for _, m := range n.cl.gossip.Members() {
		if _, member := s.Member(m.Name); member && m.Name != n.self() && m.State == membership.LiveAlive && m.Addr != "" {
			peers = append(peers, m.Addr)
		}
	}
	sort.Strings(peers)
	if len(peers) == 0 || slices.Equal(peers, n.cl.peers) {
		return
	}
	if err := writeFileAtomic(n.peersPath(), []byte(strings.Join(peers, "\n")+"\n")); err != nil {
		n.logger.Warn("cluster: save peers", "err", err)
		return
	}
	n.cl.peers = peers
}

func (n *Node) stopCluster(context.Context) error {
	if n.cl.fd != nil {
		n.cl.fd.Close()
	}
	if n.cl.gossip != nil {
		_ = n.cl.gossip.Leave(time.Second)
		_ = n.cl.gossip.Shutdown()
	}
	if n.cl.remote != nil {
		n.cl.remote.Stop(true)
	}
	return nil
}

// refreshLive rebuilds the alive-member → transport address map from memberlist's view.
func (n *Node) refreshLive() {
	live := map[ring.NodeID]string{}
	for _, m := range n.cl.gossip.Members() {
		if m.State == membership.LiveAlive && m.TransportAddr != "" {
			live[m.Name] = m.TransportAddr
		}
	}
	n.cl.live.Store(&live)
}

// remoteVnode is node's vnode of partition p under the vnode supervisor sup (a service's), over the
// transport, or nil when node is not alive.
func (n *Node) remoteVnode(node ring.NodeID, sup string, p int) *actor.PID {
	addr, ok := (*n.cl.live.Load())[node]
	if !ok {
		return nil
	}
	return n.cl.remote.PID(addr, sup+"/"+actors.VnodeName(p))
}

// startHandoff starts the ownership handoff manager.
func (n *Node) startHandoff(context.Context) error {
	// NB: a batch is at most 1 MiB on loopback or a LAN: 5 s per step is generous, and a receiver that
	// died mid-transfer is given up on (and the move retried) after that, not after the 30 s default.
	hm, err := handoff.New(handoff.Config{Self: n.self(), Services: n.serviceNames(), Concurrency: n.cfg.HandoffConcurrency, Timeout: 5 * time.Second,
		Resolver: handoffResolver{n}, System: n.system, Report: n.reportTransfer, Logger: n.logger.With("component", "handoff"), Now: n.now})
	if err != nil {
		return err
	}
	n.cl.handoff = hm
	return nil
}

func (n *Node) stopHandoff(context.Context) error {
	// NB: the tree cancelled the cluster watch first, and with it any re-home pass: wait for the pass here,
	// before the vnodes and storage it reads stop (the tree does not wait for Run loops until the end).
	n.waitRehome()
	n.cl.handoff.Close()
	return nil
}

// handoffResolver finds each service's vnodes for the handoff manager.
type handoffResolver struct{ n *Node }

func (r handoffResolver) LocalVnode(svc string, p int) *actor.PID {
	if rt := r.n.svcByName[svc]; rt != nil {
		return rt.vnodes.PID(p)
	}
	return nil
}

func (r handoffResolver) VnodePID(svc string, node ring.NodeID, p int) *actor.PID {
	if rt := r.n.svcByName[svc]; rt != nil {
		return router{r.n, rt}.VnodePID(node, p)
	}
	return nil
}

// reportTransfer tells the claimant that a partition moved (every service's vnode of it).
func (n *Node) reportTransfer(ctx context.Context, m handoff.Move) error {
	_, err := n.claimant(ctx, "cluster_transfer_done", []any{m.Partition, string(m.From), string(m.To)})
	return err
}

// watchCluster reconciles the node with every new cluster state (and refreshes liveness) until ctx ends.
func (n *Node) watchCluster(ctx context.Context) error {
	states, cancel := n.cl.gossip.Subscribe()
	defer cancel()
	// A re-home pass started by reconcile runs under ctx: when this loop returns, it is cancelled (it stops
	// at its next key or request) and waited for.
	ctx, stopRehome := context.WithCancel(ctx)
	defer n.waitRehome()
	defer stopRehome()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	// NB: compare states by identity: every installed state is a new immutable value, and two clusters
	// (a node's own before it joined, the one it adopted) can share a version number.
	var saved *membership.ClusterState
	save := func() {
		if n.state() == saved {
			return
		}
		s, err := n.saveCurrentState()
		if err != nil {
			n.logger.Error("cluster: save state", "err", err)
			return
		}
		saved = s
	}
	n.reconcile(ctx, n.state(), true)
	for ticks := 1; ; ticks++ {
		select {
		case <-ctx.Done():
			return nil
		case s, ok := <-states:
			if !ok {
				// NB: gossip shut down: the node is stopping (the tree cancels Run loops first, but does not
				// wait for them before stopping the cluster). A nil state must not reach save or reconcile.
				<-ctx.Done()
				return nil
			}
			save()
			n.reconcile(ctx, s, false)
		case <-tick.C:
			// The subscription keeps only the latest state: save whatever is current.
			save()
			n.refreshLive()
			n.savePeers()
			// Every tick: transfers blocked on a peer that was down start again as it comes back. Every
			// fourth: look for hints (data in partitions this node does not own) to hand off.
			n.reconcile(ctx, n.state(), ticks%4 == 0)
		}
	}
}

// reconcile makes this node's vnodes and transfers match s: it plans (planCluster, planHints: plan.go) and
// carries the plan out. A member runs a vnode of every partition for every service: those it owns, those
// it receives, and the others as a fallback (sloppy quorum: when a primary is down, a fallback vnode takes
// its writes as hints). Outgoing ownership moves become transfers, one per service; after a completed one
// the leftover data is dropped; with scanHints, a vnode of a partition this node does not own that holds
// data is handed off to the owner once the owner is up; a node that is no longer a member retires its empty
// vnodes. A member also re-homes the misplaced keys of the partitions it owns (rehome.go).
func (n *Node) reconcile(ctx context.Context, s *membership.ClusterState, scanHints bool) {
	n.cl.handoff.SetRing(s.Version)
	n.observeRehome(s)
	in := n.planInput(s)
	pl := planCluster(in)
	for _, rt := range n.svcs {
		if parts := pl.start[rt.spec.Name]; len(parts) > 0 {
			if err := rt.vnodes.Start(ctx, parts); err != nil {
				rt.logger.Error("cluster: start vnodes", "err", err)
			}
		}
	}
	n.cl.handoff.Sync(pl.moves)
	for _, c := range pl.cancel {
		n.cl.handoff.ForgetOwnership(c.Service, c.Partition)
		if pid := n.vnodePID(c.slot); pid != nil {
			n.system.Root.Send(pid, &vnode.CancelHandoff{Session: c.session})
		}
		n.logger.Info("partition moved back before its leftover was dropped: handoff mode ended, data kept",
			"service", c.Service, "partition", c.Partition)
	}
	for _, d := range pl.drop {
		if n.startDrop(d.slot) {
			n.cl.handoff.ForgetOwnership(d.Service, d.Partition)
			go n.dropLeftover(ctx, d.slot, d.session)
		}
	}
	if pl.member {
		// NB: with every state and tick, not only with the hint scan: a key whose list just changed has
		// fewer copies where its list looks until its pass ran (docs/cluster.md).
		n.scanRehome(ctx, s)
	}
	if !scanHints {
		return
	}
	probes := make(map[slot]probeResult, len(pl.probe))
	for _, sl := range pl.probe {
		if rep, err := n.vnodeIsEmpty(ctx, sl); err == nil {
			probes[sl] = probeResult{empty: rep.Empty, ring: rep.Ring}
		}
	}
	hp := planHints(in, pl, probes, n.isUp)
	for _, sl := range hp.newer {
		n.logger.Debug("cluster: hint scan waits for a newer state", "service", sl.Service, "partition", sl.Partition,
			"have", s.Version, "data-from", probes[sl].ring)
	}
	for _, sl := range hp.retire {
		rt := n.svcByName[sl.Service]
		if err := rt.vnodes.Retire(ctx, sl.Partition); errors.Is(err, vnode.ErrNotEmpty) {
			rt.logger.Debug("cluster: retire refused: data arrived; it is handed on at the next scan", "partition", sl.Partition)
		} else if err != nil {
			rt.logger.Error("cluster: retire", "partition", sl.Partition, "err", err)
		}
	}
	n.cl.handoff.SyncHinted(hp.hinted)
}

// planInput gathers what the plan is decided from.
func (n *Node) planInput(s *membership.ClusterState) planInput {
	in := planInput{self: n.self(), state: s, services: n.serviceNames(), running: map[string][]int{},
		completed: n.cl.handoff.Completed()}
	for _, rt := range n.svcs {
		in.running[rt.spec.Name] = rt.vnodes.Partitions()
	}
	n.cl.dropMu.Lock()
	in.dropping = make(map[slot]bool, len(n.cl.dropping))
	for sl := range n.cl.dropping {
		in.dropping[sl] = true
	}
	n.cl.dropMu.Unlock()
	return in
}

// vnodePID is this node's vnode of sl (nil if none).
func (n *Node) vnodePID(sl slot) *actor.PID {
	if rt := n.svcByName[sl.Service]; rt != nil {
		return rt.vnodes.PID(sl.Partition)
	}
	return nil
}

// startDrop marks sl as being dropped; false if it is already.
func (n *Node) startDrop(sl slot) bool {
	n.cl.dropMu.Lock()
	defer n.cl.dropMu.Unlock()
	if n.cl.dropping[sl] {
		return false
	}
	n.cl.dropping[sl] = true
	return true
}

// vnodeIsEmpty asks the vnode of sl whether it holds data, and under which newest cluster-state version
// data was transferred to it.
func (n *Node) vnodeIsEmpty(ctx context.Context, sl slot) (vnode.IsEmptyReply, error) {
	pid := n.vnodePID(sl)
	if pid == nil {
		return vnode.IsEmptyReply{Empty: true}, nil
	}
	res, err := actors.Request(ctx, n.system, pid, &vnode.IsEmptyRequest{}, 5*time.Second)
	if err != nil {
		return vnode.IsEmptyReply{}, err
	}
	rep, ok := res.(*vnode.IsEmptyReply)
	if !ok || rep.Err != "" {
		return vnode.IsEmptyReply{}, fmt.Errorf("cluster: is-empty %s/%d: %v", sl.Service, sl.Partition, res)
	}
	return *rep, nil
}

// dropLeftover deletes the data a completed ownership move left behind (the new owner has all of it and
// the writes forwarded meanwhile). If the vnode restarted since, or its session ended otherwise, the drop is
// refused and the leftover goes to the owner as a hinted handoff at a later scan instead.
func (n *Node) dropLeftover(ctx context.Context, sl slot, session uint64) {
	defer func() {
		n.cl.dropMu.Lock()
		delete(n.cl.dropping, sl)
		n.cl.dropMu.Unlock()
	}()
	pid := n.vnodePID(sl)
	if pid == nil {
		return
	}
	p, log := sl.Partition, n.logger.With("service", sl.Service)
	res, err := actors.Request(ctx, n.system, pid, &vnode.HandoffDrop{Session: session, AckTimeout: dropAckTimeout}, 2*dropAckTimeout)
	if err != nil {
		log.Warn("cluster: drop moved partition", "partition", p, "err", err)
		return
	}
	d, ok := res.(*vnode.HandoffDropped)
	switch {
	case !ok:
		log.Warn("cluster: drop moved partition", "partition", p, "reply", fmt.Sprintf("%T", res))
	case d.Err != "":
		log.Info("partition moved away: leftover kept, to be handed off as hints", "partition", p, "why", d.Err)
	default:
		log.Info("partition moved away: data dropped", "partition", p)
	}
}

// dropAckTimeout bounds how long a drop waits for a forward's acknowledgement.
const dropAckTimeout = 10 * time.Second

// isUp is the liveness this node acts on: itself, and the members memberlist sees alive that did not fail
// a request recently (the node's own observation: a killed peer fails requests before memberlist's
// probes declare it dead).
func (n *Node) isUp(node ring.NodeID) bool {
	if node == n.self() {
		return true
	}
	// NB: memberlist's own view (cheap: a read-locked map), not the address map refreshed every tick, so
	// routing follows a death as soon as memberlist declares it.
	if !n.cl.gossip.Alive(node) {
		return false
	}
	return n.cl.fd.Up(node)
}

// suspect makes node count as down after one of its replicas failed or did not answer a request, until
// it answers a ping again (see failureDetector).
func (n *Node) suspect(node ring.NodeID) {
	if node == n.self() || n.cfg.FailureSuspicion <= 0 {
		return
	}
	n.cl.fd.Suspect(node)
}

// pingPeer asks node's ping actor over the transport for an answer within ctx.
func (n *Node) pingPeer(ctx context.Context, node ring.NodeID) error {
	addr, ok := (*n.cl.live.Load())[node]
	if !ok {
		return fmt.Errorf("cluster: %s has no known transport address", node)
	}
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(time.Second)
	}
	return n.cl.remote.Ping(ctx, addr, time.Until(d))
}

// claimant runs a cluster change at the claimant: locally when this node is the claimant, else over the
// transport to the claimant's control actor.
func (n *Node) claimant(ctx context.Context, method string, params []any) (any, error) {
	s := n.state()
	if s.Claimant == n.self() {
		return n.applyClaimant(method, params)
	}
	addr := n.transportAddr(s.Claimant)
	if addr == "" || !n.cl.gossip.Alive(s.Claimant) {
		return nil, fmt.Errorf("cluster: claimant %s is not reachable", s.Claimant)
	}
	return n.callNode(ctx, addr, method, params)
}
