package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/gokai-kv/gokai/ring"
)

// listCursor is where a paged key listing (list_keys) stands: the hash partitions whose keys are all
// listed (Done), and the ranges listed part of the way (Partial), each with the last key listed from it.
// Every other hash partition is not started. It travels to the client as the opaque continuation and back,
// so its decoding is bounded and checks everything.
//
// INVARIANT: every live key of a Done partition, and every live key of a Partial range that sorts at or
// before its After, was listed by an earlier page; no other key was. Keys of one range are listed in
// ascending order (the vnodes fold in key order), so a range resumes with a fold that seeks past After.
type listCursor struct {
	Q       int
	Prefix  []byte
	Done    []bool // len Q
	Partial []partialRange
}

// partialRange is a set of hash partitions listed up to After.
type partialRange struct {
	Covers []int // ascending, distinct
	After  []byte
}

// Bounds of a cursor a client hands back.
const (
	cursorVersion     = 1
	maxCursorPartials = 64
	maxCursorKey      = 65535 // the longest key KV stores over msgpack-RPC and memcache faces
)

var errCursor = errors.New("kv: bad continuation")

func newListCursor(q int, prefix []byte) *listCursor {
	return &listCursor{Q: q, Prefix: prefix, Done: make([]bool, q)}
}

// remaining lists the hash partitions neither done nor partly listed, ascending.
func (c *listCursor) remaining() []int {
	taken := slices.Clone(c.Done)
	for _, pr := range c.Partial {
		for _, h := range pr.Covers {
			taken[h] = true
		}
	}
	var out []int
	for h, t := range taken {
		if !t {
			out = append(out, h)
		}
	}
	return out
}

// doneCount is how many hash partitions are listed in full.
func (c *listCursor) doneCount() int {
	n := 0
	for _, d := range c.Done {
		if d {
			n++
		}
	}
	return n
}

// finished reports whether every hash partition is listed.
func (c *listCursor) finished() bool { return len(c.Partial) == 0 && c.doneCount() == c.Q }

// encode renders c as the continuation:
//
//	version u8 | Q u32 | len(prefix) u16 | prefix | done bitmap (ceil(Q/8) bytes, bit h%8 of byte h/8)
//	| partial count u16 | per partial: covers bitmap | len(after) u16 | after
func (c *listCursor) encode() []byte {
	bm := (c.Q + 7) / 8
	out := make([]byte, 0, 9+len(c.Prefix)+bm+len(c.Partial)*(bm+2+64))
	out = append(out, cursorVersion)
	out = binary.BigEndian.AppendUint32(out, uint32(c.Q))
	out = binary.BigEndian.AppendUint16(out, uint16(len(c.Prefix)))
	out = append(out, c.Prefix...)
	out = appendBitmap(out, c.Q, func(h int) bool { return c.Done[h] })
	out = binary.BigEndian.AppendUint16(out, uint16(len(c.Partial)))
	for _, pr := range c.Partial {
		out = appendBitmap(out, c.Q, func(h int) bool { _, ok := slices.BinarySearch(pr.Covers, h); return ok })
		out = binary.BigEndian.AppendUint16(out, uint16(len(pr.After)))
		out = append(out, pr.After...)
	}
	return out
}

func appendBitmap(out []byte, q int, set func(h int) bool) []byte {
	bm := make([]byte, (q+7)/8)
	for h := range q {
		if set(h) {
			bm[h/8] |= 1 << (h % 8)
		}
	}
	return append(out, bm...)
}

// decodeListCursor reads a continuation for a ring of q partitions. It checks every length against what is
// left, Q against the ring, and that no hash partition is both done and partial or in two partial ranges.
func decodeListCursor(b []byte, q int) (*listCursor, error) {
	r := cursorReader{b: b}
	if v := r.u8(); v != cursorVersion {
		return nil, fmt.Errorf("%w: version %d", errCursor, v)
	}
	cq := int(r.u32())
	if r.bad {
		return nil, fmt.Errorf("%w: truncated", errCursor)
	}
	if cq != q || ring.CheckQ(cq) != nil {
		return nil, fmt.Errorf("%w: made for a ring of %d partitions, this one has %d", errCursor, cq, q)
	}
	c := &listCursor{Q: q, Done: make([]bool, q)}
	c.Prefix = r.bytes(int(r.u16()))
	for h, set := range r.bitmap(q) {
		c.Done[h] = set
	}
	n := int(r.u16())
	if n > maxCursorPartials {
		return nil, fmt.Errorf("%w: %d partial ranges", errCursor, n)
	}
	taken := slices.Clone(c.Done)
	for range n {
		var pr partialRange
		for h, set := range r.bitmap(q) {
			if !set {
				continue
			}
			if taken[h] {
				return nil, fmt.Errorf("%w: partition %d listed twice", errCursor, h)
			}
			taken[h] = true
			pr.Covers = append(pr.Covers, h)
		}
		pr.After = r.bytes(int(r.u16()))
		if r.bad {
			break
		}
		if len(pr.Covers) == 0 || len(pr.After) == 0 {
			return nil, fmt.Errorf("%w: an empty partial range", errCursor)
		}
		c.Partial = append(c.Partial, pr)
	}
	if r.bad || len(r.b) != 0 {
		return nil, fmt.Errorf("%w: truncated or trailing bytes", errCursor)
	}
	return c, nil
}

// cursorReader reads big-endian fields; past the end it sets bad and returns zeros.
type cursorReader struct {
	b   []byte
	bad bool
}

func (r *cursorReader) take(n int) []byte {
	if r.bad || n > len(r.b) {
		r.bad = true
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *cursorReader) u8() uint8 {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *cursorReader) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *cursorReader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *cursorReader) bytes(n int) []byte { return slices.Clone(r.take(n)) }

func (r *cursorReader) bitmap(q int) []bool {
	b := r.take((q + 7) / 8)
	if b == nil {
		return nil
	}
	out := make([]bool, q)
	for h := range q {
		out[h] = b[h/8]&(1<<(h%8)) != 0
	}
	return out
}
