package kv

import (
	"bytes"
	"context"
	"fmt"

	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

var _ vnode.CoverageHandler = (*Vnode)(nil)

// HandleCoverage serves the KV coverage commands: CoverKeysRequest (a stream of keys) and CountKeysRequest
// (one count). Both fold the partition's storage snapshot on the worker pool, never in the vnode actor:
// the fold reads the storage handle and the time captured here, nothing else of the vnode.
func (vn *Vnode) HandleCoverage(cmd any, filter vnode.Filter, _ vnode.Sender) vnode.Result {
	now := vn.env.Now()
	store, p, at := vn.env.Store, vn.env.Partition, view{now.Unix(), cutoff(vn.cfg.FlushCutoff, now)}
	switch req := cmd.(type) {
	case *CoverKeysRequest:
		prefix, after := bytes.Clone(req.Prefix), bytes.Clone(req.After)
		return vnode.Stream(func(ctx context.Context, emit func([]byte) error) error {
			return foldLiveKeys(ctx, store, filter, prefix, after, at, func(key []byte) error {
				// NB: the fold reuses its buffers; the stream keeps what it is given.
				return emit(bytes.Clone(key))
			})
		})
	case *CountKeysRequest:
		prefix := bytes.Clone(req.Prefix)
		return vnode.Async(func(ctx context.Context) any {
			rep := &CountKeysReply{V: 1, Partition: p}
			if err := foldLiveKeys(ctx, store, filter, prefix, nil, at, func([]byte) error { rep.Count++; return nil }); err != nil {
				rep.Err = err.Error()
			}
			return rep
		}).IfBusy(&CountKeysReply{V: 1, Partition: p, Err: fmt.Sprintf("kv: partition %d: busy, count refused", p)})
	}
	// An error chunk tells the requester at once (a NoReply would leave it waiting for its timeout).
	err := fmt.Errorf("kv: partition %d: unknown coverage command %T", p, cmd)
	return vnode.Stream(func(context.Context, func([]byte) error) error { return err })
}

// foldLiveKeys calls fn, in ascending byte order, with every key of the partition's storage snapshot that
// filter covers, that starts with prefix, that sorts after after (nil: no bound), and whose object has a live
// sibling in view (not deleted, expired nor flushed). fn must not retain key. It stops with ctx's error once
// ctx ends. The fold seeks to the first key that can match, so neither the keys before the prefix nor those
// up to after are read.
func foldLiveKeys(ctx context.Context, store storage.Partition, filter vnode.Filter, prefix, after []byte, at view, fn func(key []byte) error) error {
	start := append([]byte{nsObject}, prefix...)
	seek := start
	if after != nil {
		// NB: after+0x00 is the first key that sorts after after.
		if past := append(append([]byte{nsObject}, after...), 0); bytes.Compare(past, seek) > 0 {
			seek = past
		}
	}
	n := 0
	return store.FoldFrom(seek, func(k, v []byte) error {
		if n++; n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if !bytes.HasPrefix(k, start) {
			return storage.ErrStopFold // keys ascend: past the prefix, nothing more matches
		}
		key := k[1:]
		if !filter.Match(key) {
			return nil
		}
		o, err := UnmarshalObject(v)
		if err != nil {
			return fmt.Errorf("kv: partition %d: key %q: %w", store.ID, key, err)
		}
		if o.Flushed(at.cutoff).TombstoneOnly(at.nowSec) {
			return nil
		}
		return fn(key)
	})
}

// view is what a fold shows as live: siblings neither expired at nowSec (unix seconds) nor hidden by the
// flush cutoff (unix ns; Object.Flushed).
type view struct{ nowSec, cutoff int64 }
