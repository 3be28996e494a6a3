package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/eventually"
)

func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func pendingCalls(c *Client) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	total := 0
	for _, n := range c.nodes {
		for i := range n.slots {
			if cn := n.slots[i].c.Load(); cn != nil {
				cn.mu.Lock()
				total += len(cn.pending)
				cn.mu.Unlock()
			}
		}
	}
	return total
}

func TestPutGetDeleteSiblings(t *testing.T) {
	s, _ := singleNode(t, "n1")
	c := newTestClient(t, Config{Seeds: []string{s.addr()}})
	ctx := context.Background()
	key := []byte("k")

	if _, err := c.Get(ctx, key, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: %v, want ErrNotFound", err)
	}
	if obj, err := c.Put(ctx, key, []byte("v1"), nil, &WriteOptions{Flags: 5}); err != nil || obj != nil {
		t.Fatalf("put: %v %v", obj, err)
	}
	obj, err := c.Get(ctx, key, &ReadOptions{R: 1})
	if err != nil || len(obj.Values) != 1 || string(obj.Values[0].Data) != "v1" || obj.Values[0].Flags != 5 {
		t.Fatalf("get: %+v %v", obj, err)
	}
	// Two writes with the same context are siblings.
	for _, v := range []string{"a", "b"} {
		if _, err := c.Put(ctx, key, []byte(v), obj.Context, nil); err != nil {
			t.Fatal(err)
		}
	}
	sib, err := c.Get(ctx, key, nil)
	if err != nil || len(sib.Values) != 2 {
		t.Fatalf("siblings: %+v %v", sib, err)
	}
	res, err := c.Put(ctx, key, []byte("ab"), sib.Context, &WriteOptions{ReturnBody: true})
	if err != nil || len(res.Values) != 1 || string(res.Values[0].Data) != "ab" || len(res.Context) == 0 {
		t.Fatalf("merge put with return body: %+v %v", res, err)
	}
	if err := c.Delete(ctx, key, res.Context, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, key, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	// An empty value is a value.
	if _, err := c.Put(ctx, key, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if obj, err := c.Get(ctx, key, nil); err != nil || len(obj.Values) != 1 || obj.Values[0].Data == nil || len(obj.Values[0].Data) != 0 {
		t.Fatalf("empty value: %+v %v", obj, err)
	}
}

// TestPutWithoutContext: a put without a context adds a sibling; WriteOptions.Blind asks for the write that
// supersedes what is there.
func TestPutWithoutContext(t *testing.T) {
	s, _ := singleNode(t, "n1")
	c := newTestClient(t, Config{Seeds: []string{s.addr()}})
	ctx := context.Background()
	key := []byte("k")
	for _, v := range []string{"a", "b"} {
		if _, err := c.Put(ctx, key, []byte(v), nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if obj, err := c.Get(ctx, key, nil); err != nil || len(obj.Values) != 2 {
		t.Fatalf("after two puts without a context: %+v %v, want two siblings", obj, err)
	}
	obj, err := c.Put(ctx, key, []byte("c"), nil, &WriteOptions{Blind: true, ReturnBody: true})
	if err != nil || len(obj.Values) != 1 || string(obj.Values[0].Data) != "c" {
		t.Fatalf("blind put: %+v %v, want c alone", obj, err)
	}
}

func TestGetResolved(t *testing.T) {
	s, _ := singleNode(t, "n1")
	concat := func(_ []byte, sib []Value) (Value, error) {
		var parts [][]byte
		for _, v := range sib {
			parts = append(parts, v.Data)
		}
		return Value{Data: bytes.Join(parts, []byte("+")), Flags: 3}, nil
	}
	c := newTestClient(t, Config{Seeds: []string{s.addr()}, Resolver: concat})
	plain := newTestClient(t, Config{Seeds: []string{s.addr()}})
	ctx := context.Background()
	key := []byte("cart")

	if _, _, err := c.GetResolved(ctx, key, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := c.Put(ctx, key, []byte("x"), nil, nil); err != nil {
		t.Fatal(err)
	}
	v, vctx, err := c.GetResolved(ctx, key, nil)
	if err != nil || string(v.Data) != "x" || len(vctx) == 0 {
		t.Fatalf("single: %+v %x %v", v, vctx, err)
	}
	for _, w := range []string{"a", "b"} {
		if _, err := c.Put(ctx, key, []byte(w), vctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := plain.GetResolved(ctx, key, nil); !errors.Is(err, ErrNoResolver) {
		t.Fatalf("no resolver: %v", err)
	}
	v, vctx2, err := c.GetResolved(ctx, key, nil)
	if err != nil || string(v.Data) != "a+b" || v.Flags != 3 || bytes.Equal(vctx, vctx2) {
		t.Fatalf("resolved: %+v %x %v", v, vctx2, err)
	}
	obj, err := c.Get(ctx, key, nil)
	if err != nil || len(obj.Values) != 1 || string(obj.Values[0].Data) != "a+b" || !bytes.Equal(obj.Context, vctx2) {
		t.Fatalf("after write-back: %+v %v", obj, err)
	}

	failing := newTestClient(t, Config{Seeds: []string{s.addr()}, Resolver: func([]byte, []Value) (Value, error) {
		return Value{}, errUnexpected
	}})
	for _, w := range []string{"c", "d"} {
		if _, err := c.Put(ctx, key, []byte(w), vctx2, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := failing.GetResolved(ctx, key, nil); !errors.Is(err, errUnexpected) {
		t.Fatalf("resolver error: %v", err)
	}
}

func TestLastWriteWins(t *testing.T) {
	v, err := LastWriteWins(nil, []Value{{Data: []byte("old"), LastModified: 1}, {Data: []byte("new"), LastModified: 2}, {Data: []byte("a"), LastModified: 2}})
	if err != nil || string(v.Data) != "new" {
		t.Fatalf("LastWriteWins = %q %v", v.Data, err)
	}
	if _, err := LastWriteWins(nil, nil); err == nil {
		t.Fatal("no siblings: want an error")
	}
}

// TestMultiplexing: 64 concurrent calls on one connection, answered in reverse order of arrival, each
// reach their own caller.
func TestMultiplexing(t *testing.T) {
	const calls = 64
	var (
		mu      sync.Mutex
		arrived int
		release = make(chan struct{})
	)
	s := newFakeServer(t, func(fc *fakeConn, method string, params []any) (any, any) {
		switch method {
		case "ping":
			return "pong", nil
		case "get":
			key := asBytes(params[0])
			mu.Lock()
			arrived++
			order := arrived
			if arrived == calls {
				close(release)
			}
			mu.Unlock()
			<-release
			// Later arrivals answer first: a scenario delay that puts the replies out of order, not a wait.
			time.Sleep(time.Duration(calls-order) * time.Millisecond)
			return map[string]any{"values": []any{append([]byte("value-of-"), key...)}, "context": key}, nil
		}
		return nil, rpcErr(CodeUnknownMethod, method)
	})
	c := newTestClient(t, Config{Seeds: []string{s.addr()}, PoolSize: 1, DisableRouting: true})
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Appendf(nil, "k%d", i)
			obj, err := c.Get(context.Background(), key, nil)
			if err != nil {
				errs <- err
				return
			}
			if string(obj.Values[0].Data) != "value-of-"+string(key) || !bytes.Equal(obj.Context, key) {
				errs <- fmt.Errorf("key %s got %q", key, obj.Values[0].Data)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := s.accepted.Load(); n != 1 {
		t.Fatalf("%d connections, want 1 (PoolSize 1)", n)
	}
}

func TestPoolSpreadsOverConns(t *testing.T) {
	s, _ := singleNode(t, "n1")
	c := newTestClient(t, Config{Seeds: []string{s.addr()}, PoolSize: 3, DisableRouting: true})
	for range 9 {
		if _, err := c.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.accepted.Load(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}
}

func TestCancelFreesWaiter(t *testing.T) {
	hang := make(chan struct{})
	s := newFakeServer(t, func(fc *fakeConn, method string, params []any) (any, any) {
		switch method {
		case "ping":
			return "pong", nil
		case "get":
			<-hang
			return nil, rpcErr(CodeNotFound, "late")
		}
		return nil, rpcErr(CodeUnknownMethod, method)
	})
	defer close(hang)
	c := newTestClient(t, Config{Seeds: []string{s.addr()}, PoolSize: 1, DisableRouting: true})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, []byte("k"), nil)
		done <- err
	}()
	eventually.True(t, 10*time.Second, "the get is in flight", func() bool { return pendingCalls(c) == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled get: %v", err)
	}
	if n := pendingCalls(c); n != 0 {
		t.Fatalf("%d waiters left after cancel", n)
	}
	// The connection still works; the late reply, when it comes, is dropped.
	if _, err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}

	// The client's own wait limit is a timeout error.
	short := newTestClient(t, Config{Seeds: []string{s.addr()}, RequestTimeout: 50 * time.Millisecond, DisableRouting: true})
	_, err := short.Get(context.Background(), []byte("k"), nil)
	var e *Error
	if !errors.Is(err, ErrTimeout) || !errors.As(err, &e) {
		t.Fatalf("request timeout: %v", err)
	}
	// A caller deadline is the caller's error.
	dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer dcancel()
	if _, err := c.Get(dctx, []byte("k"), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("caller deadline: %v", err)
	}
}

func TestReconnectAndRetry(t *testing.T) {
	var mu sync.Mutex
	var putsSeen, getsSeen int
	dropNext := ""
	var s *fakeServer
	s = newFakeServer(t, func(fc *fakeConn, method string, params []any) (any, any) {
		mu.Lock()
		drop := dropNext == method
		if drop {
			dropNext = ""
		}
		switch method {
		case "put":
			putsSeen++
		case "get":
			getsSeen++
		}
		mu.Unlock()
		if drop {
			fc.nc.Close() // the request arrived; the reply never will
			return noReply, nil
		}
		switch method {
		case "ping":
			return "pong", nil
		case "get":
			return map[string]any{"values": []any{[]byte("v")}, "context": []byte{1}}, nil
		case "put":
			return map[string]any{}, nil
		}
		return nil, rpcErr(CodeUnknownMethod, method)
	})
	c := newTestClient(t, Config{Seeds: []string{s.addr()}, PoolSize: 1, DisableRouting: true})
	ctx := context.Background()

	// The node restarts: the idle connection breaks, the next request dials again.
	s.dropConns()
	eventually.True(t, 10*time.Second, "the client notices the closed connection", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		cn := c.nodes[s.addr()].slots[0].c.Load()
		return cn != nil && !cn.ok()
	})
	if _, err := c.Get(ctx, []byte("k"), nil); err != nil {
		t.Fatal(err)
	}
	if n := s.accepted.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}

	// A get whose connection breaks after the request was sent is retried.
	mu.Lock()
	dropNext = "get"
	mu.Unlock()
	if _, err := c.Get(ctx, []byte("k"), nil); err != nil {
		t.Fatalf("get after a lost reply: %v", err)
	}
	// A put is not: it may have been applied.
	mu.Lock()
	dropNext, putsSeen = "put", 0
	mu.Unlock()
	_, err := c.Put(ctx, []byte("k"), []byte("v"), nil, nil)
	var oe *opError
	if err == nil || !errors.As(err, &oe) || !oe.sent {
		t.Fatalf("put after a lost reply: %v, want the transport error", err)
	}
	mu.Lock()
	if putsSeen != 1 {
		t.Fatalf("put sent %d times, want 1", putsSeen)
	}
	mu.Unlock()
	if _, err := c.Put(ctx, []byte("k"), []byte("v"), nil, nil); err != nil {
		t.Fatal(err)
	}

	// Closing fails requests in flight and later ones with ErrClosed.
	c.Close()
	if _, err := c.Get(ctx, []byte("k"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	s, _ := singleNode(t, "n1")
	addr := s.addr()
	s.close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := New(ctx, Config{Seeds: []string{addr}}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("New with no reachable seed: %v", err)
	}
	// A second seed that answers is used.
	s2, _ := singleNode(t, "n2")
	c := newTestClient(t, Config{Seeds: []string{addr, s2.addr()}})
	if _, err := c.Put(ctx, []byte("k"), []byte("v"), nil, nil); err != nil {
		t.Fatal(err)
	}
}

// TestBadReplies: bytes that are not msgpack-RPC replies break the connection (its calls fail); a reply
// whose result does not decode fails only its call; a reply over MaxResponseBytes fails its connection.
func TestBadReplies(t *testing.T) {
	s := newFakeServer(t, func(fc *fakeConn, method string, params []any) (any, any) {
		switch method {
		case "ping":
			return "pong", nil
		case "garbage":
			fc.write([]byte{0xc1, 0xc1})
			return noReply, nil
		case "huge-array":
			fc.write([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}) // array32 of 4 billion: must not be allocated
			return noReply, nil
		case "not-a-reply":
			fc.write([]byte{0x93, 0x00, 0x01, 0xa1, 'x'}) // [0, 1, "x"]
			return noReply, nil
		case "ring":
			return "not a map", nil
		case "stats":
			return map[string]any{"big": bytes.Repeat([]byte("x"), 100<<10)}, nil
		}
		return nil, rpcErr(CodeUnknownMethod, method)
	})
	c := newTestClient(t, Config{Seeds: []string{s.addr()}, PoolSize: 1, DisableRouting: true, MaxResponseBytes: 64 << 10})
	ctx := context.Background()
	call := func(method string) error {
		return c.do(ctx, []string{s.addr()}, false, method, time.Second, nil, nil)
	}
	for _, m := range []string{"garbage", "huge-array", "not-a-reply"} {
		if err := call(m); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v, want ErrProtocol", m, err)
		}
		if _, err := c.Ping(ctx); err != nil {
			t.Fatalf("ping after %s: %v", m, err)
		}
	}
	conns := s.accepted.Load()
	if _, err := c.Ring(ctx); !errors.Is(err, ErrProtocol) {
		t.Errorf("ring with a string result: %v", err)
	}
	if _, err := c.Ping(ctx); err != nil || s.accepted.Load() != conns {
		t.Fatalf("a bad result must not break the connection: %v, %d conns", err, s.accepted.Load())
	}
	if _, err := c.Stats(ctx); !errors.Is(err, ErrProtocol) {
		t.Errorf("oversized reply: %v", err)
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.do(ctx, []string{s.addr()}, true, "nope", time.Second, nil, nil); !errors.Is(err, ErrUnknownMethod) {
		t.Errorf("unknown method: %v", err)
	}
}

// dialRefused is the error of TestCustomDial's failing dialer.
type dialRefused struct{ addr string }

func (e *dialRefused) Error() string { return "refused by the test dialer: " + e.addr }

// TestCustomDial: Config.Dial makes every connection, with the DialTimeout deadline on its context; its
// error reaches the caller (errors.As finds it) and the request moves on to the next seed.
func TestCustomDial(t *testing.T) {
	s, _ := singleNode(t, "n1")
	var mu sync.Mutex
	var dialled []string
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dialled = append(dialled, network+" "+addr)
		mu.Unlock()
		if _, ok := ctx.Deadline(); !ok {
			return nil, fmt.Errorf("dial context has no deadline")
		}
		if addr != s.addr() {
			return nil, &dialRefused{addr}
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	const bogus = "refused.invalid:1" // never dialled for real: the test dialer refuses it
	c := newTestClient(t, Config{Seeds: []string{bogus, s.addr()}, DisableRouting: true, PoolSize: 1, Dial: dial})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, []byte("k"), []byte("v"), nil, nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := append([]string(nil), dialled...)
	mu.Unlock()
	if len(got) < 2 || got[0] != "tcp "+bogus || !slices.Contains(got, "tcp "+s.addr()) {
		t.Fatalf("dialled %q, want the refused seed first, then %s", got, s.addr())
	}

	_, err := New(ctx, Config{Seeds: []string{bogus}, DisableRouting: true, Dial: dial})
	var dr *dialRefused
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &dr) || dr.addr != bogus {
		t.Fatalf("New with a refused seed: %v, want ErrUnavailable wrapping the dialer's error", err)
	}
}
