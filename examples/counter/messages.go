package counter

import (
	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/service"
)

// The counter's messages between coordinators and vnodes. V is the wire version (1). Every command carries a
// Tag (the replica's index in the request's targets) and its reply echoes it. States travel as msgpack bin
// holding their own encoding (State.MarshalBinary), decoded by UnmarshalState's checks on arrival.

// IncrRequest adds By to the counter Name at the coordinating vnode, under that vnode's actor id. The reply
// (StateReply, Write set) carries the vnode's new state, which the coordinator replicates to the others.
type IncrRequest struct {
	V    uint8  `msgpack:"v"`
	Tag  uint32 `msgpack:"t"`
	Name []byte `msgpack:"k"`
	By   int64  `msgpack:"b"`
}

// ReadRequest asks a vnode for its state of the counter Name (StateReply; State nil when it holds none).
type ReadRequest struct {
	V    uint8  `msgpack:"v"`
	Tag  uint32 `msgpack:"t"`
	Name []byte `msgpack:"k"`
}

// MergeRequest makes a vnode merge State into its state of the counter Name: replication of an increment,
// read repair, fallbacks. The reply (StateReply, Write set) carries no state.
type MergeRequest struct {
	V     uint8  `msgpack:"v"`
	Tag   uint32 `msgpack:"t"`
	Name  []byte `msgpack:"k"`
	State *State `msgpack:"s"`
}

// StateReply answers the three commands. Code is "" on success, else one of the Code constants with Err
// saying why.
type StateReply struct {
	V     uint8  `msgpack:"v"`
	Tag   uint32 `msgpack:"t"`
	State *State `msgpack:"s,omitempty"`
	Write bool   `msgpack:"w,omitempty"`
	Code  string `msgpack:"c,omitempty"`
	Err   string `msgpack:"e,omitempty"`
}

// Reply codes of a failed command.
const (
	CodeError    = "error"     // storage or a malformed stored state
	CodeDiskFull = "disk_full" // the node's disk is full (storage.ErrDiskFull)
	// CodeOutOfRange: the increment would take the counter (or its actor's total) out of the int64 range,
	// or add an actor past MaxActors. It is also the msgpack-RPC error code of those, and of a read whose
	// value is out of the range.
	CodeOutOfRange = "out_of_range"
)

// Wire codes of the counter's messages: the block 1024..1031 (actors.WireType's table: services built on
// gokai take theirs from 1024 up). Append-only.
const (
	WireIncrRequest  actors.WireType = 1024
	WireReadRequest  actors.WireType = 1025
	WireMergeRequest actors.WireType = 1026
	WireStateReply   actors.WireType = 1027
)

// wireMessages are listed in the Service; the node registers them for the transport (actors.EnsureWire).
var wireMessages = []service.Wire{
	{Code: WireIncrRequest, New: func() any { return &IncrRequest{} }},
	{Code: WireReadRequest, New: func() any { return &ReadRequest{} }},
	{Code: WireMergeRequest, New: func() any { return &MergeRequest{} }},
	{Code: WireStateReply, New: func() any { return &StateReply{} }},
}
