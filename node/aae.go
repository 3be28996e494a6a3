package node

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/entropy"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/vnode"
)

// Active anti-entropy (docs/anti-entropy.md): the vnodes of services that opt in (service.Service
// AntiEntropy, a behaviour that implements vnode.AAEHasher) keep hash trees unless aae is off; the aae-sup
// child runs the exchanges (package entropy) unless aae is passive or off.

// aaeConfig is the entropy configuration of c (Config.Validate checks the aae flags).
func (c Config) aaeConfig() entropy.Config {
	return entropy.Config{Node: nodeID(c.Name), N: c.N, Mode: entropy.Mode(c.AAE), Period: c.AAEExchangePeriod,
		Concurrency: c.AAEConcurrency, RepairRate: c.AAERepairRate}
}

// vnodeAAE is the hash-tree configuration of rt's vnodes.
func (n *Node) vnodeAAE(rt *svcRuntime) vnode.AAEConfig {
	if !rt.spec.AntiEntropy || n.cfg.AAE == string(entropy.ModeOff) {
		return vnode.AAEConfig{}
	}
	return vnode.AAEConfig{Q: n.cfg.Q, RebuildPeriod: n.cfg.AAERebuildPeriod}
}

// aaeCluster is the node as the anti-entropy manager sees it.
type aaeCluster struct{ n *Node }

func (c aaeCluster) Ring() *ring.Ring {
	if c.n.cl == nil {
		return nil
	}
	return c.n.state().Ring
}

func (c aaeCluster) Up(node ring.NodeID) bool { return c.n.isUp(node) }

// startAAE starts the anti-entropy manager for the services that opted in and can repair.
func (n *Node) startAAE(context.Context) error {
	cfg := n.cfg.aaeConfig()
	cfg.Logger, cfg.Now = n.logger.With("actor", entropy.SupervisorName), n.now
	var svcs []entropy.Service
	for _, rt := range n.svcs {
		if !rt.spec.AntiEntropy {
			continue
		}
		if rt.inst == nil || rt.inst.Repair == nil {
			rt.logger.Warn("anti-entropy: the service opted in but gives no Repair: its trees are kept, no exchange runs")
			continue
		}
		r := router{n, rt}
		svcs = append(svcs, entropy.Service{Name: rt.spec.Name,
			Vnode:  func(node ring.NodeID, p int) *actor.PID { return r.VnodePID(node, p) },
			Repair: rt.inst.Repair})
	}
	m, err := entropy.Start(n.system, cfg, aaeCluster{n}, svcs)
	if err != nil {
		return err
	}
	n.aae = m
	return nil
}

func (n *Node) stopAAE(ctx context.Context) error {
	if n.aae == nil {
		return nil
	}
	return n.aae.Stop(ctx)
}

// aaeStatus is the aae_status method: per service and local partition, the trees' state and the
// exchanges'.
func (n *Node) aaeStatus() map[string]any {
	var ex []entropy.PartitionStatus
	if n.aae != nil {
		ex = n.aae.Status()
	}
	type key struct {
		svc string
		p   int
	}
	byKey := map[key]entropy.PartitionStatus{}
	for _, st := range ex {
		byKey[key{st.Service, st.Partition}] = st
	}
	ts := func(t time.Time) any {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	var parts []any
	for _, rt := range n.svcs {
		if rt.vnodes == nil || !rt.spec.AntiEntropy {
			continue
		}
		for p := range n.cfg.Q {
			tree, hasTree := rt.vnodes.AAEStatus(p)
			st, hasEx := byKey[key{rt.spec.Name, p}]
			if !hasTree && !hasEx {
				continue
			}
			row := map[string]any{"service": rt.spec.Name, "partition": p, "tree": "none"}
			if hasTree {
				row["tree"], row["items"], row["built_at"], row["rebuilds"] = tree.State, tree.Items, ts(tree.BuiltAt), tree.Rebuilds
			}
			row["exchanges"], row["last_exchange"], row["last_result"] = st.Exchanges, ts(st.LastExchange), st.LastResult
			row["keys_repaired"], row["next_exchange"] = st.KeysRepaired, ts(st.NextExchange)
			parts = append(parts, row)
		}
	}
	out := map[string]any{"mode": n.cfg.AAE, "period": n.cfg.AAEExchangePeriod.String(), "partitions": parts}
	if n.aae != nil {
		s := n.aae.Stats()
		out["exchanges"], out["keys_repaired"], out["running"] = s.Exchanges, s.KeysRepaired, s.Running
	}
	return out
}

// aaeStats are the anti-entropy counters of `stats`.
func (n *Node) aaeStats() []stat {
	if n.aae == nil {
		return nil
	}
	s := n.aae.Stats()
	var rebuilds, mismatched int64
	for _, rt := range n.svcs {
		r, m := n.aaeTreeCounts(rt)
		rebuilds, mismatched = rebuilds+r, mismatched+m
	}
	return []stat{{Name: "gokai_aae_exchanges", Value: s.Exchanges}, {Name: "gokai_aae_exchange_errors", Value: s.ExchangeErrors},
		{Name: "gokai_aae_exchanges_skipped", Value: s.Skipped}, {Name: "gokai_aae_keys_differing", Value: s.KeysDiffering},
		{Name: "gokai_aae_keys_repaired", Value: s.KeysRepaired}, {Name: "gokai_aae_repair_errors", Value: s.RepairErrors},
		{Name: "gokai_aae_exchanges_running", Value: s.Running}, {Name: "gokai_aae_tree_rebuilds", Value: rebuilds},
		{Name: "gokai_aae_tree_rebuild_mismatches", Value: mismatched}}
}

// aaeTreeCounts sums the hash-tree rebuilds and the verifying rebuilds that found a mismatch over service
// rt's vnodes on this node (for stats and /metrics).
func (n *Node) aaeTreeCounts(rt *svcRuntime) (rebuilds, mismatched int64) {
	if rt.vnodes == nil {
		return 0, 0
	}
	for p := range n.cfg.Q {
		if st, ok := rt.vnodes.AAEStatus(p); ok {
			rebuilds += st.Rebuilds
			mismatched += st.Mismatched
		}
	}
	return rebuilds, mismatched
}
