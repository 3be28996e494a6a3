package client

import (
	"fmt"
	"net"
	"slices"

	"github.com/gokai-kv/gokai/ring"
)

// routeTable is what the client knows of the cluster: the ring, the replica count and each node's rpc
// address. Immutable; replaced whole on refresh.
type routeTable struct {
	ring  *ring.Ring
	n     int
	addrs map[ring.NodeID]string
}

// route returns the rpc addresses of key's preference list (Dynamo §6.4): the nodes holding its n primary
// replicas, in ring order, each once. Nodes whose address is unknown are left out, so the result may be
// empty; the caller falls back to its seeds. Pure: no I/O, no clock.
func route(rg *ring.Ring, n int, addrs map[ring.NodeID]string, key []byte) []string {
	pl := rg.Preflist(key, max(n, 1), nil)
	out := make([]string, 0, len(pl))
	for _, e := range pl {
		a := addrs[e.Node]
		if a == "" || slices.Contains(out, a) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// buildTable makes a routeTable from the `ring` and `members` results read from the node at from. A
// member listening on an unspecified address (0.0.0.0, [::]) is reached at from's host; members not "up"
// and without an rpc address are left out.
func buildTable(ri *RingInfo, ms []Member, from string) (*routeTable, error) {
	owners := make([]ring.NodeID, len(ri.Owners))
	for i, o := range ri.Owners {
		owners[i] = ring.NodeID(o)
	}
	if ri.Q != 0 && ri.Q != len(owners) {
		return nil, protoErr("ring q=%d with %d owners", ri.Q, len(owners))
	}
	rg, err := ring.NewFromOwners(owners, ri.Version)
	if err != nil {
		return nil, fmt.Errorf("%w: ring from %s: %w", ErrProtocol, from, err)
	}
	addrs := make(map[ring.NodeID]string, len(ms))
	for _, m := range ms {
		if m.RPCAddr == "" || (m.Status != "" && m.Status != "up") {
			continue
		}
		addrs[ring.NodeID(m.Name)] = reachableAddr(m.RPCAddr, from)
	}
	return &routeTable{ring: rg, n: max(ri.N, 1), addrs: addrs}, nil
}

// reachableAddr replaces an unspecified or empty host in addr by the host of from.
func reachableAddr(addr, from string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return addr
	}
	fhost, _, err := net.SplitHostPort(from)
	if err != nil {
		return addr
	}
	return net.JoinHostPort(fhost, port)
}

// candidates orders where to send a request: first routed (the key's preference list), then seeds, each
// once; nodes that recently refused connections go last, in the same order.
func candidates(routed, seeds []string, isDown func(string) bool) []string {
	out := make([]string, 0, len(routed)+len(seeds))
	for _, a := range routed {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	for _, a := range seeds {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if isDown == nil {
		return out
	}
	up := out[:0:0]
	var down []string
	for _, a := range out {
		if isDown(a) {
			down = append(down, a)
		} else {
			up = append(up, a)
		}
	}
	return append(up, down...)
}
