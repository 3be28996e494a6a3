package itest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/client"
)

func newRPCClient(t *testing.T, addr string, cfg client.Config) *client.Client {
	t.Helper()
	cfg.Seeds = []string{addr}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// concatResolver merges siblings by joining their values in a stable (sorted) order.
func concatResolver(_ []byte, sib []client.Value) (client.Value, error) {
	parts := make([][]byte, len(sib))
	for i, v := range sib {
		parts[i] = v.Data
	}
	for i := range parts { // tiny insertion sort: sibling order is the node's business
		for j := i; j > 0 && bytes.Compare(parts[j], parts[j-1]) < 0; j-- {
			parts[j], parts[j-1] = parts[j-1], parts[j]
		}
	}
	return client.Value{Data: bytes.Join(parts, []byte("+"))}, nil
}

// TestRPCGoClient drives the real node with the Go client: the Dynamo API end to end.
func TestRPCGoClient(t *testing.T) {
	p := startNode(t, "")
	c := newRPCClient(t, p.rpcAddr, client.Config{Resolver: concatResolver})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("put get delete", func(t *testing.T) {
		key := []byte("basic")
		if _, err := c.Get(ctx, key, nil); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("get missing: %v, want ErrNotFound", err)
		}
		exp := time.Now().Add(time.Hour).Unix()
		if obj, err := c.Put(ctx, key, []byte("v1"), nil, &client.WriteOptions{Flags: 42, Expiry: exp}); err != nil || obj != nil {
			t.Fatalf("put: %+v %v", obj, err)
		}
		obj, err := c.Get(ctx, key, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(obj.Values) != 1 || string(obj.Values[0].Data) != "v1" || obj.Values[0].Flags != 42 ||
			obj.Values[0].Expiry != exp || obj.Values[0].LastModified == 0 || len(obj.Context) == 0 {
			t.Fatalf("get: %+v", obj)
		}
		if err := c.Delete(ctx, key, obj.Context, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Get(ctx, key, nil); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("get deleted: %v", err)
		}
		// A delete without a context of a missing key is fine; a put without a context after a delete is
		// live again (it is a sibling of the tombstone, and reads show only live values).
		if err := c.Delete(ctx, []byte("never-written"), nil, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Put(ctx, key, []byte("again"), nil, nil); err != nil {
			t.Fatal(err)
		}
		if obj, err := c.Get(ctx, key, nil); err != nil || string(obj.Values[0].Data) != "again" {
			t.Fatalf("get after re-put: %+v %v", obj, err)
		}
	})

	t.Run("siblings and reconciliation", func(t *testing.T) {
		key := []byte("cart")
		if _, err := c.Put(ctx, key, []byte("base"), nil, nil); err != nil {
			t.Fatal(err)
		}
		base, err := c.Get(ctx, key, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Two writers that read the same version: both writes survive as siblings.
		for _, v := range []string{"apples", "pears"} {
			if _, err := c.Put(ctx, key, []byte(v), base.Context, nil); err != nil {
				t.Fatal(err)
			}
		}
		sib, err := c.Get(ctx, key, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(sib.Values) != 2 {
			t.Fatalf("want 2 siblings, got %d: %+v", len(sib.Values), sib)
		}
		got := map[string]bool{string(sib.Values[0].Data): true, string(sib.Values[1].Data): true}
		if !got["apples"] || !got["pears"] || len(sib.Context) == 0 {
			t.Fatalf("siblings %+v", sib)
		}
		// Semantic reconciliation: the resolver merges, GetResolved writes back under the read's context.
		v, vctx, err := c.GetResolved(ctx, key, nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(v.Data) != "apples+pears" || len(vctx) == 0 {
			t.Fatalf("resolved %q ctx %x", v.Data, vctx)
		}
		after, err := c.Get(ctx, key, nil)
		if err != nil || len(after.Values) != 1 || string(after.Values[0].Data) != "apples+pears" {
			t.Fatalf("after reconciliation: %+v %v", after, err)
		}
		// A put with the context GetResolved returned supersedes the merged value: one value.
		res, err := c.Put(ctx, key, []byte("checkout"), vctx, &client.WriteOptions{ReturnBody: true})
		if err != nil || len(res.Values) != 1 || string(res.Values[0].Data) != "checkout" {
			t.Fatalf("put over resolved context: %+v %v", res, err)
		}
		// The same by hand: two siblings, then a put with their context leaves one value.
		for _, w := range []string{"x", "y"} {
			if _, err := c.Put(ctx, key, []byte(w), res.Context, nil); err != nil {
				t.Fatal(err)
			}
		}
		two, err := c.Get(ctx, key, nil)
		if err != nil || len(two.Values) != 2 {
			t.Fatalf("second siblings: %+v %v", two, err)
		}
		one, err := c.Put(ctx, key, []byte("x+y"), two.Context, &client.WriteOptions{ReturnBody: true})
		if err != nil || len(one.Values) != 1 || string(one.Values[0].Data) != "x+y" {
			t.Fatalf("merge put: %+v %v", one, err)
		}
	})

	t.Run("per-request quorums", func(t *testing.T) {
		key := []byte("quorum")
		for _, wo := range []*client.WriteOptions{{W: 1}, {W: 3, PW: 3}, {W: 2, PW: 1, Timeout: 2 * time.Second}} {
			if _, err := c.Put(ctx, key, []byte(fmt.Sprint(wo.W)), nil, wo); err != nil {
				t.Fatalf("put %+v: %v", wo, err)
			}
		}
		for _, ro := range []*client.ReadOptions{{R: 1}, {R: 3, PR: 3}, {R: 2, PR: 1, Timeout: 2 * time.Second}} {
			if _, err := c.Get(ctx, key, ro); err != nil {
				t.Fatalf("get %+v: %v", ro, err)
			}
		}
		if err := c.Delete(ctx, key, nil, &client.WriteOptions{W: 3}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			call func() error
		}{
			{"r over n", func() error { _, err := c.Get(ctx, []byte("k"), &client.ReadOptions{R: 4}); return err }},
			{"r out of range", func() error { _, err := c.Get(ctx, []byte("k"), &client.ReadOptions{R: 99}); return err }},
			{"negative pr", func() error { _, err := c.Get(ctx, []byte("k"), &client.ReadOptions{PR: -1}); return err }},
			{"w over n", func() error {
				_, err := c.Put(ctx, []byte("k"), []byte("v"), nil, &client.WriteOptions{W: 4})
				return err
			}},
			{"negative timeout", func() error {
				_, err := c.Put(ctx, []byte("k"), []byte("v"), nil, &client.WriteOptions{Timeout: -time.Second})
				return err
			}},
			{"bad context", func() error { _, err := c.Put(ctx, []byte("k"), []byte("v"), []byte{0xff, 0}, nil); return err }},
			{"delete bad context", func() error { return c.Delete(ctx, []byte("k"), []byte("junk"), nil) }},
			{"empty key", func() error { _, err := c.Get(ctx, nil, nil); return err }},
		} {
			err := tc.call()
			var e *client.Error
			if !errors.Is(err, client.ErrBadRequest) || !errors.As(err, &e) || e.Message == "" {
				t.Errorf("%s: %v, want bad_request", tc.name, err)
			}
		}
	})

	t.Run("admin", func(t *testing.T) {
		if rtt, err := c.Ping(ctx); err != nil || rtt <= 0 {
			t.Fatalf("ping: %v %v", rtt, err)
		}
		v, err := c.Version(ctx)
		if err != nil || v.Protocol != 1 || v.Version == "" {
			t.Fatalf("version: %+v %v", v, err)
		}
		r, err := c.Ring(ctx)
		if err != nil || r.Q != 64 || len(r.Owners) != 64 || r.N != 3 || r.Version == 0 {
			t.Fatalf("ring: %+v %v", r, err)
		}
		ms, err := c.Members(ctx)
		if err != nil || len(ms) != 1 || ms[0].Name != r.Owners[0] || ms[0].RPCAddr != p.rpcAddr ||
			ms[0].MemcacheAddr != p.mcAddr || ms[0].Status != "up" || ms[0].Partitions != 64 {
			t.Fatalf("members: %+v %v", ms, err)
		}
		pl, err := c.Preflist(ctx, []byte("cart"))
		if err != nil || len(pl) != 3 || !pl[0].Primary || pl[0].Node != ms[0].Name {
			t.Fatalf("preflist: %+v %v", pl, err)
		}
		st, err := c.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if q, ok := st.Int("gokai_ring_q"); !ok || q != 64 {
			t.Fatalf("stats gokai_ring_q: %v", st)
		}
		if n, ok := st.Int("gokai_siblings_seen"); !ok || n < 2 {
			t.Fatalf("stats gokai_siblings_seen: %v", st)
		}
		if st.String("gokai_node") != ms[0].Name {
			t.Fatalf("stats gokai_node: %v", st)
		}
	})
}

// TestRPCGoClientConcurrent: 64 goroutines share one client (one connection per node) and every reply
// reaches its own caller.
func TestRPCGoClientConcurrent(t *testing.T) {
	p := startNode(t, "")
	c := newRPCClient(t, p.rpcAddr, client.Config{PoolSize: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const workers, rounds = 64, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				key := fmt.Appendf(nil, "conc-%d", w)
				val := fmt.Appendf(nil, "w%d-r%d-%s", w, r, bytes.Repeat([]byte{'x'}, w*100))
				obj, err := c.Get(ctx, key, nil)
				var vctx []byte
				switch {
				case err == nil:
					vctx = obj.Context
				case !errors.Is(err, client.ErrNotFound):
					errs <- err
					return
				}
				if _, err := c.Put(ctx, key, val, vctx, nil); err != nil {
					errs <- err
					return
				}
				got, err := c.Get(ctx, key, &client.ReadOptions{R: 3})
				if err != nil {
					errs <- err
					return
				}
				if len(got.Values) != 1 || !bytes.Equal(got.Values[0].Data, val) {
					errs <- fmt.Errorf("worker %d round %d: read %d values, first %.20q", w, r, len(got.Values), got.Values[0].Data)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if conns, _ := st.Int("gokai_rpc_conns"); conns != 1 {
		t.Errorf("gokai_rpc_conns = %d, want 1 (PoolSize 1, all calls multiplexed)", conns)
	}
}
