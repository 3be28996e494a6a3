package node

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/client"
)

func rpcTestClient(t *testing.T, n *Node) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.Config{Seeds: []string{n.RPCAddr()}, DisableRouting: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rpcValues reads key over msgpack-RPC and returns its live values, sorted (nil when not found).
func rpcValues(t *testing.T, c *client.Client, key string) []string {
	t.Helper()
	var res struct {
		Values [][]byte `msgpack:"values"`
	}
	err := c.Call(context.Background(), "get", []any{[]byte(key), map[string]any{}}, &res, true)
	if errors.Is(err, client.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	var out []string
	for _, v := range res.Values {
		out = append(out, string(v))
	}
	slices.Sort(out)
	return out
}

// TestRPCWritesWithoutContext: a put without a context supersedes nothing, so two of them leave two
// siblings even when one vnode coordinates both; {"blind": true} asks for the write that supersedes what
// the coordinating vnode holds; a delete without a context deletes what it reads.
func TestRPCWritesWithoutContext(t *testing.T) {
	n := startTestNode(t, nil)
	c := rpcTestClient(t, n)
	ctx := context.Background()
	call := func(method string, params ...any) error {
		return c.Call(ctx, method, params, nil, false)
	}
	for _, v := range []string{"a", "b"} {
		if err := call("put", []byte("k"), []byte(v), nil, map[string]any{}); err != nil {
			t.Fatalf("put %s: %v", v, err)
		}
	}
	if got := rpcValues(t, c, "k"); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("after two puts without a context: %q, want both as siblings", got)
	}
	if err := call("put", []byte("k"), []byte("c"), nil, map[string]any{"blind": true}); err != nil {
		t.Fatalf("blind put: %v", err)
	}
	if got := rpcValues(t, c, "k"); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("after a blind put: %q, want c alone", got)
	}
	if err := call("put", []byte("k"), []byte("d"), nil, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	if err := call("delete", []byte("k"), nil, map[string]any{}); err != nil {
		t.Fatalf("delete without a context: %v", err)
	}
	if got := rpcValues(t, c, "k"); got != nil {
		t.Fatalf("after a delete without a context: %q, want not found", got)
	}
	if err := call("delete", []byte("never-written"), nil, map[string]any{}); err != nil {
		t.Fatalf("delete of a missing key: %v", err)
	}
	if err := call("put", []byte("k"), []byte("e"), nil, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	if err := call("delete", []byte("k"), nil, map[string]any{"blind": true}); err != nil {
		t.Fatalf("blind delete: %v", err)
	}
	if got := rpcValues(t, c, "k"); got != nil {
		t.Fatalf("after a blind delete: %q, want not found", got)
	}

	var ctxRes struct {
		Context []byte `msgpack:"context"`
	}
	if err := call("put", []byte("k"), []byte("f"), nil, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Call(ctx, "get", []any{[]byte("k"), map[string]any{}}, &ctxRes, true); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method string
		params []any
	}{
		{"put", []any{[]byte("k"), []byte("g"), ctxRes.Context, map[string]any{"blind": true}}},
		{"delete", []any{[]byte("k"), ctxRes.Context, map[string]any{"blind": true}}},
		{"put", []any{[]byte("k"), []byte("g"), nil, map[string]any{"blind": "yes"}}},
	} {
		err := c.Call(ctx, tc.method, tc.params, nil, false)
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Code != "bad_request" {
			t.Errorf("%s %v: %v, want bad_request", tc.method, tc.params, err)
		}
	}
	if got := rpcValues(t, c, "k"); !slices.Equal(got, []string{"f"}) {
		t.Fatalf("after the refused writes: %q, want f", got)
	}
}
