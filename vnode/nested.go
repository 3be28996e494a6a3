package vnode

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/internal/mpscan"
)

// The framework's envelopes (HandoffCommand, CoverageRequest) carry a behaviour's command, which can be any
// message registered for the wire. Between nodes the command travels inside the envelope as its own wire
// envelope (actors.EncodeWire's bytes, a msgpack bin); in one process the envelope is never encoded and the
// command is passed as is.

// errNested: a framework envelope inside another, refused before decoding (each level would decode the
// next: hostile bytes could nest deep enough to exhaust the stack).
var errNested = errors.New("vnode: a framework envelope cannot carry another")

// encodeNested encodes msg, a registered wire message, for a field of an envelope.
func encodeNested(msg any) ([]byte, error) {
	if msg == nil {
		return nil, errors.New("vnode: envelope without a command")
	}
	bv, err := actors.EncodeWire(msg)
	if err != nil {
		return nil, err
	}
	return bv.Value, nil
}

// decodeNested decodes an envelope field encodeNested made. It refuses a framework envelope without decoding
// it, and bounds the decode like the transport does (the bytes came inside a message the transport checked).
func decodeNested(b []byte) (any, error) {
	code, err := peekWireType(b)
	if err != nil {
		return nil, err
	}
	switch code {
	case WireHandoffCommand, WireCoverageRequest:
		return nil, fmt.Errorf("%w (wire type %d)", errNested, code)
	}
	return actors.DecodeWire(&wrapperspb.BytesValue{Value: b}, mpscan.Limits{MaxBytes: len(b)})
}

// peekWireType reads the type code of a wire envelope [version, code, payload] without decoding it.
func peekWireType(b []byte) (actors.WireType, error) {
	// NB: EncodeWire writes a fixarray of 3, the version as a positive fixint, and the code as compact uint.
	if len(b) < 3 || b[0] != 0x93 || b[1] != actors.WireVersion {
		return 0, fmt.Errorf("%w: nested command is not a version %d envelope", actors.ErrWireMalformed, actors.WireVersion)
	}
	switch c := b[2]; {
	case c < 0x80:
		return actors.WireType(c), nil
	case c == 0xcc && len(b) >= 4:
		return actors.WireType(b[3]), nil
	case c == 0xcd && len(b) >= 5:
		return actors.WireType(uint16(b[3])<<8 | uint16(b[4])), nil
	}
	return 0, fmt.Errorf("%w: nested command has no type code", actors.ErrWireMalformed)
}
