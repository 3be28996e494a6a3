package vnode

import (
	"github.com/gokai-kv/gokai/actors"
)

// Wire type codes of the vnode framework's messages (actors.RegisterWire). Append-only: vnode owns 8..31
// (1..7 are KV's, package kv); 12..31 are kept for future framework messages.
const (
	WireHandoffBatch      actors.WireType = 8
	WireHandoffAck        actors.WireType = 9
	WireHandoffForward    actors.WireType = 10
	WireHandoffForwardAck actors.WireType = 11
)

func init() {
	actors.RegisterWire(WireHandoffBatch, func() any { return &HandoffBatch{} })
	actors.RegisterWire(WireHandoffAck, func() any { return &HandoffAck{} })
	actors.RegisterWire(WireHandoffForward, func() any { return &HandoffForward{} })
	actors.RegisterWire(WireHandoffForwardAck, func() any { return &HandoffForwardAck{} })
	// Other nodes' coordinators and handoffs address vnodes (and vnodes each other, for forwards).
	actors.AllowRemoteTarget(actors.VnodeSupervisorName + "/")
}
