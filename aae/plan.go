package aae

import "github.com/gokai-kv/gokai/ring"

// Pair is one exchange a node runs: its vnode of partition Local compares its tree of Source with the tree
// of Source in the vnode of partition Remote on node Peer. Both vnodes are primaries of Source's
// preference list, so both hold Source's keys.
type Pair struct {
	Source int
	Local  int
	Peer   ring.NodeID
	Remote int
}

// Plan lists the exchanges node self runs each period: for every source, every pair of its N primaries of
// which one is on self. A pair of vnodes on two nodes is thus compared from both ends each period (each
// node repairs what it finds, so one node's exchanges stalling leaves the other's), a pair on self (a ring
// with fewer nodes than N) once. Ordered by source, then local partition, then peer.
func Plan(r *ring.Ring, self ring.NodeID, n int) []Pair {
	var out []Pair
	for s := range r.Q() {
		pl := r.PreflistForPartition(s, n, nil)
		for _, e := range pl {
			if e.Node != self {
				continue
			}
			for _, f := range pl {
				if f.Partition == e.Partition || (f.Node == self && f.Partition < e.Partition) {
					continue
				}
				out = append(out, Pair{Source: s, Local: e.Partition, Peer: f.Node, Remote: f.Partition})
			}
		}
	}
	return out
}
