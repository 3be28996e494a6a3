package ring

import (
	"encoding"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/vmihailenco/msgpack/v5"
)

// ringDocFormat is the encoding format of ringDoc. Bump it on any change
// that an older decoder would misread; adding a field does not need one
// (unknown fields are ignored).
const ringDocFormat = 1

// MaxDocBytes bounds the size of a ring document Unmarshal accepts.
const MaxDocBytes = 16 << 20

// ringDoc is the wire form of a Ring: a node table and, per partition, an
// index into it.
type ringDoc struct {
	Format  uint16   `msgpack:"format"`  // ringDocFormat
	Version uint64   `msgpack:"version"` // Ring.Version
	Nodes   []string `msgpack:"nodes"`   // distinct, ascending, each owns a partition
	Owners  []uint32 `msgpack:"owners"`  // index into Nodes; len = Q
}

var _ encoding.BinaryMarshaler = (*Ring)(nil)

// MarshalBinary encodes the ring as a msgpack ring document (a map with the
// keys format, version, nodes, owners). Unmarshal reverses it.
func (r *Ring) MarshalBinary() ([]byte, error) {
	index := make(map[NodeID]uint32, len(r.nodes))
	doc := ringDoc{
		Format:  ringDocFormat,
		Version: r.version,
		Nodes:   make([]string, len(r.nodes)),
		Owners:  make([]uint32, len(r.owners)),
	}
	for i, n := range r.nodes {
		index[n] = uint32(i)
		doc.Nodes[i] = string(n)
	}
	for p, o := range r.owners {
		doc.Owners[p] = index[o]
	}
	return msgpack.Marshal(&doc)
}

// Unmarshal decodes and validates a ring document made by
// MarshalBinary. It is safe on untrusted input: sizes are checked before
// anything is allocated, and every error wraps ErrMalformed.
func Unmarshal(b []byte) (*Ring, error) {
	if len(b) > MaxDocBytes {
		return nil, fmt.Errorf("%w: %d bytes (max %d)", ErrMalformed, len(b), MaxDocBytes)
	}
	// NB: msgpack preallocates from declared lengths; check them first.
	if err := scanMsgpack(b, 8); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var doc ringDoc
	if err := msgpack.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if doc.Format != ringDocFormat {
		return nil, fmt.Errorf("%w: format %d (want %d)", ErrMalformed, doc.Format, ringDocFormat)
	}
	if err := CheckQ(len(doc.Owners)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	used := make([]bool, len(doc.Nodes))
	for i, n := range doc.Nodes {
		if n == "" {
			return nil, fmt.Errorf("%w: empty node id", ErrMalformed)
		}
		if i > 0 && doc.Nodes[i-1] >= n {
			return nil, fmt.Errorf("%w: node table not strictly ascending at %q", ErrMalformed, n)
		}
	}
	owners := make([]NodeID, len(doc.Owners))
	for p, x := range doc.Owners {
		if int64(x) >= int64(len(doc.Nodes)) {
			return nil, fmt.Errorf("%w: partition %d owner index %d, node table has %d", ErrMalformed, p, x, len(doc.Nodes))
		}
		used[x] = true
		owners[p] = NodeID(doc.Nodes[x])
	}
	for i, u := range used {
		if !u {
			return nil, fmt.Errorf("%w: node %q owns no partition", ErrMalformed, doc.Nodes[i])
		}
	}
	r, err := NewFromOwners(owners, doc.Version)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return r, nil
}

// scanMsgpack checks that b is exactly one well-formed msgpack value no
// deeper than maxDepth whose declared lengths fit in the bytes present, so
// that decoding it cannot allocate more than a small multiple of len(b).
func scanMsgpack(b []byte, maxDepth int) error {
	end, err := scanValue(b, 0, maxDepth)
	if err != nil {
		return err
	}
	if end != len(b) {
		return fmt.Errorf("%d trailing bytes", len(b)-end)
	}
	return nil
}

// scanValue skips the value starting at b[i] and returns the offset after it.
func scanValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return 0, fmt.Errorf("truncated at byte %d", i)
	}
	c := b[i]
	i++
	// length reads an n-byte big-endian length at b[i].
	length := func(n int) (int, error) {
		if len(b)-i < n {
			return 0, fmt.Errorf("truncated length at byte %d", i)
		}
		var v uint64
		switch n {
		case 1:
			v = uint64(b[i])
		case 2:
			v = uint64(binary.BigEndian.Uint16(b[i:]))
		case 4:
			v = uint64(binary.BigEndian.Uint32(b[i:]))
		}
		i += n
		if v > math.MaxInt32 {
			return 0, fmt.Errorf("length %d too large", v)
		}
		return int(v), nil
	}
	skip := func(n int) (int, error) {
		if n < 0 || len(b)-i < n {
			return 0, fmt.Errorf("declared %d bytes at byte %d, %d remain", n, i, len(b)-i)
		}
		return i + n, nil
	}
	items := func(n int) (int, error) { // n nested values
		if depth <= 0 {
			return 0, fmt.Errorf("nested deeper than allowed at byte %d", i)
		}
		if n > len(b)-i { // every value takes at least one byte
			return 0, fmt.Errorf("declared %d items at byte %d, %d bytes remain", n, i, len(b)-i)
		}
		var err error
		for range n {
			if i, err = scanValue(b, i, depth-1); err != nil {
				return 0, err
			}
		}
		return i, nil
	}
	withLen := func(lenBytes int, f func(int) (int, error)) (int, error) {
		n, err := length(lenBytes)
		if err != nil {
			return 0, err
		}
		return f(n)
	}
	pairs := func(n int) (int, error) { return items(2 * n) }
	switch {
	case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3: // fixint, nil, bool
		return i, nil
	case c >= 0x80 && c <= 0x8f:
		return pairs(int(c & 0x0f))
	case c >= 0x90 && c <= 0x9f:
		return items(int(c & 0x0f))
	case c >= 0xa0 && c <= 0xbf:
		return skip(int(c & 0x1f))
	}
	switch c {
	case 0xcc, 0xd0:
		return skip(1)
	case 0xcd, 0xd1:
		return skip(2)
	case 0xca, 0xce, 0xd2:
		return skip(4)
	case 0xcb, 0xcf, 0xd3:
		return skip(8)
	case 0xd9, 0xc4: // str8, bin8
		return withLen(1, skip)
	case 0xda, 0xc5:
		return withLen(2, skip)
	case 0xdb, 0xc6:
		return withLen(4, skip)
	case 0xdc:
		return withLen(2, items)
	case 0xdd:
		return withLen(4, items)
	case 0xde:
		return withLen(2, pairs)
	case 0xdf:
		return withLen(4, pairs)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16 (+ type byte)
		return skip(1 + 1<<(c-0xd4))
	case 0xc7, 0xc8, 0xc9: // ext 8, 16, 32 (+ type byte)
		return withLen(1<<(c-0xc7), func(n int) (int, error) { return skip(n + 1) })
	}
	return 0, fmt.Errorf("invalid type byte 0x%02x at byte %d", c, i-1)
}
