package mpscan

import (
	"bytes"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

type refStatus int

const (
	refOK refStatus = iota
	refIncomplete
	refMalformed
)

func (s refStatus) String() string { return [...]string{"ok", "incomplete", "malformed"}[s] }

// refScan is the simple reference: a recursive walk of the value at b[p:], straight from the msgpack spec,
// with no limits. It returns the end offset, the nesting depth and the number of elements (map entries
// count two). It loops at most once per byte present, since every element takes at least one.
func refScan(b []byte, p int) (end, depth int, elems int64, st refStatus) {
	if p >= len(b) {
		return 0, 0, 0, refIncomplete
	}
	c := b[p]
	// fixed: total size of a fixed-size value; lenSz/extra: a length field of lenSz bytes, then extra header
	// bytes, then the payload; count: containers.
	fixed, lenSz, extra, count, mult := 0, 0, 0, -1, 1
	switch {
	case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
		fixed = 1
	case c >= 0x80 && c <= 0x8f:
		count, mult = int(c-0x80), 2
	case c >= 0x90 && c <= 0x9f:
		count = int(c - 0x90)
	case c >= 0xa0 && c <= 0xbf:
		if p+1+int(c-0xa0) > len(b) {
			return 0, 0, 0, refIncomplete
		}
		return p + 1 + int(c-0xa0), 0, 0, refOK
	case c == 0xc1:
		return 0, 0, 0, refMalformed
	case c == 0xcc || c == 0xd0:
		fixed = 2
	case c == 0xcd || c == 0xd1:
		fixed = 3
	case c == 0xca || c == 0xce || c == 0xd2:
		fixed = 5
	case c == 0xcb || c == 0xcf || c == 0xd3:
		fixed = 9
	case c == 0xd4:
		fixed = 3
	case c == 0xd5:
		fixed = 4
	case c == 0xd6:
		fixed = 6
	case c == 0xd7:
		fixed = 10
	case c == 0xd8:
		fixed = 18
	case c == 0xc4 || c == 0xd9:
		lenSz = 1
	case c == 0xc5 || c == 0xda:
		lenSz = 2
	case c == 0xc6 || c == 0xdb:
		lenSz = 4
	case c == 0xc7:
		lenSz, extra = 1, 1
	case c == 0xc8:
		lenSz, extra = 2, 1
	case c == 0xc9:
		lenSz, extra = 4, 1
	case c == 0xdc:
		lenSz, count = 2, 0
	case c == 0xdd:
		lenSz, count = 4, 0
	case c == 0xde:
		lenSz, count, mult = 2, 0, 2
	case c == 0xdf:
		lenSz, count, mult = 4, 0, 2
	}
	if fixed > 0 {
		if p+fixed > len(b) {
			return 0, 0, 0, refIncomplete
		}
		return p + fixed, 0, 0, refOK
	}
	q := p + 1
	if lenSz > 0 {
		if q+lenSz > len(b) {
			return 0, 0, 0, refIncomplete
		}
		n := 0
		for _, x := range b[q : q+lenSz] {
			n = n<<8 | int(x)
		}
		q += lenSz
		if count < 0 {
			if q+extra+n > len(b) {
				return 0, 0, 0, refIncomplete
			}
			return q + extra + n, 0, 0, refOK
		}
		count = n
	}
	count *= mult
	elems = int64(count)
	for range count {
		e, d, el, st := refScan(b, q)
		if st != refOK {
			return 0, 0, 0, st
		}
		q, depth, elems = e, max(depth, d), elems+el
	}
	return q, depth + 1, elems, refOK
}

// fuzzLimits are the limit sets FuzzScan picks from.
var fuzzLimits = []Limits{
	{},
	{MaxBytes: 64, MaxDepth: 3, MaxElems: 10},
	{MaxBytes: 1 << 30, MaxDepth: MaxDepthLimit, MaxElems: 1 << 30},
	{MaxBytes: 5, MaxDepth: 1, MaxElems: 1},
}

func FuzzScan(f *testing.F) {
	for _, s := range []string{
		"dd ff ff ff ff", "df ff ff ff ff", "c6 ff ff ff ff", "c9 ff ff ff ff 01", "db ff ff ff ff",
		rep("dc ff ff", 1000), rep("dd 00 10 00 00", 40), rep("91", 300) + "01", rep("de ff ff", 50),
		"94 00 01 a4 70 69 6e 67 90", "93 02 a4 70 69 6e 67 90", "81 a1 6b 92 01 c1", "c1", "",
		"d6 ff 00 00 00 01", "c7 0c ff 00 00 00 00 00 00 00 00 00 00 00 01", "d4 05 00",
		"82 01 02 03 04", "dc 00 03 c0 c2 c3", "c4 03 01 02", "94 90 80 a0 c4 00",
	} {
		f.Add(h(s), uint8(0), uint16(0))
		f.Add(h(s), uint8(1), uint16(3))
	}
	f.Fuzz(func(t *testing.T, b []byte, limSel uint8, split uint16) {
		lim := fuzzLimits[int(limSel)%len(fuzzLimits)]
		eff := lim.WithDefaults()
		n, err := Scan(b, lim)

		// Compare with the reference.
		rn, rdepth, relems, rst := refScan(b, 0)
		violated := func(e error) bool {
			switch e {
			case ErrTooLarge:
				return true // checked on declared lengths; cross-checked below for complete values
			case ErrTooDeep:
				return rst != refOK || rdepth > eff.MaxDepth
			case ErrTooManyElems:
				return rst != refOK || relems > int64(eff.MaxElems)
			}
			return false
		}
		switch rst {
		case refOK:
			fits := rn <= eff.MaxBytes && rdepth <= eff.MaxDepth && relems <= int64(eff.MaxElems)
			if fits && (err != nil || n != rn) {
				t.Fatalf("Scan = %d, %v; reference: a valid value of %d bytes", n, err, rn)
			}
			if !fits && (err == nil || err == ErrIncomplete || !violated(err) ||
				(err == ErrTooLarge && rn <= eff.MaxBytes)) {
				t.Fatalf("Scan = %d, %v; reference: %d bytes, depth %d, %d elems over %+v", n, err, rn, rdepth,
					relems, eff)
			}
		case refIncomplete:
			if err != ErrIncomplete && !violated(err) {
				t.Fatalf("Scan = %d, %v; reference: incomplete", n, err)
			}
		case refMalformed:
			if err != ErrMalformed && !violated(err) {
				t.Fatalf("Scan = %d, %v; reference: malformed", n, err)
			}
		}
		if err == ErrIncomplete && (n <= len(b) || n > eff.MaxBytes) {
			t.Fatalf("ErrIncomplete bound %d not in (%d, %d]", n, len(b), eff.MaxBytes)
		}

		// The Scanner, fed in two pieces, agrees.
		sc := NewScanner(lim)
		cut := int(split) % (len(b) + 1)
		sn, serr := sc.Scan(b[:cut])
		if serr == ErrIncomplete {
			sn, serr = sc.Scan(b)
		}
		if serr != err || (err == nil && sn != n) {
			t.Fatalf("Scanner split at %d = %d, %v; Scan = %d, %v", cut, sn, serr, n, err)
		}

		// A Scanner that switches to Skip after the first piece, and is then fed the rest in pieces it does
		// not keep, agrees too.
		if sn, serr, ok := skipFrom(lim, b, cut, 1+int(split)%7); ok && (serr != err || (err == nil && sn != n)) {
			t.Fatalf("Skip after %d bytes = %d, %v; Scan = %d, %v", cut, sn, serr, n, err)
		}

		// The scanned bytes are safe to decode: vmihailenco may reject them (unknown ext, non-string keys)
		// but reads exactly n bytes when it accepts them.
		if err == nil {
			r := bytes.NewReader(b[:n])
			dec := msgpack.NewDecoder(r)
			if _, derr := dec.DecodeInterface(); derr == nil && r.Len() != 0 {
				t.Fatalf("decoder left %d of %d scanned bytes", r.Len(), n)
			}
		}
	})
}

// skipFrom scans b[:cut]; if that is incomplete, it switches to Skip and feeds the rest in pieces of chunk
// bytes, each a fresh copy the caller drops. It returns the value's length (Scanned plus what Skip took)
// and the final error; ok is false when Scan alone settled the value.
func skipFrom(lim Limits, b []byte, cut, chunk int) (n int, err error, ok bool) {
	sc := NewScanner(lim)
	if _, err := sc.Scan(b[:cut]); err != ErrIncomplete {
		return 0, nil, false
	}
	n = sc.Scanned()
	rest := b[n:]
	for {
		piece := append([]byte(nil), rest[:min(chunk, len(rest))]...)
		m, err := sc.Skip(piece)
		switch {
		case err == nil:
			return n + m, nil, true
		case err != ErrIncomplete:
			return 0, err, true
		case m != len(piece):
			panic("Skip took part of a piece and asked for more")
		case len(rest) == len(piece):
			return 0, ErrIncomplete, true
		}
		n += m
		rest = rest[m:]
	}
}

// TestFuzzSeedsReference checks the reference against known answers, so FuzzScan compares with something
// right.
func TestFuzzSeedsReference(t *testing.T) {
	for _, tc := range []struct {
		in         string
		end, depth int
		elems      int64
		st         refStatus
	}{
		{"93 01 91 02 80", 5, 2, 4, refOK},
		{"82 a1 61 01 a1 62 90", 7, 2, 4, refOK},
		{"dd ff ff ff ff", 0, 0, 0, refIncomplete},
		{"92 c1", 0, 0, 0, refMalformed},
		{"c7 01 05 aa", 4, 0, 0, refOK},
	} {
		end, depth, elems, st := refScan(h(tc.in), 0)
		if end != tc.end || depth != tc.depth || elems != tc.elems || st != tc.st {
			t.Errorf("refScan(%s) = %d, %d, %d, %v; want %d, %d, %d, %v", tc.in, end, depth, elems, st,
				tc.end, tc.depth, tc.elems, tc.st)
		}
	}
}
