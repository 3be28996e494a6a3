package client

import (
	"bytes"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Message types of MessagePack-RPC.
const (
	msgRequest      = 0
	msgResponse     = 1
	msgNotification = 2
)

// encoder is a reusable request buffer with its msgpack Encoder.
type encoder struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

var encoders = sync.Pool{New: func() any {
	e := &encoder{}
	e.enc = msgpack.NewEncoder(&e.buf)
	return e
}}

// maxPooledBuf: request buffers that grew past this (a large put) are not kept.
const maxPooledBuf = 64 << 10

func getEncoder() *encoder {
	e := encoders.Get().(*encoder)
	e.buf.Reset()
	return e
}

func putEncoder(e *encoder) {
	if e.buf.Cap() <= maxPooledBuf {
		encoders.Put(e)
	}
}

// paramsFunc writes a request's params array, header included.
type paramsFunc func(e *msgpack.Encoder) error

// resultFunc decodes a successful reply's result. It runs on the connection's reader goroutine, on bytes
// mpscan has checked; it must copy what it keeps (the Decoder's DecodeBytes and DecodeString do).
type resultFunc func(d *msgpack.Decoder) error

// encodeRequest appends [0, msgid, method, params] to e.
func encodeRequest(e *encoder, msgid uint32, method string, params paramsFunc) error {
	enc := e.enc
	if err := enc.EncodeArrayLen(4); err != nil {
		return err
	}
	if err := enc.EncodeUint(msgRequest); err != nil {
		return err
	}
	if err := enc.EncodeUint(uint64(msgid)); err != nil {
		return err
	}
	if err := enc.EncodeString(method); err != nil {
		return err
	}
	if params == nil {
		return enc.EncodeArrayLen(0)
	}
	return params(enc)
}

// encodeBin writes b as bin, nil as nil.
func encodeBin(enc *msgpack.Encoder, b []byte) error {
	if b == nil {
		return enc.EncodeNil()
	}
	return enc.EncodeBytes(b)
}

// timeoutMS converts a server-side timeout option to whole milliseconds, rounding a positive duration up
// to at least 1ms (0 means "the node's default"; a negative one is passed on for the node to reject).
func timeoutMS(d time.Duration) int64 {
	ms := int64(d / time.Millisecond)
	if d > 0 && d%time.Millisecond != 0 {
		ms++
	}
	return ms
}

// encodeReadOpts writes the opts map of get. Zero fields are left out (the node's defaults apply).
func encodeReadOpts(enc *msgpack.Encoder, o *ReadOptions) error {
	if o == nil {
		return enc.EncodeMapLen(0)
	}
	n := nonZero(int64(o.R), int64(o.PR), timeoutMS(o.Timeout))
	if o.NotFoundOK != nil {
		n++
	}
	if err := enc.EncodeMapLen(n); err != nil {
		return err
	}
	if err := optInt(enc, "r", int64(o.R)); err != nil {
		return err
	}
	if err := optInt(enc, "pr", int64(o.PR)); err != nil {
		return err
	}
	if o.NotFoundOK != nil {
		if err := enc.EncodeString("notfound_ok"); err != nil {
			return err
		}
		if err := enc.EncodeBool(*o.NotFoundOK); err != nil {
			return err
		}
	}
	return optInt(enc, "timeout_ms", timeoutMS(o.Timeout))
}

// encodeWriteOpts writes the opts map of put (body true) or delete (body false: no return_body, flags,
// expiry). Zero fields are left out; blind is written only when set.
func encodeWriteOpts(enc *msgpack.Encoder, o *WriteOptions, body bool) error {
	if o == nil {
		return enc.EncodeMapLen(0)
	}
	n := nonZero(int64(o.W), int64(o.PW), timeoutMS(o.Timeout))
	if o.Blind {
		n++
	}
	if body {
		n += nonZero(int64(o.Flags), o.Expiry)
		if o.ReturnBody {
			n++
		}
	}
	if err := enc.EncodeMapLen(n); err != nil {
		return err
	}
	if err := optInt(enc, "w", int64(o.W)); err != nil {
		return err
	}
	if err := optInt(enc, "pw", int64(o.PW)); err != nil {
		return err
	}
	if err := optInt(enc, "timeout_ms", timeoutMS(o.Timeout)); err != nil {
		return err
	}
	if o.Blind {
		if err := enc.EncodeString("blind"); err != nil {
			return err
		}
		if err := enc.EncodeBool(true); err != nil {
			return err
		}
	}
	if !body {
		return nil
	}
	if err := optInt(enc, "flags", int64(o.Flags)); err != nil {
		return err
	}
	if err := optInt(enc, "expiry", o.Expiry); err != nil {
		return err
	}
	if o.ReturnBody {
		if err := enc.EncodeString("return_body"); err != nil {
			return err
		}
		return enc.EncodeBool(true)
	}
	return nil
}

func nonZero(vs ...int64) int {
	n := 0
	for _, v := range vs {
		if v != 0 {
			n++
		}
	}
	return n
}

// optInt writes key: v when v is not zero.
func optInt(enc *msgpack.Encoder, key string, v int64) error {
	if v == 0 {
		return nil
	}
	if err := enc.EncodeString(key); err != nil {
		return err
	}
	return enc.EncodeInt(v)
}

// --- decoding -----------------------------------------------------------------------------------------

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// isNil reports (without consuming anything else) whether the next value is nil, and consumes it if so.
func isNil(d *msgpack.Decoder) (bool, error) {
	c, err := d.PeekCode()
	if err != nil {
		return false, err
	}
	if c == msgpcode.Nil {
		return true, d.DecodeNil()
	}
	return false, nil
}

// decodeFields decodes a map with string keys, calling field for each key; field must consume the value
// (d.Skip() for keys it does not know). A nil map has no fields.
func decodeFields(d *msgpack.Decoder, what string, field func(key string) error) error {
	n, err := d.DecodeMapLen()
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrProtocol, what, err)
	}
	for range max(n, 0) {
		k, err := d.DecodeString()
		if err != nil {
			return fmt.Errorf("%w: %s key: %w", ErrProtocol, what, err)
		}
		if err := field(k); err != nil {
			return fmt.Errorf("%w: %s.%s: %w", ErrProtocol, what, k, err)
		}
	}
	return nil
}

// decodeArray decodes an array, calling elem for each index. A nil array has no elements.
func decodeArray(d *msgpack.Decoder, what string, elem func(i, n int) error) error {
	n, err := d.DecodeArrayLen()
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrProtocol, what, err)
	}
	for i := range max(n, 0) {
		if err := elem(i, n); err != nil {
			return fmt.Errorf("%w: %s[%d]: %w", ErrProtocol, what, i, err)
		}
	}
	return nil
}

func decodeInt(d *msgpack.Decoder) (int, error) {
	v, err := d.DecodeInt64()
	if err != nil {
		return 0, err
	}
	if v < math.MinInt || v > math.MaxInt {
		return 0, fmt.Errorf("integer %d out of range", v)
	}
	return int(v), nil
}

// decodeError decodes the error element of a reply: gokai's {"code", "message", ...} map, or, from another
// implementation, any other value (its text becomes the message).
func decodeError(d *msgpack.Decoder) *Error {
	c, err := d.PeekCode()
	if err != nil {
		return &Error{Code: CodeInternal, Message: "undecodable error: " + err.Error()}
	}
	if !msgpcode.IsFixedMap(c) && c != msgpcode.Map16 && c != msgpcode.Map32 {
		v, err := d.DecodeInterface()
		if err != nil {
			return &Error{Code: CodeInternal, Message: "undecodable error: " + err.Error()}
		}
		if b, ok := v.([]byte); ok {
			v = string(b)
		}
		return &Error{Code: CodeInternal, Message: fmt.Sprint(v)}
	}
	e := &Error{}
	err = decodeFields(d, "error", func(k string) error {
		var err error
		switch k {
		case "code":
			e.Code, err = d.DecodeString()
		case "message":
			e.Message, err = d.DecodeString()
		case "need":
			e.Need, err = decodeInt(d)
		case "got":
			e.Got, err = decodeInt(d)
		case "limit":
			e.Limit, err = decodeInt(d)
		case "primary":
			e.Primary, err = d.DecodeBool()
		default:
			err = d.Skip()
		}
		return err
	})
	if err != nil {
		return &Error{Code: CodeInternal, Message: "undecodable error: " + err.Error()}
	}
	if e.Code == "" {
		e.Code = CodeInternal
	}
	return e
}

// decodeObject decodes {"values", "metadata", "context"} (the result of get, and of put with return_body;
// an empty map gives an Object with no values).
func decodeObject(d *msgpack.Decoder) (*Object, error) {
	o := &Object{}
	var meta []Value
	metaSeen := false
	err := decodeFields(d, "object", func(k string) error {
		switch k {
		case "values":
			return decodeArray(d, "values", func(i, n int) error {
				if o.Values == nil {
					o.Values = make([]Value, n)
				}
				b, err := d.DecodeBytes()
				if b == nil {
					b = []byte{}
				}
				o.Values[i].Data = b
				return err
			})
		case "metadata":
			metaSeen = true
			return decodeArray(d, "metadata", func(i, n int) error {
				if meta == nil {
					meta = make([]Value, n)
				}
				m := &meta[i]
				return decodeFields(d, "metadata", func(k string) error {
					var err error
					switch k {
					case "flags":
						m.Flags, err = d.DecodeUint32()
					case "expiry":
						m.Expiry, err = d.DecodeInt64()
					case "last_modified":
						m.LastModified, err = d.DecodeInt64()
					default:
						err = d.Skip()
					}
					return err
				})
			})
		case "context":
			b, err := d.DecodeBytes()
			o.Context = b
			return err
		default:
			return d.Skip()
		}
	})
	if err != nil {
		return nil, err
	}
	if metaSeen {
		if len(meta) != len(o.Values) {
			return nil, protoErr("%d values but %d metadata entries", len(o.Values), len(meta))
		}
		for i := range meta {
			o.Values[i].Flags, o.Values[i].Expiry, o.Values[i].LastModified =
				meta[i].Flags, meta[i].Expiry, meta[i].LastModified
		}
	}
	return o, nil
}

func decodeRing(d *msgpack.Decoder) (*RingInfo, error) {
	r := &RingInfo{}
	err := decodeFields(d, "ring", func(k string) error {
		var err error
		switch k {
		case "q":
			r.Q, err = decodeInt(d)
		case "version":
			r.Version, err = d.DecodeUint64()
		case "n":
			r.N, err = decodeInt(d)
		case "owners":
			err = decodeArray(d, "owners", func(i, n int) error {
				if r.Owners == nil {
					r.Owners = make([]string, n)
				}
				var err error
				r.Owners[i], err = d.DecodeString()
				return err
			})
		default:
			err = d.Skip()
		}
		return err
	})
	return r, err
}

func decodeMembers(d *msgpack.Decoder) ([]Member, error) {
	var ms []Member
	err := decodeArray(d, "members", func(i, n int) error {
		if ms == nil {
			ms = make([]Member, n)
		}
		m := &ms[i]
		return decodeFields(d, "member", func(k string) error {
			var err error
			switch k {
			case "name":
				m.Name, err = d.DecodeString()
			case "status":
				m.Status, err = d.DecodeString()
			case "rpc_addr":
				m.RPCAddr, err = d.DecodeString()
			case "memcache_addr":
				m.MemcacheAddr, err = d.DecodeString()
			case "partitions":
				m.Partitions, err = decodeInt(d)
			default:
				err = d.Skip()
			}
			return err
		})
	})
	return ms, err
}

func decodePreflist(d *msgpack.Decoder) ([]PrefEntry, error) {
	var pl []PrefEntry
	err := decodeArray(d, "preflist", func(i, n int) error {
		if pl == nil {
			pl = make([]PrefEntry, n)
		}
		e := &pl[i]
		return decodeFields(d, "preflist entry", func(k string) error {
			var err error
			switch k {
			case "partition":
				e.Partition, err = decodeInt(d)
			case "node":
				e.Node, err = d.DecodeString()
			case "primary":
				e.Primary, err = d.DecodeBool()
			default:
				err = d.Skip()
			}
			return err
		})
	})
	return pl, err
}

func decodeVersion(d *msgpack.Decoder) (VersionInfo, error) {
	var v VersionInfo
	err := decodeFields(d, "version", func(k string) error {
		var err error
		switch k {
		case "version":
			v.Version, err = d.DecodeString()
		case "protocol":
			v.Protocol, err = decodeInt(d)
		default:
			err = d.Skip()
		}
		return err
	})
	return v, err
}

// decodeStats decodes the stats map: counters become int64, text stays string, anything else (from a
// newer server) is kept as the decoder's generic value.
func decodeStats(d *msgpack.Decoder) (Stats, error) {
	s := Stats{}
	err := decodeFields(d, "stats", func(k string) error {
		c, err := d.PeekCode()
		if err != nil {
			return err
		}
		switch {
		case c == msgpcode.Uint64:
			u, err := d.DecodeUint64()
			if u > math.MaxInt64 {
				s[k] = u
			} else {
				s[k] = int64(u)
			}
			return err
		case msgpcode.IsFixedNum(c) || (c >= msgpcode.Uint8 && c <= msgpcode.Int64):
			v, err := d.DecodeInt64()
			s[k] = v
			return err
		case msgpcode.IsString(c) || msgpcode.IsBin(c):
			v, err := d.DecodeString()
			s[k] = v
			return err
		default:
			v, err := d.DecodeInterface()
			s[k] = v
			return err
		}
	})
	return s, err
}
