package actors

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gokai-kv/gokai/internal/mpscan"
)

// WireVersion is the first element of every envelope. A receiver rejects any other version.
const WireVersion = 1

// WireType names a message type on the wire. Codes are append-only: a code, once shipped, always means the
// same message, and a retired message's code is never reused.
//
// Allocation (claim the next free block here, in this table, when a package gets wire messages):
//
//	0            invalid
//	1..7         kv (GetRequest=1 ... KeysReply=7)
//	8..31        vnode (HandoffBatch=8 ... HandoffForwardAck=11, HandoffCommand=12, CoverageRequest=13 ...
//	             CoverageCancel=16, AAEQuery=24, AAEAnswer=25; 17..23, 26..31 reserved for vnode)
//	32..39       actors (Ping=32, Pong=33)
//	40..47       node (ControlRequest=40, ControlReply=41)
//	48..63       free, for gokai's own packages
//	64..71       kv (CoverKeysRequest=64, CountKeysRequest=65, CountKeysReply=66)
//	72..1023     free, for gokai's own packages
//	1024..65535  services built on gokai (examples, applications): each claims a block and lists its
//	             messages in its service.Service (the node registers them with EnsureWire)
//	1024..1031   examples/counter (IncrRequest=1024 ... StateReply=1027)
type WireType uint16

// Errors returned by DecodeWire (wrapped with detail).
var (
	// ErrWireMalformed: the bytes are not a well-formed envelope (bad msgpack, wrong shape, trailing bytes,
	// a payload that does not decode into the registered type, or limits exceeded).
	ErrWireMalformed = errors.New("actors: malformed wire message")
	// ErrWireVersion: the envelope's version is not WireVersion.
	ErrWireVersion = errors.New("actors: unknown wire version")
	// ErrWireUnknownType: no message is registered under the envelope's type code.
	ErrWireUnknownType = errors.New("actors: unknown wire type")
	// ErrWireUnregistered: EncodeWire was given a message whose type is not registered.
	ErrWireUnregistered = errors.New("actors: message type not registered for the wire")
)

// wireRegistry is immutable once published; RegisterWire publishes a new copy.
type wireRegistry struct {
	byCode map[WireType]wireEntry
	byType map[reflect.Type]WireType
}

type wireEntry struct {
	typ    reflect.Type
	newMsg func() any
}

var (
	wireMu sync.Mutex // serialises RegisterWire
	// NB: set by a variable initializer, which runs before every init() of the package (this package's
	// own messages register from init functions in files that sort before this one).
	wireReg = func() *atomic.Pointer[wireRegistry] {
		p := new(atomic.Pointer[wireRegistry])
		p.Store(&wireRegistry{byCode: map[WireType]wireEntry{}, byType: map[reflect.Type]WireType{}})
		return p
	}()
)

// RegisterWire makes the messages newMsg returns travel between nodes under code t. newMsg must return a
// fresh non-nil pointer (to a struct, normally) on every call; its dynamic type is the one the sender
// middleware wraps (send exactly that type: a *GetRequest is wrapped, a GetRequest value is not).
//
// Call it from the owning package's init(). It panics on code 0, on a code or a type registered twice, and on
// a newMsg that does not return a non-nil pointer: all programming errors.
func RegisterWire(t WireType, newMsg func() any) {
	if t == 0 {
		panic("actors: RegisterWire: code 0 is reserved")
	}
	if newMsg == nil {
		panic(fmt.Sprintf("actors: RegisterWire(%d): nil constructor", t))
	}
	m := newMsg()
	v := reflect.ValueOf(m)
	if m == nil || v.Kind() != reflect.Pointer || v.IsNil() {
		panic(fmt.Sprintf("actors: RegisterWire(%d): constructor returned %T, want a non-nil pointer", t, m))
	}
	typ := v.Type()
	wireMu.Lock()
	defer wireMu.Unlock()
	old := wireReg.Load()
	if e, ok := old.byCode[t]; ok {
		panic(fmt.Sprintf("actors: RegisterWire(%d, %v): code already registered for %v", t, typ, e.typ))
	}
	if c, ok := old.byType[typ]; ok {
		panic(fmt.Sprintf("actors: RegisterWire(%d, %v): type already registered as code %d", t, typ, c))
	}
	next := &wireRegistry{
		byCode: make(map[WireType]wireEntry, len(old.byCode)+1),
		byType: make(map[reflect.Type]WireType, len(old.byType)+1),
	}
	for k, e := range old.byCode {
		next.byCode[k] = e
	}
	for k, c := range old.byType {
		next.byType[k] = c
	}
	next.byCode[t] = wireEntry{typ: typ, newMsg: newMsg}
	next.byType[typ] = t
	wireReg.Store(next)
}

// EnsureWire registers newMsg's type under code t unless exactly that pairing is registered already (a
// service registered by every node of a process, or whose package also registers its messages in init).
// Unlike RegisterWire it returns an error, not a panic, when t or the type is taken by another pairing: the
// node reports a service whose wire codes collide when it is built.
func EnsureWire(t WireType, newMsg func() any) error {
	if t == 0 || newMsg == nil {
		return fmt.Errorf("actors: EnsureWire(%d): code 0 and a nil constructor are invalid", t)
	}
	m := newMsg()
	v := reflect.ValueOf(m)
	if m == nil || v.Kind() != reflect.Pointer || v.IsNil() {
		return fmt.Errorf("actors: EnsureWire(%d): constructor returned %T, want a non-nil pointer", t, m)
	}
	typ := v.Type()
	// NB: the check and the registration happen under one lock, so two callers ensuring the same pairing
	// at once do not both register it (RegisterWire panics on a code registered twice).
	ensureMu.Lock()
	defer ensureMu.Unlock()
	reg := wireReg.Load()
	if e, ok := reg.byCode[t]; ok {
		if e.typ == typ {
			return nil
		}
		return fmt.Errorf("actors: wire code %d of %v is taken by %v", t, typ, e.typ)
	}
	if c, ok := reg.byType[typ]; ok {
		return fmt.Errorf("actors: %v is registered for the wire as code %d, not %d", typ, c, t)
	}
	RegisterWire(t, newMsg)
	return nil
}

// ensureMu serialises EnsureWire's check-then-register (RegisterWire takes wireMu itself).
var ensureMu sync.Mutex

// WireTypeOf returns the code msg travels under, if its type is registered.
func WireTypeOf(msg any) (WireType, bool) {
	t, ok := wireReg.Load().byType[reflect.TypeOf(msg)]
	return t, ok
}

var wireEncoders = sync.Pool{New: func() any {
	e := &wireEncoder{}
	e.enc = msgpack.NewEncoder(&e.buf)
	e.enc.UseCompactInts(true)
	return e
}}

// wireDecoders keeps msgpack decoders (each allocates its own buffers) for DecodeWire.
var wireDecoders = sync.Pool{New: func() any {
	w := &wireDecoder{}
	w.dec = msgpack.NewDecoder(&w.r)
	return w
}}

type wireDecoder struct {
	r   bytes.Reader
	dec *msgpack.Decoder
}

type wireEncoder struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

// EncodeWire wraps a registered message into the envelope msgpack [WireVersion, code, payload], where payload is
// the message's own msgpack encoding (inline, not a bin). It fails for an unregistered type or when the message
// cannot be encoded (for example a vnode Object that breaks its invariant).
func EncodeWire(msg any) (*wrapperspb.BytesValue, error) {
	code, ok := WireTypeOf(msg)
	if !ok {
		return nil, fmt.Errorf("%w: %T", ErrWireUnregistered, msg)
	}
	e := wireEncoders.Get().(*wireEncoder)
	defer func() {
		if e.buf.Cap() <= 1<<20 { // NB: do not pin large buffers in the pool
			e.buf.Reset()
			wireEncoders.Put(e)
		}
	}()
	e.buf.Reset()
	_ = e.enc.EncodeArrayLen(3)
	_ = e.enc.EncodeUint(WireVersion)
	_ = e.enc.EncodeUint(uint64(code))
	if err := e.enc.Encode(msg); err != nil {
		return nil, fmt.Errorf("actors: encode %T (wire type %d): %w", msg, code, err)
	}
	return &wrapperspb.BytesValue{Value: bytes.Clone(e.buf.Bytes())}, nil
}

// DecodeWire unwraps an envelope made by EncodeWire into a new value of the registered type (a pointer). The
// bytes are first checked by mpscan.Scan with lim, so hostile input is rejected before the msgpack decoder
// allocates anything it declares; the envelope must be exactly one msgpack value. DecodeWire never panics:
// a panic in a message's own decoding (an UnmarshalBinary, say) is returned as ErrWireMalformed.
func DecodeWire(b *wrapperspb.BytesValue, lim mpscan.Limits) (msg any, err error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil", ErrWireMalformed)
	}
	data := b.GetValue()
	n, err := mpscan.Scan(data, lim)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrWireMalformed, err)
	}
	if n != len(data) {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrWireMalformed, len(data)-n)
	}
	defer func() {
		if p := recover(); p != nil {
			msg, err = nil, fmt.Errorf("%w: decoder panic: %v", ErrWireMalformed, p)
		}
	}()
	w := wireDecoders.Get().(*wireDecoder)
	defer func() {
		w.r.Reset(nil)
		w.dec.Reset(&w.r)
		wireDecoders.Put(w)
	}()
	w.r.Reset(data)
	w.dec.Reset(&w.r)
	dec := w.dec
	k, err := dec.DecodeArrayLen()
	if err != nil {
		return nil, fmt.Errorf("%w: envelope: %w", ErrWireMalformed, err)
	}
	if k != 3 {
		return nil, fmt.Errorf("%w: envelope has %d elements, want 3", ErrWireMalformed, k)
	}
	v, err := dec.DecodeUint64()
	if err != nil {
		return nil, fmt.Errorf("%w: version: %w", ErrWireMalformed, err)
	}
	if v != WireVersion {
		return nil, fmt.Errorf("%w: %d", ErrWireVersion, v)
	}
	c, err := dec.DecodeUint64()
	if err != nil {
		return nil, fmt.Errorf("%w: type code: %w", ErrWireMalformed, err)
	}
	if c > 0xffff {
		return nil, fmt.Errorf("%w: %d", ErrWireUnknownType, c)
	}
	e, ok := wireReg.Load().byCode[WireType(c)]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrWireUnknownType, c)
	}
	msg = e.newMsg()
	if err := dec.Decode(msg); err != nil {
		return nil, fmt.Errorf("%w: %v (wire type %d): %w", ErrWireMalformed, e.typ, c, err)
	}
	return msg, nil
}
