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
	"github.com/gokai-kv/gokai/client"
	"github.com/gokai-kv/gokai/handoff"
	"github.com/gokai-kv/gokai/membership"
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

	// suspects maps a node to the time until which its failed requests make it count as down.
	suspects sync.Map

	// live maps each alive member to its transport address (refreshed from memberlist's view).
	live atomic.Pointer[map[membership.NodeID]string]

	// peers is the last saved list of other members' gossip addresses (data-dir/peers), for rejoining
	// after a restart. Only the cluster-watch goroutine touches it after start.
	peers []string
	stop  context.CancelFunc

	// lastHinted is the hinted moves found by the last scan (used by the reconciles in between).
	// Only the cluster-watch goroutine touches it.
	lastHinted []handoff.Move

	// rehome moves keys out of vnodes their preference lists no longer name (rehome.go).
	rehome rehomeState
}

// statePath is where the cluster state is kept between runs.
func (n *Node) statePath() string { return filepath.Join(n.cfg.DataDir, "cluster") }

func (n *Node) self() membership.NodeID { return nodeID(n.cfg.Name) }

func (n *Node) selfMember() membership.Member {
	m := membership.Member{Name: n.self(), RPCAddr: n.RPCAddr(), MemcacheAddr: n.MemcacheAddr()}
	if n.cl != nil && n.cl.remote != nil {
		m.TransportAddr = n.cl.remote.Address()
	}
	return m
}

// state is the cluster state this node currently holds.
func (n *Node) state() *membership.ClusterState { return n.cl.gossip.State() }

// loadState reads the saved cluster state, or makes a new single-node cluster.
func (n *Node) loadState() (*membership.ClusterState, error) {
	if n.cfg.Backend == "leveldb" {
		raw, err := os.ReadFile(n.statePath())
		switch {
		case err == nil:
			s, err := membership.UnmarshalClusterState(raw)
			if err != nil {
				return nil, fmt.Errorf("cluster: %s: %w", n.statePath(), err)
			}
			if s.Ring.Q() != n.cfg.Q {
				return nil, fmt.Errorf("cluster: data dir has q=%d, config says q=%d (q is fixed when the data dir is created)", s.Ring.Q(), n.cfg.Q)
			}
			if _, ok := s.Member(n.self()); !ok && len(s.Members) > 0 && s.Claimant != n.self() {
				n.logger.Warn("this node is not a member of its saved cluster state (it left, or the state is older than the cluster's: it catches up when the peers answer)", "members", len(s.Members), "version", s.Version)
			}
			return s, nil
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	s, err := membership.NewClusterState(hex.EncodeToString(id[:]), n.selfMember(), n.cfg.Q, n.cfg.N)
	if err != nil && !errors.Is(err, membership.ErrTargetN) {
		return nil, err
	}
	return s, n.saveState(s)
}

func (n *Node) saveState(s *membership.ClusterState) error {
	if n.cfg.Backend != "leveldb" {
		return nil
	}
	raw, err := s.MarshalBinary()
	if err != nil {
		return err
	}
	return writeFileAtomic(n.statePath(), raw)
}

// startCluster starts the transport and the gossip shell (before any vnode or coordinator is spawned:
// actors spawned before the transport carry unreachable PIDs).
func (n *Node) startCluster(ctx context.Context) error {
	n.cl = &cluster{}
	empty := map[membership.NodeID]string{}
	n.cl.live.Store(&empty)
	r, err := actors.StartRemote(n.system, actors.RemoteConfig{Listen: n.cfg.TransportListen, Logger: n.logger})
	if err != nil {
		return fmt.Errorf("transport: %w", err)
	}
	n.cl.remote = r
	st, err := n.loadState()
	if err != nil {
		r.Stop(false)
		return err
	}
	host, port, err := splitHostPort(n.cfg.GossipListen)
	if err != nil {
		r.Stop(false)
		return err
	}
	g, err := membership.StartGossip(membership.GossipConfig{Self: n.selfMember(), BindAddr: host, BindPort: port,
		// A node restarted after a crash comes back under its name from new ports as soon as it is dead.
		DeadNodeReclaimTime: time.Second,
		ProbeInterval:       n.cfg.GossipProbeInterval, SuspicionMult: n.cfg.GossipSuspicionMult,
		Logger: n.logger.With("component", "gossip"), State: st})
	if err != nil {
		r.Stop(false)
		return fmt.Errorf("gossip: %w", err)
	}
	n.cl.gossip = g
	n.refreshLive()
	// A restarted member rejoins the peers it knew (memberlist forgets everything at exit).
	n.cl.peers = n.loadPeers()
	var rctx context.Context
	rctx, n.cl.stop = context.WithCancel(context.Background())
	if len(n.cl.peers) > 0 {
		go n.rejoin(rctx, n.cl.peers)
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

// rejoin joins the saved peers until one answers (they may be restarting too) or ctx ends.
func (n *Node) rejoin(ctx context.Context, peers []string) {
	for attempt := 0; ; attempt++ {
		jctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := n.cl.gossip.Join(jctx, peers, false)
		cancel()
		if err == nil {
			n.logger.Info("cluster: rejoined peers", "peers", peers)
			return
		}
		if attempt == 0 || attempt%30 == 0 {
			n.logger.Warn("cluster: rejoin failed, retrying", "peers", peers, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (n *Node) stopCluster(context.Context) error {
	if n.cl.stop != nil {
		n.cl.stop()
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
	live := map[membership.NodeID]string{}
	for _, m := range n.cl.gossip.Members() {
		if m.State == membership.LiveAlive && m.TransportAddr != "" {
			live[m.Name] = m.TransportAddr
		}
	}
	n.cl.live.Store(&live)
}

// remoteVnode is node's vnode of partition p over the transport, or nil when node is not alive.
func (n *Node) remoteVnode(node membership.NodeID, p int) *actor.PID {
	addr, ok := (*n.cl.live.Load())[node]
	if !ok {
		return nil
	}
	return n.cl.remote.PID(addr, actors.VnodeSupervisorName+"/"+actors.VnodeName(p))
}

// memberRPC is the msgpack-RPC address of a live member ("" if unknown).
func (n *Node) memberRPC(name membership.NodeID) string {
	if name == n.self() {
		return n.RPCAddr()
	}
	for _, m := range n.cl.gossip.Members() {
		if m.Name == name && m.State == membership.LiveAlive {
			return m.RPCAddr
		}
	}
	return ""
}

// startHandoff starts the ownership handoff manager.
func (n *Node) startHandoff(context.Context) error {
	// NB: a batch is at most 1 MiB on loopback or a LAN: 5 s per step is generous, and a receiver that
	// died mid-transfer is given up on (and the move retried) after that, not after the 30 s default.
	hm, err := handoff.New(handoff.Config{Self: n.self(), Concurrency: n.cfg.HandoffConcurrency, Timeout: 5 * time.Second,
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

type handoffResolver struct{ n *Node }

func (r handoffResolver) LocalVnode(p int) *actor.PID { return r.n.vnodes.PID(p) }
func (r handoffResolver) VnodePID(node membership.NodeID, p int) *actor.PID {
	return router{r.n}.VnodePID(node, p)
}

// reportTransfer tells the claimant that a move is complete.
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
	save := func(s *membership.ClusterState) {
		if s == saved {
			return
		}
		if err := n.saveState(s); err != nil {
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
			save(s)
			n.reconcile(ctx, s, false)
		case <-tick.C:
			// The subscription keeps only the latest state: save whatever is current.
			save(n.state())
			n.refreshLive()
			n.savePeers()
			// Every tick: transfers blocked on a peer that was down start again as it comes back. Every
			// fourth: look for hints (data in partitions this node does not own) to hand off.
			n.reconcile(ctx, n.state(), ticks%4 == 0)
		}
	}
}

// reconcile makes this node's vnodes and transfers match s. A member runs a vnode for every partition:
// those it owns, those it receives, and the others as a fallback (sloppy quorum: when a primary is down,
// a fallback vnode takes its writes as hints). Outgoing ownership moves become transfers; a partition this
// node does not own that holds data becomes a hinted handoff to its owner once the owner is up (after a
// completed ownership move the leftover data is dropped instead); a node that is no longer a member
// retires its empty vnodes. A member also re-homes the misplaced keys of the partitions it owns
// (rehome.go).
func (n *Node) reconcile(ctx context.Context, s *membership.ClusterState, scanHints bool) {
	n.cl.handoff.SetRing(s.Version)
	n.observeRehome(s)
	self := n.self()
	_, member := s.Member(self)
	incoming, outgoing := map[int]bool{}, map[int]bool{}
	var moves []handoff.Move
	for _, t := range s.Transfers {
		if t.State != membership.TransferWaiting {
			continue
		}
		if t.To == self {
			incoming[t.Partition] = true
		}
		if t.From == self {
			outgoing[t.Partition] = true
			moves = append(moves, handoff.Move{Partition: t.Partition, From: t.From, To: t.To})
		}
	}
	if member {
		all := make([]int, s.Ring.Q())
		for p := range all {
			all[p] = p
		}
		if err := n.vnodes.Start(ctx, all); err != nil {
			n.logger.Error("cluster: start vnodes", "err", err)
		}
	} else if len(incoming) > 0 {
		var in []int
		for p := range incoming {
			in = append(in, p)
		}
		sort.Ints(in)
		if err := n.vnodes.Start(ctx, in); err != nil {
			n.logger.Error("cluster: start vnodes", "err", err)
		}
	}
	if member {
		// NB: with every state and tick, not only with the hint scan: a key whose list just changed has
		// fewer copies where its list looks until its pass ran (docs/cluster.md).
		n.scanRehome(ctx, s)
	}
	if !scanHints {
		n.cl.handoff.Sync(append(moves, n.cl.lastHinted...))
		return
	}
	var hinted []handoff.Move
	for _, p := range n.vnodes.Partitions() {
		owner := s.Ring.Owner(p)
		if owner == self || incoming[p] || outgoing[p] {
			continue
		}
		if n.cl.handoff.OwnershipDone(p) {
			n.cl.handoff.ForgetOwnership(p)
			// Off the watch loop: the drop waits for the vnode's outstanding forwards.
			go n.dropLeftover(ctx, p)
			continue
		}
		rep, err := n.vnodeIsEmpty(ctx, p)
		if err != nil {
			continue
		}
		if rep.Ring > s.Version {
			// A transfer sent this vnode data under a newer state than ours: this node may own p there.
			// Handing it on as hints now would send it back to where it came from; wait for the state.
			n.logger.Debug("cluster: hint scan waits for a newer state", "partition", p, "have", s.Version, "data-from", rep.Ring)
			continue
		}
		empty := rep.Empty
		switch {
		case !empty && n.isUp(owner):
			hinted = append(hinted, handoff.Move{Partition: p, From: self, To: owner, Hinted: true})
		case empty && !member:
			if err := n.vnodes.Retire(ctx, p); err != nil {
				n.logger.Error("cluster: retire", "partition", p, "err", err)
			}
		}
	}
	n.cl.lastHinted = hinted
	n.cl.handoff.Sync(append(moves, hinted...))
}

// vnodeIsEmpty asks partition p's vnode whether it holds data, and under which newest cluster-state
// version data was transferred to it.
func (n *Node) vnodeIsEmpty(ctx context.Context, p int) (vnode.IsEmptyReply, error) {
	pid := n.vnodes.PID(p)
	if pid == nil {
		return vnode.IsEmptyReply{Empty: true}, nil
	}
	res, err := actors.Request(ctx, n.system, pid, &vnode.IsEmptyRequest{}, 5*time.Second)
	if err != nil {
		return vnode.IsEmptyReply{}, err
	}
	rep, ok := res.(*vnode.IsEmptyReply)
	if !ok || rep.Err != "" {
		return vnode.IsEmptyReply{}, fmt.Errorf("cluster: is-empty %d: %v", p, res)
	}
	return *rep, nil
}

// dropLeftover deletes the data a completed ownership move left behind (the new owner has all of it and
// the writes forwarded meanwhile). If the vnode restarted since, the drop is refused and the leftover goes
// to the owner as a hinted handoff at the next scan instead.
func (n *Node) dropLeftover(ctx context.Context, p int) {
	pid := n.vnodes.PID(p)
	if pid == nil {
		return
	}
	res, err := actors.Request(ctx, n.system, pid, &vnode.HandoffDrop{}, time.Minute)
	if err != nil {
		n.logger.Warn("cluster: drop moved partition", "partition", p, "err", err)
		return
	}
	if d, ok := res.(*vnode.HandoffDropped); ok && d.Err == "" {
		n.logger.Info("partition moved away: data dropped", "partition", p)
	}
}

// isUp is the liveness this node acts on: itself, and the members memberlist sees alive that did not fail
// a request recently (the node's own observation: a killed peer fails requests before memberlist's
// probes declare it dead).
func (n *Node) isUp(node membership.NodeID) bool {
	if node == n.self() {
		return true
	}
	// NB: memberlist's own view (cheap: a read-locked map), not the address map refreshed every tick, so
	// routing follows a death as soon as memberlist declares it.
	if !n.cl.gossip.Alive(node) {
		return false
	}
	if until, ok := n.cl.suspects.Load(node); ok && n.now().Before(until.(time.Time)) {
		return false
	}
	return true
}

// suspect marks node down for FailureSuspicion after a failed request.
func (n *Node) suspect(node membership.NodeID) {
	if node == n.self() || n.cfg.FailureSuspicion <= 0 {
		return
	}
	n.cl.suspects.Store(node, n.now().Add(n.cfg.FailureSuspicion))
}

// claimant runs a cluster change at the claimant: locally when this node is the claimant, else over
// msgpack-RPC to the claimant's address.
func (n *Node) claimant(ctx context.Context, method string, params []any) (any, error) {
	s := n.state()
	if s.Claimant == n.self() {
		return n.applyClaimant(method, params)
	}
	addr := n.memberRPC(s.Claimant)
	if addr == "" {
		return nil, fmt.Errorf("cluster: claimant %s is not reachable", s.Claimant)
	}
	c, err := client.New(ctx, client.Config{Seeds: []string{addr}, DisableRouting: true, PoolSize: 1})
	if err != nil {
		return nil, fmt.Errorf("cluster: claimant %s: %w", s.Claimant, err)
	}
	defer c.Close()
	var out any
	if err := c.Call(ctx, method, params, &out, false); err != nil {
		return nil, err
	}
	return out, nil
}
