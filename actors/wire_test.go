package actors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gokai-kv/gokai/internal/mpscan"
)

// Test wire messages (codes at the top of the range, test binary only). Both the test process and the helper
// node it starts register them, as every gokai process registers its packages' messages in init().
type testEcho struct {
	V    uint8        `msgpack:"v"`
	Seq  int          `msgpack:"s"`
	Text string       `msgpack:"t"`
	Blob []byte       `msgpack:"b"`
	PIDs []*actor.PID `msgpack:"p"`
}

type testEchoReply struct {
	V    uint8      `msgpack:"v"`
	Seq  int        `msgpack:"s"`
	Text string     `msgpack:"t"`
	Blob []byte     `msgpack:"b"`
	From *actor.PID `msgpack:"f"` // the replying actor
}

// testTell asks the echo actor to Send a testTold to ReplyTo.
type testTell struct {
	V       uint8      `msgpack:"v"`
	Seq     int        `msgpack:"s"`
	ReplyTo *actor.PID `msgpack:"r"`
}

type testTold struct {
	V    uint8  `msgpack:"v"`
	Seq  int    `msgpack:"s"`
	Text string `msgpack:"t"`
}

// testAsk asks the echo actor to Request a testEcho from Target (with ctx.Request) and to report the reply's
// text to ReplyTo as a testTold.
type testAsk struct {
	V       uint8      `msgpack:"v"`
	Seq     int        `msgpack:"s"`
	Target  *actor.PID `msgpack:"a"`
	ReplyTo *actor.PID `msgpack:"r"`
}

type testStatsRequest struct {
	V uint8 `msgpack:"v"`
}

type testStatsReply struct {
	V     uint8       `msgpack:"v"`
	Stats RemoteStats `msgpack:"s"`
}

// testUnregistered is never registered.
type testUnregistered struct{ X int }

func init() {
	RegisterWire(65001, func() any { return &testEcho{} })
	RegisterWire(65002, func() any { return &testEchoReply{} })
	RegisterWire(65003, func() any { return &testTell{} })
	RegisterWire(65004, func() any { return &testTold{} })
	RegisterWire(65005, func() any { return &testAsk{} })
	RegisterWire(65006, func() any { return &testStatsRequest{} })
	RegisterWire(65007, func() any { return &testStatsReply{} })
	// The test actors other test nodes address: echo and pecho by name, the sinks by protoactor's "$" ids.
	AllowRemoteTarget("echo")
	AllowRemoteTarget("pecho")
	AllowRemoteTarget("$")
	// The throughput baseline sends a plain protobuf message without gokai's envelope.
	remoteTypes[string(proto.MessageName(&wrapperspb.StringValue{}))] = true
}

func TestWireRoundTrip(t *testing.T) {
	pid := actor.NewPID("127.0.0.1:4000", "vnode-sup/vnode-3")
	pid.RequestId = 7
	msgs := []any{
		&testEcho{V: 1, Seq: -5, Text: "héllo", Blob: []byte{0, 1, 2}, PIDs: []*actor.PID{pid, actor.NewPID("h:1", "x")}},
		&testEcho{},
		&testEchoReply{V: 1, Seq: 1 << 40, From: pid},
		&testTell{V: 1, ReplyTo: nil},
		&testStatsReply{V: 1, Stats: RemoteStats{Sent: 1, Dropped: 2, EncodeErrors: 3, DecodeErrors: 4}},
	}
	for _, m := range msgs {
		bv, err := EncodeWire(m)
		if err != nil {
			t.Fatalf("EncodeWire(%T): %v", m, err)
		}
		got, err := DecodeWire(bv, mpscan.Limits{})
		if err != nil {
			t.Fatalf("DecodeWire(%T): %v", m, err)
		}
		// PIDs survive msgpack by their exported fields (Address, Id, RequestId); compare those.
		if !reflect.DeepEqual(normPIDs(got), normPIDs(m)) {
			t.Errorf("round trip %T:\n got %+v\nwant %+v", m, got, m)
		}
	}
	// The envelope is [1, code, payload] with the payload inline.
	bv, _ := EncodeWire(&testStatsRequest{V: 1})
	var env []any
	if err := msgpack.Unmarshal(bv.Value, &env); err != nil || len(env) != 3 {
		t.Fatalf("envelope %x: %v %v", bv.Value, env, err)
	}
	if v, c := reflect.ValueOf(env[0]).Convert(reflect.TypeOf(0)).Int(), reflect.ValueOf(env[1]).Convert(reflect.TypeOf(0)).Int(); v != 1 || c != 65006 {
		t.Fatalf("envelope header %v %v", env[0], env[1])
	}
	if _, ok := env[2].(map[string]any); !ok {
		t.Fatalf("payload %T, want an inline map", env[2])
	}
}

// normPIDs rebuilds PIDs in a message from their wire fields so DeepEqual ignores protobuf internals.
func normPIDs(m any) any {
	norm := func(p *actor.PID) *actor.PID {
		if p == nil {
			return nil
		}
		return &actor.PID{Address: p.Address, Id: p.Id, RequestId: p.RequestId}
	}
	switch m := m.(type) {
	case *testEcho:
		c := *m
		c.PIDs = nil
		for _, p := range m.PIDs {
			c.PIDs = append(c.PIDs, norm(p))
		}
		return &c
	case *testEchoReply:
		c := *m
		c.From = norm(m.From)
		return &c
	case *testTell:
		c := *m
		c.ReplyTo = norm(m.ReplyTo)
		return &c
	}
	return m
}

func TestEncodeWireRejectsUnregistered(t *testing.T) {
	for _, m := range []any{&testUnregistered{}, testEcho{}, nil, "x"} {
		if _, err := EncodeWire(m); !errors.Is(err, ErrWireUnregistered) {
			t.Errorf("EncodeWire(%T): %v, want ErrWireUnregistered", m, err)
		}
	}
}

func TestRegisterWirePanics(t *testing.T) {
	type fresh struct{ A int }
	cases := map[string]func(){
		"code 0":         func() { RegisterWire(0, func() any { return &fresh{} }) },
		"duplicate code": func() { RegisterWire(65001, func() any { return &fresh{} }) },
		"duplicate type": func() { RegisterWire(65100, func() any { return &testEcho{} }) },
		"nil ctor":       func() { RegisterWire(65101, nil) },
		"non-pointer":    func() { RegisterWire(65102, func() any { return fresh{} }) },
		"nil pointer":    func() { RegisterWire(65103, func() any { return (*fresh)(nil) }) },
	}
	for name, f := range cases {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
	for _, c := range []WireType{65100, 65101, 65102, 65103} {
		if _, ok := wireReg.Load().byCode[c]; ok {
			t.Errorf("failed registration left code %d behind", c)
		}
	}
}

func h(s string) []byte {
	var b []byte
	for _, f := range strings.Fields(s) {
		var x byte
		for _, c := range f {
			x = x<<4 | byte(strings.IndexRune("0123456789abcdef", c))
		}
		b = append(b, x)
	}
	return b
}

// envelope builds [1, code, payload-bytes] with raw payload bytes.
func envelope(code uint16, payload []byte) []byte {
	b := []byte{0x93, 0x01, 0xcd}
	b = binary.BigEndian.AppendUint16(b, code)
	return append(b, payload...)
}

// hostileWire are byte strings that must be rejected without panic and with bounded allocation. The LIBNOTES
// killers (array32/map32 of 4 billion, bin32 of 4 GiB, nested array16 headers) appear bare and as payloads.
func hostileWire() map[string][]byte {
	nested := bytes.Repeat(h("dc ff ff"), 1000) // 1000 nested array16 of 65535
	return map[string][]byte{
		"empty":                 {},
		"nil":                   {0xc0},
		"array32 4G":            h("dd ff ff ff ff"),
		"map32 4G":              h("df ff ff ff ff"),
		"bin32 4G":              h("c6 ff ff ff ff"),
		"str32 4G":              h("db ff ff ff ff"),
		"nested array16":        nested,
		"payload array32 4G":    envelope(65001, h("dd ff ff ff ff")),
		"payload map32 4G":      envelope(65001, h("df ff ff ff ff")),
		"payload bin32 4G":      envelope(65001, h("c6 ff ff ff ff")),
		"payload nested":        envelope(65001, nested),
		"payload blob bin32":    envelope(65001, append(h("81 a1 62 c6 7f ff ff ff"), 1, 2, 3)),
		"payload pids array32":  envelope(65001, h("81 a1 70 dd 7f ff ff ff")),
		"payload wrong type":    envelope(65001, h("81 a1 73 a3 61 62 63")), // Seq is a string
		"payload scalar":        envelope(65001, h("2a")),
		"envelope 2 elements":   h("92 01 cd fd e9"),
		"envelope 4 elements":   h("94 01 cd fd e9 80 c0"),
		"version 2":             h("93 02 cd fd e9 80"),
		"version string":        h("93 a1 31 cd fd e9 80"),
		"unknown code":          h("93 01 cd 00 63 80"),
		"code 0":                h("93 01 00 80"),
		"code > 16 bits":        h("93 01 ce 00 01 00 01 80"),
		"negative code":         h("93 01 ff 80"),
		"trailing bytes":        append(envelope(65006, h("80")), 0xc0),
		"truncated":             envelope(65001, h("82 a1 73")),
		"reserved byte c1":      envelope(65001, h("81 a1 73 c1")),
		"not msgpack at all":    []byte("GET / HTTP/1.1\r\n"),
		"huge ext":              envelope(65001, h("c9 ff ff ff ff 01")),
		"map with array32 keys": envelope(65001, h("81 dd ff ff ff ff")),
	}
}

func TestDecodeWireHostile(t *testing.T) {
	for name, b := range hostileWire() {
		t.Run(name, func(t *testing.T) {
			var err error
			alloc := allocated(func() { _, err = DecodeWire(&wrapperspb.BytesValue{Value: b}, mpscan.Limits{}) })
			if err == nil {
				t.Fatalf("DecodeWire(% x) accepted hostile bytes", b[:min(len(b), 16)])
			}
			if !errors.Is(err, ErrWireMalformed) && !errors.Is(err, ErrWireVersion) && !errors.Is(err, ErrWireUnknownType) {
				t.Fatalf("error %v is none of the sentinels", err)
			}
			if limit := uint64(64<<10 + 16*len(b)); alloc > limit {
				t.Fatalf("allocated %d bytes for %d input bytes (limit %d)", alloc, len(b), limit)
			}
		})
	}
	if _, err := DecodeWire(nil, mpscan.Limits{}); !errors.Is(err, ErrWireMalformed) {
		t.Fatalf("DecodeWire(nil): %v", err)
	}
}

// TestDecodeWireLimits: the caller's limits apply to the whole envelope.
func TestDecodeWireLimits(t *testing.T) {
	bv, err := EncodeWire(&testEcho{V: 1, Blob: make([]byte, 2000)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeWire(bv, mpscan.Limits{MaxBytes: 2100}); err != nil {
		t.Fatalf("within limit: %v", err)
	}
	if _, err := DecodeWire(bv, mpscan.Limits{MaxBytes: 1024}); !errors.Is(err, mpscan.ErrTooLarge) || !errors.Is(err, ErrWireMalformed) {
		t.Fatalf("over MaxBytes: %v", err)
	}
	deep, _ := EncodeWire(&testEcho{V: 1, PIDs: []*actor.PID{actor.NewPID("a", "b")}})
	if _, err := DecodeWire(deep, mpscan.Limits{MaxDepth: 2}); !errors.Is(err, mpscan.ErrTooDeep) {
		t.Fatalf("over MaxDepth: %v", err)
	}
}

func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func FuzzDecodeWire(f *testing.F) {
	for _, b := range hostileWire() {
		f.Add(b)
	}
	for _, m := range []any{
		&testEcho{V: 1, Seq: 3, Text: "x", Blob: []byte("yy"), PIDs: []*actor.PID{actor.NewPID("a:1", "b")}},
		&testEchoReply{V: 1, From: actor.NewPID("a:1", "b")},
		&testStatsReply{V: 1, Stats: RemoteStats{Sent: 9}},
	} {
		bv, err := EncodeWire(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(bv.Value)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var msg any
		var err error
		alloc := allocated(func() { msg, err = DecodeWire(&wrapperspb.BytesValue{Value: b}, mpscan.Limits{MaxBytes: 1 << 16}) })
		// Bounded: the decoder never allocates much more than the input (plus fixed costs).
		if limit := uint64(256<<10 + 200*len(b)); alloc > limit {
			t.Fatalf("allocated %d bytes for %d input bytes", alloc, len(b))
		}
		if err != nil {
			return
		}
		// Whatever decodes re-encodes and decodes to the same message.
		bv, err := EncodeWire(msg)
		if err != nil {
			t.Fatalf("re-encode %T: %v", msg, err)
		}
		again, err := DecodeWire(bv, mpscan.Limits{})
		if err != nil || !reflect.DeepEqual(normPIDs(again), normPIDs(msg)) {
			t.Fatalf("second round trip: %v\n%+v\n%+v", err, again, msg)
		}
	})
}

func BenchmarkWireRoundTrip(b *testing.B) {
	msg := &testEcho{V: 1, Seq: 12345, Text: "0123456789", Blob: make([]byte, 100)}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		bv, err := EncodeWire(msg)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeWire(bv, mpscan.Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEnsureWire: a pairing already registered is accepted as is, a new one is registered (concurrent
// callers included), and a code or type taken by another pairing is an error, never a panic.
func TestEnsureWire(t *testing.T) {
	type ensured struct{ A int }
	type other struct{ B int }
	if err := EnsureWire(65001, func() any { return &testEcho{} }); err != nil {
		t.Fatalf("the registered pairing: %v", err)
	}
	done := make(chan error, 8)
	for range 8 {
		go func() { done <- EnsureWire(65110, func() any { return &ensured{} }) }()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatalf("a new pairing: %v", err)
		}
	}
	if c, ok := WireTypeOf(&ensured{}); !ok || c != 65110 {
		t.Fatalf("WireTypeOf after EnsureWire = %d, %v", c, ok)
	}
	for name, f := range map[string]func() error{
		"code taken":  func() error { return EnsureWire(65110, func() any { return &other{} }) },
		"type taken":  func() error { return EnsureWire(65111, func() any { return &ensured{} }) },
		"code 0":      func() error { return EnsureWire(0, func() any { return &other{} }) },
		"non-pointer": func() error { return EnsureWire(65112, func() any { return other{} }) },
	} {
		if err := f(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, ok := wireReg.Load().byCode[65111]; ok {
		t.Error("a refused pairing was registered")
	}
}
