package counter

import (
	"context"
	"errors"
	"strings"
	"testing"

	rpc "github.com/gokai-kv/gokai/protocol/msgpackrpc"
)

// TestMethods: counter.incr and counter.value as the node serves them, on params as msgpack-RPC decodes
// them (str or bin names, the narrowest int types), with every bound answered by a clear error.
func TestMethods(t *testing.T) {
	c := startCluster(t, NewVnode)
	m := methods{c: c.clients["n1"], stats: &stats{}}
	ctx := context.Background()
	call := func(f func(context.Context, []any) (any, error), params ...any) (any, string) {
		res, err := f(ctx, params)
		if err == nil {
			return res, ""
		}
		var re *rpc.Error
		if !errors.As(err, &re) {
			t.Fatalf("%v: not an rpc error: %v", params, err)
		}
		return res, re.Code
	}
	for _, tc := range []struct {
		params []any
		code   string
	}{
		{[]any{"hits", int8(5)}, ""},
		{[]any{[]byte("hits"), int64(-2), map[string]any{"w": int8(3)}}, ""},
		{[]any{"hits", uint64(MaxBy)}, ""},
		{[]any{"hits", int64(-MaxBy)}, ""},
		{[]any{"hits", int64(MaxBy + 1)}, rpc.CodeBadRequest},
		{[]any{"hits", int64(-MaxBy - 1)}, rpc.CodeBadRequest},
		{[]any{"hits", 1.5}, rpc.CodeBadRequest},
		{[]any{"hits", "1"}, rpc.CodeBadRequest},
		{[]any{"hits"}, rpc.CodeBadRequest},
		{[]any{"", int8(1)}, rpc.CodeBadRequest},
		{[]any{strings.Repeat("x", MaxNameLen+1), int8(1)}, rpc.CodeBadRequest},
		{[]any{int8(1), int8(1)}, rpc.CodeBadRequest},
		{[]any{"hits", int8(1), map[string]any{"w": int8(4)}}, rpc.CodeBadRequest},
		{[]any{"hits", int8(1), map[string]any{"w": int8(-1)}}, rpc.CodeBadRequest},
		{[]any{"hits", int8(1), "opts"}, rpc.CodeBadRequest},
		{[]any{"hits", int8(1), nil, nil}, rpc.CodeBadRequest},
	} {
		res, code := call(m.incr, tc.params...)
		if code != tc.code || (code == "" && res != true) {
			t.Errorf("incr%v = %v, %q; want code %q", tc.params, res, code, tc.code)
		}
	}
	if res, code := call(m.value, "hits"); code != "" || res != int64(5-2+MaxBy-MaxBy) {
		t.Fatalf("value = %v %q, want 3", res, code)
	}
	if res, code := call(m.value, []byte("hits"), map[string]any{"r": int8(3), "notfound_ok": true, "timeout_ms": int16(2000)}); code != "" || res != int64(3) {
		t.Fatalf("value with opts = %v %q", res, code)
	}
	for _, params := range [][]any{{}, {"hits", map[string]any{"r": int8(9)}}, {"hits", map[string]any{"notfound_ok": int8(1)}}, {"hits", nil, nil}} {
		if _, code := call(m.value, params...); code != rpc.CodeBadRequest {
			t.Errorf("value%v: code %q, want bad_request", params, code)
		}
	}
	// Overflow is its own code, and changes nothing.
	for range 1024 {
		if _, code := call(m.incr, "big", int64(MaxBy)); code != "" {
			t.Fatal(code)
		}
	}
	if _, code := call(m.incr, "big", int64(MaxBy)); code != CodeOutOfRange {
		t.Fatalf("overflow: code %q", code)
	}
	if res, _ := call(m.value, "big"); res != int64(1024*MaxBy) {
		t.Fatalf("value after a refused overflow: %v", res)
	}
	if st := m.stats.list(); st[0].Value != int64(4+1024) || st[1].Value != int64(1) {
		t.Fatalf("stats %+v", st)
	}
}
