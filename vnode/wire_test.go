package vnode

import (
	"testing"

	"github.com/gokai-kv/gokai/actors"
)

// TestWireRegistrationsFixed pins the codes of the framework's messages: they are on the wire between
// nodes, append-only (1..7 are KV's, pinned in package kv).
func TestWireRegistrationsFixed(t *testing.T) {
	for code, m := range map[actors.WireType]any{
		8: &HandoffBatch{}, 9: &HandoffAck{}, 10: &HandoffForward{}, 11: &HandoffForwardAck{},
	} {
		if got, ok := actors.WireTypeOf(m); !ok || got != code {
			t.Errorf("%T: wire type %d, %v; want %d", m, got, ok, code)
		}
	}
}
