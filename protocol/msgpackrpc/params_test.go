package msgpackrpc

import (
	"bytes"
	"context"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func TestBytesParams(t *testing.T) {
	params := []any{[]byte("bin"), "str", nil, 5}
	tests := []struct {
		i       int
		opt     bool
		want    []byte
		wantErr string
	}{
		{0, false, []byte("bin"), ""},
		{1, false, []byte("str"), ""},
		{2, false, nil, "bad_request: parameter p: want bin or str, got nil"},
		{3, false, nil, "bad_request: parameter p: want bin or str, got int"},
		{4, false, nil, "bad_request: missing parameter 5 (p)"},
		{0, true, []byte("bin"), ""},
		{2, true, nil, ""},
		{3, true, nil, "bad_request: parameter p: want bin or str, got int"},
		{4, true, nil, ""},
	}
	for _, tt := range tests {
		f := Bytes
		if tt.opt {
			f = OptBytes
		}
		got, err := f(params, tt.i, "p")
		if !bytes.Equal(got, tt.want) || errString(err) != tt.wantErr {
			t.Errorf("opt=%v i=%d: %q, %v; want %q, %q", tt.opt, tt.i, got, err, tt.want, tt.wantErr)
		}
		var e *Error
		if err != nil && (!errors.As(err, &e) || e.Code != CodeBadRequest) {
			t.Errorf("error %v is not a bad_request *Error", err)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestMapIntBool(t *testing.T) {
	m := map[string]any{"a": 1}
	if got, err := Map([]any{m}, 0, "o"); err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("Map = %v, %v", got, err)
	}
	for _, p := range [][]any{{}, {nil}} {
		if got, err := Map(p, 0, "o"); err != nil || got != nil {
			t.Fatalf("Map(%v) = %v, %v", p, got, err)
		}
	}
	if _, err := Map([]any{"x"}, 0, "o"); errString(err) != "bad_request: parameter o: want a map, got str" {
		t.Fatalf("Map(str) = %v", err)
	}

	opts := map[string]any{
		"i8": int8(-5), "i16": int16(-300), "i32": int32(-70000), "i64": int64(math.MinInt64),
		"u8": uint8(200), "u16": uint16(60000), "u32": uint32(4e9), "u64": uint64(math.MaxInt64),
		"big": uint64(math.MaxUint64), "f": 1.0, "s": "1", "nil": nil, "t": true, "bin": []byte{1},
	}
	ints := []struct {
		key  string
		want int64
		ok   bool
		err  bool
	}{
		{"i8", -5, true, false}, {"i16", -300, true, false}, {"i32", -70000, true, false},
		{"i64", math.MinInt64, true, false}, {"u8", 200, true, false}, {"u16", 60000, true, false},
		{"u32", 4e9, true, false}, {"u64", math.MaxInt64, true, false}, {"big", 0, true, true},
		{"f", 0, true, true}, {"s", 0, true, true}, {"nil", 0, false, false}, {"absent", 0, false, false},
	}
	for _, tt := range ints {
		got, ok, err := Int(opts, tt.key)
		if got != tt.want || ok != tt.ok || (err != nil) != tt.err {
			t.Errorf("Int(%s) = %d, %v, %v", tt.key, got, ok, err)
		}
	}
	if got, ok, err := Int(nil, "x"); got != 0 || ok || err != nil {
		t.Errorf("Int(nil map) = %d, %v, %v", got, ok, err)
	}
	if b, ok, err := Bool(opts, "t"); !b || !ok || err != nil {
		t.Errorf("Bool(t) = %v, %v, %v", b, ok, err)
	}
	if _, ok, err := Bool(opts, "nil"); ok || err != nil {
		t.Errorf("Bool(nil) = %v, %v", ok, err)
	}
	if _, _, err := Bool(opts, "bin"); errString(err) != "bad_request: option bin: want a bool, got bin" {
		t.Errorf("Bool(bin) = %v", err)
	}
}

func TestErrorWireForm(t *testing.T) {
	e := &Error{Code: CodeTimeout, Message: "2 of 3", Fields: map[string]any{"need": 2, "got": 1, "message": "x"}}
	b, err := msgpack.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := msgpack.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	need, _, _ := Int(m, "need")
	got, _, _ := Int(m, "got")
	if m["code"] != "timeout" || m["message"] != "2 of 3" || need != 2 || got != 1 || len(m) != 4 {
		t.Fatalf("wire form %v", m)
	}
	var back Error
	if err := msgpack.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Code != e.Code || back.Message != e.Message || len(back.Fields) != 2 {
		t.Fatalf("round trip = %+v", back)
	}
	if err := msgpack.Unmarshal(mustMarshal(t, map[string]any{"message": "x"}), &back); err == nil {
		t.Fatal("decoded an error map without a code")
	}
	if got := e.Error(); got != "timeout: 2 of 3" {
		t.Fatalf("Error() = %q", got)
	}
	if got := ErrUnknownMethod("frob").Error(); got != `unknown_method: no method "frob"` {
		t.Fatalf("ErrUnknownMethod = %q", got)
	}
}

func TestErrorFor(t *testing.T) {
	var nilErr *Error
	for _, tc := range []struct {
		err  error
		code string
	}{
		{Errorf(CodeOverload, "busy"), CodeOverload},
		{errors.Join(errors.New("x"), Errorf(CodeNotFound, "k")), CodeNotFound},
		{context.DeadlineExceeded, CodeTimeout},
		{errors.New("disk on fire"), CodeInternal},
		{nilErr, CodeInternal},
	} {
		if got := errorFor(tc.err); got.Code != tc.code {
			t.Errorf("errorFor(%v) = %v, want %s", tc.err, got, tc.code)
		}
	}
}

// TestEncodeResponse covers the fallback when a result cannot be encoded.
func TestEncodeResponse(t *testing.T) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	if err := encodeResponse(enc, &buf, 5, nil, map[string]any{"t": time.Unix(1, 0).UTC(), "v": []byte("x")}); err != nil {
		t.Fatal(err)
	}
	r := decodeResponse(t, buf.Bytes())
	if r.msgid != 5 || r.err != nil {
		t.Fatalf("response = %+v", r)
	}
	buf.Reset()
	if err := encodeResponse(enc, &buf, 6, nil, []any{1, func() {}}); err == nil {
		t.Fatal("encoded a func")
	}
	if r := decodeResponse(t, buf.Bytes()); r.msgid != 6 || r.code() != CodeInternal {
		t.Fatalf("fallback response = %+v", r)
	}
	buf.Reset()
	if err := encodeSafely(&buf, 7, nil, panicky{}); err == nil {
		t.Fatal("no error from a panicking encoder")
	}
	if r := decodeResponse(t, buf.Bytes()); r.msgid != 7 || r.code() != CodeInternal {
		t.Fatalf("panic fallback = %+v", r)
	}
}

type panicky struct{}

func (panicky) EncodeMsgpack(*msgpack.Encoder) error { panic("encoder bug") }
