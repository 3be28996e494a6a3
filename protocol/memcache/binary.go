package memcache

import "encoding/binary"

// The binary protocol (memcached's protocol_binary.h and its "Binary Protocol Revised" spec): pure header
// decoding, request shape checks and response encoding. No I/O; binconn.go is the loop that uses them.

// Magic bytes of binary packets; a connection whose first byte is binReqMagic speaks the binary protocol.
const (
	binReqMagic = 0x80
	binResMagic = 0x81
)

// binHeaderLen is the size of every request and response header.
const binHeaderLen = 24

// binMaxExtLen is the longest extras section any opcode takes (INCR/DECR: delta, initial, expiration).
const binMaxExtLen = 20

// maxSASLData bounds the payload of SASL_AUTH and SASL_STEP (PLAIN: authzid, user, password).
const maxSASLData = 1024

// Opcodes. Wire values: append-only.
const (
	binGet        = 0x00
	binSet        = 0x01
	binAdd        = 0x02
	binReplace    = 0x03
	binDelete     = 0x04
	binIncrement  = 0x05
	binDecrement  = 0x06
	binQuit       = 0x07
	binFlush      = 0x08
	binGetQ       = 0x09
	binNoop       = 0x0a
	binVersion    = 0x0b
	binGetK       = 0x0c
	binGetKQ      = 0x0d
	binAppend     = 0x0e
	binPrepend    = 0x0f
	binStat       = 0x10
	binSetQ       = 0x11
	binAddQ       = 0x12
	binReplaceQ   = 0x13
	binDeleteQ    = 0x14
	binIncrementQ = 0x15
	binDecrementQ = 0x16
	binQuitQ      = 0x17
	binFlushQ     = 0x18
	binAppendQ    = 0x19
	binPrependQ   = 0x1a
	binVerbosity  = 0x1b
	binTouch      = 0x1c
	binGAT        = 0x1d
	binGATQ       = 0x1e
	binSASLList   = 0x20
	binSASLAuth   = 0x21
	binSASLStep   = 0x22
	binGATK       = 0x23
	binGATKQ      = 0x24
)

// Response statuses. Wire values: append-only.
const (
	binStatusOK             uint16 = 0x00
	binStatusKeyNotFound    uint16 = 0x01
	binStatusKeyExists      uint16 = 0x02
	binStatusTooLarge       uint16 = 0x03
	binStatusInvalid        uint16 = 0x04
	binStatusNotStored      uint16 = 0x05
	binStatusNonNumeric     uint16 = 0x06
	binStatusAuthError      uint16 = 0x20
	binStatusAuthContinue   uint16 = 0x21
	binStatusUnknownCommand uint16 = 0x81
	binStatusNoMemory       uint16 = 0x82
	// binStatusTempFailure answers a Store failure ("temporary failure" in the revised spec): the node is
	// overloaded, out of space or missing replicas; retrying later may succeed.
	binStatusTempFailure uint16 = 0x86
)

// binStatusText is memcached's body for an error status.
func binStatusText(st uint16) string {
	switch st {
	case binStatusKeyNotFound:
		return "Not found"
	case binStatusKeyExists:
		return "Data exists for key."
	case binStatusTooLarge:
		return "Too large."
	case binStatusInvalid:
		return "Invalid arguments"
	case binStatusNotStored:
		return "Not stored."
	case binStatusNonNumeric:
		return "Non-numeric server-side value for incr or decr"
	case binStatusAuthError:
		return "Auth failure."
	case binStatusUnknownCommand:
		return "Unknown command"
	case binStatusNoMemory:
		return "Out of memory"
	case binStatusTempFailure:
		return "Temporary failure"
	}
	return ""
}

// binHeader is a decoded request header.
type binHeader struct {
	Magic    uint8
	Opcode   uint8
	KeyLen   uint16
	ExtLen   uint8
	DataType uint8
	VBucket  uint16
	BodyLen  uint32
	Opaque   uint32
	Cas      uint64
}

// parseBinHeader decodes the 24 bytes of b (len(b) >= binHeaderLen).
func parseBinHeader(b []byte) binHeader {
	_ = b[binHeaderLen-1]
	return binHeader{
		Magic:    b[0],
		Opcode:   b[1],
		KeyLen:   binary.BigEndian.Uint16(b[2:]),
		ExtLen:   b[4],
		DataType: b[5],
		VBucket:  binary.BigEndian.Uint16(b[6:]),
		BodyLen:  binary.BigEndian.Uint32(b[8:]),
		Opaque:   binary.BigEndian.Uint32(b[12:]),
		Cas:      binary.BigEndian.Uint64(b[16:]),
	}
}

// valueLen is the length of the value section: the body after extras and key.
func (h binHeader) valueLen() int {
	return int(h.BodyLen) - int(h.KeyLen) - int(h.ExtLen)
}

// binAction says how the connection proceeds with a request after its header.
type binAction uint8

const (
	// binServe: the request is well formed; read extras and key (and the value, for storage opcodes).
	binServe binAction = iota
	// binReject: answer the verdict's status and discard the body (Swallow bytes); the connection reads on.
	binReject
	// binClose: answer the verdict's status and close the connection: the stream cannot be trusted (bad
	// magic: nothing is answered then) or the request is malformed in a way memcached closes for.
	binClose
)

// binVerdict is checkBinRequest's decision.
type binVerdict struct {
	Action binAction
	// Op is the opcode with its quiet variant folded into the loud one (SETQ -> SET); Quiet says it was quiet.
	Op    uint8
	Quiet bool
	// Status answers binReject and binClose (binClose with a bad magic sends nothing).
	Status uint16
	// Reply is false when nothing is sent (bad magic).
	Reply bool
	// Swallow is the number of body bytes to discard for binReject.
	Swallow int
}

// quietBase maps a quiet opcode to its loud one; ok is false for opcodes without a quiet form.
func quietBase(op uint8) (base uint8, ok bool) {
	switch op {
	case binSetQ:
		return binSet, true
	case binAddQ:
		return binAdd, true
	case binReplaceQ:
		return binReplace, true
	case binDeleteQ:
		return binDelete, true
	case binIncrementQ:
		return binIncrement, true
	case binDecrementQ:
		return binDecrement, true
	case binQuitQ:
		return binQuit, true
	case binFlushQ:
		return binFlush, true
	case binAppendQ:
		return binAppend, true
	case binPrependQ:
		return binPrepend, true
	case binGetQ:
		return binGet, true
	case binGetKQ:
		return binGetK, true
	case binGATQ:
		return binGAT, true
	case binGATKQ:
		return binGATK, true
	}
	return op, false
}

// checkBinRequest validates a request header the way memcached's dispatch does: magic, lengths that fit
// the body, the key limit, and each opcode's shape (extras, key and value lengths). maxValue bounds a
// storage value: a longer one is rejected with TooLarge and its body discarded (never read into memory).
// authed says whether the connection may run data commands (sasl: a user file is configured).
func checkBinRequest(h binHeader, maxValue int, sasl, authed bool) binVerdict {
	v := binVerdict{Action: binServe, Reply: true}
	if h.Magic != binReqMagic {
		return binVerdict{Action: binClose}
	}
	keyLen, extLen, bodyLen := int(h.KeyLen), int(h.ExtLen), int64(h.BodyLen)
	if int64(keyLen)+int64(extLen) > bodyLen {
		return binVerdict{Action: binClose, Reply: true, Status: binStatusUnknownCommand, Op: h.Opcode}
	}
	v.Op, v.Quiet = quietBase(h.Opcode)
	if sasl && !authed {
		switch v.Op {
		case binSASLList, binSASLAuth, binSASLStep, binVersion:
		default:
			return binVerdict{Action: binClose, Reply: true, Status: binStatusAuthError, Op: v.Op, Quiet: v.Quiet}
		}
	}
	if keyLen > MaxKeyLength {
		return binVerdict{Action: binClose, Reply: true, Status: binStatusInvalid, Op: v.Op, Quiet: v.Quiet}
	}
	valueLen := bodyLen - int64(keyLen) - int64(extLen)
	shape := false
	switch v.Op {
	case binVersion, binNoop, binQuit, binSASLList:
		shape = extLen == 0 && keyLen == 0 && bodyLen == 0
	case binFlush:
		shape = keyLen == 0 && valueLen == 0 && (extLen == 0 || extLen == 4)
	case binVerbosity:
		shape = keyLen == 0 && valueLen == 0 && extLen == 4
	case binSet, binAdd, binReplace:
		shape = extLen == 8 && keyLen > 0
	case binGet, binGetK:
		shape = extLen == 0 && keyLen > 0 && valueLen == 0
	case binDelete:
		shape = extLen == 0 && keyLen > 0 && valueLen == 0
	case binIncrement, binDecrement:
		shape = extLen == 20 && keyLen > 0 && valueLen == 0
	case binAppend, binPrepend:
		shape = extLen == 0 && keyLen > 0
	case binStat:
		shape = extLen == 0 && valueLen == 0
	case binTouch, binGAT, binGATK:
		shape = extLen == 4 && keyLen > 0 && valueLen == 0
	case binSASLAuth, binSASLStep:
		if !sasl {
			return binVerdict{Action: binReject, Reply: true, Status: binStatusUnknownCommand, Op: v.Op,
				Swallow: int(bodyLen)}
		}
		shape = extLen == 0 && keyLen > 0
		if shape && valueLen > maxSASLData {
			return binVerdict{Action: binReject, Reply: true, Status: binStatusInvalid, Op: v.Op,
				Swallow: int(bodyLen)}
		}
	default:
		// An opcode this server does not know: answered, its body discarded, the connection kept.
		return binVerdict{Action: binReject, Reply: true, Status: binStatusUnknownCommand, Op: h.Opcode,
			Swallow: int(bodyLen)}
	}
	if !shape {
		return binVerdict{Action: binClose, Reply: true, Status: binStatusInvalid, Op: v.Op, Quiet: v.Quiet}
	}
	if v.Op == binSASLList && !sasl {
		return binVerdict{Action: binReject, Reply: true, Status: binStatusUnknownCommand, Op: v.Op}
	}
	switch v.Op {
	case binSet, binAdd, binReplace, binAppend, binPrepend:
		if valueLen > int64(maxValue) {
			return binVerdict{Action: binReject, Reply: true, Status: binStatusTooLarge, Op: v.Op, Quiet: v.Quiet,
				Swallow: int(bodyLen)}
		}
	}
	return v
}

// appendBinHeader appends a response header.
func appendBinHeader(dst []byte, op uint8, status uint16, keyLen, extLen int, bodyLen int, opaque uint32, cas uint64) []byte {
	dst = append(dst, binResMagic, op)
	dst = binary.BigEndian.AppendUint16(dst, uint16(keyLen))
	dst = append(dst, byte(extLen), 0)
	dst = binary.BigEndian.AppendUint16(dst, status)
	dst = binary.BigEndian.AppendUint32(dst, uint32(bodyLen))
	dst = binary.BigEndian.AppendUint32(dst, opaque)
	return binary.BigEndian.AppendUint64(dst, cas)
}

// appendBinError appends an error response: the status and its text as the body (memcached's texts), or
// msg when not empty.
func appendBinError(dst []byte, op uint8, status uint16, opaque uint32, msg string) []byte {
	if msg == "" {
		msg = binStatusText(status)
	}
	dst = appendBinHeader(dst, op, status, 0, 0, len(msg), opaque, 0)
	return append(dst, msg...)
}
