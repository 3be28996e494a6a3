package kv

import (
	"encoding"

	"github.com/gokai-kv/gokai/actors"
)

// Wire type codes of the KV messages (actors.RegisterWire). Append-only: they are on the wire between nodes,
// and they keep the codes they had when these messages lived in package vnode. KV owns 1..7 and 64..71.
const (
	WireGetRequest  actors.WireType = 1
	WireGetReply    actors.WireType = 2
	WirePutRequest  actors.WireType = 3
	WirePutReply    actors.WireType = 4
	WireReapRequest actors.WireType = 5
	WireKeysRequest actors.WireType = 6
	WireKeysReply   actors.WireType = 7

	WireCoverKeysRequest actors.WireType = 64
	WireCountKeysRequest actors.WireType = 65
	WireCountKeysReply   actors.WireType = 66
)

func init() {
	actors.RegisterWire(WireGetRequest, func() any { return &GetRequest{} })
	actors.RegisterWire(WireGetReply, func() any { return &GetReply{} })
	actors.RegisterWire(WirePutRequest, func() any { return &PutRequest{} })
	actors.RegisterWire(WirePutReply, func() any { return &PutReply{} })
	actors.RegisterWire(WireReapRequest, func() any { return &ReapRequest{} })
	actors.RegisterWire(WireKeysRequest, func() any { return &KeysRequest{} })
	actors.RegisterWire(WireKeysReply, func() any { return &KeysReply{} })
	actors.RegisterWire(WireCoverKeysRequest, func() any { return &CoverKeysRequest{} })
	actors.RegisterWire(WireCountKeysRequest, func() any { return &CountKeysRequest{} })
	actors.RegisterWire(WireCountKeysReply, func() any { return &CountKeysReply{} })
}

// Objects and clocks inside wire messages travel as msgpack bin holding their own hardened encoding
// (MarshalBinary); msgpack decodes them back through UnmarshalBinary, so every Object or VClock that
// arrives from another node has passed UnmarshalObject's or UnmarshalVClock's checks.
var (
	_ encoding.BinaryMarshaler   = (*Object)(nil)
	_ encoding.BinaryUnmarshaler = (*Object)(nil)
	_ encoding.BinaryMarshaler   = VClock(nil)
	_ encoding.BinaryUnmarshaler = (*VClock)(nil)
)

// UnmarshalBinary replaces o with the object b encodes (see UnmarshalObject).
func (o *Object) UnmarshalBinary(b []byte) error {
	d, err := UnmarshalObject(b)
	if err != nil {
		return err
	}
	*o = *d
	return nil
}

// UnmarshalBinary replaces v with the clock b encodes (see UnmarshalVClock; zero bytes are the empty clock).
func (v *VClock) UnmarshalBinary(b []byte) error {
	d, err := UnmarshalVClock(b)
	if err != nil {
		return err
	}
	*v = d
	return nil
}
