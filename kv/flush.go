package kv

import "time"

// Flush epochs (memcache flush_all; service.Host.Flush, membership.Flush): the cluster state holds, per
// service, a cutoff time, and every sibling written at or before it reads as deleted. Nothing is rewritten
// when a flush happens: the siblings stay in storage, on every replica, and reads hide them. That is why a
// flush takes a cluster-state change and no key-by-key work, and why it cannot be undone by replication:
//
//   - the cutoff is cluster state, the same on every node, so every coordinator hides the same siblings
//     whichever replicas answer; read repair, hinted handoff, ownership handoff and anti-entropy move and
//     merge the stored objects as before (with the hidden siblings in them), and the merged object is
//     hidden just the same: a flushed value never comes back;
//   - a hidden sibling keeps its dot and the object its clock, so a read's context covers it and a write
//     with that context (memcache add or cas after a miss, a msgpack-RPC put with the context of a get)
//     supersedes it as it would supersede a tombstone; a blind set supersedes what its coordinating replica
//     holds; the superseded siblings then leave storage the usual way (Sync drops them on every replica).
//
// Space: a hidden sibling stays in storage until its key is written again (a set, or an add over the miss,
// supersedes it), as an expired one does; memcached frees flushed memory lazily too. No background sweep
// rewrites objects: a sweep that drops hidden siblings on one replica (keeping the clock, so Sync drops
// them from every replica it meets, and anti-entropy converges instead of ping-ponging) still costs a
// rewrite of every flushed key on every replica, and leaves the replicas' objects different until they are
// merged.

// Flushed returns o as reads show it under a flush cutoff (unix ns; 0 hides nothing): every sibling whose
// LastMod is at or before cutoff becomes a tombstone (no value), with its dot, its LastMod and the clock
// unchanged, so the object's context still covers it and a write with that context supersedes it. It
// returns o itself when no sibling is hidden.
//
// NB: a view for clients. Never store, replicate or merge it: the replicas hold the real object.
func (o *Object) Flushed(cutoff int64) *Object {
	if o == nil || cutoff <= 0 {
		return o
	}
	hide := 0
	for _, s := range o.Siblings {
		if !s.Meta.Deleted && s.Meta.LastMod <= cutoff {
			hide++
		}
	}
	if hide == 0 {
		return o
	}
	v := &Object{Clock: o.Clock, Siblings: make([]Sibling, len(o.Siblings))}
	for i, s := range o.Siblings {
		if !s.Meta.Deleted && s.Meta.LastMod <= cutoff {
			s = Sibling{Dot: s.Dot, Meta: Meta{LastMod: s.Meta.LastMod, Deleted: true}}
		}
		v.Siblings[i] = s
	}
	return v
}

// cutoff is the flush cutoff at now of f (Config.FlushCutoff; nil hides nothing).
func cutoff(f func(nowNs int64) int64, now time.Time) int64 {
	if f == nil {
		return 0
	}
	return f(now.UnixNano())
}
