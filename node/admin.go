package node

import (
	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/service"
	"github.com/gokai-kv/gokai/storage"
)

// stat is one of the node's counters, shown by memcache `stats` and msgpack-RPC `stats`.
type stat = service.Stat

// serviceStats is stats for the services (service.Host.Stats).
func (n *Node) serviceStats() []service.Stat { return n.stats() }

// stats are the node's counters: its own, every service's vnodes and coordinators summed, and each
// service's own (service.Instance.Stats, in registration order).
func (n *Node) stats() []stat {
	var vnodes int
	var restarts, received int64
	var cs coordinator.Stats
	for _, rt := range n.svcs {
		if rt.vnodes != nil {
			vnodes += len(rt.vnodes.Partitions())
			restarts += rt.vnodes.Metrics().Restarts()
			received += rt.vnodes.Metrics().HandoffItemsReceived()
		}
		if rt.coords != nil {
			st := rt.coords.Stats()
			cs.Active += st.Active
			cs.ReadRepairs += st.ReadRepairs
			cs.Timeouts += st.Timeouts
			cs.QuorumFailures += st.QuorumFailures
			cs.Overloads += st.Overloads
			cs.Fallbacks += st.Fallbacks
		}
	}
	out := []stat{
		{Name: "gokai_node", Value: n.cfg.Name},
		{Name: "gokai_ring_q", Value: n.cfg.Q},
		{Name: "gokai_n", Value: n.cfg.N},
		{Name: "gokai_r", Value: n.cfg.R},
		{Name: "gokai_w", Value: n.cfg.W},
		{Name: "gokai_vnodes", Value: vnodes},
		{Name: "gokai_vnode_restarts", Value: restarts},
		{Name: "gokai_coord_active", Value: cs.Active},
		{Name: "gokai_read_repairs", Value: cs.ReadRepairs},
		{Name: "gokai_coord_timeouts", Value: cs.Timeouts},
		{Name: "gokai_coord_quorum_failures", Value: cs.QuorumFailures},
		{Name: "gokai_coord_overloads", Value: cs.Overloads},
		{Name: "gokai_coord_fallbacks", Value: cs.Fallbacks},
	}
	for _, rt := range n.svcs {
		if rt.inst != nil && rt.inst.Stats != nil {
			out = append(out, rt.inst.Stats()...)
		}
	}
	out = append(out, n.flushStats()...)
	if n.cl != nil && n.cl.handoff != nil {
		var active int
		for _, p := range n.cl.handoff.Progress() {
			if p.State != "done" {
				active++
			}
		}
		out = append(out, stat{Name: "gokai_handoff_active", Value: active}, stat{Name: "gokai_handoff_attempts", Value: n.cl.handoff.Attempts()},
			stat{Name: "gokai_hinted_handoffs", Value: n.cl.handoff.HintedRounds()}, stat{Name: "gokai_hinted_handoff_keys", Value: n.cl.handoff.HintedKeys()},
			stat{Name: "gokai_handoff_items_received", Value: received},
			stat{Name: "gokai_rehomed_keys", Value: n.cl.rehome.moved.Load()})
	}
	if n.cl != nil && n.cl.fd != nil {
		out = append(out, stat{Name: "gokai_peers_suspected", Value: len(n.cl.fd.Suspected())},
			stat{Name: "gokai_peer_suspicions", Value: n.cl.fd.suspicions.Load()},
			stat{Name: "gokai_gossip_reconnects", Value: n.cl.gossip.Reconnects()})
	}
	if db, ok := n.backend.(*storage.LevelDB); ok {
		full := 0
		if db.DiskFull() {
			full = 1
		}
		out = append(out, stat{Name: "gokai_disk_full", Value: full}, stat{Name: "gokai_disk_full_recoveries", Value: db.Recoveries()})
	}
	out = append(out, n.aaeStats()...)
	out = append(out, stat{Name: "gokai_client_memory_bytes", Value: n.mem.Used()}, stat{Name: "gokai_client_memory_limit", Value: n.mem.Limit()},
		stat{Name: "gokai_client_memory_refusals", Value: n.mem.Refused()})
	if n.rpc != nil {
		rs := n.rpc.Stats()
		out = append(out, stat{Name: "gokai_rpc_conns", Value: rs.Conns}, stat{Name: "gokai_rpc_requests", Value: rs.Requests},
			stat{Name: "gokai_rpc_answered", Value: rs.Answered}, stat{Name: "gokai_rpc_errors", Value: rs.Errors},
			stat{Name: "gokai_rpc_bad_frames", Value: rs.BadFrames}, stat{Name: "gokai_rpc_overloads", Value: rs.Overloads},
			stat{Name: "gokai_rpc_read_timeouts", Value: rs.ReadTimeouts})
	}
	return out
}

func (n *Node) statsMap() map[string]any {
	st := n.stats()
	m := make(map[string]any, len(st))
	for _, s := range st {
		m[s.Name] = s.Value
	}
	return m
}

func (n *Node) ringInfo() map[string]any {
	r := n.state().Ring
	owners := r.Owners()
	names := make([]string, len(owners))
	for i, o := range owners {
		names[i] = string(o)
	}
	return map[string]any{"q": r.Q(), "version": r.Version(), "n": n.cfg.N, "owners": names}
}

func (n *Node) members() []any {
	st := n.clusterStatus()
	out := []any{}
	for _, m := range st["members"].([]any) {
		e := m.(map[string]any)
		status := "down"
		if e["alive"].(bool) && !e["suspected"].(bool) {
			status = "up"
		}
		out = append(out, map[string]any{"name": e["name"], "status": status, "membership": e["status"],
			"partitions": e["partitions"], "rpc_addr": e["rpc_addr"], "memcache_addr": e["memcache_addr"]})
	}
	return out
}

func (n *Node) preflistInfo(key []byte) []any {
	// The N primaries (with whether each is up), then the fallbacks coordinators use for the down ones.
	r := n.state().Ring
	var out []any
	for _, e := range r.Preflist(key, n.cfg.N, nil) {
		out = append(out, map[string]any{"partition": e.Partition, "node": string(e.Node), "primary": true, "up": n.isUp(e.Node)})
	}
	for _, e := range r.Preflist(key, n.cfg.N, n.isUp) {
		if !e.Primary {
			out = append(out, map[string]any{"partition": e.Partition, "node": string(e.Node), "primary": false,
				"up": true, "hint_for": string(e.HintFor)})
		}
	}
	return out
}
