package client

import (
	"context"
	"crypto/tls"
	"sync"
	"sync/atomic"
	"time"
)

// downFor is how long a node that refused a connection is tried only after every other candidate.
const downFor = 2 * time.Second

// node is the connection pool of one node address: PoolSize slots, each holding a connection that is
// dialled on first use and again after it broke. Requests spread over the slots round-robin.
type node struct {
	addr    string
	dialTO  time.Duration
	tls     *tls.Config // nil: plaintext
	dial    dialFunc
	maxResp int

	slots []slot
	next  atomic.Uint32
	// downUntil (unix ns) is set when a dial fails; until then the node is a last-resort candidate.
	downUntil atomic.Int64

	mu     sync.Mutex
	closed bool // REQUIRES: mu held
}

type slot struct {
	sem chan struct{} // capacity 1: held while dialling this slot
	c   atomic.Pointer[conn]
}

func newNode(addr string, size int, dialTO time.Duration, dial dialFunc, maxResp int, tlsCfg *tls.Config) *node {
	n := &node{addr: addr, dialTO: dialTO, dial: dial, maxResp: maxResp, tls: tlsCfg, slots: make([]slot, size)}
	for i := range n.slots {
		n.slots[i].sem = make(chan struct{}, 1)
	}
	return n
}

func (n *node) down(now time.Time) bool { return now.UnixNano() < n.downUntil.Load() }

// get returns a usable connection, dialling the slot whose turn it is when its connection is missing or
// broken.
func (n *node) get(ctx context.Context) (*conn, error) {
	s := &n.slots[int(n.next.Add(1)-1)%len(n.slots)]
	if c := s.c.Load(); c != nil && c.ok() {
		return c, nil
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	defer func() { <-s.sem }()
	if c := s.c.Load(); c != nil && c.ok() { // dialled by the previous holder
		return c, nil
	}
	c, err := dialConn(ctx, n.addr, n.dialTO, n.dial, n.maxResp, n.tls)
	if err != nil {
		n.downUntil.Store(time.Now().Add(downFor).UnixNano())
		return nil, err
	}
	n.downUntil.Store(0)
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		c.close(ErrClosed)
		return nil, ErrClosed
	}
	old := s.c.Swap(c)
	n.mu.Unlock()
	if old != nil {
		old.close(ErrClosed) // already broken; wait for its reader
	}
	return c, nil
}

// close closes every connection (their calls fail with ErrClosed) and waits for their readers.
func (n *node) close() {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	for i := range n.slots {
		if c := n.slots[i].c.Load(); c != nil {
			c.close(ErrClosed)
		}
	}
}
