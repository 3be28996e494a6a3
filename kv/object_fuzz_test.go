package kv

import (
	"bytes"
	"encoding/hex"
	"math/rand"
	"strings"
	"testing"
)

// objFuzzSeeds returns valid encodings, their truncations, and hostile headers.
func objFuzzSeeds(t testing.TB, marshal func(rng *rand.Rand) []byte) [][]byte {
	rng := rand.New(rand.NewSource(8))
	var seeds [][]byte
	for i := 0; i < 8; i++ {
		b := marshal(rng)
		if len(b) > 4096 {
			continue
		}
		seeds = append(seeds, b)
		if len(b) > 1 {
			seeds = append(seeds, b[:len(b)/2], b[:len(b)-1])
		}
	}
	for _, h := range []string{
		"", "c0", "90", "91", "dd ffffffff", "dc ffff", "df ffffffff", "c6 ffffffff",
		objValidHex,
		"93 01 dd ffffffff",
		"93 01 90 dd ffffffff",
		"93 01 91 93 db ffffffff",
		"93 01 91 93 a141 02 01 91 97 c6 ffffffff",
		"92 01 dd ffffffff",
		"92 01 91 93 a2 6161 01 01",
		strings.Repeat("dc ffff ", 64),
		strings.Repeat("91 ", 200),
	} {
		b, err := hex.DecodeString(strings.ReplaceAll(h, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

func FuzzUnmarshalObject(f *testing.F) {
	for _, s := range objFuzzSeeds(f, func(rng *rand.Rand) []byte {
		b, _ := objRandomObject(rng).MarshalBinary()
		return b
	}) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var o *Object
		var err error
		objFuzzAllocBound(t, b, func() { o, err = UnmarshalObject(b) })
		if err != nil {
			if !strings.HasPrefix(err.Error(), "kv: decode object: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		if err := o.Validate(); err != nil {
			t.Fatalf("decoded an invalid object: %v", err)
		}
		again, err := o.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encoding a decoded object: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\nin  %x\nout %x", b, again)
		}
		if o.Size() != len(b) {
			t.Fatalf("Size() = %d for %d bytes", o.Size(), len(b))
		}
	})
}

func FuzzUnmarshalVClock(f *testing.F) {
	for _, s := range objFuzzSeeds(f, func(rng *rand.Rand) []byte {
		b, _ := objRandomClock(rng).MarshalBinary()
		return b
	}) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v VClock
		var err error
		objFuzzAllocBound(t, b, func() { v, err = UnmarshalVClock(b) })
		if err != nil {
			if !strings.HasPrefix(err.Error(), "kv: decode vclock: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		if err := v.Validate(); err != nil {
			t.Fatalf("decoded an invalid clock: %v", err)
		}
		again, err := v.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encoding a decoded clock: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\nin  %x\nout %x", b, again)
		}
		if v.Hash() == 0 {
			t.Fatalf("Hash() = 0")
		}
	})
}
