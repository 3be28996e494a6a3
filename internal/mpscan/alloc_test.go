package mpscan

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// array32 returns an array32 header of n elements followed by n copies of elem.
func array32(n int, elem []byte) []byte {
	b := binary.BigEndian.AppendUint32([]byte{0xdd}, uint32(n))
	return append(b, bytes.Repeat(elem, n)...)
}

// decodeAllocBytes returns the bytes vmihailenco allocates decoding b into any.
func decodeAllocBytes(b []byte) (uint64, error) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := msgpack.NewDecoder(bytes.NewReader(b)).DecodeInterface()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, err
}

// The decoder's allocation for what Scan lets through is bounded by allocPerByte per input byte plus
// allocPerElem per element; allocSlack covers the decoder's fixed costs. Per byte alone the worst case is
// small maps: {"":nil} is 3 bytes of input and a 400-byte map in the decoder, so MaxElems is what bounds
// the total (1<<20 elements: about 140 MiB at worst).
const (
	allocPerByte = 16
	allocPerElem = 160
	allocSlack   = 64 << 10
)

// TestScannedDecodeAllocBound: whatever passes Scan decodes into any with allocation bounded by its size and
// element count.
func TestScannedDecodeAllocBound(t *testing.T) {
	n := DefaultMaxElems
	if testing.Short() {
		n = 1 << 16
	}
	ts := make([]byte, 0, 6)
	ts = append(ts, 0xd6, 0xff, 0, 0, 0, 1)
	inputs := map[string][]byte{
		"empty maps":        array32(n, []byte{0x80}),
		"empty arrays":      array32(n, []byte{0x90}),
		"one-byte strings":  array32(n, []byte{0xa1, 'x'}),
		"empty bins":        array32(n, []byte{0xc4, 0}),
		"int16s":            array32(n, []byte{0xd1, 1, 2}),
		"float64s":          array32(n, []byte{0xcb, 1, 2, 3, 4, 5, 6, 7, 8}),
		"timestamps":        array32(n, ts),
		"maps of empty map": array32(n/3, []byte{0x81, 0xa0, 0x80}),
		"maps of 1 entry":   array32(n/3, []byte{0x81, 0xa0, 0xc0}),
		"maps of 9 entries": array32(n/19, h("89 a1 61 c0 a1 62 c0 a1 63 c0 a1 64 c0 a1 65 c0 a1 66 c0 a1 67 c0 a1 68 c0 a1 69 c0")),
		"deep":              h(rep("91", DefaultMaxDepth-1) + "90"),
		"big bin":           append([]byte{0xc6, 0x01, 0, 0, 0}, make([]byte, 16<<20)...),
	}
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 20 {
		inputs["random"+string(rune('a'+i))] = encodeRandom(t, r)
	}
	var worstByte, worstElem float64
	for name, b := range inputs {
		m, err := Scan(b, Limits{})
		if err != nil {
			t.Fatalf("%s: Scan: %v", name, err)
		}
		_, _, elems, _ := refScan(b[:m], 0)
		alloc, _ := decodeAllocBytes(b[:m]) // random values may hold unknown ext types; that is fine
		bound := uint64(allocPerByte*int64(m) + allocPerElem*elems + allocSlack)
		if m > 1000 {
			worstByte = max(worstByte, float64(alloc)/float64(m))
			if elems > 1000 {
				worstElem = max(worstElem, float64(alloc)/float64(elems))
			}
			t.Logf("%-18s %9d bytes %8d elems -> %10d allocated (%.1f per byte, %.1f per elem)", name, m, elems,
				alloc, float64(alloc)/float64(m), float64(alloc)/float64(elems+1))
		}
		if alloc > bound {
			t.Errorf("%s: decoding %d scanned bytes (%d elems) allocated %d, over %d", name, m, elems, alloc, bound)
		}
	}
	t.Logf("worst: %.1f bytes allocated per input byte, %.1f per element", worstByte, worstElem)

	// And what Scan stops: each of these would allocate GiBs (or kill the process) in the decoder.
	for _, s := range []string{"dd ff ff ff ff", "df ff ff ff ff", "c6 ff ff ff ff", rep("dc ff ff", 1000)} {
		if _, err := Scan(h(s), Limits{}); err == nil || err == ErrIncomplete {
			t.Errorf("Scan(%.20s...) = %v, want a limit error", s, err)
		}
	}
}

func TestScanDoesNotAllocate(t *testing.T) {
	b := array32(1000, []byte{0x92, 0xa1, 'x', 0x80})
	if a := testing.AllocsPerRun(100, func() { Scan(b, Limits{}) }); a != 0 {
		t.Fatalf("Scan allocates %v times per run", a)
	}
	sc := NewScanner(Limits{})
	if a := testing.AllocsPerRun(100, func() {
		sc.Scan(b[:len(b)/2])
		sc.Scan(b)
	}); a != 0 {
		t.Fatalf("Scanner allocates %v times per run", a)
	}
	if a := testing.AllocsPerRun(100, func() {
		sc.Scan(b[:len(b)/2])
		off := sc.Scanned()
		sc.Skip(b[off : len(b)*3/4])
		sc.Skip(b[len(b)*3/4:])
	}); a != 0 {
		t.Fatalf("Skip allocates %v times per run", a)
	}
}
