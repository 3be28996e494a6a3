package kv

import (
	"encoding"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/service"
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

// wireMessages are KV's messages on the transport, by code: registered at init (so every process that links
// kv decodes them) and listed in Service's Wire.
var wireMessages = []service.Wire{
	{Code: WireGetRequest, New: func() any { return &GetRequest{} }},
	{Code: WireGetReply, New: func() any { return &GetReply{} }},
	{Code: WirePutRequest, New: func() any { return &PutRequest{} }},
	{Code: WirePutReply, New: func() any { return &PutReply{} }},
	{Code: WireReapRequest, New: func() any { return &ReapRequest{} }},
	{Code: WireKeysRequest, New: func() any { return &KeysRequest{} }},
	{Code: WireKeysReply, New: func() any { return &KeysReply{} }},
	{Code: WireCoverKeysRequest, New: func() any { return &CoverKeysRequest{} }},
	{Code: WireCountKeysRequest, New: func() any { return &CountKeysRequest{} }},
	{Code: WireCountKeysReply, New: func() any { return &CountKeysReply{} }},
}

func init() {
	for _, w := range wireMessages {
		actors.RegisterWire(w.Code, w.New)
	}
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
