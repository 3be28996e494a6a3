package kv

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// This file holds the version vector half of the object model: dots, clocks, their partial order, merge,
// increment, riak_kv-style pruning, a stable digest, and the opaque client-context encoding. Everything here is
// pure: time is always a parameter.

// Dot names one write: the Counter-th event issued by Actor (a vnode id such as "node1/17"). Counter is >= 1
// for a real write.
type Dot struct {
	Actor   string
	Counter uint64
}

// String renders the dot as "actor:counter".
func (d Dot) String() string { return fmt.Sprintf("%s:%d", d.Actor, d.Counter) }

// CompareDots orders dots by actor, then counter. It returns -1, 0 or +1.
func CompareDots(a, b Dot) int {
	if c := strings.Compare(a.Actor, b.Actor); c != 0 {
		return c
	}
	return cmp.Compare(a.Counter, b.Counter)
}

// ClockEntry is one actor's entry in a version vector.
type ClockEntry struct {
	Actor     string
	Counter   uint64
	Timestamp int64 // unix ns of the last increment; used only by Prune
}

// VClock is a version vector: the causal context of an object.
//
// INVARIANT: entries are sorted by Actor with no duplicates, every Actor is non-empty and every Counter is
// non-zero (Validate checks this). VClock has value semantics: no function or method here mutates its
// arguments or returns a slice that shares a backing array with them.
type VClock []ClockEntry

// Limits enforced when decoding clocks and objects from bytes.
const (
	// MaxActorLen bounds an actor id, in bytes.
	MaxActorLen = 1024
	// MaxClockEntries bounds the entries of a decoded clock.
	MaxClockEntries = 1 << 16
)

// ErrCounterOverflow is returned when a clock counter would wrap around (only reachable with a forged context).
var ErrCounterOverflow = errors.New("kv: clock counter overflow")

// find returns the index of actor in v, or the index where it would be inserted.
func (v VClock) find(actor string) (int, bool) {
	lo, hi := 0, len(v)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if v[m].Actor < actor {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(v) && v[lo].Actor == actor
}

// Get returns actor's counter, 0 if actor has no entry.
func (v VClock) Get(actor string) uint64 {
	if i, ok := v.find(actor); ok {
		return v[i].Counter
	}
	return 0
}

// Descends reports whether v >= o pointwise: v has seen every event o has.
func (v VClock) Descends(o VClock) bool {
	i := 0
	for _, e := range o {
		for i < len(v) && v[i].Actor < e.Actor {
			i++
		}
		if i == len(v) || v[i].Actor != e.Actor || v[i].Counter < e.Counter {
			return false
		}
	}
	return true
}

// Dominates reports whether v strictly descends o (v >= o and v != o).
func (v VClock) Dominates(o VClock) bool { return v.Descends(o) && !v.Equal(o) }

// Equal reports whether v and o have the same counters. Timestamps are ignored.
func (v VClock) Equal(o VClock) bool {
	if len(v) != len(o) {
		return false
	}
	for i := range v {
		if v[i].Actor != o[i].Actor || v[i].Counter != o[i].Counter {
			return false
		}
	}
	return true
}

// Concurrent reports whether neither clock descends the other.
func (v VClock) Concurrent(o VClock) bool { return !v.Descends(o) && !o.Descends(v) }

// Covers reports whether the write named by d is in v's causal past (d.Counter <= v.Get(d.Actor)).
func (v VClock) Covers(d Dot) bool { return d.Counter <= v.Get(d.Actor) }

// Clone returns a copy of v that shares nothing with it (nil for an empty clock).
func (v VClock) Clone() VClock {
	if len(v) == 0 {
		return nil
	}
	return slices.Clone(v)
}

// String renders the clock as "[a:1 b:2]" (timestamps omitted).
func (v VClock) String() string {
	var sb strings.Builder
	sb.WriteByte('[')
	for i, e := range v {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%s:%d", e.Actor, e.Counter)
	}
	sb.WriteByte(']')
	return sb.String()
}

// Validate checks the VClock invariant.
func (v VClock) Validate() error {
	for i, e := range v {
		if e.Actor == "" {
			return fmt.Errorf("kv: clock entry %d: empty actor", i)
		}
		if e.Counter == 0 {
			return fmt.Errorf("kv: clock entry %d (%q): zero counter", i, e.Actor)
		}
		if i > 0 && v[i-1].Actor >= e.Actor {
			return fmt.Errorf("kv: clock entry %d (%q): not sorted after %q", i, e.Actor, v[i-1].Actor)
		}
	}
	return nil
}

// MergeClocks returns the pointwise maximum of a and b. Each entry keeps the timestamp of the entry with the
// larger counter (the larger timestamp when the counters are equal), so the merge is commutative, associative
// and idempotent including timestamps.
func MergeClocks(a, b VClock) VClock { return mergeClocks(a, b, 0) }

// mergeClocks is MergeClocks with room for extra more entries; it allocates exactly once.
func mergeClocks(a, b VClock, extra int) VClock {
	n := unionSize(a, b)
	if n+extra == 0 {
		return nil
	}
	out := make(VClock, 0, n+extra)
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch c := strings.Compare(a[i].Actor, b[j].Actor); {
		case c < 0:
			out = append(out, a[i])
			i++
		case c > 0:
			out = append(out, b[j])
			j++
		default:
			out = append(out, maxEntry(a[i], b[j]))
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// unionSize counts the actors of a and b together.
func unionSize(a, b VClock) int {
	n, i, j := 0, 0, 0
	for i < len(a) && j < len(b) {
		switch c := strings.Compare(a[i].Actor, b[j].Actor); {
		case c < 0:
			i++
		case c > 0:
			j++
		default:
			i++
			j++
		}
		n++
	}
	return n + len(a) - i + len(b) - j
}

// maxEntry picks, of two entries for the same actor, the one with the larger (Counter, Timestamp).
func maxEntry(x, y ClockEntry) ClockEntry {
	if y.Counter > x.Counter || (y.Counter == x.Counter && y.Timestamp > x.Timestamp) {
		return y
	}
	return x
}

// Increment returns a copy of v with actor's counter advanced by one and stamped now (unix ns), and the dot
// naming that event.
//
// REQUIRES: actor's counter is below math.MaxUint64 (Update checks this and returns ErrCounterOverflow).
func (v VClock) Increment(actor string, now int64) (VClock, Dot) {
	i, ok := v.find(actor)
	if ok {
		if v[i].Counter == math.MaxUint64 {
			panic("kv: VClock.Increment: counter overflow for " + actor)
		}
		out := slices.Clone(v)
		out[i].Counter++
		out[i].Timestamp = now
		return out, Dot{Actor: actor, Counter: out[i].Counter}
	}
	out := make(VClock, 0, len(v)+1)
	out = append(out, v[:i]...)
	out = append(out, ClockEntry{Actor: actor, Counter: 1, Timestamp: now})
	out = append(out, v[i:]...)
	return out, Dot{Actor: actor, Counter: 1}
}

// PruneConfig bounds clock growth, with riak_kv's bucket properties and defaults. The zero PruneConfig means
// DefaultPruneConfig(); to disable pruning set SmallVClock to math.MaxInt.
type PruneConfig struct {
	// SmallVClock: a clock with at most this many entries is never pruned. Default 50; range >= 0.
	SmallVClock int
	// BigVClock: a clock with more entries than this loses its oldest entries (unless the oldest is younger
	// than YoungVClock). Default 50; range >= 0.
	BigVClock int
	// YoungVClock: an entry incremented less than this long ago is never pruned. Default 20s; range >= 0.
	YoungVClock time.Duration
	// OldVClock: an entry not incremented for longer than this is pruned once the clock exceeds SmallVClock.
	// Default 86400s (one day); range >= 0.
	OldVClock time.Duration
}

// DefaultPruneConfig returns riak_kv's defaults: small 50, big 50, young 20s, old 86400s.
func DefaultPruneConfig() PruneConfig {
	return PruneConfig{SmallVClock: 50, BigVClock: 50, YoungVClock: 20 * time.Second, OldVClock: 86400 * time.Second}
}

// Validate reports the first out-of-range field.
func (p PruneConfig) Validate() error {
	switch {
	case p.SmallVClock < 0:
		return fmt.Errorf("kv: PruneConfig.SmallVClock = %d: must be >= 0", p.SmallVClock)
	case p.BigVClock < 0:
		return fmt.Errorf("kv: PruneConfig.BigVClock = %d: must be >= 0", p.BigVClock)
	case p.YoungVClock < 0:
		return fmt.Errorf("kv: PruneConfig.YoungVClock = %s: must be >= 0", p.YoungVClock)
	case p.OldVClock < 0:
		return fmt.Errorf("kv: PruneConfig.OldVClock = %s: must be >= 0", p.OldVClock)
	}
	return nil
}

func (p PruneConfig) orDefault() PruneConfig {
	if p == (PruneConfig{}) {
		return DefaultPruneConfig()
	}
	return p
}

// Prune applies riak_kv vclock:prune/3 at time now (unix ns): order the entries by (timestamp, actor); if there
// are at most SmallVClock entries keep them all; else if the oldest is younger than YoungVClock keep them all;
// else if there are more than BigVClock entries or the oldest is older than OldVClock drop the oldest and
// repeat; else keep. The result is sorted by actor again.
//
// NB: pruning trades accuracy for size. A pruned entry no longer covers the dots it named, so a replica that
// still holds one of those writes can bring it back as a sibling (never the reverse: pruning loses no write).
func (v VClock) Prune(now int64, p PruneConfig) VClock {
	out := v.prune(now, p, nil)
	if len(out) == len(v) {
		return v.Clone()
	}
	return out
}

// prune is Prune that never drops an entry for which keep returns true (keep may be nil). It returns v itself
// when nothing is dropped, else a new slice.
func (v VClock) prune(now int64, p PruneConfig, keep func(actor string) bool) VClock {
	p = p.orDefault()
	if len(v) <= p.SmallVClock {
		return v
	}
	cand := make([]int, 0, len(v)) // indexes of droppable entries, oldest first
	for i := range v {
		if keep == nil || !keep(v[i].Actor) {
			cand = append(cand, i)
		}
	}
	slices.SortFunc(cand, func(a, b int) int {
		if c := cmp.Compare(v[a].Timestamp, v[b].Timestamp); c != 0 {
			return c
		}
		return strings.Compare(v[a].Actor, v[b].Actor)
	})
	n, dropped := len(v), 0
	for n > p.SmallVClock && dropped < len(cand) {
		age := ageNS(now, v[cand[dropped]].Timestamp)
		if age < int64(p.YoungVClock) {
			break
		}
		if n <= p.BigVClock && age <= int64(p.OldVClock) {
			break
		}
		dropped++
		n--
	}
	if dropped == 0 {
		return v
	}
	drop := make([]bool, len(v))
	for _, i := range cand[:dropped] {
		drop[i] = true
	}
	out := make(VClock, 0, n)
	for i, e := range v {
		if !drop[i] {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// ageNS returns now - ts, saturating instead of wrapping for hostile timestamps.
func ageNS(now, ts int64) int64 {
	d := now - ts
	if (ts < 0 && d < now) || (ts > 0 && d > now) { // overflowed
		if ts < 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return d
}

// Hash returns a stable 64-bit digest of v's (actor, counter) pairs, ignoring timestamps. It is never 0 (memcache
// treats a cas unique of 0 as "none"), is the same on every node and release, and names a sibling set: the
// memcache cas unique of a `gets`.
func (v VClock) Hash() uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	var buf [binary.MaxVarintLen64]byte
	mix := func(b []byte) {
		for _, c := range b {
			h ^= uint64(c)
			h *= prime
		}
	}
	for _, e := range v {
		mix(buf[:binary.PutUvarint(buf[:], uint64(len(e.Actor)))])
		for i := 0; i < len(e.Actor); i++ {
			h ^= uint64(e.Actor[i])
			h *= prime
		}
		mix(binary.LittleEndian.AppendUint64(buf[:0], e.Counter))
	}
	// fmix64 finaliser (MurmurHash3) spreads FNV's weak high bits.
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	if h == 0 {
		h = 1
	}
	return h
}

// vclockFormat is the leading version of an encoded client context.
const vclockFormat = 1

// MarshalBinary encodes v as an opaque client context: msgpack [1, [[actor, counter, timestamp], ...]]. The
// empty clock encodes as zero bytes, so "no context" and "empty context" are the same thing.
func (v VClock) MarshalBinary() ([]byte, error) {
	if len(v) == 0 {
		return []byte{}, nil
	}
	if err := v.Validate(); err != nil {
		return nil, fmt.Errorf("kv: encode vclock: %w", err)
	}
	e := getEncoder(1 + 1 + clockSize(v))
	defer putEncoder(e)
	e.arrayLen(2)
	e.uint(vclockFormat)
	e.clock(v)
	return e.bytes(), nil
}

// UnmarshalVClock decodes a context made by MarshalBinary. Zero bytes decode to the empty (nil) clock. It
// validates the encoding (canonical msgpack, known format, sorted unique actors, non-zero counters, limits),
// never panics, and allocates at most a small multiple of len(b).
func UnmarshalVClock(b []byte) (VClock, error) {
	if len(b) == 0 {
		return nil, nil
	}
	d := getDecoder(b, "vclock")
	defer putDecoder(d)
	n, err := d.arrayLen(1, 2)
	if err != nil {
		return nil, err
	}
	if n != 2 {
		return nil, d.fail("want a 2-element array, got %d elements", n)
	}
	if err := d.format(vclockFormat); err != nil {
		return nil, err
	}
	v, err := d.clock()
	if err != nil {
		return nil, err
	}
	if len(v) == 0 {
		return nil, d.fail("empty clock must be encoded as zero bytes")
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return v, nil
}
