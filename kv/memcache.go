package kv

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/protocol/memcache"
	"github.com/gokai-kv/gokai/service"
)

// memcacheStore is KV's memcache face: every call but FlushAll runs one coordinator; FlushAll sets KV's
// flush epoch; Stats shows the node's stats.
type memcacheStore struct {
	coord   *Coordinator
	now     func() time.Time
	flush   func(ctx context.Context, at time.Time) error
	stats   func() []service.Stat
	version string
}

var _ memcache.Store = (*memcacheStore)(nil)

func newMemcacheStore(c *Coordinator, h service.Host) *memcacheStore {
	return &memcacheStore{coord: c, now: h.Now, flush: h.Flush, stats: h.Stats, version: h.Version}
}

// ToEntry turns a reconciled object into what memcache shows: the live siblings, the one plain `get`
// returns (newest LastMod, ties by dot), a cas unique naming the sibling set and, when want.Context, the
// opaque context (its encoding is the one cost of a read a plain get does not need). A key no replica holds
// (o nil) gives an Entry with an empty context: a write over it supersedes nothing.
func ToEntry(o *Object, nowSec int64, want memcache.Read) (memcache.Entry, error) {
	if o == nil {
		return memcache.Entry{}, nil
	}
	var ctx []byte
	if want.Context {
		var err error
		if ctx, err = o.Clock.MarshalBinary(); err != nil {
			return memcache.Entry{}, err
		}
	}
	live := o.Live(nowSec)
	if len(live) == 0 {
		// Deleted or expired: not found, but the context lets `add` supersede the tombstone exactly.
		return memcache.Entry{Context: ctx}, nil
	}
	chosen, _ := o.Chosen(nowSec)
	e := memcache.Entry{Found: true, Siblings: make([]memcache.Value, len(live)), Cas: o.Clock.Hash(), Context: ctx}
	for i, s := range live {
		e.Siblings[i] = memcache.Value{Data: s.Value, Flags: s.Meta.Flags, Expiry: s.Meta.Expiry, LastMod: s.Meta.LastMod}
		if s.Dot == chosen.Dot {
			e.Chosen = i
		}
	}
	return e, nil
}

func (s *memcacheStore) Get(ctx context.Context, key []byte, want memcache.Read) (memcache.Entry, error) {
	o, err := s.coord.Get(ctx, key, coordinator.ReadOptions{})
	if err != nil {
		return memcache.Entry{}, memcacheError(err)
	}
	e, err := ToEntry(o, s.now().Unix(), want)
	return e, memcacheError(err)
}

// writeContext turns what a memcache write supersedes into the coordinator's (context, blind) pair: blind
// for Supersede{Blind: true}; the decoded context for a read's context; and for an empty context an empty
// one (not blind), so the write supersedes nothing and becomes a sibling of whatever the key holds.
func writeContext(over memcache.Supersede) (vc VClock, blind bool, err error) {
	switch {
	case over.Blind && len(over.Context) > 0:
		return nil, false, errors.New("memcache: a blind write takes no context")
	case over.Blind:
		return nil, true, nil
	case len(over.Context) == 0:
		return nil, false, nil
	}
	vc, err = UnmarshalVClock(over.Context)
	if err != nil {
		return nil, false, fmt.Errorf("memcache: bad context: %w", err)
	}
	return vc, false, nil
}

func (s *memcacheStore) Set(ctx context.Context, key []byte, v memcache.Value, over memcache.Supersede) (uint64, error) {
	vc, blind, err := writeContext(over)
	if err != nil {
		return 0, err
	}
	o, err := s.coord.Put(ctx, key, v.Data, Meta{Flags: v.Flags, Expiry: v.Expiry}, vc, blind, coordinator.WriteOptions{})
	if err != nil {
		return 0, memcacheError(err)
	}
	return WrittenCas(o), nil
}

// WrittenCas is the cas unique a memcache write hands back for o, the object it left on the coordinating
// replica: the Entry.Cas a later read of the same object shows (o.Clock.Hash()) when the written value is
// its only sibling that is not a tombstone; otherwise (the write became a sibling of values its writer did
// not see, expired ones included) the hash with its bits mixed, which no read returns but by a 64-bit
// collision, so a cas with it answers EXISTS rather than superseding siblings the writer never saw.
func WrittenCas(o *Object) uint64 {
	if o == nil {
		return unseenCas(0)
	}
	values := 0
	for _, s := range o.Siblings {
		if !s.Meta.Deleted {
			values++
		}
	}
	h := o.Clock.Hash()
	if values <= 1 {
		return h
	}
	return unseenCas(h)
}

// unseenCas maps a clock hash to a cas unique no read hands out (never 0).
func unseenCas(h uint64) uint64 {
	h = (h ^ 0x9e3779b97f4a7c15) * 0xbf58476d1ce4e5b9
	if h == 0 {
		h = 1
	}
	return h
}

func (s *memcacheStore) Delete(ctx context.Context, key []byte, over memcache.Supersede) error {
	vc, blind, err := writeContext(over)
	if err != nil {
		return err
	}
	return memcacheError(s.coord.Delete(ctx, key, vc, blind, coordinator.WriteOptions{}))
}

// FlushAll records KV's flush epoch in the cluster state (service.Host.Flush): from at on, every node hides
// every value written at or before at (flush.go). It fails, and the client is told, when the epoch could not
// be confirmed (the claimant is unreachable, refused, or could not save it): a flush_all never answers OK
// without effect. An unreachable claimant recorded nothing.
func (s *memcacheStore) FlushAll(ctx context.Context, at time.Time) error {
	if s.flush == nil {
		return &memcache.StoreError{Code: codeFlushFailed, Msg: "flush_all is not available on this node"}
	}
	if err := s.flush(ctx, at); err != nil {
		return &memcache.StoreError{Code: codeFlushFailed, Err: err,
			Msg: "flush_all not confirmed: the cluster's claimant could not be reached or could not record it"}
	}
	return nil
}

// codeFlushFailed is the StoreError code (the log's rate-limit kind) of a flush_all that was not recorded.
const codeFlushFailed = "flush_failed"

func (s *memcacheStore) Stats() []memcache.Stat {
	st := s.stats()
	out := make([]memcache.Stat, 0, len(st)+1)
	out = append(out, memcache.Stat{Name: "gokai_version", Value: s.version})
	for _, x := range st {
		out = append(out, memcache.Stat{Name: x.Name, Value: fmt.Sprint(x.Value)})
	}
	return out
}
