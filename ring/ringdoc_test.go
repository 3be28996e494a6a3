package ring

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestRingDocRoundTrip(t *testing.T) {
	for _, q := range []int{1, 2, 64, 1024, MaxPartitions} {
		for _, m := range []int{1, 3, 7} {
			if q == MaxPartitions && m != 7 {
				continue
			}
			r, _ := New(q, 3, names(m))
			r = mustRing(t, r.Owners(), uint64(q*m)) // some version
			b, err := r.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			got, err := Unmarshal(b)
			if err != nil {
				t.Fatalf("q=%d m=%d: %v", q, m, err)
			}
			if !got.Equal(r) || !slices.Equal(got.Nodes(), r.Nodes()) {
				t.Fatalf("q=%d m=%d: round trip changed the ring", q, m)
			}
			b2, _ := got.MarshalBinary()
			if !bytes.Equal(b, b2) {
				t.Fatalf("q=%d m=%d: encoding not canonical", q, m)
			}
			if q == 64 && m == 7 {
				t.Logf("q=%d nodes=%d: %d bytes", q, m, len(b))
			}
		}
	}
}

// doc encodes a ring document from parts, valid or not.
func doc(t testing.TB, fields map[string]any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(fields); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func goodDoc() map[string]any {
	return map[string]any{"format": 1, "version": 9, "nodes": []string{"a", "b"}, "owners": []uint32{0, 1, 1, 0}}
}

func with(k string, v any) map[string]any {
	d := goodDoc()
	if v == nil {
		delete(d, k)
	} else {
		d[k] = v
	}
	return d
}

func TestUnmarshalRingErrors(t *testing.T) {
	ok, err := Unmarshal(doc(t, goodDoc()))
	if err != nil || ok.Version() != 9 || !slices.Equal(ok.Owners(), []NodeID{"a", "b", "b", "a"}) {
		t.Fatalf("good doc: %v, %v", ok, err)
	}
	if r, err := Unmarshal(doc(t, with("future", []int{1, 2}))); err != nil || !r.Equal(ok) {
		t.Fatalf("unknown field not ignored: %v", err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"not a map", []byte{0x01}},
		{"truncated", doc(t, goodDoc())[:10]},
		{"trailing bytes", append(doc(t, goodDoc()), 0xc0)},
		{"no format", doc(t, with("format", nil))},
		{"format 2", doc(t, with("format", 2))},
		{"no owners", doc(t, with("owners", nil))},
		{"three partitions", doc(t, with("owners", []uint32{0, 1, 0}))},
		{"owner out of table", doc(t, with("owners", []uint32{0, 1, 2, 0}))},
		{"node owns nothing", doc(t, with("owners", []uint32{0, 0, 0, 0}))},
		{"nodes unsorted", doc(t, with("nodes", []string{"b", "a"}))},
		{"nodes duplicate", doc(t, with("nodes", []string{"a", "a"}))},
		{"empty node id", doc(t, with("nodes", []string{"", "a"}))},
		{"owners wrong type", doc(t, with("owners", []string{"a", "b", "a", "b"}))},
		{"negative owner", doc(t, with("owners", []int{0, -1, 1, 0}))},
		{"array32 of 4 billion", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}},
		{"map32 of 4 billion", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}},
		{"bin32 of 4 GiB", []byte{0xc6, 0xff, 0xff, 0xff, 0xff}},
		{"owners array32 lies", []byte{0x82, 0xa6, 'f', 'o', 'r', 'm', 'a', 't', 0x01,
			0xa6, 'o', 'w', 'n', 'e', 'r', 's', 0xdd, 0x7f, 0xff, 0xff, 0xff}},
		{"deep nesting", bytes.Repeat([]byte{0x91}, 100)},
		{"reserved byte", []byte{0xc1}},
		{"too large", make([]byte, MaxDocBytes+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Unmarshal(tc.b)
			if r != nil || !errors.Is(err, ErrMalformed) {
				t.Fatalf("Unmarshal = %v, %v; want ErrMalformed", r, err)
			}
		})
	}
}

func FuzzUnmarshalRing(f *testing.F) {
	r, _ := New(8, 3, names(3))
	b, _ := r.MarshalBinary()
	f.Add(b)
	f.Add(doc(f, goodDoc()))
	f.Add(doc(f, with("owners", []uint32{0, 1, 2, 0})))
	f.Add(doc(f, with("nodes", []string{"b", "a"})))
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Add(bytes.Repeat([]byte{0x91}, 64))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Unmarshal(b)
		if err != nil {
			if r != nil || !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v with ring %v", err, r)
			}
			return
		}
		// Whatever decodes re-encodes to a document that decodes the same.
		b2, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		r2, err := Unmarshal(b2)
		if err != nil || !r2.Equal(r) {
			t.Fatalf("re-decode: %v", err)
		}
	})
}
