package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/kv"
	"github.com/gokai-kv/gokai/protocol/memcache"
)

// memcacheStore is the memcache face's view of the node: every call runs one coordinator. Get, Set and
// Delete need only the coordinators and the clock; FlushAll and Stats need the whole node.
type memcacheStore struct {
	coord *kv.Coordinator
	now   func() time.Time
	n     *Node // FlushAll and Stats only
}

func newMemcacheStore(n *Node) *memcacheStore {
	return &memcacheStore{coord: n.coord, now: n.now, n: n}
}

var _ memcache.Store = (*memcacheStore)(nil)

// ToEntry turns a reconciled object into what memcache shows: the live siblings, the one plain `get`
// returns (newest LastMod, ties by dot), a cas unique naming the sibling set and the opaque context. A key
// no replica holds (o nil) gives an Entry with an empty context: a write over it supersedes nothing.
func ToEntry(o *kv.Object, nowSec int64) (memcache.Entry, error) {
	if o == nil {
		return memcache.Entry{}, nil
	}
	ctx, err := o.Clock.MarshalBinary()
	if err != nil {
		return memcache.Entry{}, err
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

func (s *memcacheStore) Get(ctx context.Context, key []byte) (memcache.Entry, error) {
	o, err := s.coord.Get(ctx, key, coordinator.ReadOptions{})
	if err != nil {
		return memcache.Entry{}, memcacheError(err)
	}
	e, err := ToEntry(o, s.now().Unix())
	return e, memcacheError(err)
}

// writeContext turns what a memcache write supersedes into the coordinator's (context, blind) pair: blind
// for Supersede{Blind: true}; the decoded context for a read's context; and for an empty context an empty
// one (not blind), so the write supersedes nothing and becomes a sibling of whatever the key holds.
func writeContext(over memcache.Supersede) (vc kv.VClock, blind bool, err error) {
	switch {
	case over.Blind && len(over.Context) > 0:
		return nil, false, errors.New("memcache: a blind write takes no context")
	case over.Blind:
		return nil, true, nil
	case len(over.Context) == 0:
		return nil, false, nil
	}
	vc, err = kv.UnmarshalVClock(over.Context)
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
	o, err := s.coord.Put(ctx, key, v.Data, kv.Meta{Flags: v.Flags, Expiry: v.Expiry}, vc, blind, coordinator.WriteOptions{})
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
func WrittenCas(o *kv.Object) uint64 {
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

// FlushAll deletes every key this node holds, through coordinators (so replicas get tombstones).
func (s *memcacheStore) FlushAll(ctx context.Context) error {
	return memcacheError(s.flushAll(ctx))
}

func (s *memcacheStore) flushAll(ctx context.Context) error {
	seen := map[string]bool{}
	for _, p := range s.n.vnodes.Partitions() {
		pid := s.n.vnodes.PID(p)
		res, err := actors.Request(ctx, s.n.system, pid, &kv.KeysRequest{V: 1}, s.n.cfg.Timeout)
		if err != nil {
			return fmt.Errorf("flush_all: partition %d: %w", p, err)
		}
		rep, ok := res.(*kv.KeysReply)
		if !ok || rep.Err != "" {
			return fmt.Errorf("flush_all: partition %d: %v", p, rep)
		}
		for _, k := range rep.Keys {
			if seen[string(k)] {
				continue
			}
			seen[string(k)] = true
			o, err := s.n.coord.Get(ctx, k, coordinator.ReadOptions{})
			if err != nil {
				return err
			}
			if o == nil || o.TombstoneOnly(s.n.now().Unix()) {
				continue
			}
			if err := s.n.coord.Delete(ctx, k, o.Clock, false, coordinator.WriteOptions{}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *memcacheStore) Stats() []memcache.Stat {
	st := s.n.stats()
	out := make([]memcache.Stat, 0, len(st)+1)
	out = append(out, memcache.Stat{Name: "gokai_version", Value: Version})
	for _, x := range st {
		out = append(out, memcache.Stat{Name: x.name, Value: statString(x.value)})
	}
	return out
}
