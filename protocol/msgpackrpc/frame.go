package msgpackrpc

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Message types of the MessagePack-RPC spec.
const (
	typeRequest      = 0
	typeResponse     = 1
	typeNotification = 2
)

// message is one decoded request or notification.
type message struct {
	typ    int
	msgid  uint32
	method string
	params []any
}

// envelope is what can be read of a message's head: its array length, its type and its msgid.
type envelope struct {
	n     int   // array length; -1 if the message is not an array
	typ   int64 // -1 if not an integer
	msgid uint32
	hasID bool // a request or response whose msgid is an integer in uint32 range
}

// parseEnvelope reads the head of a message from b and returns what it read and the offset just after it.
// It reads only headers and integers, bounds-checked, so it is safe on bytes that did not pass mpscan (a
// frame rejected for its size still gets an error response carrying its msgid).
func parseEnvelope(b []byte) (envelope, int) {
	env := envelope{n: -1, typ: -1}
	n, off, ok := arrayHeader(b, 0)
	if !ok {
		return env, 0
	}
	env.n = n
	if n < 1 {
		return env, off
	}
	typ, off2, ok := readInt(b, off)
	if !ok {
		return env, off
	}
	env.typ, off = typ, off2
	if (typ == typeRequest || typ == typeResponse) && n >= 2 {
		if id, off2, ok := readInt(b, off); ok && id >= 0 && id <= math.MaxUint32 {
			env.msgid, env.hasID, off = uint32(id), true, off2
		}
	}
	return env, off
}

// check rejects an envelope that is not a request or a notification of the right length.
func (env envelope) check() *Error {
	switch {
	case env.n < 0:
		return badRequest("a message must be an array")
	case env.typ == typeRequest && !env.hasID, env.typ == typeResponse && !env.hasID:
		return badRequest("msgid must be an integer in 0..4294967295")
	case env.typ == typeResponse:
		return badRequest("a response from a client: the server makes no calls")
	case env.typ == typeRequest && env.n != 4:
		return badRequest("a request is [0, msgid, method, params], got %d elements", env.n)
	case env.typ == typeNotification && env.n != 3:
		return badRequest("a notification is [2, method, params], got %d elements", env.n)
	case env.typ != typeRequest && env.typ != typeNotification:
		return badRequest("unknown message type")
	}
	return nil
}

// arrayHeader reads an array header (fixarray, array16, array32) at b[off:]: the element count and the
// offset after the header. ok is false if there is none, or it is cut.
func arrayHeader(b []byte, off int) (n, next int, ok bool) {
	if off >= len(b) {
		return 0, off, false
	}
	switch c := b[off]; {
	case msgpcode.IsFixedArray(c):
		return int(c & msgpcode.FixedArrayMask), off + 1, true
	case c == msgpcode.Array16 && off+3 <= len(b):
		return int(binary.BigEndian.Uint16(b[off+1:])), off + 3, true
	case c == msgpcode.Array32 && off+5 <= len(b):
		return int(binary.BigEndian.Uint32(b[off+1:])), off + 5, true
	}
	return 0, off, false
}

// readInt reads an integer of any msgpack int type at b[off:], as Decoder.DecodeInt64 does (a uint64 above
// MaxInt64 comes back negative); anything else (nil, float) or a cut integer is not read.
func readInt(b []byte, off int) (v int64, next int, ok bool) {
	if off >= len(b) {
		return 0, off, false
	}
	c := b[off]
	if msgpcode.IsFixedNum(c) {
		return int64(int8(c)), off + 1, true
	}
	var size int
	switch c {
	case msgpcode.Uint8, msgpcode.Int8:
		size = 1
	case msgpcode.Uint16, msgpcode.Int16:
		size = 2
	case msgpcode.Uint32, msgpcode.Int32:
		size = 4
	case msgpcode.Uint64, msgpcode.Int64:
		size = 8
	default:
		return 0, off, false
	}
	if off+1+size > len(b) {
		return 0, off, false
	}
	p := b[off+1:]
	switch c {
	case msgpcode.Uint8:
		v = int64(p[0])
	case msgpcode.Int8:
		v = int64(int8(p[0]))
	case msgpcode.Uint16:
		v = int64(binary.BigEndian.Uint16(p))
	case msgpcode.Int16:
		v = int64(int16(binary.BigEndian.Uint16(p)))
	case msgpcode.Uint32:
		v = int64(binary.BigEndian.Uint32(p))
	case msgpcode.Int32:
		v = int64(int32(binary.BigEndian.Uint32(p)))
	default:
		v = int64(binary.BigEndian.Uint64(p))
	}
	return v, off + 1 + size, true
}

// strOrBin reads a str or bin at b[off:] and returns its bytes (aliasing b) and the offset after it. ok is
// false if there is none, or it is cut.
func strOrBin(b []byte, off int) (s []byte, next int, ok bool) {
	if off >= len(b) {
		return nil, off, false
	}
	c := b[off]
	var n, hdr int
	switch {
	case msgpcode.IsFixedString(c):
		n, hdr = int(c&msgpcode.FixedStrMask), 1
	case (c == msgpcode.Str8 || c == msgpcode.Bin8) && off+2 <= len(b):
		n, hdr = int(b[off+1]), 2
	case (c == msgpcode.Str16 || c == msgpcode.Bin16) && off+3 <= len(b):
		n, hdr = int(binary.BigEndian.Uint16(b[off+1:])), 3
	case (c == msgpcode.Str32 || c == msgpcode.Bin32) && off+5 <= len(b):
		n, hdr = int(binary.BigEndian.Uint32(b[off+1:])), 5
	default:
		return nil, off, false
	}
	start := off + hdr
	if n > len(b)-start {
		return nil, off, false
	}
	return b[start : start+n], start + n, true
}

// requestDecoder decodes the messages of one connection; the zero value is ready. It is owned by the
// connection's reader goroutine.
type requestDecoder struct {
	dec *msgpack.Decoder // for params; created on first use
	rd  bytes.Reader
	// method is the method name last decoded: a client that repeats it gets the same string, without an
	// allocation.
	method string
}

// decode decodes a frame that passed mpscan.Scan. On error, env.hasID says whether the error can be
// answered; if not, the connection must be closed. The envelope and method are read by hand; params by
// vmihailenco/msgpack (as the Handler doc describes).
func (d *requestDecoder) decode(frame []byte) (message, envelope, *Error) {
	env, off := parseEnvelope(frame)
	m := message{typ: int(env.typ), msgid: env.msgid}
	if err := env.check(); err != nil {
		return m, env, err
	}
	// NB: the frame passed mpscan, so every element the array header declares is there, whole.
	method, off, ok := strOrBin(frame, off)
	if !ok {
		return m, env, badRequest("method must be a str or bin")
	}
	if string(method) != d.method {
		d.method = string(method)
	}
	m.method = d.method
	if off >= len(frame) {
		return m, env, badRequest("params: %v", io.EOF) // NB: unreachable after mpscan
	}
	switch c := frame[off]; {
	case c == msgpcode.Nil:
		// Some clients send nil for no params.
	case !(msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32):
		return m, env, badRequest("params must be an array")
	case m.typ == typeNotification:
		// Not decoded: the only notification served (ping) takes none.
	default:
		if d.dec == nil {
			d.dec = msgpack.NewDecoder(nil)
		}
		d.rd.Reset(frame[off:])
		d.dec.Reset(&d.rd)
		var err error
		m.params, err = d.dec.DecodeSlice()
		d.rd.Reset(nil)
		if err != nil {
			return m, env, badRequest("params: %v", err)
		}
	}
	return m, env, nil
}

// encodeResponse appends the response [1, msgid, error, result] to buf. If result (or an error's Fields)
// cannot be encoded, the response carries an internal error instead, and the encoding error is returned.
// enc, with UseCompactInts, writes what responseEncoder does not write by hand; if enc is nil, one is taken
// from the pool when needed.
func encodeResponse(enc *msgpack.Encoder, buf *bytes.Buffer, msgid uint32, rerr *Error, result any) error {
	e := responseEncoder{buf: buf, enc: enc}
	if enc == nil {
		defer e.release()
	} else {
		enc.Reset(buf)
		enc.UseCompactInts(true)
	}
	start := buf.Len()
	buf.WriteByte(0x94) // fixarray of 4
	buf.WriteByte(typeResponse)
	e.writeUint(uint64(msgid))
	mark := buf.Len()
	var err error
	if rerr != nil {
		err = rerr.EncodeMsgpack(e.encoder())
		if err == nil {
			buf.WriteByte(msgpcode.Nil)
		}
	} else {
		buf.WriteByte(msgpcode.Nil)
		err = e.value(result, false)
	}
	if err == nil {
		return nil
	}
	buf.Truncate(mark)
	ierr := &Error{Code: CodeInternal, Message: "encoding the response: " + err.Error()}
	if e2 := ierr.EncodeMsgpack(e.encoder()); e2 != nil {
		buf.Truncate(start)
		return e2
	}
	buf.WriteByte(msgpcode.Nil)
	return err
}
