package membership

import (
	"bytes"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// gossipDelegate is the Gossip's face to memberlist. memberlist calls it
// from its own goroutines, concurrently (the event callbacks one at a time,
// under memberlist's node lock): no method blocks or calls back into
// memberlist.
type gossipDelegate struct{ g *Gossip }

var (
	_ memberlist.Delegate      = (*gossipDelegate)(nil)
	_ memberlist.EventDelegate = (*gossipDelegate)(nil)
	_ memberlist.AliveDelegate = (*gossipDelegate)(nil)
	_ memberlist.MergeDelegate = (*gossipDelegate)(nil)
)

// NodeMeta returns this node's meta; its cluster is "" while it joins with
// adopt.
func (d *gossipDelegate) NodeMeta(limit int) []byte {
	cluster := d.g.State().Cluster
	if d.g.adopting.Load() {
		cluster = ""
	}
	b := d.g.encodeMeta(cluster, d.g.leaving.Load())
	if len(b) > limit { // StartGossip checked the longest possible meta
		panic(fmt.Sprintf("membership: node meta of %d bytes, limit %d", len(b), limit))
	}
	return b
}

// NotifyMsg handles a user message (a gossip broadcast over UDP or a
// reliable send over TCP). The buffer is reused by memberlist: it is copied
// before anything keeps it.
func (d *gossipDelegate) NotifyMsg(buf []byte) {
	if len(buf) == 0 {
		return
	}
	kind := buf[0]
	switch kind {
	case msgStateVersion, msgPullState:
		if len(buf)-1 > maxSmallMsgBytes {
			d.g.log.Debug("membership: dropping an oversized message", "kind", kind, "bytes", len(buf))
			return
		}
	case msgStateReply:
		if len(buf)-1 > signedLimits.MaxBytes {
			d.g.log.Debug("membership: dropping an oversized state", "bytes", len(buf))
			return
		}
	default:
		d.g.log.Debug("membership: dropping a message of unknown kind", "kind", kind)
		return
	}
	body := bytes.Clone(buf[1:])
	switch kind {
	case msgStateVersion:
		d.g.onStateVersion(body)
	case msgPullState:
		d.g.onPullState(body)
	case msgStateReply:
		d.g.onStateReply(body)
	}
}

// GetBroadcasts returns the queued version broadcasts that fit.
func (d *gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.g.queue.GetBroadcasts(overhead, limit)
}

// LocalState returns the encoded current state for a push-pull.
func (d *gossipDelegate) LocalState(join bool) []byte { return d.g.cur.Load().doc }

// MergeRemoteState takes a peer's state from a push-pull.
func (d *gossipDelegate) MergeRemoteState(buf []byte, join bool) {
	d.g.onRemoteState(buf, join)
}

// NotifyJoin, NotifyLeave, NotifyUpdate keep the liveness view. memberlist
// holds its node lock: the node may be read here and only here.
func (d *gossipDelegate) NotifyJoin(n *memberlist.Node)   { d.g.observe(n, LiveAlive) }
func (d *gossipDelegate) NotifyUpdate(n *memberlist.Node) { d.g.observe(n, "") }

// NB: n.State is not the node's state (memberlist keeps that in a field
// that shadows it): a node that advertised leaving in its meta left, any
// other died.
func (d *gossipDelegate) NotifyLeave(n *memberlist.Node) {
	if meta, err := decodeNodeMeta(n.Meta); err == nil && meta.Leaving {
		d.g.observe(n, LiveLeft)
		return
	}
	d.g.observe(n, LiveDead)
}

// NotifyAlive refuses nodes of another cluster (see Gossip.acceptPeer).
func (d *gossipDelegate) NotifyAlive(peer *memberlist.Node) error {
	return d.g.acceptPeer(peer.Name, peer.Meta)
}

// NotifyMerge refuses a join with a node list holding a node of another
// cluster; the reason is kept for Join's error.
func (d *gossipDelegate) NotifyMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		if err := d.g.acceptPeer(p.Name, p.Meta); err != nil {
			why := err.Error()
			d.g.rejected.Store(&why)
			return err
		}
	}
	return nil
}
