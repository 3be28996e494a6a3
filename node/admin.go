package node

import (
	"fmt"

	"github.com/gokai-kv/gokai/storage"
)

// stat is one of the node's own counters, shown by memcache `stats` and msgpack-RPC `stats`.
type stat struct {
	name  string
	value any // int64, int or string
}

func (n *Node) stats() []stat {
	st := n.coord.Stats()
	out := []stat{
		{"gokai_node", n.cfg.Name},
		{"gokai_ring_q", n.cfg.Q},
		{"gokai_n", n.cfg.N},
		{"gokai_r", n.cfg.R},
		{"gokai_w", n.cfg.W},
		{"gokai_vnodes", len(n.vnodes.Partitions())},
		{"gokai_vnode_restarts", n.vnodes.Metrics().Restarts()},
		{"gokai_coord_gets", st.Gets},
		{"gokai_coord_puts", st.Puts},
		{"gokai_coord_deletes", st.Deletes},
		{"gokai_coord_active", st.Active},
		{"gokai_siblings_seen", st.SiblingsSeen},
		{"gokai_read_repairs", st.ReadRepairs},
		{"gokai_coord_timeouts", st.Timeouts},
		{"gokai_coord_quorum_failures", st.QuorumFailures},
		{"gokai_coord_overloads", st.Overloads},
		{"gokai_coord_fallbacks", st.Fallbacks},
	}
	if n.cl != nil && n.cl.handoff != nil {
		var active int
		for _, p := range n.cl.handoff.Progress() {
			if p.State != "done" {
				active++
			}
		}
		out = append(out, stat{"gokai_handoff_active", active}, stat{"gokai_handoff_attempts", n.cl.handoff.Attempts()},
			stat{"gokai_hinted_handoffs", n.cl.handoff.HintedRounds()}, stat{"gokai_hinted_handoff_keys", n.cl.handoff.HintedKeys()},
			stat{"gokai_handoff_items_received", n.vnodes.Metrics().HandoffItemsReceived()},
			stat{"gokai_rehomed_keys", n.cl.rehome.moved.Load()})
	}
	if n.cl != nil && n.cl.fd != nil {
		out = append(out, stat{"gokai_peers_suspected", len(n.cl.fd.Suspected())},
			stat{"gokai_peer_suspicions", n.cl.fd.suspicions.Load()},
			stat{"gokai_gossip_reconnects", n.cl.gossip.Reconnects()})
	}
	if db, ok := n.backend.(*storage.LevelDB); ok {
		full := 0
		if db.DiskFull() {
			full = 1
		}
		out = append(out, stat{"gokai_disk_full", full}, stat{"gokai_disk_full_recoveries", db.Recoveries()})
	}
	out = append(out, stat{"gokai_client_memory_bytes", n.mem.Used()}, stat{"gokai_client_memory_limit", n.mem.Limit()},
		stat{"gokai_client_memory_refusals", n.mem.Refused()})
	if n.rpc != nil {
		rs := n.rpc.Stats()
		out = append(out, stat{"gokai_rpc_conns", rs.Conns}, stat{"gokai_rpc_requests", rs.Requests},
			stat{"gokai_rpc_answered", rs.Answered}, stat{"gokai_rpc_errors", rs.Errors},
			stat{"gokai_rpc_bad_frames", rs.BadFrames}, stat{"gokai_rpc_overloads", rs.Overloads},
			stat{"gokai_rpc_read_timeouts", rs.ReadTimeouts})
	}
	return out
}

func (n *Node) statsMap() map[string]any {
	st := n.stats()
	m := make(map[string]any, len(st))
	for _, s := range st {
		m[s.name] = s.value
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
	for _, e := range (router{n}).Preflist(key, n.cfg.N) {
		if !e.Primary {
			out = append(out, map[string]any{"partition": e.Partition, "node": string(e.Node), "primary": false,
				"up": true, "hint_for": string(e.HintFor)})
		}
	}
	return out
}

func statString(v any) string { return fmt.Sprint(v) }
