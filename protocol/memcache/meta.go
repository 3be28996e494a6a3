package memcache

import (
	"encoding/base64"
	"math"
)

// Meta commands (memcached's protocol.txt, "Meta Commands"): mg, ms, md, ma, mn, me. This file is the pure
// parser; metaconn.go carries them out.

// Meta command codes: the second byte of the two-byte command name.
const (
	metaGet    = 'g'
	metaSet    = 's'
	metaDelete = 'd'
	metaArith  = 'a'
	metaNoop   = 'n'
	metaDebug  = 'e'
)

// Limits of memcached's meta parser.
const (
	// metaMaxTokens: a meta line of more tokens (the command and key included) is refused.
	metaMaxTokens = 19
	// metaMaxOpaque bounds an O token (its flag byte included, as memcached counts).
	metaMaxOpaque = 32
)

// Messages of meta errors (memcached's texts).
const (
	msgMetaInvalidFlag   = "invalid flag"
	msgMetaDuplicateFlag = "duplicate flag"
	msgMetaBadToken      = "bad token in command line format"
	msgMetaBadMLen       = "incorrect length for M token"
	msgMetaBadInitial    = "invalid numeric initial value"
	msgMetaBadDelta      = "invalid numeric delta value"
	msgMetaDecodeKey     = "error decoding key"
	msgMetaTooManyGet    = "options flags are too long"
	msgMetaTooMany       = "options flags too long"
	msgMetaOpaqueLong    = "opaque token too long"
	msgMetaInvalidOrDup  = "invalid or duplicate flag"
	msgMetaBadSetMode    = "invalid mode for ms M token"
	msgMetaBadArithMode  = "invalid mode for ma M token"
)

// MetaFlag is one flag of a meta command: its byte and the token after it (empty for most).
type MetaFlag struct {
	Flag  byte
	Token []byte
}

// maxMetaFlags is the most flags a meta command can carry (metaMaxTokens minus command and key).
const maxMetaFlags = metaMaxTokens - 2

// MetaCommand is one parsed meta command line. Byte slices point into the parsed line, except Key when the
// key was base64 (then into the buffer given to Parse).
type MetaCommand struct {
	Code byte
	// Key is the key to look up: the key token, or its base64 decoding with the b flag (Base64).
	Key    []byte
	Base64 bool
	// DataLen is the length of ms's data block (without its CRLF); -1 for the other commands.
	DataLen int
	// Flags are the flags in request order: replies return flags in this order.
	Flags  [maxMetaFlags]MetaFlag
	NFlags int

	// What the flags asked for (zero when absent).
	Quiet, Value, NoBump, Invalidate bool
	Opaque                           []byte // the whole O token, flag byte included, as echoed back
	HasTTL                           bool   // T
	TTL                              int64
	HasVivify                        bool // N
	VivifyTTL                        int64
	HasRecache                       bool // R
	Recache                          int64
	HasCas                           bool // C
	Cas                              uint64
	ClientFlags                      uint32 // F
	Mode                             byte   // M
	Initial                          uint64 // J
	Delta                            uint64 // D, default 1
}

// FlagList returns the flags in request order.
func (m *MetaCommand) FlagList() []MetaFlag { return m.Flags[:m.NFlags] }

// IsMetaLine reports whether line starts with a meta command name: "m" and one more byte, then a space or
// the end (memcached's rule; the second byte is checked by Parse).
func IsMetaLine(line []byte) bool {
	return len(line) >= 2 && line[0] == 'm' && (len(line) == 2 || line[2] == ' ')
}

// Parse parses a meta command line (without its CRLF; IsMetaLine(line) holds). keyBuf (at least
// MaxKeyLength bytes) receives a base64 key's decoding. maxValueBytes bounds ms's data block. The error,
// if any, is a *ProtocolError saying what to answer and how many bytes of data to discard.
func (m *MetaCommand) Parse(line []byte, keyBuf []byte, maxValueBytes int) *ProtocolError {
	*m = MetaCommand{Code: line[1], DataLen: -1, Delta: 1}
	var toks [metaMaxTokens + 1][]byte
	n := 0
	for i := 0; ; {
		var t []byte
		if t, i = nextToken(line, i); t == nil {
			break
		}
		if n < len(toks) {
			toks[n] = t
		}
		n++
	}
	switch m.Code {
	case metaNoop:
		return nil
	case metaGet, metaSet, metaDelete, metaArith, metaDebug:
	default:
		return errUnknown()
	}
	if n < 2 {
		if m.Code == metaDebug {
			return clientError(ErrBadFormat, msgBadFormat)
		}
		return errUnknown()
	}
	keyTok := toks[1]
	if len(keyTok) > MaxKeyLength {
		return clientError(ErrKeyTooLong, msgBadFormat)
	}
	m.Key = keyTok
	if m.Code == metaDebug {
		if n >= 3 && len(toks[2]) == 1 && toks[2][0] == 'b' {
			k, ok := decodeKey(keyTok, keyBuf)
			if !ok {
				return clientError(ErrBadKey, msgBadFormat)
			}
			m.Key, m.Base64 = k, true
			return nil
		}
		return keyError(keyTok)
	}
	flagsAt := 2
	var swallow int64
	if m.Code == metaSet {
		if n == 2 {
			return clientError(ErrBadFormat, msgBadFormat)
		}
		size, ok := parseUint(toks[2], maxDataBlock)
		if !ok {
			return clientError(ErrBadFormat, msgBadFormat)
		}
		m.DataLen = int(size)
		swallow = int64(size) + 2
		flagsAt = 3
	}
	fail := func(sentinel error, msg string) *ProtocolError {
		e := clientError(sentinel, msg)
		e.Swallow = swallow
		return e
	}
	if n > metaMaxTokens {
		if m.Code == metaGet {
			return fail(ErrBadFormat, msgMetaTooManyGet)
		}
		return fail(ErrBadFormat, msgMetaTooMany)
	}
	// The flags, memcached's preparse: each flag at most once, known flags only, tokens that parse. For md
	// and ma memcached answers every such error with one text.
	generic := m.Code == metaDelete || m.Code == metaArith
	flagErr := func(msg string) *ProtocolError {
		if generic {
			msg = msgMetaInvalidOrDup
		}
		return fail(ErrBadFormat, msg)
	}
	var seen [128]bool
	for _, t := range toks[flagsAt:n] {
		f, tok := t[0], t[1:]
		if f >= 127 || seen[f] {
			return flagErr(msgMetaDuplicateFlag)
		}
		seen[f] = true
		var ok bool
		switch f {
		case 'b':
			m.Base64 = true
		case 'N':
			m.HasVivify = true
			if m.VivifyTTL, ok = parseInt32(tok); !ok {
				return flagErr(msgMetaBadToken)
			}
		case 'T':
			m.HasTTL = true
			if m.TTL, ok = parseInt32(tok); !ok {
				return flagErr(msgMetaBadToken)
			}
		case 'R':
			m.HasRecache = true
			if m.Recache, ok = parseInt32(tok); !ok {
				return flagErr(msgMetaBadToken)
			}
		case 'O':
			if len(t) > metaMaxOpaque {
				return fail(ErrBadFormat, msgMetaOpaqueLong)
			}
			m.Opaque = t
		case 'P', 'L', 'k', 's', 't', 'c', 'f', 'h', 'l':
		case 'v':
			m.Value = true
		case 'u':
			m.NoBump = true
		case 'q':
			m.Quiet = true
		case 'F':
			var v uint64
			if v, ok = parseUint(tok, math.MaxUint32); !ok {
				return flagErr(msgBadFormat)
			}
			m.ClientFlags = uint32(v)
		case 'C':
			m.HasCas = true
			if m.Cas, ok = parseUint(tok, math.MaxUint64); !ok {
				return flagErr(msgMetaBadToken)
			}
		case 'M':
			if len(tok) != 1 {
				return flagErr(msgMetaBadMLen)
			}
			m.Mode = tok[0]
		case 'J':
			if m.Initial, ok = parseUint(tok, math.MaxUint64); !ok {
				return flagErr(msgMetaBadInitial)
			}
		case 'D':
			if m.Delta, ok = parseUint(tok, math.MaxUint64); !ok {
				return flagErr(msgMetaBadDelta)
			}
		case 'I':
			m.Invalidate = true
		default:
			return flagErr(msgMetaInvalidFlag)
		}
		m.Flags[m.NFlags] = MetaFlag{Flag: f, Token: tok}
		m.NFlags++
	}
	if m.Base64 {
		k, ok := decodeKey(keyTok, keyBuf)
		if !ok {
			return flagErr(msgMetaDecodeKey)
		}
		m.Key = k
	} else if e := keyError(keyTok); e != nil {
		e.Swallow = swallow
		return e
	}
	switch {
	case m.Code == metaSet && m.Mode != 0 && !validSetMode(m.Mode):
		return fail(ErrBadFormat, msgMetaBadSetMode)
	case m.Code == metaArith && m.Mode != 0 && !validArithMode(m.Mode):
		return fail(ErrBadFormat, msgMetaBadArithMode)
	case m.Code == metaSet && m.DataLen > maxValueBytes:
		return &ProtocolError{Kind: ReplyServerError, Msg: msgTooLarge, Err: ErrValueTooLarge, Swallow: swallow}
	}
	return nil
}

func validSetMode(b byte) bool {
	switch b {
	case 'E', 'A', 'P', 'R', 'S':
		return true
	}
	return false
}

func validArithMode(b byte) bool {
	switch b {
	case 'I', '+', 'D', '-':
		return true
	}
	return false
}

// decodeKey decodes a base64 key (standard alphabet, padded, as memcached's decoder wants) into buf; a key
// that does not decode, or decodes to nothing, is refused.
func decodeKey(tok, buf []byte) ([]byte, bool) {
	if base64.StdEncoding.DecodedLen(len(tok)) > len(buf) {
		return nil, false
	}
	n, err := base64.StdEncoding.Decode(buf, tok)
	if err != nil || n == 0 {
		return nil, false
	}
	return buf[:n], true
}

// parseInt32 parses a decimal int32 with an optional '-' (memcached's safe_strtol for meta tokens).
func parseInt32(b []byte) (int64, bool) {
	v, ok := parseInt(b)
	return v, ok && v >= math.MinInt32 && v <= math.MaxInt32
}
