package msgpackrpc

import (
	"bytes"
	"encoding/binary"
	"math"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// responseEncoder writes responses into buf. The dynamic types results are built from (nil, bool, string,
// []byte, integers, floats, []any and map[string]any of them) are written by hand, without reflection;
// anything else goes through a vmihailenco/msgpack Encoder with UseCompactInts, taken from its pool on first
// need. The bytes are the Encoder's either way (TestEncodeValueMatchesMsgpack).
//
// NB: this holds as long as no msgpack extension is registered for those builtin types (gokai registers
// none).
type responseEncoder struct {
	buf *bytes.Buffer
	enc *msgpack.Encoder // nil until needed
}

// encoder returns the Encoder, writing to buf.
func (e *responseEncoder) encoder() *msgpack.Encoder {
	if e.enc == nil {
		e.enc = msgpack.GetEncoder()
		e.enc.Reset(e.buf)
		e.enc.UseCompactInts(true)
	}
	return e.enc
}

// release returns the Encoder to its pool.
func (e *responseEncoder) release() {
	if e.enc != nil {
		msgpack.PutEncoder(e.enc)
		e.enc = nil
	}
}

// value writes v as Encoder.Encode(v) does or, with inSlice, as Encoder.EncodeValue(reflect.ValueOf(v))
// does: that is how the Encoder writes the elements of a []any, while it writes map values with Encode.
// The two differ only for the types passed on to the Encoder.
func (e *responseEncoder) value(v any, inSlice bool) error {
	switch v := v.(type) {
	case nil:
		e.buf.WriteByte(msgpcode.Nil)
	case bool:
		if v {
			e.buf.WriteByte(msgpcode.True)
		} else {
			e.buf.WriteByte(msgpcode.False)
		}
	case string:
		e.writeStr(v)
	case []byte:
		if v == nil {
			e.buf.WriteByte(msgpcode.Nil)
			break
		}
		e.writeLen(len(v), msgpcode.Bin8, msgpcode.Bin16, msgpcode.Bin32)
		e.buf.Write(v)
	case int:
		e.writeInt(int64(v))
	case int8:
		e.writeInt(int64(v))
	case int16:
		e.writeInt(int64(v))
	case int32:
		e.writeInt(int64(v))
	case int64:
		e.writeInt(v)
	case uint:
		e.writeUint(uint64(v))
	case uint8:
		e.writeUint(uint64(v))
	case uint16:
		e.writeUint(uint64(v))
	case uint32:
		e.writeUint(uint64(v))
	case uint64:
		e.writeUint(v)
	case float32:
		e.buf.Write(binary.BigEndian.AppendUint32(append(e.buf.AvailableBuffer(), msgpcode.Float), math.Float32bits(v)))
	case float64:
		e.buf.Write(binary.BigEndian.AppendUint64(append(e.buf.AvailableBuffer(), msgpcode.Double), math.Float64bits(v)))
	case []any:
		if v == nil {
			e.buf.WriteByte(msgpcode.Nil)
			break
		}
		e.writeCount(len(v), msgpcode.FixedArrayLow, msgpcode.Array16, msgpcode.Array32)
		for _, x := range v {
			if err := e.value(x, true); err != nil {
				return err
			}
		}
	case map[string]any:
		if v == nil {
			e.buf.WriteByte(msgpcode.Nil)
			break
		}
		e.writeCount(len(v), msgpcode.FixedMapLow, msgpcode.Map16, msgpcode.Map32)
		for k, x := range v {
			e.writeStr(k)
			if err := e.value(x, false); err != nil {
				return err
			}
		}
	default:
		if inSlice {
			return e.encoder().EncodeValue(reflect.ValueOf(v))
		}
		return e.encoder().Encode(v)
	}
	return nil
}

// writeUint writes n as Encoder.EncodeUint does: in the fewest bytes.
func (e *responseEncoder) writeUint(n uint64) {
	b := e.buf.AvailableBuffer()
	switch {
	case n <= math.MaxInt8:
		b = append(b, byte(n))
	case n <= math.MaxUint8:
		b = append(b, msgpcode.Uint8, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, msgpcode.Uint16), uint16(n))
	case n <= math.MaxUint32:
		b = binary.BigEndian.AppendUint32(append(b, msgpcode.Uint32), uint32(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, msgpcode.Uint64), n)
	}
	e.buf.Write(b)
}

// writeInt writes n as Encoder.EncodeInt does: in the fewest bytes.
func (e *responseEncoder) writeInt(n int64) {
	if n >= 0 {
		e.writeUint(uint64(n))
		return
	}
	b := e.buf.AvailableBuffer()
	switch {
	case n >= -32:
		b = append(b, byte(n)) // negative fixint
	case n >= math.MinInt8:
		b = append(b, msgpcode.Int8, byte(n))
	case n >= math.MinInt16:
		b = binary.BigEndian.AppendUint16(append(b, msgpcode.Int16), uint16(n))
	case n >= math.MinInt32:
		b = binary.BigEndian.AppendUint32(append(b, msgpcode.Int32), uint32(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, msgpcode.Int64), uint64(n))
	}
	e.buf.Write(b)
}

// writeStr writes s as Encoder.EncodeString does.
func (e *responseEncoder) writeStr(s string) {
	if len(s) < 32 {
		e.buf.WriteByte(msgpcode.FixedStrLow | byte(len(s)))
	} else {
		e.writeLen(len(s), msgpcode.Str8, msgpcode.Str16, msgpcode.Str32)
	}
	e.buf.WriteString(s)
}

// writeLen writes a str or bin header with a 1, 2 or 4 byte length.
func (e *responseEncoder) writeLen(n int, c8, c16, c32 byte) {
	b := e.buf.AvailableBuffer()
	switch {
	case n <= math.MaxUint8:
		b = append(b, c8, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, c16), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, c32), uint32(n))
	}
	e.buf.Write(b)
}

// writeCount writes an array or map header: fix form below 16 elements, else a 2 or 4 byte count.
func (e *responseEncoder) writeCount(n int, fix, c16, c32 byte) {
	b := e.buf.AvailableBuffer()
	switch {
	case n < 16:
		b = append(b, fix|byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, c16), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, c32), uint32(n))
	}
	e.buf.Write(b)
}

// sizeHint returns an upper bound of the bytes responseEncoder.value writes for v, when v is made of the
// types it writes by hand; ok is false for anything else (a struct, a custom encoder), whose size is
// known only once encoded. It costs a walk of v, no allocation.
func sizeHint(v any) (n int, ok bool) {
	switch v := v.(type) {
	case nil, bool:
		return 1, true
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return 9, true
	case string:
		return 5 + len(v), true
	case []byte:
		return 5 + len(v), true
	case []any:
		n = 5
		for _, x := range v {
			m, ok := sizeHint(x)
			if !ok {
				return 0, false
			}
			n += m
		}
		return n, true
	case map[string]any:
		n = 5
		for k, x := range v {
			m, ok := sizeHint(x)
			if !ok {
				return 0, false
			}
			n += 5 + len(k) + m
		}
		return n, true
	}
	return 0, false
}
