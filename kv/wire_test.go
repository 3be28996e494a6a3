package kv

import (
	"bytes"
	"errors"
	"math/rand"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/internal/mpscan"
)

// wireRoundTrip sends msg through the envelope and back.
func wireRoundTrip(t *testing.T, msg any) any {
	t.Helper()
	bv, err := actors.EncodeWire(msg)
	if err != nil {
		t.Fatalf("EncodeWire(%T): %v", msg, err)
	}
	got, err := actors.DecodeWire(bv, mpscan.Limits{})
	if err != nil {
		t.Fatalf("DecodeWire(%T): %v", msg, err)
	}
	if reflect.TypeOf(got) != reflect.TypeOf(msg) {
		t.Fatalf("decoded %T, want %T", got, msg)
	}
	// A decoded message is canonical: another round trip changes nothing (the first may normalise, e.g. an
	// empty context to nil).
	again, err := actors.EncodeWire(got)
	if err != nil {
		t.Fatalf("%T: re-encode: %v", msg, err)
	}
	got2, err := actors.DecodeWire(again, mpscan.Limits{})
	if err != nil || !reflect.DeepEqual(got2, got) {
		t.Fatalf("%T: second round trip differs (err %v):\n%+v\n%+v", msg, err, got2, got)
	}
	return got
}

func TestWireRoundTripEveryMessage(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	obj := objRandomObject(rng)
	for len(obj.Siblings) == 0 {
		obj = objRandomObject(rng)
	}
	clock := objRandomClock(rng)
	for len(clock) == 0 {
		clock = objRandomClock(rng)
	}
	meta := Meta{Flags: 7, Expiry: 1_700_000_000, LastMod: -3, Deleted: true}
	msgs := []any{
		&GetRequest{V: 1, Tag: 3, Key: []byte("k")},
		&GetRequest{V: 1},
		&GetReply{V: 1, Tag: 3, Partition: 63, Object: obj},
		&GetReply{V: 1, Tag: 4, Partition: 1, Object: nil, Code: CodeStorage, Err: "disk"},
		&GetReply{V: 1, Object: &Object{}}, // an empty object is not nil
		&PutRequest{V: 1, Tag: 9, Key: []byte("k"), Coordinate: true, Context: clock, Blind: false,
			Value: []byte("value"), Meta: meta, ReturnObject: true},
		&PutRequest{V: 1, Key: []byte("k"), Object: obj},
		&PutRequest{V: 1, Key: []byte("k"), Context: VClock{}, Blind: true}, // empty context
		&PutReply{V: 1, Tag: 9, Partition: 2, Object: obj},
		&PutReply{V: 1, Code: CodeTooManySiblings, Err: "too many"},
		&ReapRequest{V: 1, Key: []byte("k"), Clock: clock},
		&KeysRequest{V: 1, Limit: 10},
		&KeysReply{V: 1, Partition: 5, Keys: [][]byte{[]byte("a"), {}, []byte("ccc")}, Err: ""},
		&KeysReply{V: 1, Partition: 5},
		&CoverKeysRequest{V: 1, Prefix: []byte("user:")},
		&CountKeysRequest{V: 1, Prefix: []byte("p")},
		&CountKeysReply{V: 1, Partition: 9, Count: 1 << 40, Err: "x"},
	}
	for _, m := range msgs {
		got := wireRoundTrip(t, m)
		if reflect.DeepEqual(got, m) {
			continue
		}
		// Normalisations the encoding makes on purpose: an empty clock is the nil clock, empty byte slices
		// and objects decode to their canonical (nil-slice) forms.
		switch w := m.(type) {
		case *GetReply:
			g := got.(*GetReply)
			if w.Object != nil && g.Object != nil && objSame(w.Object, g.Object) {
				g2, w2 := *g, *w
				g2.Object, w2.Object = nil, nil
				if reflect.DeepEqual(g2, w2) {
					continue
				}
			}
		case *PutRequest:
			g := got.(*PutRequest)
			if len(w.Context) == 0 && len(g.Context) == 0 {
				g2, w2 := *g, *w
				g2.Context, w2.Context = nil, nil
				if reflect.DeepEqual(g2, w2) {
					continue
				}
			}
		case *KeysReply:
			g := got.(*KeysReply)
			if len(g.Keys) == len(w.Keys) {
				same := true
				for i := range g.Keys {
					same = same && bytes.Equal(g.Keys[i], w.Keys[i])
				}
				if same {
					continue
				}
			}
		}
		t.Errorf("%T round trip:\n got %+v\nwant %+v", m, got, m)
	}
}

// TestWireNilObjectStaysNil: a reply without an object must not grow an empty one (nil means "not found").
func TestWireNilObjectStaysNil(t *testing.T) {
	got := wireRoundTrip(t, &GetReply{V: 1, Tag: 1}).(*GetReply)
	if got.Object != nil {
		t.Fatalf("nil Object decoded as %v", got.Object)
	}
	got2 := wireRoundTrip(t, &PutRequest{V: 1}).(*PutRequest)
	if got2.Object != nil || got2.Context != nil {
		t.Fatalf("nil Object/Context decoded as %v / %v", got2.Object, got2.Context)
	}
}

func TestWireRandomObjects(t *testing.T) {
	rng := rand.New(rand.NewSource(12))
	for i := 0; i < 200; i++ {
		o := objRandomObject(rng)
		got := wireRoundTrip(t, &PutReply{V: 1, Object: o}).(*PutReply)
		if !objSame(got.Object, o) {
			t.Fatalf("object %v decoded as %v", o, got.Object)
		}
	}
}

// TestWireInvalidObject: an object that breaks its invariant cannot be sent, and a forged one embedded in a
// message is rejected by UnmarshalObject's checks on receipt.
func TestWireInvalidObject(t *testing.T) {
	bad := &Object{Siblings: []Sibling{{Value: []byte("x"), Dot: Dot{"a", 1}}}} // dot not covered by the clock
	if _, err := actors.EncodeWire(&PutRequest{V: 1, Object: bad}); err == nil {
		t.Fatal("EncodeWire accepted an invalid object")
	}
	// Forge the envelope by hand: [1, 3, {"o": <bin with bad object bytes>}].
	forged := func(objBytes []byte) *wrapperspb.BytesValue {
		b, err := msgpack.Marshal([]any{1, int(WirePutRequest), map[string]any{"v": 1, "o": objBytes}})
		if err != nil {
			t.Fatal(err)
		}
		return &wrapperspb.BytesValue{Value: b}
	}
	// A clock entry with a zero counter; then random garbage.
	for _, ob := range [][]byte{
		{0x93, 0x01, 0x91, 0x93, 0xa1, 'a', 0x00, 0x00, 0x90},
		{0x93, 0x02, 0x90, 0x90},
		{0xdd, 0xff, 0xff, 0xff, 0xff},
	} {
		_, err := actors.DecodeWire(forged(ob), mpscan.Limits{})
		if !errors.Is(err, actors.ErrWireMalformed) {
			t.Errorf("forged object % x: err %v, want ErrWireMalformed", ob, err)
		}
	}
	// And a context that is not a clock.
	b, _ := msgpack.Marshal([]any{1, int(WireReapRequest), map[string]any{"v": 1, "c": []byte{0x92, 0x01, 0x90}}})
	if _, err := actors.DecodeWire(&wrapperspb.BytesValue{Value: b}, mpscan.Limits{}); !errors.Is(err, actors.ErrWireMalformed) {
		t.Errorf("forged clock: err %v", err)
	}
}

// TestWireRegistrationsFixed pins the codes: they are append-only.
func TestWireRegistrationsFixed(t *testing.T) {
	for code, m := range map[actors.WireType]any{
		1: &GetRequest{}, 2: &GetReply{}, 3: &PutRequest{}, 4: &PutReply{},
		5: &ReapRequest{}, 6: &KeysRequest{}, 7: &KeysReply{},
		64: &CoverKeysRequest{}, 65: &CountKeysRequest{}, 66: &CountKeysReply{},
	} {
		if got, ok := actors.WireTypeOf(m); !ok || got != code {
			t.Errorf("%T: wire type %d, %v; want %d", m, got, ok, code)
		}
	}
	if _, ok := actors.WireTypeOf(GetRequest{}); ok {
		t.Error("a value (not pointer) GetRequest must not be registered")
	}
}

func BenchmarkWireGetReply(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	o := objRandomObject(rng)
	benchWireRoundTrip(b, &GetReply{V: 1, Tag: 1, Partition: 3, Object: o})
}

// FuzzWireVnodeMessages: hostile envelopes carrying vnode messages never panic, and whatever decodes is a
// valid message (its objects pass Validate) that survives another round trip.
func FuzzWireVnodeMessages(f *testing.F) {
	rng := rand.New(rand.NewSource(13))
	for _, m := range []any{
		&GetReply{V: 1, Tag: 1, Partition: 2, Object: objRandomObject(rng)},
		&PutRequest{V: 1, Key: []byte("k"), Context: objRandomClock(rng), Value: []byte("v"), Meta: Meta{Flags: 1}},
		&ReapRequest{V: 1, Key: []byte("k"), Clock: objRandomClock(rng)},
		&KeysReply{V: 1, Keys: [][]byte{[]byte("a")}},
	} {
		bv, err := actors.EncodeWire(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(bv.Value)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := actors.DecodeWire(&wrapperspb.BytesValue{Value: b}, mpscan.Limits{MaxBytes: 1 << 16})
		if err != nil {
			return
		}
		var objs []*Object
		switch m := msg.(type) {
		case *GetReply:
			objs = append(objs, m.Object)
		case *PutRequest:
			objs = append(objs, m.Object)
		case *PutReply:
			objs = append(objs, m.Object)
		}
		for _, o := range objs {
			if o != nil {
				if err := o.Validate(); err != nil {
					t.Fatalf("decoded an invalid object: %v", err)
				}
			}
		}
		wireRoundTrip(t, msg)
	})
}

// BenchmarkWireGetReply100B round-trips the common reply: one 100-byte sibling, a one-entry clock.
func BenchmarkWireGetReply100B(b *testing.B) {
	o, err := Update(nil, "gokai@127.0.0.1/12/0a1b2c3d", nil, true, make([]byte, 100), Meta{}, 1700000000, UpdateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	benchWireRoundTrip(b, &GetReply{V: 1, Tag: 1, Partition: 3, Object: o})
}

// benchWireRoundTrip encodes and decodes msg as a message between nodes does.
func benchWireRoundTrip(b *testing.B, msg any) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		bv, err := actors.EncodeWire(msg)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := actors.DecodeWire(bv, mpscan.Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
