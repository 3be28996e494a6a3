package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Value is one sibling of a key.
type Value struct {
	Data  []byte
	Flags uint32
	// Expiry is when the value expires, unix seconds; 0 never.
	Expiry int64
	// LastModified is when the value was written, unix nanoseconds (the coordinator's clock).
	LastModified int64
}

// Object is what a key holds: its live siblings (one when there is no conflict) and the opaque causal
// context to pass to the next Put or Delete, which then supersedes exactly these siblings.
type Object struct {
	Values  []Value
	Context []byte
}

// ReadOptions tunes one read. Zero fields take the node's defaults.
type ReadOptions struct {
	R, PR int // replies needed (of N), of them from primaries
	// Timeout is the node's deadline for the read (whole milliseconds); the client waits at least this plus
	// one second.
	Timeout time.Duration
	// NotFoundOK, when not nil, overrides the node's notfound-ok: answer not found once R replicas said so.
	NotFoundOK *bool
}

// WriteOptions tunes one write. Zero fields take the node's defaults.
type WriteOptions struct {
	W, PW   int           // acknowledgements needed (of N), of them from primaries
	Timeout time.Duration // the node's deadline for the write, as ReadOptions.Timeout
	// Blind asks for a blind write (the context must be nil): it supersedes whatever the key's coordinating
	// replica holds when it applies the write, values no one read included (last writer wins at that
	// replica; concurrent writes it has not seen survive as siblings). Without it a write with a nil
	// context supersedes nothing. For caches and load generators that overwrite keys over and over.
	Blind bool
	// ReturnBody makes Put return the object as stored after the write (siblings and new context).
	ReturnBody bool
	Flags      uint32 // opaque client flags stored with the value (Put only)
	Expiry     int64  // unix seconds; 0 never (Put only)
}

// errNoReply is the cancellation cause of a request's own wait limit (Config.RequestTimeout).
var errNoReply = errors.New("client: no reply in time")

// Client talks to a gokai cluster over msgpack-RPC. See the package doc for routing, retries and
// concurrency.
type Client struct {
	cfg Config

	mu     sync.Mutex
	nodes  map[string]*node // by address; REQUIRES: mu held
	closed atomic.Bool

	table atomic.Pointer[routeTable] // nil until the ring was read (or routing is off)

	stop    context.CancelFunc // ends the refresher and its requests
	kick    chan struct{}      // capacity 1: "read the ring again soon"
	wg      sync.WaitGroup
	closeMu sync.Mutex
}

// New makes a client and contacts the seeds: with routing on it reads the ring and members from the
// first seed that answers (a node that does not serve `ring` leaves routing off until a later refresh
// succeeds); with routing off it pings one. It fails when no seed can be reached before ctx ends.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Client{cfg: cfg, nodes: make(map[string]*node), kick: make(chan struct{}, 1)}
	var err error
	if cfg.DisableRouting {
		_, err = c.Ping(ctx)
	} else {
		err = c.refresh(ctx)
		var rpcErr *Error
		if errors.As(err, &rpcErr) || errors.Is(err, ErrProtocol) {
			err = nil // reachable; route through the seeds for now
		}
	}
	if err != nil {
		c.closeNodes()
		return nil, err
	}
	if !cfg.DisableRouting {
		rctx, cancel := context.WithCancel(context.Background())
		c.stop = cancel
		c.wg.Add(1)
		go c.refresher(rctx)
	}
	return c, nil
}

// Close stops the refresher, closes every connection (requests in flight fail with ErrClosed) and waits
// for the client's goroutines. It is safe to call more than once.
func (c *Client) Close() error {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closed.Swap(true) {
		return nil
	}
	if c.stop != nil {
		c.stop()
	}
	c.wg.Wait()
	c.closeNodes()
	return nil
}

func (c *Client) closeNodes() {
	c.mu.Lock()
	nodes := c.nodes
	c.nodes = map[string]*node{}
	c.mu.Unlock()
	for _, n := range nodes {
		n.close()
	}
}

// node returns the pool of addr, creating it; nil once the client is closed.
func (c *Client) node(addr string) *node {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return nil // Close has taken (or is about to take) the pools: do not start new ones
	}
	n := c.nodes[addr]
	if n == nil {
		n = newNode(addr, c.cfg.PoolSize, c.cfg.DialTimeout, c.cfg.Dial, c.cfg.MaxResponseBytes, c.cfg.TLS)
		c.nodes[addr] = n
	}
	return n
}

func (c *Client) isDown(now time.Time) func(string) bool {
	return func(addr string) bool {
		c.mu.Lock()
		n := c.nodes[addr]
		c.mu.Unlock()
		return n != nil && n.down(now)
	}
}

// keyCandidates is where a request for key goes: its preference list, then the seeds.
func (c *Client) keyCandidates(key []byte) (cands []string, routed bool) {
	var pl []string
	if t := c.table.Load(); t != nil {
		pl = route(t.ring, t.n, t.addrs, key)
	}
	return candidates(pl, c.cfg.Seeds, c.isDown(time.Now())), len(pl) > 0
}

func (c *Client) seedCandidates() []string {
	return candidates(nil, c.cfg.Seeds, c.isDown(time.Now()))
}

// wait is how long the client waits for a reply to a request with the given server-side timeout.
func (c *Client) wait(serverTimeout time.Duration) time.Duration {
	if serverTimeout <= 0 {
		return c.cfg.RequestTimeout
	}
	return max(c.cfg.RequestTimeout, serverTimeout+time.Second)
}

// do sends one request to the first candidate that takes it (see the package doc on retries) and decodes
// its reply with decode.
func (c *Client) do(ctx context.Context, cands []string, idempotent bool, method string, wait time.Duration,
	params paramsFunc, decode resultFunc) error {
	return c.doRouted(ctx, cands, false, idempotent, method, wait, params, decode)
}

// doRouted is do; with kick, a transport failure asks the refresher to read the ring again.
func (c *Client) doRouted(ctx context.Context, cands []string, kick, idempotent bool, method string,
	wait time.Duration, params paramsFunc, decode resultFunc) error {
	if c.closed.Load() {
		return ErrClosed
	}
	ctx, cancel := context.WithTimeoutCause(ctx, wait, errNoReply)
	defer cancel()
	var last error
	for _, addr := range cands {
		// A second attempt on the same node after a transport failure on an existing connection (the node
		// may have restarted: the pool dials afresh), when the request may be repeated.
		for attempt := 0; attempt < 2; attempt++ {
			err := c.attempt(ctx, addr, method, params, decode)
			if err == nil {
				return nil
			}
			var rpcErr *Error
			var oe *opError
			switch {
			case errors.As(err, &rpcErr):
				return err // the node answered
			case ctx.Err() != nil:
				return c.waitErr(ctx, method, addr)
			case !errors.As(err, &oe):
				return err // a reply that does not decode
			}
			if c.closed.Load() {
				return ErrClosed
			}
			if kick {
				c.kickRefresh() // a node of the preference list is unreachable: the ring may have moved
			}
			if oe.sent && !idempotent {
				return err
			}
			last = err
			if oe.op == "dial" {
				break
			}
		}
	}
	if last == nil {
		return fmt.Errorf("%w: no candidate addresses", ErrUnavailable)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, last)
}

func (c *Client) attempt(ctx context.Context, addr, method string, params paramsFunc, decode resultFunc) error {
	n := c.node(addr)
	if n == nil {
		return ErrClosed
	}
	cn, err := n.get(ctx)
	if err != nil {
		return err
	}
	return cn.roundTrip(ctx, method, params, decode)
}

// waitErr is the error of a request whose wait ended: a timeout *Error when the client's own limit
// passed, the caller's context error otherwise.
func (c *Client) waitErr(ctx context.Context, method, addr string) error {
	if errors.Is(context.Cause(ctx), errNoReply) {
		return &Error{Code: CodeTimeout, Message: fmt.Sprintf("no reply to %s from %s in time", method, addr)}
	}
	return fmt.Errorf("client: %s to %s: %w", method, addr, ctx.Err())
}

// doKey is do for a request about key: routed, and a hint to read the ring again when the answer
// suggests it moved.
func (c *Client) doKey(ctx context.Context, key []byte, idempotent bool, method string, wait time.Duration,
	params paramsFunc, decode resultFunc) error {
	cands, routed := c.keyCandidates(key)
	err := c.doRouted(ctx, cands, routed, idempotent, method, wait, params, decode)
	if err != nil && routed && refreshHint(err) {
		c.kickRefresh()
	}
	return err
}

// Get reads key: all live siblings and the causal context. A key with no live value is an *Error that
// matches ErrNotFound. o may be nil.
func (c *Client) Get(ctx context.Context, key []byte, o *ReadOptions) (*Object, error) {
	var obj *Object
	var to time.Duration
	if o != nil {
		to = o.Timeout
	}
	err := c.doKey(ctx, key, true, "get", c.wait(to),
		func(e *msgpack.Encoder) error {
			if err := e.EncodeArrayLen(2); err != nil {
				return err
			}
			if err := e.EncodeBytes(nonNil(key)); err != nil {
				return err
			}
			return encodeReadOpts(e, o)
		},
		func(d *msgpack.Decoder) (err error) {
			obj, err = decodeObject(d)
			return err
		})
	if err != nil {
		return nil, err
	}
	return obj, nil
}

// Put writes value under key. context is the Context of a previous Get: the write supersedes exactly the
// siblings that read returned. With a nil context the write supersedes nothing: it becomes a sibling of
// whatever the key holds (a value no one read is never replaced), unless o.Blind asks for a blind write.
// It returns the stored object only with o.ReturnBody (otherwise nil). o may be nil.
func (c *Client) Put(ctx context.Context, key, value, context []byte, o *WriteOptions) (*Object, error) {
	var obj *Object
	var to time.Duration
	body := o != nil && o.ReturnBody
	if o != nil {
		to = o.Timeout
	}
	var decode resultFunc = func(d *msgpack.Decoder) error { return d.Skip() }
	if body {
		decode = func(d *msgpack.Decoder) (err error) {
			obj, err = decodeObject(d)
			return err
		}
	}
	err := c.doKey(ctx, key, false, "put", c.wait(to),
		func(e *msgpack.Encoder) error {
			if err := e.EncodeArrayLen(4); err != nil {
				return err
			}
			if err := e.EncodeBytes(nonNil(key)); err != nil {
				return err
			}
			if err := e.EncodeBytes(nonNil(value)); err != nil {
				return err
			}
			if err := encodeBin(e, context); err != nil {
				return err
			}
			return encodeWriteOpts(e, o, true)
		}, decode)
	if err != nil {
		return nil, err
	}
	return obj, nil
}

// Delete writes a tombstone for key under context (from a previous Get): it deletes exactly the siblings
// that read returned. With a nil context the node reads the key and deletes what that read returns (a key
// with nothing live is left alone); with o.Blind (and a nil context) the tombstone supersedes whatever the
// coordinating replica holds. o may be nil; its ReturnBody, Flags and Expiry are ignored.
func (c *Client) Delete(ctx context.Context, key, context []byte, o *WriteOptions) error {
	var to time.Duration
	if o != nil {
		to = o.Timeout
	}
	return c.doKey(ctx, key, false, "delete", c.wait(to),
		func(e *msgpack.Encoder) error {
			if err := e.EncodeArrayLen(3); err != nil {
				return err
			}
			if err := e.EncodeBytes(nonNil(key)); err != nil {
				return err
			}
			if err := encodeBin(e, context); err != nil {
				return err
			}
			return encodeWriteOpts(e, o, false)
		},
		func(d *msgpack.Decoder) error { return d.Skip() })
}

// nonNil makes a nil byte slice an empty one, so it is encoded as empty bin rather than nil.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// --- ring refresh -------------------------------------------------------------------------------------

func (c *Client) kickRefresh() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// refresher reads the ring every RefreshInterval and when kicked (at most once per Config.minRefreshGap).
func (c *Client) refresher(ctx context.Context) {
	defer c.wg.Done()
	tick := time.NewTicker(c.cfg.RefreshInterval)
	defer tick.Stop()
	last := time.Now()
	var soon <-chan time.Time // a kick that came too early, deferred
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-soon:
		case <-c.kick:
			if gap := time.Since(last); gap < c.cfg.minRefreshGap {
				if soon == nil {
					soon = time.After(c.cfg.minRefreshGap - gap)
				}
				continue
			}
		}
		soon = nil
		last = time.Now()
		_ = c.refresh(ctx) // on failure the old table stays; the next tick tries again
	}
}

// refresh reads ring and members from the first node that answers (seeds, then known members) and
// installs the new table unless it is older than the current one.
func (c *Client) refresh(ctx context.Context) error {
	addrs := append([]string(nil), c.cfg.Seeds...)
	if t := c.table.Load(); t != nil {
		for _, a := range t.addrs {
			addrs = append(addrs, a)
		}
	}
	var last error
	for _, addr := range candidates(nil, addrs, c.isDown(time.Now())) {
		t, err := c.readTable(ctx, addr)
		if err != nil {
			last = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		for {
			cur := c.table.Load()
			if cur != nil && cur.ring.Version() > t.ring.Version() {
				break
			}
			if c.table.CompareAndSwap(cur, t) {
				break
			}
		}
		return nil
	}
	return last
}

func (c *Client) readTable(ctx context.Context, addr string) (*routeTable, error) {
	one := []string{addr}
	var ri *RingInfo
	err := c.do(ctx, one, true, "ring", c.cfg.RequestTimeout, nil, func(d *msgpack.Decoder) (err error) {
		ri, err = decodeRing(d)
		return err
	})
	if err != nil {
		return nil, err
	}
	var ms []Member
	err = c.do(ctx, one, true, "members", c.cfg.RequestTimeout, nil, func(d *msgpack.Decoder) (err error) {
		ms, err = decodeMembers(d)
		return err
	})
	if err != nil {
		return nil, err
	}
	return buildTable(ri, ms, addr)
}
