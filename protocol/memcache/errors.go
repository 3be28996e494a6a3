package memcache

import (
	"errors"
	"strings"
)

// Sentinel errors. A *ProtocolError wraps one of them, so callers can test with errors.Is.
var (
	// ErrUnknownCommand: the command name is unknown, or a known command has the wrong number of arguments
	// (memcached answers both with ERROR).
	ErrUnknownCommand = errors.New("memcache: unknown command")
	// ErrBadFormat: a field of the line does not have the form the command needs.
	ErrBadFormat = errors.New("memcache: bad command line format")
	// ErrKeyTooLong: a key is longer than MaxKeyLength bytes.
	ErrKeyTooLong = errors.New("memcache: key too long")
	// ErrBadKey: a key holds a control character (bytes 0x00-0x1f, 0x7f); spaces separate keys.
	ErrBadKey = errors.New("memcache: illegal character in key")
	// ErrBadNumber: a numeric argument (delta, exptime) does not parse.
	ErrBadNumber = errors.New("memcache: bad number")
	// ErrValueTooLarge: a storage command announces a data block larger than the limit.
	ErrValueTooLarge = errors.New("memcache: value too large")
	// ErrLineTooLong: a request line is longer than Config.MaxLineBytes.
	ErrLineTooLong = errors.New("memcache: line too long")
	// ErrBadDataChunk: a data block is not followed by CRLF.
	ErrBadDataChunk = errors.New("memcache: bad data chunk")
	// ErrServerClosed is returned by Serve after Shutdown.
	ErrServerClosed = errors.New("memcache: server closed")
)

// ReplyKind names the error line memcached sends for a rejected request.
type ReplyKind uint8

const (
	// ReplyError is "ERROR": unknown command.
	ReplyError ReplyKind = iota + 1
	// ReplyClientError is "CLIENT_ERROR <msg>": the input does not conform to the protocol.
	ReplyClientError
	// ReplyServerError is "SERVER_ERROR <msg>": the server cannot carry out a well-formed request.
	ReplyServerError
	// ReplyNone sends nothing: the connection closes (an HTTP request line, as memcached does).
	ReplyNone
)

// ProtocolError is the error ParseCommand returns for a line it rejects. It says what to answer and how to
// keep the byte stream in sync afterwards.
type ProtocolError struct {
	Kind ReplyKind
	// Msg follows CLIENT_ERROR or SERVER_ERROR; empty for ReplyError. It never holds CR or LF.
	Msg string
	// Swallow is the number of bytes (data block plus its CRLF) the server must read and discard before the
	// next request line: a storage command whose line is bad but whose <bytes> field is readable still has its
	// data block on the wire.
	Swallow int64
	// Close means the conversation ends: the server sends the reply (even with noreply; none for
	// ReplyNone) and closes the connection. Set for an HTTP request line (a client that is not a
	// memcache client, memcached's rule).
	Close bool
	// Err is the sentinel this error wraps.
	Err error
}

func (e *ProtocolError) Error() string {
	if e.Msg == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + ": " + e.Msg
}

func (e *ProtocolError) Unwrap() error { return e.Err }

// Reply returns the reply line for e, with its CRLF.
func (e *ProtocolError) Reply() []byte {
	return appendErrorReply(nil, e.Kind, e.Msg)
}

// StoreError is what a Store returns to choose the SERVER_ERROR line a failure is answered with: Msg is
// sent (on one line, at most 256 bytes), Err, the cause, only logged. A Store error that is not (and does
// not wrap) a *StoreError is answered "SERVER_ERROR store error; ...": the text of an arbitrary error may
// name files or hosts, and never reaches a client.
type StoreError struct {
	// Code names the kind of failure in logs, in a few stable words ("overload", "out_of_space"); warnings
	// are rate-limited per Code. Empty means "store".
	Code string
	// Msg follows "SERVER_ERROR ". memcached's own texts where it has one ("out of memory storing object").
	Msg string
	// Err is the cause, for the log.
	Err error
}

func (e *StoreError) Error() string {
	if e.Err == nil {
		return e.Msg
	}
	return e.Msg + ": " + e.Err.Error()
}

func (e *StoreError) Unwrap() error { return e.Err }

// ReplyFor maps any error to the memcached reply line (with CRLF) at the protocol edge: a *ProtocolError to
// its own reply, a *StoreError to SERVER_ERROR with its Msg, anything else (a Store failure the Store did
// not describe) to "SERVER_ERROR store error; ...", never to the error's own text.
func ReplyFor(err error) []byte {
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return pe.Reply()
	}
	return appendErrorReply(nil, ReplyServerError, serverErrorText(err))
}

// serverErrorText is the text after SERVER_ERROR for a Store failure (see ReplyFor).
func serverErrorText(err error) string {
	var se *StoreError
	if errors.As(err, &se) && se.Msg != "" {
		return se.Msg
	}
	return msgStoreFailed
}

// storeErrorCode is the kind of a Store failure, for logs.
func storeErrorCode(err error) string {
	var se *StoreError
	if errors.As(err, &se) && se.Code != "" {
		return se.Code
	}
	return "store"
}

// maxErrorMsg bounds the text after CLIENT_ERROR/SERVER_ERROR; a Store error can be long.
const maxErrorMsg = 256

func appendErrorReply(dst []byte, kind ReplyKind, msg string) []byte {
	switch kind {
	case ReplyNone:
		return dst
	case ReplyError:
		return append(dst, replyError...)
	case ReplyClientError:
		dst = append(dst, prefixClientError...)
	default:
		dst = append(dst, prefixServerError...)
	}
	dst = append(dst, oneLine(msg)...)
	return append(dst, crlf...)
}

// oneLine makes msg safe to put on a reply line: no CR or LF (they would end the line early and desync the
// client) and at most maxErrorMsg bytes.
func oneLine(msg string) string {
	if len(msg) > maxErrorMsg {
		msg = msg[:maxErrorMsg]
	}
	if strings.ContainsAny(msg, "\r\n") {
		msg = strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' {
				return ' '
			}
			return r
		}, msg)
	}
	return msg
}

func errUnknown() *ProtocolError {
	return &ProtocolError{Kind: ReplyError, Err: ErrUnknownCommand}
}

func clientError(sentinel error, msg string) *ProtocolError {
	return &ProtocolError{Kind: ReplyClientError, Msg: msg, Err: sentinel}
}
