package kv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gokai-kv/gokai/coverage"
	rpc "github.com/gokai-kv/gokai/protocol/msgpackrpc"
	"github.com/gokai-kv/gokai/service"
)

// Key listing and counting over coverage requests (package coverage): list_keys pages through every live
// key once, count counts them. docs/msgpack-rpc.md describes the methods; docs/architecture.md the
// coverage path.

// Limits of one list_keys page.
const (
	DefaultListPageKeys = 1000
	MaxListPageKeys     = 10000
	// listPageBytes ends a page early once its keys reach it (a page of long keys stays bounded).
	listPageBytes = 1 << 20
	// listVnodesAtOnce is how many vnodes a page streams from at once when it starts fresh ranges.
	listVnodesAtOnce = 4
	// listChunkBytes bounds one chunk of a vnode's stream: a page holds at most listVnodesAtOnce × (window+1)
	// of them besides its keys.
	listChunkBytes = 64 << 10
	listWindow     = 2
	// coverageAttempts bounds the coverage requests one page or count makes after failures.
	coverageAttempts = 4
	// DefaultListIdle is how long a vnode may stay silent while it owes a listing a chunk.
	DefaultListIdle = 5 * time.Second
	// DefaultCountIdle is how long a count waits for a vnode's count (one fold of its partition).
	DefaultCountIdle = 60 * time.Second
)

// Lister lists and counts KV's keys with coverage requests on one node.
type Lister struct {
	Coverage *coverage.Service
	Q        int
}

// ListOptions are the options of one page.
type ListOptions struct {
	Prefix   []byte
	MaxKeys  int           // 1..MaxListPageKeys; 0: DefaultListPageKeys
	Idle     time.Duration // 0: DefaultListIdle
	Continue []byte        // the continuation of the previous page; nil: the first page
}

// ListPage is one page of a listing.
type ListPage struct {
	Keys [][]byte
	// Continuation resumes the listing after this page; nil when the listing is complete.
	Continuation []byte
	// PartitionsDone of Partitions hash partitions are listed in full (progress).
	PartitionsDone, Partitions int
}

// ErrListBadRequest marks list_keys and count options a client got wrong (a bad continuation, a prefix
// that differs from the continuation's).
var ErrListBadRequest = errors.New("kv: bad list request")

// Page lists the next page of keys: live keys (tombstones and expired values left out) that start with
// o.Prefix, each once over the whole listing even though N replicas hold it, in no particular order across
// hash partitions (ascending within the ranges of one vnode). A page holds at most o.MaxKeys keys and about
// 1 MiB of them; it may hold fewer while the listing goes on (an empty page with a continuation is
// possible after a failure): a listing is complete only when Continuation is nil.
//
// A vnode that fails mid-page (its node died or went silent: then the node is suspected and the new plan
// avoids it; or it restarted, or its worker pool was busy) has its ranges resumed on a new plan after the
// last key taken from it, up to coverageAttempts requests a page; past that the page so far is returned, or
// the error when it holds nothing.
func (l *Lister) Page(ctx context.Context, o ListOptions) (*ListPage, error) {
	maxKeys := o.MaxKeys
	if maxKeys == 0 {
		maxKeys = DefaultListPageKeys
	}
	if maxKeys < 1 || maxKeys > MaxListPageKeys {
		return nil, fmt.Errorf("%w: max_keys %d out of range 1..%d", ErrListBadRequest, maxKeys, MaxListPageKeys)
	}
	idle := o.Idle
	if idle <= 0 {
		idle = DefaultListIdle
	}
	cur := newListCursor(l.Q, o.Prefix)
	if o.Continue != nil {
		c, err := decodeListCursor(o.Continue, l.Q)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrListBadRequest, err)
		}
		if o.Prefix != nil && !bytes.Equal(o.Prefix, c.Prefix) {
			return nil, fmt.Errorf("%w: prefix %q differs from the continuation's %q", ErrListBadRequest, o.Prefix, c.Prefix)
		}
		cur = c
	}
	page := &ListPage{Partitions: l.Q}
	size, failures := 0, 0
	var lastErr error
	for len(page.Keys) < maxKeys && size < listPageBytes && !cur.finished() {
		if failures >= coverageAttempts {
			if len(page.Keys) == 0 {
				return nil, lastErr
			}
			break
		}
		// A range listed part of the way first (its vnodes resume after its last key), else fresh ranges, a
		// few vnodes at a time.
		var want []int
		var after []byte
		maxVnodes := listVnodesAtOnce
		if len(cur.Partial) > 0 {
			want, after, maxVnodes = cur.Partial[0].Covers, cur.Partial[0].After, 0
			cur.Partial = cur.Partial[1:]
		} else {
			want = cur.remaining()
		}
		room := maxKeys - len(page.Keys)
		st, err := l.Coverage.Start(coverage.Request{Want: want, MaxVnodes: maxVnodes, Idle: idle,
			Cmd: func(coverage.Vnode) any {
				return &CoverKeysRequest{V: 1, Prefix: cur.Prefix, After: after}
			},
			MaxItems: min(room, 1000), MaxBytes: listChunkBytes, Window: listWindow})
		if err != nil {
			if after != nil {
				cur.Partial = append(cur.Partial, partialRange{Covers: want, After: after})
			}
			if len(page.Keys) == 0 {
				return nil, err
			}
			break
		}
		last := make([][]byte, len(st.Plan.Vnodes))
		done := make([]bool, len(st.Plan.Vnodes))
		var idx map[int]int // vnode partition -> index in the plan
		idx = make(map[int]int, len(st.Plan.Vnodes))
		for i, v := range st.Plan.Vnodes {
			idx[v.Partition] = i
		}
		for len(page.Keys) < maxKeys && size < listPageBytes {
			res, err := st.Next(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				if ctx.Err() != nil {
					st.Close()
					return nil, err
				}
				failures++
				lastErr = err
				break
			}
			i := idx[res.Vnode.Partition]
			took := 0
			for _, k := range res.Items {
				if len(page.Keys) >= maxKeys || size >= listPageBytes {
					break
				}
				page.Keys = append(page.Keys, k)
				size += len(k)
				took++
			}
			if took > 0 {
				last[i] = res.Items[took-1]
			}
			if took == len(res.Items) {
				done[i] = res.Done
				st.Ack(res)
			}
		}
		st.Close()
		for i, v := range st.Plan.Vnodes {
			switch {
			case done[i]:
				for _, h := range v.Covers {
					cur.Done[h] = true
				}
			case last[i] != nil:
				cur.Partial = append(cur.Partial, partialRange{Covers: v.Covers, After: last[i]})
			case after != nil:
				cur.Partial = append(cur.Partial, partialRange{Covers: v.Covers, After: after})
			}
		}
		if len(cur.Partial) > maxCursorPartials {
			return nil, fmt.Errorf("kv: list_keys: %d ranges listed part of the way", len(cur.Partial))
		}
	}
	page.PartitionsDone = cur.doneCount()
	if !cur.finished() {
		page.Continuation = cur.encode()
	}
	return page, nil
}

// Count counts the live keys that start with prefix, each once: every vnode of a coverage plan counts the
// keys of its ranges (one fold each, on the vnodes' worker pools); the ranges of a vnode that failed or was
// busy are asked again on a new plan (around its node when that went silent), up to coverageAttempts
// requests.
func (l *Lister) Count(ctx context.Context, prefix []byte, idle time.Duration) (uint64, error) {
	if idle <= 0 {
		idle = DefaultCountIdle
	}
	done := make([]bool, l.Q)
	var total uint64
	var lastErr error
	for range coverageAttempts {
		var want []int
		for h, d := range done {
			if !d {
				want = append(want, h)
			}
		}
		if len(want) == 0 {
			return total, nil
		}
		st, err := l.Coverage.Start(coverage.Request{Want: want, Idle: idle,
			Cmd: func(coverage.Vnode) any { return &CountKeysRequest{V: 1, Prefix: prefix} }})
		if err != nil {
			return 0, err
		}
		for {
			res, err := st.Next(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				if ctx.Err() != nil {
					st.Close()
					return 0, err
				}
				lastErr = err
				break
			}
			rep, ok := res.Reply.(*CountKeysReply)
			switch {
			case !ok:
				lastErr = fmt.Errorf("kv: count: partition %d: unexpected reply %T", res.Vnode.Partition, res.Reply)
			case rep.Err != "":
				lastErr = fmt.Errorf("kv: count: partition %d: %s", res.Vnode.Partition, rep.Err)
			default:
				total += rep.Count
				for _, h := range res.Vnode.Covers {
					done[h] = true
				}
			}
		}
		st.Close()
	}
	for _, d := range done {
		if !d {
			return 0, lastErr
		}
	}
	return total, nil
}

// listKeys is the list_keys method: list_keys(opts) -> {keys, continuation, partitions_done, partitions}.
func (h rpcFaces) listKeys(ctx context.Context, params []any) (any, error) {
	if len(params) > 1 {
		return nil, badRequest("list_keys takes (opts), got %d params", len(params))
	}
	opts, err := rpc.Map(params, 0, "opts")
	if err != nil {
		return nil, err
	}
	var o ListOptions
	if o.Prefix, err = bytesOpt(opts, "prefix"); err != nil {
		return nil, err
	}
	if o.Continue, err = bytesOpt(opts, "continuation"); err != nil {
		return nil, err
	}
	if o.MaxKeys, err = service.OptInt(opts, "max_keys", MaxListPageKeys); err != nil {
		return nil, err
	}
	if o.Idle, err = service.Timeout(opts); err != nil {
		return nil, err
	}
	page, err := h.lister.Page(ctx, o)
	if err != nil {
		return nil, listError(err)
	}
	keys := make([]any, len(page.Keys))
	for i, k := range page.Keys {
		keys[i] = k
	}
	var cont any
	if page.Continuation != nil {
		cont = page.Continuation
	}
	return map[string]any{"keys": keys, "continuation": cont, "partitions_done": page.PartitionsDone,
		"partitions": page.Partitions}, nil
}

// count is the count method: count(opts) -> integer.
func (h rpcFaces) count(ctx context.Context, params []any) (any, error) {
	if len(params) > 1 {
		return nil, badRequest("count takes (opts), got %d params", len(params))
	}
	opts, err := rpc.Map(params, 0, "opts")
	if err != nil {
		return nil, err
	}
	prefix, err := bytesOpt(opts, "prefix")
	if err != nil {
		return nil, err
	}
	idle, err := service.Timeout(opts)
	if err != nil {
		return nil, err
	}
	n, err := h.lister.Count(ctx, prefix, idle)
	if err != nil {
		return nil, listError(err)
	}
	return n, nil
}

// bytesOpt reads a bin or str option (at most a key's length).
func bytesOpt(m map[string]any, key string) ([]byte, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return nil, nil
	}
	b, err := rpc.Bytes([]any{v}, 0, key)
	if err != nil {
		return nil, err
	}
	if key == "prefix" && len(b) > maxCursorKey {
		return nil, badRequest("option prefix: %d bytes, at most %d", len(b), maxCursorKey)
	}
	return b, nil
}

// codeUnavailable: some key range has no replica that answered (the code the node's cluster methods use
// for a claimant that cannot be reached).
const codeUnavailable = "unavailable"

// listError maps a listing's error to the client's: a bad request, a range with no replica up
// (unavailable), too many listings at once (overload), else as KV's other errors.
func listError(err error) error {
	var ve *coverage.VnodeError
	switch {
	case errors.Is(err, ErrListBadRequest):
		return badRequest("%v", err)
	case errors.Is(err, coverage.ErrUncovered):
		return &rpc.Error{Code: codeUnavailable, Message: err.Error(), Cause: err}
	case errors.As(err, &ve):
		// NB: not the vnode's own error (its storage's text): the log has it.
		return &rpc.Error{Code: codeUnavailable, Cause: err,
			Message: fmt.Sprintf("the vnode of partition %d on %s failed or went silent; retry", ve.Vnode.Partition, ve.Vnode.Node)}
	case errors.Is(err, coverage.ErrOverload):
		return &rpc.Error{Code: rpc.CodeOverload, Message: err.Error()}
	}
	return rpcError(err)
}
