package msgpackrpc

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/mpscan"
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// The hand-written codec paths (parseEnvelope, requestDecoder, responseEncoder) are checked against simple
// references built on vmihailenco/msgpack alone: the decoding the server did before they existed, and the
// Encoder's own output.

// refEncodeResponse is encodeResponse done by the Encoder alone.
func refEncodeResponse(t testing.TB, msgid uint32, result any) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	buf.Write([]byte{0x94, typeResponse})
	if err := enc.EncodeUint(uint64(msgid)); err != nil {
		t.Fatal(err)
	}
	enc.EncodeNil()
	if err := enc.Encode(result); err != nil {
		t.Fatalf("reference encode of %#v: %v", result, err)
	}
	return buf.Bytes()
}

type namedBytes []byte

type namedInt int32

// edgeValues are scalars at the edges of every msgpack size class, and types the Encoder handles itself.
func edgeValues() []any {
	var vs []any
	for _, n := range []int{0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536} {
		vs = append(vs, strings.Repeat("s", n), bytes.Repeat([]byte{'b'}, n))
	}
	for _, n := range []int64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1,
		math.MaxInt64, -1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64} {
		vs = append(vs, n, int(n), int32(n), int16(n), int8(n), uint64(n), uint32(n), uint16(n), uint8(n), uint(n))
	}
	vs = append(vs, nil, true, false, float32(1.5), float32(math.Inf(-1)), 2.25, math.NaN(), []byte(nil),
		[]byte{}, []any(nil), []any{}, map[string]any(nil), map[string]any{},
		// Handed to the Encoder: named types, a time, a struct, a typed map and slice, an *Error.
		namedBytes("nb"), namedInt(-7), time.Unix(1700000000, 5).UTC(), time.Duration(3),
		structResult{A: 1, B: []byte("x"), C: "y"}, map[string]string{"k": "v"}, []string{"a"},
		[]int{1, 2}, &Error{Code: CodeNotFound, Message: "m", Fields: map[string]any{"need": 2}})
	return vs
}

// randomValue builds a result of the kinds handlers return: nested []any and map[string]any (one key
// each, so the bytes do not depend on map order) of edge values.
func randomValue(r *rand.Rand, vs []any, depth int) any {
	switch k := r.IntN(6); {
	case depth > 3 || k < 3:
		return vs[r.IntN(len(vs))]
	case k < 5:
		a := make([]any, r.IntN(18))
		for i := range a {
			a[i] = randomValue(r, vs, depth+1)
		}
		return a
	default:
		return map[string]any{strings.Repeat("k", r.IntN(40)): randomValue(r, vs, depth+1)}
	}
}

func TestEncodeValueMatchesMsgpack(t *testing.T) {
	for _, v := range edgeValues() {
		for _, res := range []any{v, []any{v}, map[string]any{"k": v}} {
			got, want := mustEncode(t, 7, res), refEncodeResponse(t, 7, res)
			if !bytes.Equal(got, want) {
				t.Fatalf("%#v:\n got %x\nwant %x", res, got, want)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	var vs []any // the edge values but the longest, which the loop above covers
	for _, v := range edgeValues() {
		if s, ok := v.(string); ok && len(s) > 256 {
			continue
		}
		if b, ok := v.([]byte); ok && len(b) > 256 {
			continue
		}
		vs = append(vs, v)
	}
	for i := range 1000 {
		v := randomValue(r, vs, 0)
		msgid := uint32(r.Uint64() >> r.IntN(64))
		if got, want := mustEncode(t, msgid, v), refEncodeResponse(t, msgid, v); !bytes.Equal(got, want) {
			t.Fatalf("case %d, %#v:\n got %x\nwant %x", i, v, got, want)
		}
	}
	// Maps of several keys: the order is the map's, so compare what decodes.
	m := map[string]any{"values": []any{[]byte("v")}, "n": 300, "s": "x", "m": map[string]any{"a": 1, "b": nil}}
	got, want := mustEncode(t, 1, m), refEncodeResponse(t, 1, m)
	if len(got) != len(want) || !reflect.DeepEqual(decodeResponse(t, got), decodeResponse(t, want)) {
		t.Fatalf("map:\n got %x\nwant %x", got, want)
	}
}

func mustEncode(t testing.TB, msgid uint32, v any) []byte {
	var buf bytes.Buffer
	if err := encodeResponse(nil, &buf, msgid, nil, v); err != nil {
		t.Fatalf("encode %#v: %v", v, err)
	}
	return buf.Bytes()
}

// checkDecodeMatchesReference decodes frame (which must have passed mpscan) both ways and compares.
func checkDecodeMatchesReference(t *testing.T, d *requestDecoder, frame []byte) {
	t.Helper()
	var rd bytes.Reader
	dec := msgpack.NewDecoder(nil)
	wm, wenv, werr := refDecodeMessage(dec, &rd, frame)
	gm, genv, gerr := d.decode(frame)
	if gm.typ != wm.typ || gm.msgid != wm.msgid || gm.method != wm.method || !sameValue(gm.params, wm.params) {
		t.Fatalf("frame %x: message %#v, want %#v", frame, gm, wm)
	}
	if genv != wenv {
		t.Fatalf("frame %x: envelope %+v, want %+v", frame, genv, wenv)
	}
	if (gerr == nil) != (werr == nil) || (gerr != nil && !reflect.DeepEqual(gerr, werr)) {
		t.Fatalf("frame %x: error %v, want %v", frame, gerr, werr)
	}
}

// sameValue is reflect.DeepEqual, but for NaN, which equals NaN here.
func sameValue(a, b any) bool {
	return reflect.DeepEqual(a, b) || fmt.Sprintf("%#v", a) == fmt.Sprintf("%#v", b) // NB: fmt sorts map keys
}

// envelopeInputs are message heads of every shape, cut at every byte below.
func envelopeInputs(t testing.TB) [][]byte {
	ins := [][]byte{
		request(t, 1, "echo", []byte("k"), "v", 1, map[string]any{"w": 2}),
		request(t, math.MaxUint32, "put", []byte("k"), bytes.Repeat([]byte("v"), 300), nil, map[string]any{}),
		mustMarshal(t, []any{0, -1, "m", []any{}}),
		mustMarshal(t, []any{0, uint64(math.MaxUint32 + 1), "m", []any{}}),
		mustMarshal(t, []any{0, uint64(math.MaxUint64), "m", []any{}}),
		mustMarshal(t, []any{0, 1.5, "m", []any{}}),
		mustMarshal(t, []any{0, 1, "m"}),
		mustMarshal(t, []any{0, 1, "m", []any{}, 5}),
		mustMarshal(t, []any{0, 1, 7, []any{}}),
		mustMarshal(t, []any{0, 1, nil, []any{}}),
		mustMarshal(t, []any{0, 1, []byte("binmethod"), nil}),
		mustMarshal(t, []any{0, 1, strings.Repeat("m", 300), []any{1}}),
		mustMarshal(t, []any{0, 1, "", []any{}}),
		mustMarshal(t, []any{0, 1, "m", map[string]any{}}),
		mustMarshal(t, []any{0, 1, "m", "notarray"}),
		mustMarshal(t, []any{1, 5, nil, nil}),
		mustMarshal(t, []any{2, "ping", []any{}}),
		mustMarshal(t, []any{2, "ping", []any{1, 2}}),
		mustMarshal(t, []any{2, "ping", 3}),
		mustMarshal(t, []any{2, "ping"}),
		mustMarshal(t, []any{3, 1, "m", []any{}}),
		mustMarshal(t, []any{int16(-300), 1}),
		mustMarshal(t, []any{}),
		mustMarshal(t, map[string]any{"a": 1}),
		mustMarshal(t, "str"),
		mustMarshal(t, []any{0, 1, "m", []any{map[int]any{1: 2}}}),
		mustMarshal(t, []any{0, 1, "m", []any{map[string]any{"t": time.Unix(1, 0)}}}),
		h("94 00 cd 01 00 c4 04 70 69 6e 67 dc 00 02 c5 00 03 61 62 63 ce 00 01 00 00"),
		h("dd 00 00 00 04 d3 00 00 00 00 00 00 00 00 cf 00 00 00 00 00 00 00 09 a1 6d 90"),
		h("94 00 01 a1 6d 91 d4 05 00"), // an unknown ext type in params
		h("94 00 01 a1 6d 91 82 01 02 a1 6b 03"),
	}
	for _, c := range []byte{msgpcode.Uint8, msgpcode.Uint16, msgpcode.Uint32, msgpcode.Uint64,
		msgpcode.Int8, msgpcode.Int16, msgpcode.Int32, msgpcode.Int64} {
		b := []byte{0x94, 0x00, c}
		b = append(b, bytes.Repeat([]byte{0x80}, 8)[:1<<((c-msgpcode.Uint8)%4)]...)
		ins = append(ins, append(b, 0xa1, 'm', 0x90))
	}
	return ins
}

func TestParseEnvelopeMatchesReference(t *testing.T) {
	dec := msgpack.NewDecoder(nil)
	var rd bytes.Reader
	for _, in := range envelopeInputs(t) {
		for n := 0; n <= len(in) && n < 64; n++ {
			b := in[:n]
			rd.Reset(b)
			dec.Reset(&rd)
			if got, _ := parseEnvelope(b); got != refReadEnvelope(dec) {
				t.Fatalf("%x: envelope %+v, want %+v", b, got, refReadEnvelope(dec))
			}
		}
	}
}

func TestDecodeMatchesReference(t *testing.T) {
	var d requestDecoder
	for _, in := range envelopeInputs(t) {
		if n, err := mpscan.Scan(in, mpscan.Limits{}); err == nil {
			checkDecodeMatchesReference(t, &d, in[:n])
		}
	}
}

// FuzzDecodeMatchesReference: on every frame mpscan accepts, the hand-written decoding gives what the
// reference gives: message, envelope, and error text.
func FuzzDecodeMatchesReference(f *testing.F) {
	for _, in := range envelopeInputs(f) {
		f.Add(in)
	}
	var d requestDecoder
	f.Fuzz(func(t *testing.T, b []byte) {
		dec := msgpack.NewDecoder(nil)
		var rd bytes.Reader
		rd.Reset(b)
		dec.Reset(&rd)
		if got, _ := parseEnvelope(b); got != refReadEnvelope(dec) {
			t.Fatalf("%x: envelope %+v, want %+v", b, got, refReadEnvelope(dec))
		}
		n, err := mpscan.Scan(b, mpscan.Limits{MaxBytes: 1 << 16, MaxElems: 1024})
		if err != nil {
			return
		}
		checkDecodeMatchesReference(t, &d, b[:n])
	})
}

// The reference decoding: the server's before the hand-written path (but for envelope.check, shared).

func refReadEnvelope(dec *msgpack.Decoder) envelope {
	env := envelope{n: -1, typ: -1}
	c, err := dec.PeekCode()
	if err != nil || !(msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32) {
		return env
	}
	if env.n, err = dec.DecodeArrayLen(); err != nil {
		env.n = -1
		return env
	}
	if env.n < 1 {
		return env
	}
	typ, ok := refDecodeInt(dec)
	if !ok {
		return env
	}
	env.typ = typ
	if (typ == typeRequest || typ == typeResponse) && env.n >= 2 {
		if id, ok := refDecodeInt(dec); ok && id >= 0 && id <= math.MaxUint32 {
			env.msgid, env.hasID = uint32(id), true
		}
	}
	return env
}

func refDecodeInt(dec *msgpack.Decoder) (int64, bool) {
	c, err := dec.PeekCode()
	if err != nil || !(msgpcode.IsFixedNum(c) || (c >= msgpcode.Uint8 && c <= msgpcode.Int64)) {
		return 0, false
	}
	v, err := dec.DecodeInt64()
	return v, err == nil
}

func refDecodeMessage(dec *msgpack.Decoder, rd *bytes.Reader, frame []byte) (message, envelope, *Error) {
	rd.Reset(frame)
	dec.Reset(rd)
	env := refReadEnvelope(dec)
	m := message{typ: int(env.typ), msgid: env.msgid}
	if err := env.check(); err != nil {
		return m, env, err
	}
	c, err := dec.PeekCode()
	if err != nil || !(msgpcode.IsString(c) || msgpcode.IsBin(c)) {
		return m, env, badRequest("method must be a str or bin")
	}
	if m.method, err = dec.DecodeString(); err != nil {
		return m, env, badRequest("method: %v", err)
	}
	c, err = dec.PeekCode()
	switch {
	case err != nil:
		return m, env, badRequest("params: %v", err)
	case c == msgpcode.Nil:
		// Some clients send nil for no params.
	case !(msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32):
		return m, env, badRequest("params must be an array")
	case m.typ == typeNotification:
		// Not decoded: the only notification served (ping) takes none.
	default:
		if m.params, err = dec.DecodeSlice(); err != nil {
			return m, env, badRequest("params: %v", err)
		}
	}
	return m, env, nil
}
