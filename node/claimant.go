package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/gokai-kv/gokai/membership"
	rpc "github.com/gokai-kv/gokai/protocol/msgpackrpc"
	"github.com/gokai-kv/gokai/ring"
)

// applyClaimant runs one cluster change on this node, which must be the claimant: read the current
// state, apply the transition, propose the result. claimMu makes the read-modify-propose atomic, so two
// changes can never be computed from the same version.
func (n *Node) applyClaimant(method string, params []any) (any, error) {
	n.cl.claimMu.Lock()
	defer n.cl.claimMu.Unlock()
	cur := n.state()
	if cur.Claimant != n.self() {
		return nil, &rpc.Error{Code: "not_claimant", Message: fmt.Sprintf("the claimant is %s", cur.Claimant)}
	}
	var (
		next *membership.ClusterState
		err  error
		out  any = true
	)
	switch method {
	case "cluster_stage_join":
		var m membership.Member
		if m, err = memberParam(params); err == nil {
			next, err = cur.StageJoin(m)
		}
	case "cluster_leave":
		var name []byte
		if name, err = rpc.Bytes(params, 0, "node"); err == nil {
			next, err = cur.StageLeave(ring.NodeID(name))
		}
	case "cluster_clear":
		next, err = cur.ClearStaged()
	case "cluster_plan":
		var p *membership.Plan
		if p, err = cur.Plan(); err == nil {
			return planInfo(cur, p), nil
		}
	case "cluster_commit":
		next, err = cur.Commit()
		if err != nil && errors.Is(err, ring.ErrTargetN) {
			// NB: not a loss of replicas: preference lists skip to N distinct nodes there. A later ownership
			// change can move such a list's replica to another partition; the nodes re-home it (rehome.go).
			n.logger.Warn("cluster: committed a ring where some N consecutive partitions share a node: their preference lists skip partitions", "err", err)
			err = nil
		}
	case "cluster_transfer_done":
		var p int64
		var from, to []byte
		if p, err = intParam(params, 0); err == nil {
			if from, err = rpc.Bytes(params, 1, "from"); err == nil {
				if to, err = rpc.Bytes(params, 2, "to"); err == nil {
					next, err = cur.CompleteTransfer(int(p), ring.NodeID(from), ring.NodeID(to))
					if errors.Is(err, membership.ErrTransferDone) {
						return true, nil // a retried report
					}
				}
			}
		}
	case "cluster_flush":
		var svc string
		var at, now int64
		if svc, at, now, err = n.flushParams(params); err == nil {
			err = checkFlushClock(now, n.now().UnixNano())
		}
		if err == nil {
			next, err = cur.SetFlush(svc, at, now)
			if err == nil && next == cur {
				return true, nil // an earlier flush than the recorded one: nothing to change
			}
		}
	default:
		return nil, rpc.ErrUnknownMethod(method)
	}
	if err != nil {
		var re *rpc.Error
		if errors.As(err, &re) {
			return nil, err
		}
		return nil, &rpc.Error{Code: "bad_request", Message: err.Error()}
	}
	if next != nil && !n.cl.gossip.Propose(next) {
		return nil, &rpc.Error{Code: "conflict", Message: "a newer cluster state arrived; retry"}
	}
	n.logger.Info("cluster change", "change", method, "version", next.Version)
	return out, nil
}

func intParam(params []any, i int) (int64, error) {
	if i >= len(params) {
		return 0, &rpc.Error{Code: "bad_request", Message: fmt.Sprintf("missing parameter %d", i)}
	}
	v, ok, err := rpc.Int(map[string]any{"v": params[i]}, "v")
	if err != nil || !ok {
		return 0, &rpc.Error{Code: "bad_request", Message: fmt.Sprintf("parameter %d: want an integer", i)}
	}
	return v, nil
}

// memberParam reads [name, rpc, transport, memcache].
func memberParam(params []any) (membership.Member, error) {
	var f [4][]byte
	for i := range f {
		b, err := rpc.Bytes(params, i, "member")
		if err != nil {
			return membership.Member{}, err
		}
		f[i] = b
	}
	return membership.Member{Name: ring.NodeID(f[0]), RPCAddr: string(f[1]), TransportAddr: string(f[2]), MemcacheAddr: string(f[3])}, nil
}

func planInfo(s *membership.ClusterState, p *membership.Plan) map[string]any {
	changes := make([]any, len(p.Changes))
	for i, c := range p.Changes {
		changes[i] = map[string]any{"kind": string(c.Kind), "node": string(c.Node)}
	}
	moves := make([]any, len(p.Transfers))
	for i, t := range p.Transfers {
		moves[i] = map[string]any{"partition": t.Partition, "from": string(t.From), "to": string(t.To)}
	}
	after := map[string]any{}
	for _, m := range p.Next.Nodes() {
		after[string(m)] = len(p.Next.PartitionsOf(m))
	}
	return map[string]any{"version": s.Version, "changes": changes, "transfers": moves, "partitions_after": after, "warning": p.TargetNWarning}
}

// clusterStatus is this node's view of the cluster.
func (n *Node) clusterStatus() map[string]any {
	s := n.state()
	live := map[ring.NodeID]membership.LiveMember{}
	for _, m := range n.cl.gossip.Members() {
		live[m.Name] = m
	}
	members := make([]any, 0, len(s.Members))
	for _, m := range s.Members {
		lm := live[m.Name]
		alive := m.Name == n.self() || lm.State == membership.LiveAlive
		e := map[string]any{"name": string(m.Name), "status": string(m.Status), "alive": alive,
			"suspected":  !n.cl.fd.Up(m.Name),
			"partitions": len(s.Ring.PartitionsOf(m.Name)), "partitions_after": s.PartitionsAfter(m.Name),
			"rpc_addr": lm.RPCAddr, "memcache_addr": lm.MemcacheAddr, "gossip_addr": lm.Addr, "transport_addr": lm.TransportAddr}
		if m.Name == n.self() {
			e["rpc_addr"], e["memcache_addr"], e["gossip_addr"] = n.rpcAdvertised(), n.memcacheAdvertised(), n.cl.gossip.Addr()
			e["transport_addr"] = n.cl.remote.Address()
		}
		members = append(members, e)
	}
	staged := make([]any, len(s.Staged))
	for i, c := range s.Staged {
		staged[i] = map[string]any{"kind": string(c.Kind), "node": string(c.Node)}
	}
	transfers := make([]any, len(s.Transfers))
	for i, t := range s.Transfers {
		transfers[i] = map[string]any{"partition": t.Partition, "from": string(t.From), "to": string(t.To), "state": string(t.State)}
	}
	return map[string]any{"cluster": s.Cluster, "version": s.Version, "claimant": string(s.Claimant), "n": s.N, "q": s.Ring.Q(),
		"node": string(n.self()), "members": members, "staged": staged, "transfers": transfers}
}

// transfersInfo is this node's outgoing transfers with their progress: one per service and partition.
func (n *Node) transfersInfo() []any {
	ps := n.cl.handoff.Progress()
	out := make([]any, len(ps))
	for i, p := range ps {
		var started int64
		if !p.Started.IsZero() {
			started = p.Started.UnixNano()
		}
		out[i] = map[string]any{"service": p.Service, "partition": p.Partition, "from": string(p.From), "to": string(p.To), "state": string(p.State),
			"hinted": p.Hinted, "keys": p.Keys, "total_keys": p.TotalKeys, "bytes": p.Bytes, "forwarded": p.Forwarded,
			"attempts": p.Attempts, "last_error": p.LastError, "rate": p.RatePerSec, "eta_ms": p.ETA.Milliseconds(), "started": started}
	}
	return out
}

// joinCluster makes this (new, single) node join the cluster of the node whose transport address is seed:
// it asks the seed (over the transport, authenticated both ways with certificates) for its gossip address,
// joins its gossip, adopts its cluster state, and asks the claimant to stage its join. Only the named seed
// is contacted.
func (n *Node) joinCluster(ctx context.Context, seed string) (err error) {
	if s := n.state(); len(s.Members) > 1 {
		return &rpc.Error{Code: "bad_request", Message: fmt.Sprintf("this node is already in a cluster of %d members", len(s.Members))}
	}
	// NB: from before the seed's state is adopted (the node is no member of it) until the node sees itself
	// a member: its vnodes must not retire meanwhile (mayRetire).
	start := &joinAttempt{at: n.now()}
	n.cl.joining.Store(start)
	defer func() {
		if err != nil {
			n.cl.joining.Store(nil)
		}
	}()
	if _, _, err := net.SplitHostPort(seed); err != nil {
		return &rpc.Error{Code: "bad_request", Message: fmt.Sprintf("seed %q: want the transport host:port of a node of the cluster", seed)}
	}
	res, err := n.callNode(ctx, seed, "join_info", nil)
	if err != nil {
		return fmt.Errorf("cluster: join: seed %s: %w", seed, err)
	}
	info, _ := res.(map[string]any)
	gossipSeed, _ := info["gossip"].(string)
	cluster, _ := info["cluster"].(string)
	if gossipSeed == "" || cluster == "" {
		return fmt.Errorf("cluster: join: seed %s did not tell its gossip address", seed)
	}
	// NB: only membership of this cluster ends the join (the node is a member of its own until it adopts
	// the seed's state).
	n.cl.joining.Store(&joinAttempt{at: start.at, cluster: cluster})
	jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := n.cl.gossip.Join(jctx, []string{gossipSeed}, true); err != nil {
		return fmt.Errorf("cluster: join: gossip %s: %w", gossipSeed, err)
	}
	// Wait until the seed's cluster state arrived, then stage the join at its claimant.
	for n.state().Cluster != cluster {
		select {
		case <-jctx.Done():
			return fmt.Errorf("cluster: join: the cluster state did not arrive: %w", jctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	n.refreshLive()
	m := n.selfMember()
	_, err = n.claimant(jctx, "cluster_stage_join", []any{string(m.Name), m.RPCAddr, m.TransportAddr, m.MemcacheAddr})
	return err
}
