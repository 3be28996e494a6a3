package client

import (
	"context"
	"time"
)

// ListOptions choose one page of a key listing (ListKeys).
type ListOptions struct {
	Prefix       []byte        // only keys that start with it
	MaxKeys      int           // keys per page, 1..10000 (0: the node's default, 1000)
	Continuation []byte        // the previous page's Continuation; nil for the first page
	Timeout      time.Duration // how long a vnode may stay silent (0: the node's default)
}

// KeyPage is one page of a key listing.
type KeyPage struct {
	Keys [][]byte `msgpack:"keys"`
	// Continuation, passed to the next ListKeys, resumes after this page; nil once the listing is complete
	// (a page may hold fewer keys than asked, even none, while the listing goes on).
	Continuation []byte `msgpack:"continuation"`
	// PartitionsDone of Partitions hash partitions are listed in full: the listing's progress.
	PartitionsDone int `msgpack:"partitions_done"`
	Partitions     int `msgpack:"partitions"`
}

// ListKeys returns one page of the node's live keys (list_keys): every key once over the whole listing,
// in no particular order. Pass each page's Continuation to the next call until it is nil.
func (c *Client) ListKeys(ctx context.Context, o ListOptions) (*KeyPage, error) {
	opts := map[string]any{}
	if o.Prefix != nil {
		opts["prefix"] = o.Prefix
	}
	if o.MaxKeys > 0 {
		opts["max_keys"] = o.MaxKeys
	}
	if o.Continuation != nil {
		opts["continuation"] = o.Continuation
	}
	if o.Timeout > 0 {
		opts["timeout_ms"] = o.Timeout.Milliseconds()
	}
	var p KeyPage
	if err := c.Call(ctx, "list_keys", []any{opts}, &p, true); err != nil {
		return nil, err
	}
	return &p, nil
}

// CountKeys counts the node's live keys that start with prefix (count), each once. When ctx has a deadline,
// a vnode that stays silent for half the time left is given up on (its ranges counted on another replica).
func (c *Client) CountKeys(ctx context.Context, prefix []byte) (uint64, error) {
	opts := map[string]any{}
	if prefix != nil {
		opts["prefix"] = prefix
	}
	if dl, ok := ctx.Deadline(); ok {
		opts["timeout_ms"] = max(time.Until(dl)/2, time.Millisecond).Milliseconds()
	}
	var n uint64
	err := c.Call(ctx, "count", []any{opts}, &n, true)
	return n, err
}
