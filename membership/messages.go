package membership

import (
	"fmt"

	"github.com/gokai-kv/gokai/internal/mpscan"
	"github.com/gokai-kv/gokai/ring"
	"github.com/vmihailenco/msgpack/v5"
)

// Gossip messages travel as memberlist user messages: one kind byte, then
// the body. Kinds are append-only.
const (
	// msgStateVersion: a msgpack stateVersion, broadcast by gossip
	// (UDP, one packet) after a node installs a state.
	msgStateVersion byte = 1
	// msgPullState: a msgpack stateVersion (the requester's own), sent
	// reliably (TCP) to a node that announced a newer state.
	msgPullState byte = 2
	// msgStateReply: an encoded ClusterState (MarshalBinary), sent reliably
	// in reply to msgPullState, or unasked to a node that announced an
	// older state.
	msgStateReply byte = 3
)

// wireVersion is the version field of the gossip messages.
const wireVersion = 1

// maxSmallMsgBytes bounds a stateVersion message (a cluster id and a node
// id of at most MaxNameBytes each, and a few integers).
const maxSmallMsgBytes = 512

// smallMsgLimits bound the msgpack structure of a stateVersion.
var smallMsgLimits = mpscan.Limits{MaxBytes: maxSmallMsgBytes, MaxDepth: 1, MaxElems: 16}

// stateVersion names a cluster state without carrying it: the broadcast
// "[cluster, version, hash]" plus the node that holds it (gossip does not
// say who sent a message, and only that node is sure to have the state).
type stateVersion struct {
	_msgpack struct{}    `msgpack:",as_array"`
	Wire     uint8       // wireVersion
	Cluster  string      // cluster id
	Version  uint64      // ClusterState.Version
	Hash     uint64      // ClusterState.Hash
	From     ring.NodeID // the node that holds this state
}

// encodeStateVersion returns the message of the given kind.
func encodeStateVersion(kind byte, v stateVersion) []byte {
	v.Wire = wireVersion
	b, err := msgpack.Marshal(&v)
	if err != nil {
		panic(fmt.Sprintf("membership: encoding a state version: %v", err))
	}
	return append([]byte{kind}, b...)
}

// decodeStateVersion decodes the body of a msgStateVersion or msgPullState.
// It is safe on untrusted input.
func decodeStateVersion(body []byte) (stateVersion, error) {
	var v stateVersion
	n, err := mpscan.Scan(body, smallMsgLimits)
	if err != nil {
		return v, err
	}
	if n != len(body) {
		return v, fmt.Errorf("%d trailing bytes", len(body)-n)
	}
	if err := msgpack.Unmarshal(body, &v); err != nil {
		return v, err
	}
	if v.Wire != wireVersion {
		return v, fmt.Errorf("wire version %d (want %d)", v.Wire, wireVersion)
	}
	if v.From == "" || len(v.From) > MaxNameBytes || v.Cluster == "" || len(v.Cluster) > MaxNameBytes {
		return v, fmt.Errorf("bad sender %q or cluster %q", v.From, v.Cluster)
	}
	return v, nil
}

// nodeMeta is the memberlist node metadata (at most memberlist.MetaMaxSize
// = 512 bytes): who the node is and which cluster it belongs to. Cluster
// is empty while the node joins with adopt (it belongs to no cluster yet).
type nodeMeta struct {
	Name      string `msgpack:"name"`
	RPC       string `msgpack:"rpc"`
	Transport string `msgpack:"transport"`
	Memcache  string `msgpack:"memcache"`
	Cluster   string `msgpack:"cluster"`
	Leaving   bool   `msgpack:"leaving,omitempty"` // set by Leave just before it announces the leave
}

// metaLimits bound the msgpack structure of a nodeMeta.
var metaLimits = mpscan.Limits{MaxBytes: 512, MaxDepth: 1, MaxElems: 32}

// decodeNodeMeta decodes a peer's metadata. It is safe on untrusted input.
func decodeNodeMeta(b []byte) (nodeMeta, error) {
	var m nodeMeta
	n, err := mpscan.Scan(b, metaLimits)
	if err != nil {
		return m, err
	}
	if n != len(b) {
		return m, fmt.Errorf("%d trailing bytes", len(b)-n)
	}
	err = msgpack.Unmarshal(b, &m)
	return m, err
}
