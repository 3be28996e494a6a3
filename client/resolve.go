package client

import (
	"context"
	"errors"
	"fmt"
)

// Resolver merges the siblings of key into one value: semantic reconciliation (Dynamo §4.4), done by the
// application, which knows what its values mean (a shopping cart is the union of its siblings). It is
// called with at least two siblings, on the caller's goroutine, and must not keep the slice.
type Resolver func(key []byte, siblings []Value) (Value, error)

// LastWriteWins is a Resolver that keeps the sibling written last (by LastModified, then by bytes): the
// syntactic choice a store makes when the application does not say. Concurrent updates are lost.
func LastWriteWins(_ []byte, siblings []Value) (Value, error) {
	if len(siblings) == 0 {
		return Value{}, errors.New("client: LastWriteWins: no siblings")
	}
	best := siblings[0]
	for _, v := range siblings[1:] {
		if v.LastModified > best.LastModified ||
			(v.LastModified == best.LastModified && string(v.Data) > string(best.Data)) {
			best = v
		}
	}
	return best, nil
}

// maxResolveRounds bounds GetResolved's merge-and-write-back rounds when concurrent writers keep adding
// siblings.
const maxResolveRounds = 3

// GetResolved reads key and returns one value and the causal context to write over it. When the key has
// siblings, it calls Config.Resolver, writes the merged value back (its Flags and Expiry included) under
// the read's context, and returns the merged value with the context of that write. If the write-back
// itself meets new siblings (a concurrent writer), they are merged again, up to 3 rounds. Errors: as Get
// (ErrNotFound), ErrNoResolver, the resolver's error, or the write-back's error.
func (c *Client) GetResolved(ctx context.Context, key []byte, o *ReadOptions) (Value, []byte, error) {
	obj, err := c.Get(ctx, key, o)
	if err != nil {
		return Value{}, nil, err
	}
	wo := &WriteOptions{ReturnBody: true}
	if o != nil {
		wo.Timeout = o.Timeout
	}
	for round := 0; ; round++ {
		switch len(obj.Values) {
		case 0:
			return Value{}, nil, &Error{Code: CodeNotFound, Message: "not found"}
		case 1:
			return obj.Values[0], obj.Context, nil
		}
		if round == maxResolveRounds {
			return Value{}, nil, fmt.Errorf("client: key %q still has %d siblings after %d merges",
				key, len(obj.Values), maxResolveRounds)
		}
		if c.cfg.Resolver == nil {
			return Value{}, nil, ErrNoResolver
		}
		merged, err := c.cfg.Resolver(key, obj.Values)
		if err != nil {
			return Value{}, nil, fmt.Errorf("client: resolve %q: %w", key, err)
		}
		wo.Flags, wo.Expiry = merged.Flags, merged.Expiry
		after, err := c.Put(ctx, key, merged.Data, obj.Context, wo)
		if err != nil {
			return Value{}, nil, err
		}
		if after == nil || len(after.Values) == 0 {
			// The node returned no body (expired at once, or an older node): the merged value stands
			// under the read's context.
			return merged, obj.Context, nil
		}
		obj = after
	}
}
