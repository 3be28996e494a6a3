package mpscan

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// h decodes hex with spaces, for readable test bytes.
func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// rep repeats s n times.
func rep(s string, n int) string { return strings.Repeat(s, n) }

func TestScanTable(t *testing.T) {
	small := Limits{MaxBytes: 64, MaxDepth: 3, MaxElems: 10}
	tests := []struct {
		name string
		in   []byte
		lim  Limits
		n    int
		err  error
	}{
		// Scalars.
		{"empty", nil, Limits{}, 0, ErrIncomplete},
		{"posfixint", h("00"), Limits{}, 1, nil},
		{"posfixint max", h("7f ff"), Limits{}, 1, nil},
		{"negfixint", h("e0"), Limits{}, 1, nil},
		{"negfixint -1", h("ff"), Limits{}, 1, nil},
		{"nil", h("c0"), Limits{}, 1, nil},
		{"false", h("c2"), Limits{}, 1, nil},
		{"true", h("c3"), Limits{}, 1, nil},
		{"never used", h("c1"), Limits{}, 0, ErrMalformed},
		{"uint8", h("cc ff"), Limits{}, 2, nil},
		{"uint8 cut", h("cc"), Limits{}, 0, ErrIncomplete},
		{"uint16", h("cd ff ff"), Limits{}, 3, nil},
		{"uint32", h("ce 00 00 00 01"), Limits{}, 5, nil},
		{"uint64", h("cf 00 00 00 00 00 00 00 01"), Limits{}, 9, nil},
		{"uint64 cut", h("cf 00 00 00 00 00 00 00"), Limits{}, 0, ErrIncomplete},
		{"int8", h("d0 80"), Limits{}, 2, nil},
		{"int16", h("d1 80 00"), Limits{}, 3, nil},
		{"int32", h("d2 80 00 00 00"), Limits{}, 5, nil},
		{"int64", h("d3 80 00 00 00 00 00 00 00"), Limits{}, 9, nil},
		{"float32", h("ca 3f 80 00 00"), Limits{}, 5, nil},
		{"float64", h("cb 3f f0 00 00 00 00 00 00"), Limits{}, 9, nil},
		{"float64 cut", h("cb 3f f0"), Limits{}, 0, ErrIncomplete},
		// Strings and binaries.
		{"fixstr empty", h("a0"), Limits{}, 1, nil},
		{"fixstr", h("a3 61 62 63"), Limits{}, 4, nil},
		{"fixstr 31", append(h("bf"), rep("x", 31)...), Limits{}, 32, nil},
		{"fixstr cut", h("a3 61 62"), Limits{}, 0, ErrIncomplete},
		{"str8", h("d9 02 61 62"), Limits{}, 4, nil},
		{"str8 len cut", h("d9"), Limits{}, 0, ErrIncomplete},
		{"str16", append(h("da 01 00"), rep("x", 256)...), Limits{}, 259, nil},
		{"str16 len cut", h("da 01"), Limits{}, 0, ErrIncomplete},
		{"str32", h("db 00 00 00 01 61"), Limits{}, 6, nil},
		{"str32 huge", h("db ff ff ff ff"), Limits{}, 0, ErrTooLarge},
		{"bin8", h("c4 01 00"), Limits{}, 3, nil},
		{"bin8 empty", h("c4 00"), Limits{}, 2, nil},
		{"bin16", h("c5 00 02 00 00"), Limits{}, 5, nil},
		{"bin32", h("c6 00 00 00 03 01 02 03"), Limits{}, 8, nil},
		{"bin32 huge", h("c6 ff ff ff ff"), Limits{}, 0, ErrTooLarge},
		{"bin32 cut header", h("c6 ff ff"), Limits{}, 0, ErrIncomplete},
		{"bin over MaxBytes by 1", append(h("c4 3f"), rep("x", 63)...), small, 0, ErrTooLarge},
		{"bin over MaxBytes, header only", h("c4 3f"), small, 0, ErrTooLarge},
		{"bin exactly MaxBytes", append(h("c4 3e"), rep("x", 62)...), Limits{MaxBytes: 64}, 64, nil},
		{"bin exactly MaxBytes cut", append(h("c4 3e"), rep("x", 10)...), Limits{MaxBytes: 64}, 0, ErrIncomplete},
		// Extensions.
		{"fixext1", h("d4 01 00"), Limits{}, 3, nil},
		{"fixext2", h("d5 01 00 00"), Limits{}, 4, nil},
		{"fixext4 (timestamp32)", h("d6 ff 00 00 00 01"), Limits{}, 6, nil},
		{"fixext8", h("d7 ff 00 00 00 00 00 00 00 01"), Limits{}, 10, nil},
		{"fixext16", append(h("d8 05"), make([]byte, 16)...), Limits{}, 18, nil},
		{"fixext16 cut", append(h("d8 05"), make([]byte, 15)...), Limits{}, 0, ErrIncomplete},
		{"ext8", h("c7 02 05 aa bb"), Limits{}, 5, nil},
		{"ext8 empty", h("c7 00 05"), Limits{}, 3, nil},
		{"ext8 type cut", h("c7 00"), Limits{}, 0, ErrIncomplete},
		{"ext16", h("c8 00 01 05 aa"), Limits{}, 5, nil},
		{"ext32", h("c9 00 00 00 01 05 aa"), Limits{}, 7, nil},
		{"ext32 huge", h("c9 ff ff ff ff 05"), Limits{}, 0, ErrTooLarge},
		// Arrays.
		{"fixarray empty", h("90"), Limits{}, 1, nil},
		{"fixarray", h("93 01 02 03 04"), Limits{}, 4, nil},
		{"fixarray cut", h("93 01 02"), Limits{}, 0, ErrIncomplete},
		{"array16", h("dc 00 02 c0 c0"), Limits{}, 5, nil},
		{"array16 empty", h("dc 00 00"), Limits{}, 3, nil},
		{"array16 len cut", h("dc 00"), Limits{}, 0, ErrIncomplete},
		{"array32", h("dd 00 00 00 01 c3"), Limits{}, 6, nil},
		{"array32 4G", h("dd ff ff ff ff"), Limits{}, 0, ErrTooManyElems},
		{"array32 4G, elems unbounded", h("dd ff ff ff ff"), Limits{MaxElems: 1 << 40}, 0, ErrTooLarge},
		{"array32 over bytes, could fit", h("dd 00 00 00 10 01"), Limits{}, 0, ErrIncomplete},
		{"array elements over MaxBytes", h("dc 00 40"), Limits{MaxBytes: 64}, 0, ErrTooLarge},
		{"array elements exactly MaxBytes", h("dc 00 3d"), Limits{MaxBytes: 64}, 0, ErrIncomplete},
		{"nested arrays", h("92 91 90 92 c0 91 c0"), Limits{}, 7, nil},
		{"fixarray of fixarray cut", h("92 91"), Limits{}, 0, ErrIncomplete},
		// Maps.
		{"fixmap empty", h("80"), Limits{}, 1, nil},
		{"fixmap", h("81 a1 6b 01"), Limits{}, 4, nil},
		{"fixmap missing value", h("81 a1 6b"), Limits{}, 0, ErrIncomplete},
		{"map16", h("de 00 01 01 02"), Limits{}, 5, nil},
		{"map32", h("df 00 00 00 01 01 02"), Limits{}, 7, nil},
		{"map32 4G", h("df ff ff ff ff"), Limits{}, 0, ErrTooManyElems},
		{"map32 4G, elems unbounded", h("df ff ff ff ff"), Limits{MaxElems: 1 << 40}, 0, ErrTooLarge},
		{"map entries count twice", h("85 01 01 02 02 03 03 04 04 05 05"), Limits{MaxElems: 9}, 0, ErrTooManyElems},
		{"map entries at limit", h("85 01 01 02 02 03 03 04 04 05 05"), Limits{MaxElems: 10}, 11, nil},
		{"non-string keys are structure", h("81 92 01 02 c0"), Limits{}, 5, nil},
		// Limits.
		{"depth at limit", h("91 91 91 01"), small, 4, nil},
		{"depth over limit", h("91 91 91 91 01"), small, 0, ErrTooDeep},
		{"empty container counts as depth", h("91 91 90"), small, 3, nil},
		{"empty container over depth", h("91 91 91 90"), small, 0, ErrTooDeep},
		{"depth after siblings", h("92 91 91 01 91 91 91 01"), small, 0, ErrTooDeep},
		{"depth resets after close", h("92 91 91 01 91 91 01"), small, 7, nil},
		{"elems at limit", h("9a 00 00 00 00 00 00 00 00 00 00"), small, 11, nil},
		{"elems over limit", h("92 9a"), small, 0, ErrTooManyElems},
		{"elems summed over containers", h("92 95 00 00 00 00 00 95"), small, 0, ErrTooManyElems},
		{"nested array16 headers", h(rep("dc ff ff", 1000)), Limits{}, 0, ErrTooManyElems},
		{"nested array32 headers, elems unbounded", h(rep("dd 00 10 00 00", 100)), Limits{MaxElems: 1 << 40}, 0, ErrTooLarge},
		{"nested array16 headers, elems unbounded", h(rep("dc ff ff", 1000)), Limits{MaxElems: 1 << 40}, 0, ErrTooDeep},
		{"nested fixarray headers", h(rep("91", 1000)), Limits{}, 0, ErrTooDeep},
		{"malformed inside", h("93 01 c1 02"), Limits{}, 0, ErrMalformed},
		{"trailing bytes ignored", h("01 02 03"), Limits{}, 1, nil},
		{"second value not scanned", h("90 c1"), Limits{}, 1, nil},
		{"max depth clamped", h(rep("91", MaxDepthLimit+1) + "01"), Limits{MaxDepth: 1 << 20}, 0, ErrTooDeep},
		{"max depth clamped ok", h(rep("91", MaxDepthLimit) + "01"), Limits{MaxDepth: 1 << 20}, MaxDepthLimit + 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Scan(tt.in, tt.lim)
			if !errors.Is(err, tt.err) || (err == nil && n != tt.n) {
				t.Fatalf("Scan(% x) = %d, %v; want %d, %v", trim(tt.in), n, err, tt.n, tt.err)
			}
			lim := tt.lim.WithDefaults()
			if err == ErrIncomplete && (n <= len(tt.in) || n > lim.MaxBytes) {
				t.Fatalf("Scan(% x): ErrIncomplete lower bound %d, want in (%d, %d]", trim(tt.in), n, len(tt.in),
					lim.MaxBytes)
			}
			// The Scanner, fed one byte at a time, agrees.
			sc := NewScanner(tt.lim)
			var sn int
			var serr error
			for i := 0; i <= len(tt.in); i++ {
				sn, serr = sc.Scan(tt.in[:i])
				if serr != ErrIncomplete {
					break
				}
			}
			if serr != err || (err == nil && sn != n) {
				t.Fatalf("Scanner byte by byte = %d, %v; Scan = %d, %v", sn, serr, n, err)
			}
		})
	}
}

func trim(b []byte) []byte {
	if len(b) > 24 {
		return b[:24]
	}
	return b
}

func TestIncompleteLowerBound(t *testing.T) {
	// A bin32 declaring 1000 bytes: the bound is the whole value, known from the header.
	b := append(h("c6 00 00 03 e8"), make([]byte, 10)...)
	if n, err := Scan(b, Limits{}); err != ErrIncomplete || n != 1005 {
		t.Fatalf("Scan = %d, %v; want 1005, ErrIncomplete", n, err)
	}
	// An array of 100 with 3 present: each missing element needs a byte.
	b = h("dc 00 64 01 02 03")
	if n, err := Scan(b, Limits{}); err != ErrIncomplete || n != 103 {
		t.Fatalf("Scan = %d, %v; want 103, ErrIncomplete", n, err)
	}
}

func TestLimitsValidate(t *testing.T) {
	for _, l := range []Limits{{}, {MaxBytes: 1, MaxDepth: 1, MaxElems: 1}, {MaxDepth: MaxDepthLimit}} {
		if err := l.Validate(); err != nil {
			t.Errorf("%+v.Validate() = %v", l, err)
		}
	}
	for _, tc := range []struct {
		l     Limits
		field string
	}{
		{Limits{MaxBytes: -1}, "MaxBytes = -1"},
		{Limits{MaxDepth: MaxDepthLimit + 1}, "MaxDepth = 257"},
		{Limits{MaxElems: -5}, "MaxElems = -5"},
	} {
		err := tc.l.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) || !strings.HasPrefix(err.Error(), "mpscan: ") {
			t.Errorf("%+v.Validate() = %v, want an error naming %q", tc.l, err, tc.field)
		}
	}
}

// genValue encodes a random msgpack value with vmihailenco's Encoder, exercising every type family and
// every length encoding. size bounds the elements of the value left to generate.
func genValue(r *rand.Rand, enc *msgpack.Encoder, depth int, size *int) error {
	*size--
	kinds := 16
	if depth <= 0 || *size <= 0 {
		kinds = 12 // scalars only
	}
	switch r.IntN(kinds) {
	case 0:
		return enc.EncodeNil()
	case 1:
		return enc.EncodeBool(r.IntN(2) == 0)
	case 2:
		switch r.IntN(4) {
		case 0:
			return enc.EncodeInt8(int8(r.Uint32()))
		case 1:
			return enc.EncodeInt16(int16(r.Uint32()))
		case 2:
			return enc.EncodeInt32(int32(r.Uint32()))
		default:
			return enc.EncodeInt64(int64(r.Uint64()))
		}
	case 3:
		switch r.IntN(4) {
		case 0:
			return enc.EncodeUint8(uint8(r.Uint32()))
		case 1:
			return enc.EncodeUint16(uint16(r.Uint32()))
		case 2:
			return enc.EncodeUint32(r.Uint32())
		default:
			return enc.EncodeUint64(r.Uint64())
		}
	case 4:
		return enc.EncodeInt(int64(r.Uint64()) >> r.IntN(64)) // compact: fixint .. int64
	case 5:
		if r.IntN(2) == 0 {
			return enc.EncodeFloat32(r.Float32())
		}
		return enc.EncodeFloat64(r.NormFloat64())
	case 6, 7:
		return enc.EncodeString(strings.Repeat("s", genLen(r)))
	case 8, 9:
		return enc.EncodeBytes(bytes.Repeat([]byte{0xc1}, genLen(r))) // payload bytes are not types
	case 10:
		return enc.EncodeTime(time.Unix(r.Int64N(1<<35), r.Int64N(1e9)*int64(r.IntN(2))))
	case 11:
		n := []int{1, 2, 4, 8, 16, 0, 3, 17, 300, 70000}[r.IntN(10)]
		if err := enc.EncodeExtHeader(int8(r.IntN(128)), n); err != nil {
			return err
		}
		_, err := enc.Writer().Write(bytes.Repeat([]byte{0xc1}, n))
		return err
	case 12, 13:
		n := min(genCount(r), max(*size, 0))
		if err := enc.EncodeArrayLen(n); err != nil {
			return err
		}
		for range n {
			if err := genValue(r, enc, depth-1, size); err != nil {
				return err
			}
		}
		return nil
	default:
		n := min(genCount(r), max(*size, 0))
		if err := enc.EncodeMapLen(n); err != nil {
			return err
		}
		for i := range n {
			if err := enc.EncodeString(strings.Repeat("k", i%40)); err != nil { // duplicate keys are fine
				return err
			}
			if err := genValue(r, enc, depth-1, size); err != nil {
				return err
			}
		}
		return nil
	}
}

// genLen picks a str/bin length, around every length-encoding boundary.
func genLen(r *rand.Rand) int {
	switch r.IntN(10) {
	case 0:
		return 0
	case 1:
		return 31 + r.IntN(2) // fixstr / str8
	case 2:
		return 255 + r.IntN(2) // 8 / 16 bit
	case 3:
		if r.IntN(8) == 0 {
			return 65535 + r.IntN(2) // 16 / 32 bit
		}
		return 1000
	default:
		return r.IntN(40)
	}
}

// genCount picks a container length, around every length-encoding boundary.
func genCount(r *rand.Rand) int {
	switch r.IntN(12) {
	case 0:
		return 0
	case 1:
		return 15 + r.IntN(2) // fix / 16 bit
	case 2:
		if r.IntN(10) == 0 {
			return 65535 + r.IntN(2) // 16 / 32 bit
		}
		return 100
	default:
		return r.IntN(5)
	}
}

// encodeRandom returns one random encoded value.
func encodeRandom(t testing.TB, r *rand.Rand) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	size := 200
	if r.IntN(20) == 0 {
		size = 200000
	}
	if err := genValue(r, enc, 1+r.IntN(8), &size); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestScanProperty: for random values encoded by vmihailenco, Scan returns exactly the encoded length,
// every strict prefix is ErrIncomplete, the Scanner fed random chunks agrees, and the reference scanner
// agrees.
func TestScanProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	iters := 400
	if testing.Short() {
		iters = 100
	}
	big := Limits{MaxBytes: 1 << 30, MaxDepth: MaxDepthLimit, MaxElems: 1 << 30}
	for i := range iters {
		b := encodeRandom(t, r)
		trailing := append(append([]byte(nil), b...), h("c1 dd ff ff ff ff")...)
		n, err := Scan(trailing, big)
		if err != nil || n != len(b) {
			t.Fatalf("iter %d: Scan = %d, %v; want %d (value % x...)", i, n, err, len(b), trim(b))
		}
		if rn, _, _, st := refScan(b, 0); st != refOK || rn != len(b) {
			t.Fatalf("iter %d: refScan = %d, %v", i, rn, st)
		}
		// Every strict prefix: all of them for small values, a sample for large ones.
		step := 1
		if len(b) > 4096 {
			step = len(b)/997 + 1
		}
		for j := 0; j < len(b); j += step {
			if m, err := Scan(b[:j], big); err != ErrIncomplete || m <= j || m > len(b) {
				t.Fatalf("iter %d: Scan(prefix %d of %d) = %d, %v; want a bound in (%d, %d], ErrIncomplete",
					i, j, len(b), m, err, j, len(b))
			}
		}
		// The Scanner over growing prefixes, cut at random points.
		sc := NewScanner(big)
		for j := 0; ; j = min(j+1+r.IntN(len(b)/3+1), len(b)) {
			m, err := sc.Scan(b[:j])
			if j == len(b) {
				if err != nil || m != len(b) {
					t.Fatalf("iter %d: Scanner = %d, %v; want %d", i, m, err, len(b))
				}
				break
			}
			if err != ErrIncomplete {
				t.Fatalf("iter %d: Scanner(prefix %d of %d) = %d, %v", i, j, len(b), m, err)
			}
		}
	}
}

// TestSkipProperty: for random values, switching from Scan to Skip at any point and feeding the rest in
// random pieces finds the same end, with trailing bytes left alone; strict prefixes stay incomplete.
func TestSkipProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	big := Limits{MaxBytes: 1 << 30, MaxDepth: MaxDepthLimit, MaxElems: 1 << 30}
	for i := range 300 {
		b := encodeRandom(t, r)
		trailing := append(append([]byte(nil), b...), h("c1 dd ff ff ff ff")...)
		for range 5 {
			cut := r.IntN(len(b))
			n, err, ok := skipFrom(big, trailing, cut, 1+r.IntN(len(b)))
			if !ok {
				t.Fatalf("iter %d: Scan of a strict prefix (%d of %d) was not incomplete", i, cut, len(b))
			}
			if err != nil || n != len(b) {
				t.Fatalf("iter %d: Skip after %d = %d, %v; want %d", i, cut, n, err, len(b))
			}
			if _, err, _ := skipFrom(big, b[:len(b)-1], min(cut, len(b)-1), 1+r.IntN(len(b))); err != ErrIncomplete {
				t.Fatalf("iter %d: Skip over a strict prefix: %v", i, err)
			}
		}
	}
}

// TestSkipLimits: Skip applies the Limits as Scan does, on bytes it does not keep, and a big payload
// costs no memory: 1 GiB of bin32 passes in pieces.
func TestSkipLimits(t *testing.T) {
	lim := Limits{MaxBytes: 100, MaxDepth: 3, MaxElems: 5}
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"92 c4 50" + rep(" 00", 0x50) + " 01", nil},
		{"92 c4 62" + rep(" 00", 0x62) + " 01", ErrTooLarge},
		{"92 91 91 91 01", ErrTooDeep},
		{"92 dc 00 09", ErrTooManyElems},
		{"92 c4 02 00 00 c1", ErrMalformed},
	} {
		b := h(tc.in)
		if _, err := Scan(b, lim); err != tc.want {
			t.Fatalf("Scan(%s) = %v, want %v", tc.in, err, tc.want)
		}
		if _, err, ok := skipFrom(lim, b, 1, 1); !ok || err != tc.want {
			t.Errorf("Skip(%s) = %v, want %v", tc.in, err, tc.want)
		}
	}

	var sc Scanner
	sc.lim = Limits{MaxBytes: 1<<30 + 16}
	head := h("92 c6 40 00 00 00")
	if _, err := sc.Scan(head); err != ErrIncomplete {
		t.Fatal(err)
	}
	if n, err := sc.Skip(head[sc.Scanned():]); err != ErrIncomplete || n != len(head)-sc.Scanned() {
		t.Fatalf("Skip(header) = %d, %v", n, err)
	}
	chunk := make([]byte, 1<<20)
	for range 1 << 10 {
		if n, err := sc.Skip(chunk); err != ErrIncomplete || n != len(chunk) {
			t.Fatalf("Skip(payload) = %d, %v", n, err)
		}
	}
	if n, err := sc.Skip(h("c3 c0")); err != nil || n != 1 {
		t.Fatalf("Skip(last value) = %d, %v; want 1, nil", n, err)
	}
	if n, err := sc.Scan(h("c0")); err != nil || n != 1 {
		t.Fatalf("Scan after Skip = %d, %v", n, err)
	}
}

// TestScannerMovedBuffer: the Scanner keeps offsets, not pointers, so the caller may move the bytes.
func TestScannerMovedBuffer(t *testing.T) {
	b := h("93 a3 61 62 63 c4 02 01 02 92 01 02")
	var sc Scanner
	for i := 0; i < len(b); i++ {
		moved := append([]byte(nil), b[:i]...)
		if _, err := sc.Scan(moved); err != ErrIncomplete {
			t.Fatalf("prefix %d: %v", i, err)
		}
	}
	if n, err := sc.Scan(append([]byte(nil), b...)); err != nil || n != len(b) {
		t.Fatalf("Scan = %d, %v", n, err)
	}
	// Reset by success: the next value starts fresh.
	if n, err := sc.Scan(h("c0")); err != nil || n != 1 {
		t.Fatalf("next Scan = %d, %v", n, err)
	}
}

func BenchmarkScan(b *testing.B) {
	req, err := msgpack.Marshal([]any{0, 1234, "put", []any{[]byte("some-key-0001"), bytes.Repeat([]byte("v"), 1000),
		nil, map[string]any{"w": 2, "return_body": true, "timeout_ms": 500}}})
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	var nested []byte
	for len(nested) < 4096 {
		nested = encodeRandom(b, r)
	}
	for _, bc := range []struct {
		name string
		in   []byte
	}{{"request", req}, {"random", nested}, {"hostile", h(rep("dc ff ff", 1000))}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.in)))
			for b.Loop() {
				Scan(bc.in, Limits{})
			}
		})
	}
}
