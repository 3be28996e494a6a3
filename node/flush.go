package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/gokai-kv/gokai/membership"
	rpc "github.com/gokai-kv/gokai/protocol/msgpackrpc"
	"github.com/gokai-kv/gokai/ring"
)

// Flush epochs (memcache flush_all, service.Host.Flush): a service's epoch lives in the cluster state
// (membership.Flush), so every node hides the same values and a node that was down learns it with the
// state. A flush is a cluster change like a join: the node asks the claimant ("cluster_flush"), which
// applies it, proposes the new state, and then hands that state to every member gossip sees alive
// ("cluster_state") before it answers, so that a flush_all answered OK is in effect on every reachable node
// at once rather than one gossip round later. A member it cannot reach gets the state by gossip.

// spreadTimeout bounds the claimant's wait for each member to take a new state directly.
const spreadTimeout = 2 * time.Second

// flushService records a flush of service svc at at (see service.Host.Flush). It fails when the claimant
// cannot be reached or refuses (nothing was recorded then) or could not save the new state; the caller
// must say so.
func (n *Node) flushService(ctx context.Context, svc string, at time.Time) error {
	params := []any{svc, at.UnixNano(), n.now().UnixNano()}
	s := n.state()
	var res any
	var err error
	if s.Claimant == n.self() {
		res, err = n.applyFlush(ctx, params)
	} else {
		res, err = n.claimant(ctx, "cluster_flush", params)
	}
	if err != nil {
		return fmt.Errorf("node: flush of %s: %w", svc, err)
	}
	// The claimant answers with the state that holds the flush: take it (if no newer one arrived), so this
	// node hides the flushed values even if the claimant's direct send to it failed.
	if doc, ok := res.([]byte); ok && len(doc) > 0 {
		n.cl.gossip.Install(doc)
	}
	return nil
}

// applyFlush runs "cluster_flush" on the claimant (this node), saves the resulting state, then spreads
// it. It answers with the state's signed form.
//
// NB: the state is saved before the answer: a flush is acknowledged to a client, and a claimant that
// crashed right after (the only node, or all of them) must not come back without it.
func (n *Node) applyFlush(ctx context.Context, params []any) (any, error) {
	if _, err := n.applyClaimant("cluster_flush", params); err != nil {
		return nil, err
	}
	if _, err := n.saveCurrentState(); err != nil {
		return nil, fmt.Errorf("cluster: save state: %w", err)
	}
	s, doc := n.cl.gossip.Signed()
	n.spreadState(ctx, s, doc)
	if len(doc) > maxAnsweredState {
		return true, nil // NB: a reply must decode within controlLimits; the spread and gossip carry it
	}
	return doc, nil
}

// maxAnsweredState bounds the state applyFlush hands back to the node that asked (the largest rings' states
// exceed what a control reply may carry).
const maxAnsweredState = 256 << 10

// spreadState hands s (signed form doc) to every other member gossip sees alive and waits for their
// answers, each bounded by spreadTimeout. A member that fails is logged: gossip brings it the state later.
func (n *Node) spreadState(ctx context.Context, s *membership.ClusterState, doc []byte) {
	var wg sync.WaitGroup
	for _, m := range s.Members {
		if m.Name == n.self() || !n.cl.gossip.Alive(m.Name) {
			continue
		}
		addr := n.transportAddr(m.Name)
		if addr == "" {
			continue
		}
		wg.Add(1)
		go func(name ring.NodeID) {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, spreadTimeout)
			defer cancel()
			res, err := n.callNode(cctx, addr, "cluster_state", []any{doc})
			if v, ok := res.(map[string]any); err == nil && ok {
				if got, _, _ := rpc.Int(v, "version"); uint64(got) >= s.Version {
					return
				}
				err = fmt.Errorf("holds version %v, want %d", v["version"], s.Version)
			}
			n.logger.Warn("cluster: a member did not take the new state directly; gossip will bring it",
				"member", string(name), "version", s.Version, "err", err)
		}(m.Name)
	}
	wg.Wait()
}

// installState is the "cluster_state" control method: take a state another node sent (the same checks
// as a gossiped one) and answer with the version held afterwards.
func (n *Node) installState(params []any) (any, error) {
	doc, err := rpc.Bytes(params, 0, "state")
	if err != nil {
		return nil, err
	}
	s := n.cl.gossip.Install(doc)
	return map[string]any{"version": s.Version}, nil
}

// flushParams reads cluster_flush's [service, at, now] (unix ns) and checks the service is one this node
// runs (every node of a cluster runs the same).
func (n *Node) flushParams(params []any) (svc string, at, now int64, err error) {
	b, err := rpc.Bytes(params, 0, "service")
	if err != nil {
		return "", 0, 0, err
	}
	if n.svcByName[string(b)] == nil {
		return "", 0, 0, &rpc.Error{Code: "bad_request", Message: fmt.Sprintf("no service %q", b)}
	}
	if at, err = intParam(params, 1); err != nil {
		return "", 0, 0, err
	}
	if now, err = intParam(params, 2); err != nil {
		return "", 0, 0, err
	}
	return string(b), at, now, nil
}

// maxFlushClockSkew is how far the flushing node's clock may be from the claimant's: an epoch from a
// clock far ahead would hide every write made until the clocks meet.
const maxFlushClockSkew = 5 * time.Second

// checkFlushClock refuses a flush issued at flusherNow (unix ns, the flushing node's clock) when the
// claimant's clock (claimantNow) is more than maxFlushClockSkew apart.
func checkFlushClock(flusherNow, claimantNow int64) error {
	d := time.Duration(flusherNow - claimantNow)
	if d > maxFlushClockSkew || d < -maxFlushClockSkew {
		return &rpc.Error{Code: "bad_request", Message: fmt.Sprintf(
			"flush refused: the flushing node's clock is %v off the claimant's (at most %v); synchronise the clocks", d.Round(time.Millisecond), maxFlushClockSkew)}
	}
	return nil
}

// flushCutoff is service svc's cutoff now (membership.Flush.Cutoff of the current state): the greatest
// LastMod its reads hide, 0 for none.
func (n *Node) flushCutoff(svc string, nowNs int64) int64 {
	return n.state().FlushOf(svc).Cutoff(nowNs)
}

// flushStats are every service's flush epoch: gokai_flush_epoch_<service> (unix ns, 0 = never flushed)
// and gokai_flush_pending_<service> (a delayed flush not yet due, unix ns, 0 = none).
func (n *Node) flushStats() []stat {
	if n.cl == nil || n.cl.gossip == nil {
		return nil
	}
	s := n.state()
	out := make([]stat, 0, 2*len(n.svcs))
	for _, rt := range n.svcs {
		f := s.FlushOf(rt.spec.Name)
		out = append(out, stat{Name: "gokai_flush_epoch_" + rt.spec.Name, Value: f.Epoch},
			stat{Name: "gokai_flush_pending_" + rt.spec.Name, Value: f.Pending})
	}
	return out
}
