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
	"sort"
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

	// live maps each alive member to its transport address (refreshed from memberlist's view).
	live atomic.Pointer[map[membership.NodeID]string]

	retireMu sync.Mutex
	retiring map[int]bool // REQUIRES: retireMu held
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
				n.logger.Warn("this node is not a member of its saved cluster state (it left)", "members", len(s.Members))
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
	n.cl = &cluster{retiring: map[int]bool{}}
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
		ProbeInterval: n.cfg.GossipProbeInterval, SuspicionMult: n.cfg.GossipSuspicionMult,
		Logger: n.logger.With("component", "gossip"), State: st})
	if err != nil {
		r.Stop(false)
		return fmt.Errorf("gossip: %w", err)
	}
	n.cl.gossip = g
	n.refreshLive()
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

func (n *Node) stopCluster(context.Context) error {
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
	hm, err := handoff.New(handoff.Config{Self: n.self(), Concurrency: n.cfg.HandoffConcurrency,
		Resolver: handoffResolver{n}, System: n.system, Report: n.reportTransfer, Logger: n.logger.With("component", "handoff"), Now: n.now})
	if err != nil {
		return err
	}
	n.cl.handoff = hm
	return nil
}

func (n *Node) stopHandoff(context.Context) error {
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
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	n.reconcile(ctx, n.state())
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-states:
			if err := n.saveState(s); err != nil {
				n.logger.Error("cluster: save state", "err", err)
			}
			n.reconcile(ctx, s)
		case <-tick.C:
			n.refreshLive()
			// Transfers blocked on a peer that was down start again as it comes back.
			n.reconcile(ctx, n.state())
		}
	}
}

// reconcile makes this node's vnodes and transfers match s: vnodes for the partitions it owns or is
// receiving, transfers for the moves it must send, and partitions that moved away retired.
func (n *Node) reconcile(ctx context.Context, s *membership.ClusterState) {
	self := n.self()
	need := map[int]bool{}
	if _, member := s.Member(self); member {
		for _, p := range s.Ring.PartitionsOf(self) {
			need[p] = true
		}
	}
	var moves []handoff.Move
	outgoing := map[int]bool{}
	for _, t := range s.Transfers {
		if t.State != membership.TransferWaiting {
			continue
		}
		if t.To == self {
			need[t.Partition] = true
		}
		if t.From == self {
			outgoing[t.Partition] = true
			moves = append(moves, handoff.Move{Partition: t.Partition, From: t.From, To: t.To})
		}
	}
	var start []int
	for p := range need {
		start = append(start, p)
	}
	sort.Ints(start)
	if err := n.vnodes.Start(ctx, start); err != nil {
		n.logger.Error("cluster: start vnodes", "err", err)
	}
	n.cl.handoff.Sync(moves)
	for _, p := range n.vnodes.Partitions() {
		if need[p] || outgoing[p] {
			continue
		}
		n.retireLater(p, s.Ring.Owner(p))
	}
}

// retireGrace is how long a moved partition's old vnode forwards stragglers before it drops its data.
const retireGrace = 5 * time.Second

// retireLater switches partition p's vnode to forwarding to its new owner and retires it after a grace.
func (n *Node) retireLater(p int, owner membership.NodeID) {
	n.cl.retireMu.Lock()
	defer n.cl.retireMu.Unlock()
	if n.cl.retiring[p] {
		return
	}
	n.cl.retiring[p] = true
	if pid := n.vnodes.PID(p); pid != nil {
		if target := n.remoteVnode(owner, p); target != nil && owner != n.self() {
			n.system.Root.Send(pid, &vnode.ForwardTo{Target: target})
		}
	}
	n.logger.Info("partition moved away: retiring", "partition", p, "owner", owner)
	time.AfterFunc(retireGrace, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// Only if it is still not ours (a later state may have moved it back).
		s := n.state()
		mine := s.Ring.Owner(p) == n.self()
		for _, t := range s.Transfers {
			if t.State == membership.TransferWaiting && (t.To == n.self() || t.From == n.self()) && t.Partition == p {
				mine = true
			}
		}
		if !mine {
			if err := n.vnodes.Retire(ctx, p); err != nil {
				n.logger.Error("cluster: retire", "partition", p, "err", err)
			}
		}
		n.cl.retireMu.Lock()
		delete(n.cl.retiring, p)
		n.cl.retireMu.Unlock()
	})
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
