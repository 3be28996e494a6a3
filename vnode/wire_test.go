package vnode

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gokai-kv/gokai/aae"
	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/internal/mpscan"
)

// TestWireRegistrationsFixed pins the codes of the framework's messages: they are on the wire between
// nodes, append-only (1..7 are KV's, pinned in package kv).
func TestWireRegistrationsFixed(t *testing.T) {
	for code, m := range map[actors.WireType]any{
		8: &HandoffBatch{}, 9: &HandoffAck{}, 10: &HandoffForward{}, 11: &HandoffForwardAck{},
		12: &HandoffCommand{}, 13: &CoverageRequest{}, 14: &CoverageChunk{}, 15: &CoverageAck{}, 16: &CoverageCancel{},
		24: &AAEQuery{}, 25: &AAEAnswer{},
	} {
		if got, ok := actors.WireTypeOf(m); !ok || got != code {
			t.Errorf("%T: wire type %d, %v; want %d", m, got, ok, code)
		}
	}
}

func roundTrip(t *testing.T, msg any) any {
	t.Helper()
	bv, err := actors.EncodeWire(msg)
	if err != nil {
		t.Fatalf("encode %T: %v", msg, err)
	}
	out, err := actors.DecodeWire(bv, mpscan.Limits{})
	if err != nil {
		t.Fatalf("decode %T: %v", msg, err)
	}
	return out
}

// TestEnvelopesCarryCommands: HandoffCommand and CoverageRequest carry any registered message across the
// wire, and the other coverage messages round-trip.
func TestEnvelopesCarryCommands(t *testing.T) {
	msgs := []any{
		&HandoffCommand{V: 1, Seq: 42, Cmd: &CoverageAck{V: 1, ID: 7, Seq: 3}, ReplyTo: actor.NewPID("10.0.0.1:7000", "future$12")},
		&HandoffCommand{V: 1, Seq: 1, Cmd: &HandoffForwardAck{V: 1, Seq: 2}},
		&CoverageRequest{V: 1, ID: 1<<63 + 5, Filter: Filter{Q: 64, Partitions: []int{3, 4, 5}}, Cmd: &CoverageCancel{V: 1, ID: 2},
			MaxItems: 10, MaxBytes: 1 << 20, Window: 3, AckTimeout: 2 * time.Second},
		&CoverageChunk{V: 1, ID: 9, Partition: 63, Seq: 4, Items: [][]byte{[]byte("a"), {}, []byte("ccc")}, Done: true, Err: "x"},
		&CoverageAck{V: 1, ID: 9, Seq: 4, Stop: true},
		&CoverageCancel{V: 1, ID: 9},
		&AAEQuery{V: 1, ID: 1<<64 - 1, Source: 63, Kind: 4, Branches: []int{0, 127}, Segments: []int{1, 2, 16383}},
		&AAEAnswer{V: 1, ID: 3, Partition: 5, State: "built", Root: 1 << 63, Branches: []uint64{1, 2}, Segments: []uint64{3},
			Keys: []aae.KeyVersion{{Key: []byte("k"), Version: 9}, {Key: []byte{}, Version: 1}}, Err: "e"},
	}
	for _, m := range msgs {
		got := roundTrip(t, m)
		if hc, ok := got.(*HandoffCommand); ok && hc.ReplyTo != nil {
			want := m.(*HandoffCommand).ReplyTo
			if hc.ReplyTo.Address != want.Address || hc.ReplyTo.Id != want.Id {
				t.Fatalf("ReplyTo %v, want %v", hc.ReplyTo, want)
			}
			c := *hc
			c.ReplyTo = want
			got = &c
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip of %T:\n got %+v\nwant %+v", m, got, m)
		}
	}
	// A command that cannot cross the wire fails the encode (the transport then refuses the message).
	type local struct{}
	if _, err := actors.EncodeWire(&HandoffCommand{V: 1, Cmd: &local{}}); !errors.Is(err, actors.ErrWireUnregistered) {
		t.Fatalf("unregistered command: %v", err)
	}
	if _, err := actors.EncodeWire(&CoverageRequest{V: 1}); err == nil {
		t.Fatal("a coverage request without a command encoded")
	}
}

// nestedBytes builds a HandoffCommand envelope nested depth times, by hand (encoding refuses nothing, the
// decoder must): a hostile peer's message.
func nestedBytes(t testing.TB, depth int) []byte {
	inner, err := actors.EncodeWire(&CoverageAck{V: 1, ID: 1})
	if err != nil {
		t.Fatal(err)
	}
	b := inner.Value
	for range depth {
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		enc.UseCompactInts(true)
		_ = enc.EncodeArrayLen(3)
		_ = enc.EncodeUint(actors.WireVersion)
		_ = enc.EncodeUint(uint64(WireHandoffCommand))
		if err := enc.Encode(&handoffCommandWire{V: 1, Seq: 1, Cmd: b}); err != nil {
			t.Fatal(err)
		}
		b = buf.Bytes()
	}
	return b
}

// TestNestedEnvelopesRefused: an envelope inside an envelope is refused without decoding the inner one, so
// no depth of nesting reaches the decoder's recursion.
func TestNestedEnvelopesRefused(t *testing.T) {
	if m, err := actors.DecodeWire(&wrapperspb.BytesValue{Value: nestedBytes(t, 1)}, mpscan.Limits{}); err != nil {
		t.Fatalf("one level: %v", err)
	} else if _, ok := m.(*HandoffCommand).Cmd.(*CoverageAck); !ok {
		t.Fatalf("one level decoded to %+v", m)
	}
	for _, depth := range []int{2, 1000} {
		_, err := actors.DecodeWire(&wrapperspb.BytesValue{Value: nestedBytes(t, depth)}, mpscan.Limits{MaxBytes: 64 << 20})
		if !errors.Is(err, errNested) {
			t.Fatalf("depth %d: %v, want %v", depth, err, errNested)
		}
	}
}

// FuzzDecodeEnvelopes: no bytes make the framework's envelopes panic or allocate beyond their size.
func FuzzDecodeEnvelopes(f *testing.F) {
	for _, m := range []any{
		&HandoffCommand{V: 1, Seq: 42, Cmd: &CoverageAck{V: 1, ID: 7, Seq: 3}, ReplyTo: actor.NewPID("a:1", "b")},
		&CoverageRequest{V: 1, ID: 5, Filter: Filter{Q: 64, Partitions: []int{3}}, Cmd: &CoverageCancel{V: 1, ID: 2}},
		&CoverageChunk{V: 1, ID: 9, Items: [][]byte{[]byte("a")}},
	} {
		bv, err := actors.EncodeWire(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(bv.Value)
	}
	f.Add(nestedBytes(f, 3))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := actors.DecodeWire(&wrapperspb.BytesValue{Value: b}, mpscan.Limits{MaxBytes: 1 << 16})
		if err != nil {
			return
		}
		if r, ok := m.(*CoverageRequest); ok {
			_ = r.Filter.Validate()
			r.normalize()
		}
	})
}
