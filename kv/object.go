package kv

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// This file holds the object half of the model: siblings with dots (dotted version vectors in the style of
// Riak 2.0's dvv_enabled objects; Preguiça, Baquero, Almeida et al., "Dotted Version Vectors"), the
// coordinator's Update, the replica Sync, the memcache read rules, and the storage encoding.
//
// The two rules that make DVV work:
//   - a write is a sibling with a fresh dot; it supersedes exactly the siblings whose dots its context covers,
//     so two writes with the same context are always siblings and a write with the merged context of a read
//     replaces exactly what that read returned;
//   - two replicas merge syntactically (Sync): a sibling survives unless the other side's clock covers its dot
//     while the other side does not hold it (meaning the other side saw it and superseded it).

// Meta is the per-sibling metadata.
type Meta struct {
	Flags   uint32 // memcache client flags
	Expiry  int64  // unix seconds; 0 = never
	LastMod int64  // unix ns when written
	Deleted bool   // tombstone
}

// Sibling is one concurrent value of an object, named by the dot of the write that made it.
//
// NB: Value is shared, never copied, between objects derived from one another (Update, Sync): treat it as
// immutable.
type Sibling struct {
	Value []byte
	Meta  Meta
	Dot   Dot
}

// Live reports whether s is neither a tombstone nor expired at nowSec (unix seconds).
func (s Sibling) Live(nowSec int64) bool {
	return !s.Meta.Deleted && (s.Meta.Expiry == 0 || s.Meta.Expiry > nowSec)
}

// Object is a key's versioned value: its causal context and its siblings.
//
// INVARIANT (Validate): Clock is a valid VClock; Siblings are sorted by Dot with no duplicate dots; every
// sibling's dot has a non-zero counter and is covered by Clock. Objects are values: Update and Sync return new
// objects and never modify their arguments.
type Object struct {
	Clock    VClock
	Siblings []Sibling
}

// UpdateOptions are the per-bucket write rules.
type UpdateOptions struct {
	// LWW (last-write-wins) keeps only one sibling: the greatest (LastMod, Dot). Default false.
	LWW bool
	// MaxSiblings rejects a write that would leave more siblings than this (riak's max_siblings); 0 means
	// unlimited. Default 0.
	MaxSiblings int
	// Prune bounds the clock; the zero value means DefaultPruneConfig().
	Prune PruneConfig
	// MinCounter is a floor for the new dot's counter: the dot is above it even when neither the local copy
	// nor the context mention the actor. A vnode passes the highest counter it ever issued (for any key), so
	// it never reissues a dot after a key's tombstone was reaped and the key's history forgotten. 0 = none.
	MinCounter uint64
}

// ErrTooManySiblings is returned (wrapped with the count) by Update when a write would exceed MaxSiblings.
var ErrTooManySiblings = errors.New("kv: too many siblings")

// Update is the coordinating vnode's write (riak_object's update at the coordinator, with DVV). local is what
// this vnode holds (nil if nothing), actor is this vnode's id, ctx is the client's context. With blind set, ctx
// is ignored and local's clock is used instead: a blind write (plain memcache `set`) supersedes exactly what this
// vnode holds, and stays a sibling of anything it has not seen yet.
//
// Local siblings whose dots ctx covers are dropped; the new sibling gets the dot (actor, max(local[actor],
// ctx[actor])+1); the clock becomes merge(local.Clock, ctx) with actor's entry set to the new counter (stamped
// now, unix ns); then the clock is pruned (entries naming a sibling's dot are kept); then LWW and MaxSiblings
// apply. If meta.LastMod is 0 it is set to now.
//
// Update keeps a reference to value (see Sibling). It never modifies local or ctx.
//
// NB: an actor must never issue the same dot twice for a key. The counter continues from what local and ctx
// show, so if this vnode once wrote the key and no longer holds it (tombstone reaped, data lost) and the
// context does not cover the old write, the caller must use a fresh actor id for the key (riak_kv's per-key
// epoch): otherwise the new write reuses an old dot, and replicas whose clocks cover that dot drop it as
// already superseded.
func Update(local *Object, actor string, ctx VClock, blind bool, value []byte, meta Meta, now int64, opts UpdateOptions) (*Object, error) {
	if actor == "" {
		return nil, errors.New("kv: update: empty actor")
	}
	if len(actor) > MaxActorLen {
		return nil, fmt.Errorf("kv: update: actor of %d bytes exceeds %d", len(actor), MaxActorLen)
	}
	if err := opts.Prune.Validate(); err != nil {
		return nil, err
	}
	var lclock VClock
	var lsibs []Sibling
	if local != nil {
		lclock, lsibs = local.Clock, local.Siblings
	}
	if blind {
		ctx = lclock
	} else if err := ctx.Validate(); err != nil {
		return nil, fmt.Errorf("kv: update: context: %w", err)
	}
	base := max(lclock.Get(actor), ctx.Get(actor), opts.MinCounter)
	if base == ^uint64(0) {
		return nil, fmt.Errorf("%w: actor %q", ErrCounterOverflow, actor)
	}
	dot := Dot{Actor: actor, Counter: base + 1}
	if meta.LastMod == 0 {
		meta.LastMod = now
	}
	fresh := Sibling{Value: value, Meta: meta, Dot: dot}

	sibs := make([]Sibling, 0, len(lsibs)+1)
	for _, s := range lsibs {
		if !ctx.Covers(s.Dot) {
			sibs = append(sibs, s)
		}
	}
	// The fresh dot is above every dot of actor that local holds, so it sorts after them.
	i, _ := slices.BinarySearchFunc(sibs, dot, func(s Sibling, d Dot) int { return CompareDots(s.Dot, d) })
	sibs = slices.Insert(sibs, i, fresh)

	clock := mergeClocks(lclock, ctx, 1) // fresh: ours to modify
	if j, ok := clock.find(actor); ok {
		clock[j] = ClockEntry{Actor: actor, Counter: dot.Counter, Timestamp: now}
	} else {
		clock = slices.Insert(clock, j, ClockEntry{Actor: actor, Counter: dot.Counter, Timestamp: now})
	}
	clock = clock.prune(now, opts.Prune, func(a string) bool {
		for k := range sibs {
			if sibs[k].Dot.Actor == a {
				return true
			}
		}
		return false
	})

	o := &Object{Clock: clock, Siblings: sibs}
	if opts.LWW {
		o.Siblings = collapse(o.Siblings)
	}
	if opts.MaxSiblings > 0 && len(o.Siblings) > opts.MaxSiblings {
		return nil, fmt.Errorf("%w: %d > %d", ErrTooManySiblings, len(o.Siblings), opts.MaxSiblings)
	}
	return o, nil
}

// Sync merges two replicas of one key (DVV sync). A sibling of a is kept unless b's clock covers its dot and b
// does not hold that dot (b saw it and superseded it), and vice versa; the union is deduplicated by dot; the
// clock is MergeClocks. Either input may be nil (Sync(nil, nil) is nil). With lww the result is collapsed to its
// greatest (LastMod, Dot) sibling.
//
// Without lww, Sync is commutative, associative and idempotent (up to the sharing of Value slices). With lww it
// is commutative and idempotent but not associative: collapsing early can discard a sibling that a third replica
// would have let win. The result shares Value slices with the inputs.
//
// SyncKeeps walks the two sibling lists in the same order to tell, without building the merge, whether it
// would equal b: a change to the rules here must be made there too (TestSyncKeepsAgreesWithSync checks them).
func Sync(a, b *Object, lww bool) *Object {
	if a == nil && b == nil {
		return nil
	}
	if a == nil {
		a = &Object{}
	}
	if b == nil {
		b = &Object{}
	}
	out := &Object{Clock: MergeClocks(a.Clock, b.Clock)}
	if n := len(a.Siblings) + len(b.Siblings); n > 0 {
		out.Siblings = make([]Sibling, 0, n)
	}
	as, bs := a.Siblings, b.Siblings
	i, j := 0, 0
	for i < len(as) || j < len(bs) {
		c := 0
		switch {
		case i == len(as):
			c = 1
		case j == len(bs):
			c = -1
		default:
			c = CompareDots(as[i].Dot, bs[j].Dot)
		}
		switch {
		case c < 0:
			if !b.Clock.Covers(as[i].Dot) {
				out.Siblings = append(out.Siblings, as[i])
			}
			i++
		case c > 0:
			if !a.Clock.Covers(bs[j].Dot) {
				out.Siblings = append(out.Siblings, bs[j])
			}
			j++
		default:
			// One dot is one write, so both copies should be equal; if they are not (a forged or corrupted
			// replica), pick deterministically so that Sync stays commutative and associative.
			s := as[i]
			if compareSiblings(bs[j], s) > 0 {
				s = bs[j]
			}
			out.Siblings = append(out.Siblings, s)
			i++
			j++
		}
	}
	if len(out.Siblings) == 0 {
		out.Siblings = nil
	} else if lww {
		out.Siblings = collapse(out.Siblings)
	}
	return out
}

// SyncKeeps reports whether Sync(a, b, lww) equals b (Object.Equal), without building it: a replica that
// receives b then stores b itself. It holds when b's clock descends a's, a's siblings that b lacks are
// covered by b's clock (b superseded them), b's siblings that a lacks are not covered by a's clock (a has
// not superseded them), and last-write-wins has nothing to collapse. The common case: b is a write
// coordinated on a copy of what a holds. b must not be nil.
func SyncKeeps(a, b *Object, lww bool) bool {
	if lww && len(b.Siblings) > 1 {
		return false
	}
	if a == nil {
		return true
	}
	if !b.Clock.Descends(a.Clock) {
		return false
	}
	as, bs := a.Siblings, b.Siblings
	i, j := 0, 0
	for i < len(as) || j < len(bs) {
		c := 0
		switch {
		case i == len(as):
			c = 1
		case j == len(bs):
			c = -1
		default:
			c = CompareDots(as[i].Dot, bs[j].Dot)
		}
		switch {
		case c < 0:
			if !b.Clock.Covers(as[i].Dot) {
				return false
			}
			i++
		case c > 0:
			if a.Clock.Covers(bs[j].Dot) {
				return false
			}
			j++
		default:
			i++
			j++
		}
	}
	return true
}

// compareSiblings is a total order on siblings: (LastMod, Dot), then the rest of the content.
func compareSiblings(x, y Sibling) int {
	if c := cmp.Compare(x.Meta.LastMod, y.Meta.LastMod); c != 0 {
		return c
	}
	if c := CompareDots(x.Dot, y.Dot); c != 0 {
		return c
	}
	if c := bytes.Compare(x.Value, y.Value); c != 0 {
		return c
	}
	if c := cmp.Compare(x.Meta.Flags, y.Meta.Flags); c != 0 {
		return c
	}
	if c := cmp.Compare(x.Meta.Expiry, y.Meta.Expiry); c != 0 {
		return c
	}
	switch {
	case x.Meta.Deleted == y.Meta.Deleted:
		return 0
	case x.Meta.Deleted:
		return 1
	}
	return -1
}

// newer reports whether x wins over y by the last-write-wins rule: greater (LastMod, Dot).
func newer(x, y Sibling) bool {
	if x.Meta.LastMod != y.Meta.LastMod {
		return x.Meta.LastMod > y.Meta.LastMod
	}
	return CompareDots(x.Dot, y.Dot) > 0
}

// collapse keeps only the last-write-wins sibling, in a new slice.
func collapse(sibs []Sibling) []Sibling {
	if len(sibs) <= 1 {
		return sibs
	}
	w := sibs[0]
	for _, s := range sibs[1:] {
		if newer(s, w) {
			w = s
		}
	}
	return []Sibling{w}
}

// Equal reports whether o and b have the same clock counters and the same sibling dots. A nil object equals an
// empty one.
func (o *Object) Equal(b *Object) bool {
	if o == b {
		return true // NB: common: replicas of one write share the object (Vnode.put), and objects are immutable
	}
	var oc, bc VClock
	var os, bs []Sibling
	if o != nil {
		oc, os = o.Clock, o.Siblings
	}
	if b != nil {
		bc, bs = b.Clock, b.Siblings
	}
	if !oc.Equal(bc) || len(os) != len(bs) {
		return false
	}
	for i := range os {
		if os[i].Dot != bs[i].Dot {
			return false
		}
	}
	return true
}

// Live returns the siblings that are neither tombstones nor expired at nowSec (unix seconds), in dot order.
//
// When every sibling is live (the common case) the result is o.Siblings itself, capacity-limited: like the
// object, it must not be modified.
func (o *Object) Live(nowSec int64) []Sibling {
	n := o.LiveCount(nowSec)
	switch {
	case n == 0:
		return nil
	case n == len(o.Siblings):
		return o.Siblings[:n:n]
	}
	out := make([]Sibling, 0, n)
	for _, s := range o.Siblings {
		if s.Live(nowSec) {
			out = append(out, s)
		}
	}
	return out
}

// LiveCount is len(o.Live(nowSec)), without building the slice.
func (o *Object) LiveCount(nowSec int64) int {
	if o == nil {
		return 0
	}
	n := 0
	for _, s := range o.Siblings {
		if s.Live(nowSec) {
			n++
		}
	}
	return n
}

// Chosen returns the value a plain memcache `get` shows: the live sibling with the greatest (LastMod, Dot).
// ok is false when there is no live sibling.
func (o *Object) Chosen(nowSec int64) (s Sibling, ok bool) {
	if o == nil {
		return Sibling{}, false
	}
	for _, x := range o.Siblings {
		if x.Live(nowSec) && (!ok || newer(x, s)) {
			s, ok = x, true
		}
	}
	return s, ok
}

// TombstoneOnly reports whether o has no live sibling at nowSec: every sibling is deleted or expired (or there
// are none). A nil object is tombstone-only.
func (o *Object) TombstoneOnly(nowSec int64) bool {
	if o == nil {
		return true
	}
	for _, s := range o.Siblings {
		if s.Live(nowSec) {
			return false
		}
	}
	return true
}

// Clone returns a deep copy of o (values included).
func (o *Object) Clone() *Object {
	if o == nil {
		return nil
	}
	c := &Object{Clock: o.Clock.Clone()}
	if len(o.Siblings) > 0 {
		c.Siblings = make([]Sibling, len(o.Siblings))
		for i, s := range o.Siblings {
			s.Value = bytes.Clone(s.Value)
			c.Siblings[i] = s
		}
	}
	return c
}

// String renders o compactly for tests and logs (values are not shown).
func (o *Object) String() string {
	if o == nil {
		return "<nil>"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "clock=%s siblings=[", o.Clock)
	for i, s := range o.Siblings {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s.Dot.String())
		if s.Meta.Deleted {
			b.WriteString("(deleted)")
		}
	}
	b.WriteByte(']')
	return b.String()
}

// Validate checks the Object invariant.
func (o *Object) Validate() error {
	if o == nil {
		return nil
	}
	if err := o.Clock.Validate(); err != nil {
		return err
	}
	for i, s := range o.Siblings {
		if s.Dot.Actor == "" || s.Dot.Counter == 0 {
			return fmt.Errorf("kv: sibling %d: invalid dot %s", i, s.Dot)
		}
		if !o.Clock.Covers(s.Dot) {
			return fmt.Errorf("kv: sibling %d: dot %s not covered by clock %s", i, s.Dot, o.Clock)
		}
		if i > 0 && CompareDots(o.Siblings[i-1].Dot, s.Dot) >= 0 {
			return fmt.Errorf("kv: sibling %d: dot %s not sorted after %s", i, s.Dot, o.Siblings[i-1].Dot)
		}
	}
	return nil
}

// Encoding.
//
// An object is the msgpack array
//
//	[format=1, clock, siblings]
//	clock    = [[actor str, counter uint, timestamp int], ...]          sorted by actor
//	siblings = [[value bin, actor index uint, counter uint, flags uint, expiry int, lastmod int, deleted bool], ...]
//
// where a sibling's dot actor is an index into clock (every dot is covered by the clock). Every integer, string,
// bin and array uses its shortest msgpack form, and the decoder accepts only that form, so a decoded object
// re-encodes to the same bytes. Append-only: a new field means a new format version.

const objectFormat = 1

// Minimum encoded sizes, used to bound declared array lengths by the bytes remaining.
const (
	minEntrySize   = 5 // fixarray, fixstr of >= 1 byte, fixint, fixint
	minSiblingSize = 9 // fixarray, bin8 of 0, 5 fixints, bool
	maxSiblings    = 1 << 16
)

// Size returns the encoded size of o in bytes (exact for a valid object).
func (o *Object) Size() int {
	if o == nil {
		o = &Object{}
	}
	n := 1 + 1 + clockSize(o.Clock) + arrayHeaderSize(len(o.Siblings))
	for _, s := range o.Siblings {
		idx, _ := o.Clock.find(s.Dot.Actor)
		n += 1 + binSize(len(s.Value)) + uintSize(uint64(idx)) + uintSize(s.Dot.Counter) +
			uintSize(uint64(s.Meta.Flags)) + intSize(s.Meta.Expiry) + intSize(s.Meta.LastMod) + 1
	}
	return n
}

// MarshalBinary encodes o for storage and for the wire (see Encoding above). It fails if o breaks its invariant.
func (o *Object) MarshalBinary() ([]byte, error) {
	return o.AppendBinary(nil)
}

// AppendBinary appends MarshalBinary's encoding of o to dst (encoding.BinaryAppender): a caller that
// writes the bytes somewhere that copies them (storage) reuses one buffer instead of allocating per object.
// On error dst is returned unchanged.
func (o *Object) AppendBinary(dst []byte) ([]byte, error) {
	if o == nil {
		o = &Object{}
	}
	if err := o.Validate(); err != nil {
		return dst, fmt.Errorf("kv: encode object: %w", err)
	}
	e := getEncoder(0)
	defer putEncoder(e)
	e.w.b = slices.Grow(dst, o.Size())
	e.arrayLen(3)
	e.uint(objectFormat)
	e.clock(o.Clock)
	e.arrayLen(len(o.Siblings))
	for _, s := range o.Siblings {
		idx, _ := o.Clock.find(s.Dot.Actor)
		e.arrayLen(7)
		e.bin(s.Value)
		e.uint(uint64(idx))
		e.uint(s.Dot.Counter)
		e.uint(uint64(s.Meta.Flags))
		e.int(s.Meta.Expiry)
		e.int(s.Meta.LastMod)
		e.bool(s.Meta.Deleted)
	}
	return e.bytes(), nil
}

// UnmarshalObject decodes bytes made by MarshalBinary. It validates the encoding (canonical msgpack, known
// format, limits) and the Object invariant, never panics on hostile bytes, and allocates at most a small
// multiple of len(b). Values are copied out of b.
func UnmarshalObject(b []byte) (*Object, error) {
	d := getDecoder(b, "object")
	defer putDecoder(d)
	n, err := d.arrayLen(1, 3)
	if err != nil {
		return nil, err
	}
	if n != 3 {
		return nil, d.fail("want a 3-element array, got %d elements", n)
	}
	if err := d.format(objectFormat); err != nil {
		return nil, err
	}
	o := &Object{}
	if o.Clock, err = d.clock(); err != nil {
		return nil, err
	}
	ns, err := d.arrayLen(minSiblingSize, maxSiblings)
	if err != nil {
		return nil, err
	}
	if ns > 0 {
		o.Siblings = make([]Sibling, ns)
	}
	for i := range o.Siblings {
		s := &o.Siblings[i]
		if k, err := d.arrayLen(1, 7); err != nil {
			return nil, err
		} else if k != 7 {
			return nil, d.fail("sibling %d: want 7 fields, got %d", i, k)
		}
		if s.Value, err = d.bin(); err != nil {
			return nil, err
		}
		idx, err := d.uint()
		if err != nil {
			return nil, err
		}
		if idx >= uint64(len(o.Clock)) {
			return nil, d.fail("sibling %d: actor index %d out of range (clock has %d entries)", i, idx, len(o.Clock))
		}
		e := o.Clock[idx]
		s.Dot.Actor = e.Actor
		if s.Dot.Counter, err = d.uint(); err != nil {
			return nil, err
		}
		if s.Dot.Counter == 0 || s.Dot.Counter > e.Counter {
			return nil, d.fail("sibling %d: dot %s not covered by clock entry %s:%d", i, s.Dot, e.Actor, e.Counter)
		}
		if i > 0 && CompareDots(o.Siblings[i-1].Dot, s.Dot) >= 0 {
			return nil, d.fail("sibling %d: dot %s not sorted after %s", i, s.Dot, o.Siblings[i-1].Dot)
		}
		flags, err := d.uint()
		if err != nil {
			return nil, err
		}
		if flags > uint64(^uint32(0)) {
			return nil, d.fail("sibling %d: flags %d overflow uint32", i, flags)
		}
		s.Meta.Flags = uint32(flags)
		if s.Meta.Expiry, err = d.int(); err != nil {
			return nil, err
		}
		if s.Meta.LastMod, err = d.int(); err != nil {
			return nil, err
		}
		if s.Meta.Deleted, err = d.bool(); err != nil {
			return nil, err
		}
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return o, nil
}

// DecodeError describes bytes that UnmarshalObject or UnmarshalVClock rejected.
type DecodeError struct {
	What   string // "object" or "vclock"
	Offset int    // byte offset where decoding stopped
	Reason string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("kv: decode %s: at byte %d: %s", e.What, e.Offset, e.Reason)
}

// encoder writes canonical msgpack into one preallocated slice with the msgpack library's Encoder. Errors are
// impossible (the writer never fails), so its methods return nothing.
type encoder struct {
	enc *msgpack.Encoder
	w   sliceWriter
}

type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
func (w *sliceWriter) WriteByte(c byte) error      { w.b = append(w.b, c); return nil }

var encoderPool = sync.Pool{New: func() any {
	e := &encoder{enc: msgpack.NewEncoder(nil)}
	e.enc.Reset(&e.w)
	return e
}}

// getEncoder returns a pooled encoder writing into a new buffer of size bytes (0: none; the caller sets
// e.w.b).
func getEncoder(size int) *encoder {
	e := encoderPool.Get().(*encoder)
	if size > 0 {
		e.w.b = make([]byte, 0, size)
	}
	return e
}

func putEncoder(e *encoder) {
	e.w.b = nil
	encoderPool.Put(e)
}

func (e *encoder) bytes() []byte  { return e.w.b }
func (e *encoder) arrayLen(n int) { _ = e.enc.EncodeArrayLen(n) }
func (e *encoder) uint(n uint64)  { _ = e.enc.EncodeUint(n) }
func (e *encoder) int(n int64)    { _ = e.enc.EncodeInt(n) }
func (e *encoder) bool(v bool)    { _ = e.enc.EncodeBool(v) }
func (e *encoder) str(s string)   { _ = e.enc.EncodeString(s) }
func (e *encoder) bin(b []byte)   { _ = e.enc.EncodeBytesLen(len(b)); e.w.b = append(e.w.b, b...) }
func (e *encoder) clock(v VClock) { e.arrayLen(len(v)); e.entries(v) }
func (e *encoder) entries(v VClock) {
	for _, x := range v {
		e.arrayLen(3)
		e.str(x.Actor)
		e.uint(x.Counter)
		e.int(x.Timestamp)
	}
}

func clockSize(v VClock) int {
	n := arrayHeaderSize(len(v))
	for _, e := range v {
		n += 1 + strSize(len(e.Actor)) + uintSize(e.Counter) + intSize(e.Timestamp)
	}
	return n
}

// Shortest msgpack forms: the first byte the Encoder writes for a value, and its size.

func uintCode(n uint64) byte {
	switch {
	case n <= 0x7f:
		return byte(n)
	case n <= 0xff:
		return msgpcode.Uint8
	case n <= 0xffff:
		return msgpcode.Uint16
	case n <= 0xffffffff:
		return msgpcode.Uint32
	}
	return msgpcode.Uint64
}

func intCode(n int64) byte {
	switch {
	case n >= 0:
		return uintCode(uint64(n))
	case n >= -32:
		return byte(n)
	case n >= -1<<7:
		return msgpcode.Int8
	case n >= -1<<15:
		return msgpcode.Int16
	case n >= -1<<31:
		return msgpcode.Int32
	}
	return msgpcode.Int64
}

func arrayCode(n int) byte {
	switch {
	case n < 16:
		return msgpcode.FixedArrayLow | byte(n)
	case n <= 0xffff:
		return msgpcode.Array16
	}
	return msgpcode.Array32
}

func strCode(n int) byte {
	switch {
	case n < 32:
		return msgpcode.FixedStrLow | byte(n)
	case n <= 0xff:
		return msgpcode.Str8
	case n <= 0xffff:
		return msgpcode.Str16
	}
	return msgpcode.Str32
}

func binCode(n int) byte {
	switch {
	case n <= 0xff:
		return msgpcode.Bin8
	case n <= 0xffff:
		return msgpcode.Bin16
	}
	return msgpcode.Bin32
}

// codeSize is the size of a header or scalar that starts with code c (payload of str/bin excluded).
func codeSize(c byte) int {
	switch c {
	case msgpcode.Uint8, msgpcode.Int8, msgpcode.Str8, msgpcode.Bin8:
		return 2
	case msgpcode.Uint16, msgpcode.Int16, msgpcode.Str16, msgpcode.Bin16, msgpcode.Array16:
		return 3
	case msgpcode.Uint32, msgpcode.Int32, msgpcode.Str32, msgpcode.Bin32, msgpcode.Array32:
		return 5
	case msgpcode.Uint64, msgpcode.Int64:
		return 9
	}
	return 1
}

func uintSize(n uint64) int     { return codeSize(uintCode(n)) }
func intSize(n int64) int       { return codeSize(intCode(n)) }
func arrayHeaderSize(n int) int { return codeSize(arrayCode(n)) }
func strSize(n int) int         { return codeSize(strCode(n)) + n }
func binSize(n int) int         { return codeSize(binCode(n)) + n }

// decoder reads canonical msgpack from one byte slice with the msgpack library's Decoder. The Decoder reads
// straight from a bytes.Reader (no buffering), so r.Len() is exactly the number of bytes not yet consumed, and
// every declared length is checked against it before anything is allocated.
type decoder struct {
	dec  *msgpack.Decoder
	r    bytes.Reader
	buf  []byte
	what string
}

var decoderPool = sync.Pool{New: func() any {
	d := &decoder{dec: msgpack.NewDecoder(nil)}
	d.dec.Reset(&d.r)
	return d
}}

func getDecoder(b []byte, what string) *decoder {
	d := decoderPool.Get().(*decoder)
	d.r.Reset(b)
	d.buf, d.what = b, what
	return d
}

func putDecoder(d *decoder) {
	d.r.Reset(nil)
	d.buf = nil
	decoderPool.Put(d)
}

func (d *decoder) off() int { return len(d.buf) - d.r.Len() }

func (d *decoder) fail(format string, args ...any) error {
	return &DecodeError{What: d.what, Offset: d.off(), Reason: fmt.Sprintf(format, args...)}
}

func (d *decoder) failErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return d.fail("truncated")
	}
	return d.fail("%v", err)
}

func (d *decoder) peek() (byte, error) {
	if d.r.Len() == 0 {
		return 0, d.fail("truncated")
	}
	return d.buf[d.off()], nil
}

// arrayLen reads an array header and checks that n elements of at least minElem bytes fit in what remains and
// that n <= limit.
func (d *decoder) arrayLen(minElem, limit int) (int, error) {
	c, err := d.peek()
	if err != nil {
		return 0, err
	}
	n, err := d.dec.DecodeArrayLen()
	if err != nil {
		return 0, d.failErr(err)
	}
	if n < 0 || c != arrayCode(n) {
		return 0, d.fail("non-canonical array header 0x%02x", c)
	}
	if n > limit {
		return 0, d.fail("array of %d elements exceeds limit %d", n, limit)
	}
	if n > d.r.Len()/minElem {
		return 0, d.fail("array of %d elements cannot fit in %d remaining bytes", n, d.r.Len())
	}
	return n, nil
}

func (d *decoder) uint() (uint64, error) {
	c, err := d.peek()
	if err != nil {
		return 0, err
	}
	n, err := d.dec.DecodeUint64()
	if err != nil {
		return 0, d.failErr(err)
	}
	if c != uintCode(n) {
		return 0, d.fail("non-canonical unsigned integer 0x%02x", c)
	}
	return n, nil
}

func (d *decoder) int() (int64, error) {
	c, err := d.peek()
	if err != nil {
		return 0, err
	}
	n, err := d.dec.DecodeInt64()
	if err != nil {
		return 0, d.failErr(err)
	}
	if c != intCode(n) {
		return 0, d.fail("non-canonical integer 0x%02x", c)
	}
	return n, nil
}

func (d *decoder) bool() (bool, error) {
	c, err := d.peek()
	if err != nil {
		return false, err
	}
	if c != msgpcode.True && c != msgpcode.False {
		return false, d.fail("want a bool, got 0x%02x", c)
	}
	_, _ = d.r.ReadByte()
	return c == msgpcode.True, nil
}

// raw reads a str (isStr) or bin header and returns the payload as a sub-slice of the input.
func (d *decoder) raw(isStr bool, limit int) ([]byte, error) {
	c, err := d.peek()
	if err != nil {
		return nil, err
	}
	okCode := msgpcode.IsFixedString(c) || c == msgpcode.Str8 || c == msgpcode.Str16 || c == msgpcode.Str32
	kind := "str"
	if !isStr {
		okCode = c == msgpcode.Bin8 || c == msgpcode.Bin16 || c == msgpcode.Bin32
		kind = "bin"
	}
	if !okCode {
		return nil, d.fail("want %s, got 0x%02x", kind, c)
	}
	n, err := d.dec.DecodeBytesLen()
	if err != nil {
		return nil, d.failErr(err)
	}
	if (isStr && c != strCode(n)) || (!isStr && c != binCode(n)) {
		return nil, d.fail("non-canonical %s header 0x%02x", kind, c)
	}
	if n < 0 || n > limit {
		return nil, d.fail("%s of %d bytes exceeds limit %d", kind, n, limit)
	}
	if n > d.r.Len() {
		return nil, d.fail("%s of %d bytes cannot fit in %d remaining bytes", kind, n, d.r.Len())
	}
	start := d.off()
	_, _ = d.r.Seek(int64(n), io.SeekCurrent)
	return d.buf[start : start+n : start+n], nil
}

// bin returns a copy of a bin payload (never nil).
func (d *decoder) bin() ([]byte, error) {
	b, err := d.raw(false, math.MaxInt)
	if err != nil {
		return nil, err
	}
	return append(make([]byte, 0, len(b)), b...), nil
}

func (d *decoder) format(want uint64) error {
	v, err := d.uint()
	if err != nil {
		return err
	}
	if v != want {
		return d.fail("unknown format version %d (want %d)", v, want)
	}
	return nil
}

// clock reads a clock array and checks the VClock invariant.
func (d *decoder) clock() (VClock, error) {
	n, err := d.arrayLen(minEntrySize, MaxClockEntries)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	v := make(VClock, n)
	for i := range v {
		if k, err := d.arrayLen(1, 3); err != nil {
			return nil, err
		} else if k != 3 {
			return nil, d.fail("clock entry %d: want 3 fields, got %d", i, k)
		}
		a, err := d.raw(true, MaxActorLen)
		if err != nil {
			return nil, err
		}
		if len(a) == 0 {
			return nil, d.fail("clock entry %d: empty actor", i)
		}
		if i > 0 && string(a) <= v[i-1].Actor {
			return nil, d.fail("clock entry %d: actor %q not sorted after %q", i, a, v[i-1].Actor)
		}
		v[i].Actor = string(a)
		if v[i].Counter, err = d.uint(); err != nil {
			return nil, err
		}
		if v[i].Counter == 0 {
			return nil, d.fail("clock entry %d (%q): zero counter", i, a)
		}
		if v[i].Timestamp, err = d.int(); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// end checks that nothing follows the value.
func (d *decoder) end() error {
	if d.r.Len() != 0 {
		return d.fail("%d trailing bytes", d.r.Len())
	}
	return nil
}
