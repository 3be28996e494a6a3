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
}

// NewScanner returns a Scanner with the given Limits.
func NewScanner(lim Limits) *Scanner { return &Scanner{lim: lim} }

// Reset forgets a partially scanned value; the Limits stay.
func (s *Scanner) Reset() {
	s.pos, s.rest, s.elems, s.depth = 0, 0, 0, 0
}

// Scan is Scan(b, limits) resumed from the previous call (see Scanner).
func (s *Scanner) Scan(b []byte) (int, error) {
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
		c := b[p]
		var (
			hdr    int64      // header bytes, including the type byte
			lenSz  int64      // bytes of the length field after the type byte (0: none)
			body   int64      // payload bytes after the header (str, bin, ext)
			count  int64 = -1 // values inside, for a container; -1 for anything else
			countX int64 = 1  // count multiplier: 2 for maps
		)
		switch {
		case c <= 0x7f || c >= 0xe0: // positive and negative fixint
			hdr = 1
		case c <= 0x8f: // fixmap
			hdr, count = 1, 2*int64(c&0x0f)
		case c <= 0x9f: // fixarray
			hdr, count = 1, int64(c&0x0f)
		case c <= 0xbf: // fixstr
			hdr, body = 1, int64(c&0x1f)
		default:
			switch c {
			case 0xc0, 0xc2, 0xc3: // nil, false, true
				hdr = 1
			case 0xc1:
				s.Reset()
				return 0, ErrMalformed
			case 0xc4, 0xd9: // bin8, str8
				hdr, lenSz = 2, 1
			case 0xc5, 0xda: // bin16, str16
				hdr, lenSz = 3, 2
			case 0xc6, 0xdb: // bin32, str32
				hdr, lenSz = 5, 4
			case 0xc7: // ext8: length, type
				hdr, lenSz = 3, 1
			case 0xc8: // ext16
				hdr, lenSz = 4, 2
			case 0xc9: // ext32
				hdr, lenSz = 6, 4
			case 0xcc, 0xd0: // uint8, int8
				hdr = 2
			case 0xcd, 0xd1: // uint16, int16
				hdr = 3
			case 0xca, 0xce, 0xd2: // float32, uint32, int32
				hdr = 5
			case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
				hdr = 9
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16: type byte + data
				hdr = 2 + int64(1)<<(c-0xd4)
			case 0xdc: // array16
				hdr, lenSz, count = 3, 2, 0
			case 0xdd: // array32
				hdr, lenSz, count = 5, 4, 0
			case 0xde: // map16
				hdr, lenSz, count, countX = 3, 2, 0, 2
			case 0xdf: // map32
				hdr, lenSz, count, countX = 5, 4, 0, 2
			}
		}

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
		if lenSz > 0 {
			if int64(p)+1+lenSz > int64(len(b)) {
				return int(int64(p) + hdr + restAfter), ErrIncomplete // the length field is cut
			}
			n := readUint(b[p+1:], lenSz)
			if count >= 0 {
				count = n * countX
			} else {
				body = n
			}
		}

		if count >= 0 {
			// A container header, complete: check what it declares before stepping into it.
			if s.elems+count > int64(lim.MaxElems) {
				s.Reset()
				return 0, ErrTooManyElems
			}
			end := int64(p) + hdr
			if end+count+restAfter > maxBytes {
				s.Reset()
				return 0, ErrTooLarge
			}
			s.pos = int(end)
			s.elems += count
			s.consumeOne()
			if count > 0 {
				s.stack[s.depth] = count
				s.depth++
				s.rest += count
			}
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
		// Close every container whose last value has just been scanned.
		for s.depth > 0 && s.stack[s.depth-1] == 0 {
			s.depth--
		}
		if s.depth == 0 {
			n := s.pos
			s.Reset()
			return n, nil
		}
	}
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
