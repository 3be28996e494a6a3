package vnode

import (
	"github.com/gokai-kv/gokai/actors"
)

// Wire type codes of the vnode framework's messages (actors.RegisterWire). Append-only: vnode owns 8..31
// (1..7 are KV's, package kv); 17..31 are kept for future framework messages.
const (
	WireHandoffBatch      actors.WireType = 8
	WireHandoffAck        actors.WireType = 9
	WireHandoffForward    actors.WireType = 10
	WireHandoffForwardAck actors.WireType = 11
	WireHandoffCommand    actors.WireType = 12
	WireCoverageRequest   actors.WireType = 13
	WireCoverageChunk     actors.WireType = 14
	WireCoverageAck       actors.WireType = 15
	WireCoverageCancel    actors.WireType = 16
	// 24 and 25 are anti-entropy's (17..23 and 26..31 are free).
	WireAAEQuery  actors.WireType = 24
	WireAAEAnswer actors.WireType = 25
)

func init() {
	actors.RegisterWire(WireHandoffBatch, func() any { return &HandoffBatch{} })
	actors.RegisterWire(WireHandoffAck, func() any { return &HandoffAck{} })
	actors.RegisterWire(WireHandoffForward, func() any { return &HandoffForward{} })
	actors.RegisterWire(WireHandoffForwardAck, func() any { return &HandoffForwardAck{} })
	actors.RegisterWire(WireHandoffCommand, func() any { return &HandoffCommand{} })
	actors.RegisterWire(WireCoverageRequest, func() any { return &CoverageRequest{} })
	actors.RegisterWire(WireCoverageChunk, func() any { return &CoverageChunk{} })
	actors.RegisterWire(WireCoverageAck, func() any { return &CoverageAck{} })
	actors.RegisterWire(WireCoverageCancel, func() any { return &CoverageCancel{} })
	actors.RegisterWire(WireAAEQuery, func() any { return &AAEQuery{} })
	actors.RegisterWire(WireAAEAnswer, func() any { return &AAEAnswer{} })
	// Other nodes' coordinators and handoffs address vnodes (and vnodes each other, for forwards).
	actors.AllowRemoteTarget(actors.VnodeSupervisorName + "/")
	// Coverage chunks from other nodes' vnodes reach RequestCoverage's receivers.
	actors.AllowRemoteTarget(CoverageReceiverPrefix)
}
