package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/gokai-kv/gokai/internal/mpscan"
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// MessagePack-RPC message types and gokai's names (docs/msgpack-rpc.md).
const (
	rpcRequest  = 0
	rpcResponse = 1
	rpcGet      = "get"
	rpcPut      = "put"
	rpcBlind    = "blind" // put option: supersede what the coordinating replica holds
)

var (
	rpcValues   = []byte("values")
	rpcCode     = []byte("code")
	rpcMessage  = []byte("message")
	rpcNotFound = []byte("not_found")
	rpcEmpty    = []byte{} // encodes as an empty bin; a nil slice would encode as nil
)

const (
	rpcBufSize = 16 << 10
	rpcMinRead = 4 << 10 // read at least this much into the buffer at once
	// rpcMaxReply bounds one reply: siblings of values up to maxValueSize each, with room to spare. mpscan
	// rejects a longer one as soon as its header declares it.
	rpcMaxReply = 64 << 20
	// A msgid carries its slot in the low rpcSlotBits bits and the slot's use count above them, so a reply
	// to an earlier use of a slot (a duplicate, a stray) is caught rather than credited to the current one.
	rpcSlotBits = 10
	rpcSlots    = 1 << rpcSlotBits
	rpcGenMask  = 1<<(32-rpcSlotBits) - 1
)

// INVARIANT: every slot a worker may use has a msgid of its own.
var _ [rpcSlots - maxPipeline]struct{}

// rpcMsgID is the msgid of use gen of slot.
func rpcMsgID(slot int, gen uint32) uint32 { return gen<<rpcSlotBits | uint32(slot) }

// Slot states.
const (
	slotFree     uint8 = iota
	slotSent           // request queued or sent, no reply yet
	slotAnswered       // reply read, not yet handed out (Read hands out replies in request order)
)

// rpcSlot is one request in flight.
type rpcSlot struct {
	gen   uint32 // uses of the slot; the request in flight has msgid rpcMsgID(slot, gen)
	state uint8
	kind  OpKind
	out   Outcome
	err   *ReplyError // once answered: a well-formed error reply
}

// rpcClient speaks gokai's msgpack-RPC API: get(key, {}) and put(key, value, nil, {}), many requests in
// flight on one connection, replies matched to requests by msgid in whatever order they come.
//
// Requests are encoded by one msgpack Encoder straight into a bufio.Writer: no buffer per request. Replies
// are read into one reusable buffer and framed by an mpscan.Scanner (resumed as bytes arrive, so framing is
// linear in the stream) before vmihailenco/msgpack looks at them: no declared length is trusted, and a
// reply over rpcMaxReply is refused when its header arrives. A framed reply is decoded in place; str and bin
// payloads are sliced out of the frame, never copied. In the steady state nothing is allocated.
//
// Any error other than *ReplyError is sticky: the stream is out of step or broken and the client is done.
type rpcClient struct {
	w   *bufio.Writer
	enc *msgpack.Encoder

	r     io.Reader
	buf   []byte // read buffer; unread bytes are buf[start:end]
	start int
	end   int
	ready int // length of a complete frame at buf[start:], once scanned; 0 = not yet
	need  int // lower bound on the length of the incomplete frame at buf[start:]
	sc    *mpscan.Scanner

	cur   []byte       // the frame being decoded
	frame bytes.Reader // over cur; a ByteScanner, so dec reads it directly and buffers nothing
	dec   *msgpack.Decoder

	slots      []rpcSlot // indexed by slot, grown on demand up to rpcSlots
	sent, read uint32    // Queue/Read: sequence numbers; request i is in slot i % rpcSlots
	err        error     // first fatal error
}

var _ windowClient = (*rpcClient)(nil)

func newRPCClient(rw io.ReadWriter) *rpcClient {
	c := &rpcClient{w: bufio.NewWriterSize(rw, rpcBufSize), r: rw, buf: make([]byte, rpcBufSize),
		sc: mpscan.NewScanner(mpscan.Limits{MaxBytes: rpcMaxReply})}
	c.enc = msgpack.NewEncoder(c.w)
	c.dec = msgpack.NewDecoder(&c.frame)
	return c
}

func (c *rpcClient) Queue(kind OpKind, key, value []byte) error {
	if c.sent-c.read >= rpcSlots {
		return fmt.Errorf("bench: msgpack-rpc: more than %d requests queued", rpcSlots)
	}
	if err := c.Send(int(c.sent%rpcSlots), kind, key, value); err != nil {
		return err
	}
	c.sent++
	return nil
}

func (c *rpcClient) Send(slot int, kind OpKind, key, value []byte) error {
	if slot < 0 || slot >= rpcSlots {
		return fmt.Errorf("bench: msgpack-rpc: slot %d out of range 0..%d", slot, rpcSlots-1)
	}
	for len(c.slots) <= slot {
		c.slots = append(c.slots, rpcSlot{})
	}
	s := &c.slots[slot]
	if s.state != slotFree {
		return fmt.Errorf("bench: msgpack-rpc: slot %d already in flight", slot)
	}
	if value == nil {
		value = rpcEmpty
	}
	gen := (s.gen + 1) & rpcGenMask
	e := c.enc
	// bufio.Writer errors are sticky: the last write reports any.
	e.EncodeArrayLen(4)
	e.EncodeUint(rpcRequest)
	e.EncodeUint(uint64(rpcMsgID(slot, gen)))
	var err error
	switch kind {
	case OpGet: // get(key, opts)
		e.EncodeString(rpcGet)
		e.EncodeArrayLen(2)
		e.EncodeBytes(key)
		err = e.EncodeMapLen(0)
	case OpSet: // put(key, value, nil, {"blind": true}): a blind write, as memcache's set
		// NB: without blind a put with no context supersedes nothing, and a workload that writes the same
		// keys over and over would grow siblings until max-siblings refused the writes.
		e.EncodeString(rpcPut)
		e.EncodeArrayLen(4)
		e.EncodeBytes(key)
		e.EncodeBytes(value)
		e.EncodeNil()
		e.EncodeMapLen(1)
		e.EncodeString(rpcBlind)
		err = e.EncodeBool(true)
	default:
		return fmt.Errorf("bench: msgpack-rpc: unsupported operation %v", kind) // NB: nothing written yet
	}
	if err != nil {
		return err
	}
	s.gen, s.state, s.kind = gen, slotSent, kind
	return nil
}

func (c *rpcClient) Flush() error { return c.w.Flush() }

func (c *rpcClient) Read(kind OpKind, key []byte) (Outcome, error) {
	if c.read == c.sent {
		return 0, fmt.Errorf("bench: msgpack-rpc: Read without a queued request")
	}
	slot := int(c.read % rpcSlots)
	if k := c.slots[slot].kind; k != kind {
		return 0, fmt.Errorf("bench: msgpack-rpc: Read of a %v reply, but the oldest request is a %v", kind, k)
	}
	for c.slots[slot].state != slotAnswered {
		if _, err := c.readReply(); err != nil {
			return 0, err
		}
	}
	c.read++
	return c.take(slot)
}

func (c *rpcClient) Next() (int, Outcome, error) {
	slot, err := c.readReply()
	if err != nil {
		return 0, 0, err
	}
	out, err := c.take(slot)
	return slot, out, err
}

func (c *rpcClient) Buffered() bool {
	n, err := c.scan()
	return n > 0 || err != nil // an error: Next reports it without blocking
}

// take frees an answered slot and returns its outcome.
func (c *rpcClient) take(slot int) (Outcome, error) {
	s := &c.slots[slot]
	out, rerr := s.out, s.err
	s.state, s.err = slotFree, nil
	if rerr != nil {
		return 0, rerr
	}
	return out, nil
}

// readReply reads the next reply, records its outcome in its slot and returns the slot.
func (c *rpcClient) readReply() (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	for {
		n, err := c.scan()
		if err != nil {
			return 0, err
		}
		if n > 0 {
			c.cur = c.buf[c.start : c.start+n]
			c.start += n
			c.ready = 0
			slot, err := c.decode()
			if err != nil {
				c.err = err
			}
			return slot, err
		}
		if err := c.fill(); err != nil {
			c.err = err
			return 0, err
		}
	}
}

// scan returns the length of the complete frame at the start of the unread bytes, or 0 while it is
// incomplete.
func (c *rpcClient) scan() (int, error) {
	switch {
	case c.err != nil:
		return 0, c.err
	case c.ready > 0:
		return c.ready, nil
	case c.start == c.end:
		return 0, nil
	}
	n, err := c.sc.Scan(c.buf[c.start:c.end])
	switch {
	case err == nil:
		c.ready, c.need = n, 0
		return n, nil
	case errors.Is(err, mpscan.ErrIncomplete):
		c.need = n
		return 0, nil
	}
	c.err = fmt.Errorf("%w: msgpack-rpc reply framing: %w", ErrProtocol, err)
	return 0, c.err
}

// fill reads more bytes into the buffer. The buffer grows by doubling, so it holds at most about twice the
// bytes that actually arrived of a frame (which mpscan bounds), whatever a header declares.
func (c *rpcClient) fill() error {
	if c.start == c.end {
		c.start, c.end = 0, 0
	} else if c.start > 0 && (len(c.buf)-c.end < rpcMinRead || c.start+c.need > len(c.buf)) {
		c.end = copy(c.buf, c.buf[c.start:c.end])
		c.start = 0
	}
	if len(c.buf)-c.end < rpcMinRead {
		nb := make([]byte, 2*len(c.buf))
		c.end = copy(nb, c.buf[c.start:c.end])
		c.start, c.buf = 0, nb
	}
	for range 100 { // a Reader that keeps returning 0, nil is broken
		n, err := c.r.Read(c.buf[c.end:])
		c.end += n
		switch {
		case n > 0:
			return nil // an error with the bytes comes back with the next Read
		case errors.Is(err, io.EOF) && c.end > c.start:
			return fmt.Errorf("%w: msgpack-rpc: connection closed inside a reply", io.ErrUnexpectedEOF)
		case err != nil:
			return err
		}
	}
	return io.ErrNoProgress
}

func rpcProtoErr(format string, args ...any) error {
	return fmt.Errorf("%w: msgpack-rpc: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// decode decodes the reply in c.cur, a frame mpscan accepted, and records it in its slot.
func (c *rpcClient) decode() (int, error) {
	c.frame.Reset(c.cur)
	if n, ok := c.arrayLen(); !ok || n != 4 {
		return 0, rpcProtoErr("a reply must be [1, msgid, error, result]")
	}
	if typ, ok := c.int(); !ok || typ != rpcResponse {
		return 0, rpcProtoErr("message type is not 1 (a response)")
	}
	id, ok := c.int()
	if !ok || id < 0 || id > math.MaxUint32 {
		return 0, rpcProtoErr("msgid is not an integer in 0..4294967295")
	}
	slot := int(id % rpcSlots)
	if slot >= len(c.slots) || c.slots[slot].state != slotSent || rpcMsgID(slot, c.slots[slot].gen) != uint32(id) {
		return 0, rpcProtoErr("reply to msgid %d, which is not in flight", id)
	}
	s := &c.slots[slot]

	code, err := c.dec.PeekCode()
	if err != nil {
		return 0, rpcProtoErr("error: %v", err)
	}
	if code == msgpcode.Nil {
		c.dec.DecodeNil()
		switch s.kind {
		case OpGet:
			n, err := c.getResult()
			if err != nil {
				return 0, err
			}
			s.out = Miss
			if n > 0 {
				s.out = Hit
			}
		default:
			if err := c.skip(); err != nil { // put's result is {} (or the object with return_body)
				return 0, rpcProtoErr("result: %v", err)
			}
			s.out = Stored
		}
	} else {
		code, msg, err := c.errorValue()
		if err != nil {
			return 0, rpcProtoErr("error: %v", err)
		}
		if err := c.skip(); err != nil {
			return 0, rpcProtoErr("result: %v", err)
		}
		if s.kind == OpGet && bytes.Equal(code, rpcNotFound) {
			s.out = Miss
		} else {
			s.err = rpcReplyError(code, msg)
		}
	}
	if c.frame.Len() != 0 {
		return 0, rpcProtoErr("%d bytes after the reply", c.frame.Len()) // unreachable: mpscan framed one value
	}
	s.state = slotAnswered
	return slot, nil
}

// rpcReplyError renders an error reply as "code: message".
func rpcReplyError(code, msg []byte) *ReplyError {
	line := make([]byte, 0, len(code)+2+len(msg))
	line = append(line, code...)
	if len(code) > 0 && len(msg) > 0 {
		line = append(line, ": "...)
	}
	return &ReplyError{Line: quoteLine(append(line, msg...))}
}

// getResult decodes get's {"values": [...], "metadata": [...], "context": bin} and returns how many values
// it holds. Without a values array it is out of protocol.
func (c *rpcClient) getResult() (int, error) {
	n, ok := c.mapLen()
	if !ok {
		return 0, rpcProtoErr("get result is not a map")
	}
	values := -1
	for range n {
		key, err := c.key()
		if err != nil {
			return 0, rpcProtoErr("get result key: %v", err)
		}
		if !bytes.Equal(key, rpcValues) {
			if err := c.skip(); err != nil {
				return 0, rpcProtoErr("get result: %v", err)
			}
			continue
		}
		if code, _ := c.dec.PeekCode(); code == msgpcode.Nil { // nil for no values, as from a nil Go slice
			c.dec.DecodeNil()
			values = 0
			continue
		}
		m, ok := c.arrayLen()
		if !ok {
			return 0, rpcProtoErr("get result: values is not an array")
		}
		for range m {
			if err := c.skip(); err != nil {
				return 0, rpcProtoErr("get result values: %v", err)
			}
		}
		values = m // a repeated key: the last one counts, as in any map decoder
	}
	if values < 0 {
		return 0, rpcProtoErr("get result without values")
	}
	return values, nil
}

// errorValue decodes the error element: gokai's {"code": str, "message": str, ...}; from another server a
// str (its text is the message) or any other value (skipped). The slices point into the frame.
func (c *rpcClient) errorValue() (code, msg []byte, err error) {
	if s, ok, err := c.str(); ok || err != nil {
		return nil, s, err
	}
	n, ok := c.mapLen()
	if !ok {
		return nil, []byte("error reply of another shape"), c.skip()
	}
	for range n {
		key, err := c.key()
		if err != nil {
			return nil, nil, err
		}
		var dst *[]byte
		switch {
		case bytes.Equal(key, rpcCode):
			dst = &code
		case bytes.Equal(key, rpcMessage):
			dst = &msg
		}
		s, ok, err := c.str()
		switch {
		case err != nil:
			return nil, nil, err
		case !ok:
			if err := c.skip(); err != nil {
				return nil, nil, err
			}
		case dst != nil:
			*dst = s
		}
	}
	return code, msg, nil
}

// --- in-place decoding helpers over c.frame. Each peeks the type first, so a value of another type is
// reported (ok false) without being consumed; mpscan has checked that every declared length fits the frame.

// str consumes a str or bin and returns its payload, sliced from the frame.
func (c *rpcClient) str() ([]byte, bool, error) {
	code, err := c.dec.PeekCode()
	if err != nil || !(msgpcode.IsString(code) || msgpcode.IsBin(code)) {
		return nil, false, err
	}
	n, err := c.dec.DecodeBytesLen()
	if err != nil {
		return nil, true, err
	}
	pos := len(c.cur) - c.frame.Len()
	if n < 0 || n > c.frame.Len() {
		return nil, true, fmt.Errorf("str of %d bytes with %d left", n, c.frame.Len())
	}
	c.frame.Seek(int64(n), io.SeekCurrent) // NB: dec reads c.frame directly, so skipping here skips for dec
	return c.cur[pos : pos+n], true, nil
}

// key consumes a map key: a str or bin is returned, anything else is skipped and returned as nil.
func (c *rpcClient) key() ([]byte, error) {
	s, ok, err := c.str()
	if ok || err != nil {
		return s, err
	}
	return nil, c.skip()
}

// skip consumes one value; a str or bin is skipped without copying it.
func (c *rpcClient) skip() error {
	if _, ok, err := c.str(); ok || err != nil {
		return err
	}
	return c.dec.Skip()
}

func (c *rpcClient) arrayLen() (int, bool) {
	code, err := c.dec.PeekCode()
	if err != nil || !(msgpcode.IsFixedArray(code) || code == msgpcode.Array16 || code == msgpcode.Array32) {
		return 0, false
	}
	n, err := c.dec.DecodeArrayLen()
	return n, err == nil
}

func (c *rpcClient) mapLen() (int, bool) {
	code, err := c.dec.PeekCode()
	if err != nil || !(msgpcode.IsFixedMap(code) || code == msgpcode.Map16 || code == msgpcode.Map32) {
		return 0, false
	}
	n, err := c.dec.DecodeMapLen()
	return n, err == nil
}

// int consumes an integer of any msgpack int type (a uint64 above MaxInt64 comes back negative).
func (c *rpcClient) int() (int64, bool) {
	code, err := c.dec.PeekCode()
	if err != nil || !(msgpcode.IsFixedNum(code) || (code >= msgpcode.Uint8 && code <= msgpcode.Int64)) {
		return 0, false
	}
	v, err := c.dec.DecodeInt64()
	return v, err == nil
}
