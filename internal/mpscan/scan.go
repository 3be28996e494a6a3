package mpscan

import (
	"errors"
	"fmt"
)

// Defaults for Limits fields left zero. They are the limits of gokai's msgpack-RPC messages: a 16 MiB value
// plus 1 KiB for the rest of the request.
const (
	DefaultMaxBytes = 16<<20 + 1<<10
	DefaultMaxDepth = 32
	DefaultMaxElems = 1 << 20
	// MaxDepthLimit is the largest MaxDepth honoured; a larger MaxDepth acts as MaxDepthLimit (Validate
	// reports it). It sizes the Scanner's fixed stack, so scanning never allocates.
	MaxDepthLimit = 256
)

// Errors returned by Scan. Only ErrIncomplete means that more bytes could make the value valid.
var (
	// ErrIncomplete: b is a proper prefix of a value that can still be valid within the Limits.
	ErrIncomplete = errors.New("mpscan: incomplete value")
	// ErrTooLarge: the value is, or is declared to be, longer than Limits.MaxBytes.
	ErrTooLarge = errors.New("mpscan: value too large")
	// ErrTooDeep: containers are nested more than Limits.MaxDepth deep.
	ErrTooDeep = errors.New("mpscan: value nested too deep")
	// ErrTooManyElems: the arrays and maps of the value declare more than Limits.MaxElems elements.
	ErrTooManyElems = errors.New("mpscan: too many elements")
	// ErrMalformed: a byte that is not a msgpack type (0xc1) where a value must start.
	ErrMalformed = errors.New("mpscan: malformed msgpack")
)

// Limits bound one msgpack value. The zero value means every default; fields <= 0 take their default.
type Limits struct {
	// MaxBytes bounds the encoded length of the value, in bytes. Default DefaultMaxBytes (16 MiB + 1 KiB).
	MaxBytes int
	// MaxDepth bounds container nesting: a top-level array or map is at depth 1, a container inside it at
	// depth 2; scalars add no depth (an empty container does). Default 32; at most MaxDepthLimit.
	MaxDepth int
	// MaxElems bounds the elements of all arrays and maps of the value together; a map entry counts as two
	// (its key and its value). Default 1<<20.
	MaxElems int
}

// Validate reports the first field out of range, naming field and value. Zero fields are valid (defaults).
func (l Limits) Validate() error {
	switch {
	case l.MaxBytes < 0:
		return fmt.Errorf("mpscan: Limits.MaxBytes = %d, want >= 1 (0 = default %d)", l.MaxBytes, DefaultMaxBytes)
	case l.MaxDepth < 0 || l.MaxDepth > MaxDepthLimit:
		return fmt.Errorf("mpscan: Limits.MaxDepth = %d, want 1..%d (0 = default %d)",
			l.MaxDepth, MaxDepthLimit, DefaultMaxDepth)
	case l.MaxElems < 0:
		return fmt.Errorf("mpscan: Limits.MaxElems = %d, want >= 1 (0 = default %d)", l.MaxElems, DefaultMaxElems)
	}
	return nil
}

// WithDefaults returns l with fields <= 0 set to their defaults and MaxDepth clamped to MaxDepthLimit: the
// limits Scan applies.
func (l Limits) WithDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	l.MaxDepth = min(l.MaxDepth, MaxDepthLimit)
	if l.MaxElems <= 0 {
		l.MaxElems = DefaultMaxElems
	}
	return l
}

// Scan checks that b begins with one complete msgpack value within lim and returns its length; bytes after
// it are ignored. On ErrIncomplete the int is a lower bound on the value's total length (> len(b), <=
// lim.MaxBytes); on other errors it is 0. Scan does not allocate, and its work is linear in len(b) whatever
// the headers declare.
func Scan(b []byte, lim Limits) (int, error) {
	s := Scanner{lim: lim}
	return s.Scan(b)
}

// Scanner is Scan resumed across calls, for framing a stream: it remembers how far the value at the start
// of the buffer has been checked, so each call only scans the bytes that arrived since the last one.
//
// The zero Scanner uses default Limits. Between calls that return ErrIncomplete, b must begin with the
// same bytes as before (the caller appends to it, and may move it). Any other result ends the value: the
// Scanner resets itself, and the next call scans a new value at the start of b (normally b[n:] after a
// success).
type Scanner struct {
	lim Limits

	pos   int   // bytes of the value already scanned: every item before pos is complete
	rest  int64 // values still to scan in the open containers (the sum of stack[:depth])
	elems int64 // elements declared so far
	depth int   // open containers
	// stack holds, for each open container (innermost last), how many of its values are still to scan.
	// INVARIANT: while depth > 0, pos + rest <= MaxBytes (each value needs at least one byte).
	stack [MaxDepthLimit]int64

	// Skip's state. at is the offset in the value of the next byte Skip is given; cur the item being
	// passed, which began at curAt, with restAfter values to scan after it; lenRead bytes of its length
	// field have been read into lenVal; left bytes of it remain to pass over.
	skipping  bool
	phase     int
	at        int64
	cur       item
	curAt     int64
	restAfter int64
	lenRead   int64
	lenVal    int64
	left      int64
}

// NewScanner returns a Scanner with the given Limits.
func NewScanner(lim Limits) *Scanner { return &Scanner{lim: lim} }

// Reset forgets a partially scanned (or skipped) value; the Limits stay.
func (s *Scanner) Reset() {
	s.pos, s.rest, s.elems, s.depth = 0, 0, 0, 0
	s.skipping, s.phase, s.at, s.left = false, skipItem, 0, 0
}

// Scan is Scan(b, limits) resumed from the previous call (see Scanner). It must not be called while the
// Scanner skips a value (see Skip).
func (s *Scanner) Scan(b []byte) (int, error) {
	if s.skipping {
		panic("mpscan: Scan called while skipping a value") // INVARIANT: Skip until the value ends
	}
	lim := s.lim.WithDefaults()
	maxBytes := int64(lim.MaxBytes)
	for {
		p := s.pos
		restAfter := int64(0) // values still to scan after the item at p
		if s.depth > 0 {
			restAfter = s.rest - 1
		}
		if p >= len(b) {
			return int(int64(p) + 1 + restAfter), ErrIncomplete
		}
		it := head(b[p])
		if it.malformed {
			s.Reset()
			return 0, ErrMalformed
		}
		hdr, body, count := it.hdr, it.body, it.count

		// Checks in an order that does not depend on how much of the header is present, so the result does
		// not depend on how a stream was cut.
		if count >= 0 && s.depth+1 > lim.MaxDepth {
			s.Reset()
			return 0, ErrTooDeep
		}
		if int64(p)+hdr+restAfter > maxBytes {
			s.Reset()
			return 0, ErrTooLarge
		}
		if it.lenSz > 0 {
			if int64(p)+1+it.lenSz > int64(len(b)) {
				return int(int64(p) + hdr + restAfter), ErrIncomplete // the length field is cut
			}
			n := readUint(b[p+1:], it.lenSz)
			if count >= 0 {
				count = n * it.countX
			} else {
				body = n
			}
		}

		if count >= 0 {
			// A container header, complete: check what it declares before stepping into it.
			if err := s.enter(int64(p)+hdr, count, restAfter, lim); err != nil {
				return 0, err
			}
			s.pos = p + int(hdr)
		} else {
			end := int64(p) + hdr + body
			if end+restAfter > maxBytes {
				s.Reset()
				return 0, ErrTooLarge
			}
			if end > int64(len(b)) {
				return int(end + restAfter), ErrIncomplete
			}
			s.pos = int(end)
			s.consumeOne()
		}
		if s.closeFinished() {
			n := s.pos
			s.Reset()
			return n, nil
		}
	}
}

// item is what the first byte of a msgpack value says about it.
type item struct {
	hdr       int64 // header bytes, including the type byte (and, for fixed-size values, their data)
	lenSz     int64 // bytes of the length field after the type byte (0: none)
	body      int64 // payload bytes after the header, when known from the type byte (fixstr)
	count     int64 // values inside, for a container (0 until a length field is read); -1 for anything else
	countX    int64 // count multiplier: 2 for maps
	malformed bool  // 0xc1, which is never used
}

// head decodes a value's type byte.
func head(c byte) item {
	it := item{count: -1, countX: 1}
	switch {
	case c <= 0x7f || c >= 0xe0: // positive and negative fixint
		it.hdr = 1
	case c <= 0x8f: // fixmap
		it.hdr, it.count = 1, 2*int64(c&0x0f)
	case c <= 0x9f: // fixarray
		it.hdr, it.count = 1, int64(c&0x0f)
	case c <= 0xbf: // fixstr
		it.hdr, it.body = 1, int64(c&0x1f)
	default:
		switch c {
		case 0xc0, 0xc2, 0xc3: // nil, false, true
			it.hdr = 1
		case 0xc1:
			it.malformed = true
		case 0xc4, 0xd9: // bin8, str8
			it.hdr, it.lenSz = 2, 1
		case 0xc5, 0xda: // bin16, str16
			it.hdr, it.lenSz = 3, 2
		case 0xc6, 0xdb: // bin32, str32
			it.hdr, it.lenSz = 5, 4
		case 0xc7: // ext8: length, type
			it.hdr, it.lenSz = 3, 1
		case 0xc8: // ext16
			it.hdr, it.lenSz = 4, 2
		case 0xc9: // ext32
			it.hdr, it.lenSz = 6, 4
		case 0xcc, 0xd0: // uint8, int8
			it.hdr = 2
		case 0xcd, 0xd1: // uint16, int16
			it.hdr = 3
		case 0xca, 0xce, 0xd2: // float32, uint32, int32
			it.hdr = 5
		case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
			it.hdr = 9
		case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16: type byte + data
			it.hdr = 2 + int64(1)<<(c-0xd4)
		case 0xdc: // array16
			it.hdr, it.lenSz, it.count = 3, 2, 0
		case 0xdd: // array32
			it.hdr, it.lenSz, it.count = 5, 4, 0
		case 0xde: // map16
			it.hdr, it.lenSz, it.count, it.countX = 3, 2, 0, 2
		case 0xdf: // map32
			it.hdr, it.lenSz, it.count, it.countX = 5, 4, 0, 2
		}
	}
	return it
}

// enter checks a complete container header that ends at end and declares count values, and steps into
// the container. On error the Scanner is reset.
func (s *Scanner) enter(end, count, restAfter int64, lim Limits) error {
	if s.elems+count > int64(lim.MaxElems) {
		s.Reset()
		return ErrTooManyElems
	}
	if end+count+restAfter > int64(lim.MaxBytes) {
		s.Reset()
		return ErrTooLarge
	}
	s.elems += count
	s.consumeOne()
	if count > 0 {
		s.stack[s.depth] = count
		s.depth++
		s.rest += count
	}
	return nil
}

// closeFinished closes every container whose last value has just been scanned, and reports whether the
// value is complete.
func (s *Scanner) closeFinished() bool {
	for s.depth > 0 && s.stack[s.depth-1] == 0 {
		s.depth--
	}
	return s.depth == 0
}

// Scanned returns how many bytes at the start of the value hold only complete items, after a Scan that
// returned ErrIncomplete: a caller that switches to Skip passes the bytes from there on.
func (s *Scanner) Scanned() int { return s.pos }

// Skip phases.
const (
	skipItem = iota // at the first byte of an item
	skipLen         // reading an item's length field
	skipBody        // passing over the rest of an item (its payload, or the data of a fixed-size value)
)

// Skip goes on checking the value a Scan left incomplete, over bytes the caller does not keep: a server
// that will not buffer a message (it is over its memory budget) still has to find where it ends. The first
// call takes the bytes from Scanned() on (of the buffer the last Scan saw); each later call takes the bytes
// that follow those given before, and the caller may drop them once Skip returns. Skip returns how many
// bytes of b belong to the value: all of them with ErrIncomplete while the value goes on, or n <= len(b)
// and nil once it ends (b[n:] begins the next value). Limits apply as in Scan, with the same errors, which
// end the value. Skip neither allocates nor keeps b; its work is linear in len(b). Once Skip has been
// called, only Skip may be called until the value ends (Reset ends it too).
func (s *Scanner) Skip(b []byte) (int, error) {
	lim := s.lim.WithDefaults()
	maxBytes := int64(lim.MaxBytes)
	if !s.skipping {
		s.skipping, s.at, s.phase = true, int64(s.pos), skipItem
	}
	i := 0
	for {
		switch s.phase {
		case skipBody:
			k := min(s.left, int64(len(b)-i))
			i += int(k)
			s.at += k
			s.left -= k
			if s.left > 0 {
				return i, ErrIncomplete
			}
			s.consumeOne()
			if s.closeFinished() {
				s.Reset()
				return i, nil
			}
			s.phase = skipItem

		case skipItem:
			if i >= len(b) {
				return i, ErrIncomplete
			}
			it := head(b[i])
			if it.malformed {
				s.Reset()
				return 0, ErrMalformed
			}
			s.cur, s.curAt, s.restAfter = it, s.at, 0
			if s.depth > 0 {
				s.restAfter = s.rest - 1
			}
			if it.count >= 0 && s.depth+1 > lim.MaxDepth {
				s.Reset()
				return 0, ErrTooDeep
			}
			if s.curAt+it.hdr+s.restAfter > maxBytes {
				s.Reset()
				return 0, ErrTooLarge
			}
			i++
			s.at++
			if it.lenSz > 0 {
				s.phase, s.lenRead, s.lenVal = skipLen, 0, 0
				continue
			}
			if err := s.skipHeaderDone(it.count, it.body, lim); err != nil {
				return 0, err
			}

		case skipLen:
			for s.lenRead < s.cur.lenSz && i < len(b) {
				s.lenVal = s.lenVal<<8 | int64(b[i])
				s.lenRead++
				i++
				s.at++
			}
			if s.lenRead < s.cur.lenSz {
				return i, ErrIncomplete
			}
			count, body := s.cur.count, s.cur.body
			if count >= 0 {
				count = s.lenVal * s.cur.countX
			} else {
				body = s.lenVal
			}
			if err := s.skipHeaderDone(count, body, lim); err != nil {
				return 0, err
			}
		}
		if s.phase == skipItem && s.closeFinished() {
			s.Reset()
			return i, nil
		}
	}
}

// skipHeaderDone goes on from an item whose type byte and length field have been read: it steps into a
// container, or sets the bytes left to pass over. On error the Scanner is reset.
func (s *Scanner) skipHeaderDone(count, body int64, lim Limits) error {
	if count >= 0 {
		if err := s.enter(s.curAt+s.cur.hdr, count, s.restAfter, lim); err != nil {
			return err
		}
		s.phase = skipItem
		return nil
	}
	end := s.curAt + s.cur.hdr + body
	if end+s.restAfter > int64(lim.MaxBytes) {
		s.Reset()
		return ErrTooLarge
	}
	s.left, s.phase = end-s.at, skipBody
	return nil
}

// consumeOne counts one value of the innermost open container as scanned (nothing at the root).
func (s *Scanner) consumeOne() {
	if s.depth > 0 {
		s.stack[s.depth-1]--
		s.rest--
	}
}

// readUint reads a big-endian unsigned integer of size 1, 2 or 4 bytes.
func readUint(b []byte, size int64) int64 {
	switch size {
	case 1:
		return int64(b[0])
	case 2:
		return int64(b[0])<<8 | int64(b[1])
	default:
		return int64(b[0])<<24 | int64(b[1])<<16 | int64(b[2])<<8 | int64(b[3])
	}
}
