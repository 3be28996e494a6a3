package msgpackrpc

import (
	"bytes"
	"testing"
)

// Codec micro-benchmarks: one request decoded and one response encoded, without sockets, so the figures
// (and allocations) are the codec's alone.

func BenchmarkDecodeRequest(b *testing.B) {
	for _, bc := range []struct {
		name   string
		params []any
	}{
		{"get", []any{[]byte("user:1234567890"), map[string]any{"r": 2}}},
		{"put", []any{[]byte("user:1234567890"), bytes.Repeat([]byte("v"), 100), nil, map[string]any{"w": 2}}},
	} {
		frame := request(b, 12345, bc.name, bc.params...)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			var d requestDecoder
			for b.Loop() {
				m, _, perr := d.decode(frame)
				if perr != nil || m.method != bc.name {
					b.Fatalf("%+v %v", m, perr)
				}
			}
		})
	}
}

func BenchmarkEncodeResponse(b *testing.B) {
	value := bytes.Repeat([]byte("v"), 100)
	for _, bc := range []struct {
		name   string
		result any
		rerr   *Error
	}{
		{"true", true, nil},
		{"get", map[string]any{
			"values":   []any{value},
			"metadata": []any{map[string]any{"flags": uint32(0), "expiry": int64(0), "last_modified": int64(1763776000123456789)}},
			"context":  bytes.Repeat([]byte{0x93}, 32),
		}, nil},
		{"echo", []any{[]byte("user:1234567890"), value, nil, map[string]any{"w": int8(2)}}, nil},
		{"error", nil, &Error{Code: CodeNotFound, Message: "not found"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var buf bytes.Buffer
			for b.Loop() {
				buf.Reset()
				if err := encodeSafely(&buf, 12345, bc.rerr, bc.result); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(buf.Len()))
		})
	}
}
