package msgpackrpc

import (
	"bytes"
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

// readEnvelope reads the head of a message. It reads only headers and integers, so it is safe on bytes
// that did not pass mpscan (a frame rejected for its size still gets an error response carrying its msgid).
func readEnvelope(dec *msgpack.Decoder) envelope {
	env := envelope{n: -1, typ: -1}
	c, err := dec.PeekCode()
	if err != nil || !(msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32) {
		return env
	}
	if env.n, err = dec.DecodeArrayLen(); err != nil {
		env.n = -1
		return env
	}
	if env.n < 1 {
		return env
	}
	typ, ok := decodeInt(dec)
	if !ok {
		return env
	}
	env.typ = typ
	if (typ == typeRequest || typ == typeResponse) && env.n >= 2 {
		if id, ok := decodeInt(dec); ok && id >= 0 && id <= math.MaxUint32 {
			env.msgid, env.hasID = uint32(id), true
		}
	}
	return env
}

// decodeInt decodes an integer of any msgpack int type; anything else (nil, float) is not read. A uint64
// above MaxInt64 comes back negative.
func decodeInt(dec *msgpack.Decoder) (int64, bool) {
	c, err := dec.PeekCode()
	if err != nil || !(msgpcode.IsFixedNum(c) || (c >= msgpcode.Uint8 && c <= msgpcode.Int64)) {
		return 0, false
	}
	v, err := dec.DecodeInt64()
	return v, err == nil
}

// decodeMessage decodes a frame that passed mpscan.Scan. On error, env.hasID says whether the error can be
// answered; if not, the connection must be closed.
func decodeMessage(dec *msgpack.Decoder, rd *bytes.Reader, frame []byte) (message, envelope, *Error) {
	rd.Reset(frame)
	dec.Reset(rd)
	env := readEnvelope(dec)
	m := message{typ: int(env.typ), msgid: env.msgid}
	switch {
	case env.n < 0:
		return m, env, badRequest("a message must be an array")
	case env.typ == typeRequest && !env.hasID, env.typ == typeResponse && !env.hasID:
		return m, env, badRequest("msgid must be an integer in 0..4294967295")
	case env.typ == typeResponse:
		return m, env, badRequest("a response from a client: the server makes no calls")
	case env.typ == typeRequest && env.n != 4:
		return m, env, badRequest("a request is [0, msgid, method, params], got %d elements", env.n)
	case env.typ == typeNotification && env.n != 3:
		return m, env, badRequest("a notification is [2, method, params], got %d elements", env.n)
	case env.typ != typeRequest && env.typ != typeNotification:
		return m, env, badRequest("unknown message type")
	}
	c, err := dec.PeekCode()
	if err != nil || !(msgpcode.IsString(c) || msgpcode.IsBin(c)) {
		return m, env, badRequest("method must be a str or bin")
	}
	if m.method, err = dec.DecodeString(); err != nil {
		return m, env, badRequest("method: %v", err)
	}
	c, err = dec.PeekCode()
	switch {
	case err != nil:
		return m, env, badRequest("params: %v", err)
	case c == msgpcode.Nil:
		// Some clients send nil for no params.
	case !(msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32):
		return m, env, badRequest("params must be an array")
	case m.typ == typeNotification:
		// Not decoded: the only notification served (ping) takes none.
	default:
		if m.params, err = dec.DecodeSlice(); err != nil {
			return m, env, badRequest("params: %v", err)
		}
	}
	return m, env, nil
}

// encodeResponse appends the response [1, msgid, error, result] to buf. If result (or an error's Fields)
// cannot be encoded, the response carries an internal error instead, and the encoding error is returned.
func encodeResponse(enc *msgpack.Encoder, buf *bytes.Buffer, msgid uint32, rerr *Error, result any) error {
	start := buf.Len()
	enc.Reset(buf)
	enc.UseCompactInts(true)
	buf.WriteByte(0x94) // fixarray of 4
	buf.WriteByte(typeResponse)
	if err := enc.EncodeUint(uint64(msgid)); err != nil {
		return err // writes to a bytes.Buffer do not fail
	}
	mark := buf.Len()
	var err error
	if rerr != nil {
		err = rerr.EncodeMsgpack(enc)
		if err == nil {
			err = enc.EncodeNil()
		}
	} else {
		err = enc.EncodeNil()
		if err == nil {
			err = enc.Encode(result)
		}
	}
	if err == nil {
		return nil
	}
	buf.Truncate(mark)
	ierr := &Error{Code: CodeInternal, Message: "encoding the response: " + err.Error()}
	if e2 := ierr.EncodeMsgpack(enc); e2 != nil {
		buf.Truncate(start)
		return e2
	}
	enc.EncodeNil()
	return err
}
