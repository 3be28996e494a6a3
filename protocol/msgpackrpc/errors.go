package msgpackrpc

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/vmihailenco/msgpack/v5"
)

// Error codes sent in the "code" field of an error response. They are stable: append-only, never renamed
// or reused (docs/msgpack-rpc.md lists their meaning and extra fields).
const (
	CodeNotFound        = "not_found"
	CodeTimeout         = "timeout"
	CodeQuorumFailed    = "quorum_failed"
	CodeOverload        = "overload"
	CodeTooLarge        = "too_large"
	CodeTooManySiblings = "too_many_siblings"
	CodeBadRequest      = "bad_request"
	CodeUnknownMethod   = "unknown_method"
	CodeShuttingDown    = "shutting_down"
	CodeInternal        = "internal"
	CodeDiskFull        = "disk_full"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("msgpackrpc: server closed")

// Error is a structured error, sent as the map {"code": Code, "message": Message, ...Fields}. A Handler
// returns it (possibly wrapped) to choose the code; any other error is sent as CodeInternal (or CodeTimeout
// for context.DeadlineExceeded) with a fixed message, never the error's own text, which may name files or
// hosts a client has no business seeing.
type Error struct {
	Code    string
	Message string
	// Fields are extra entries of the error map, such as "need" and "got" for CodeTimeout. Keys "code" and
	// "message" are ignored. Values must be encodable by vmihailenco/msgpack.
	Fields map[string]any
	// Cause is the error behind this one, for the server's log: it is never sent. The server logs it with
	// every CodeInternal response.
	Cause error
}

var (
	_ msgpack.CustomEncoder = (*Error)(nil)
	_ msgpack.CustomDecoder = (*Error)(nil)
)

// Error returns "code: message".
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the Cause.
func (e *Error) Unwrap() error { return e.Cause }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrUnknownMethod is the error a Handler returns for a method it does not serve.
func ErrUnknownMethod(name string) *Error {
	return &Error{Code: CodeUnknownMethod, Message: fmt.Sprintf("no method %q", truncate(name, 64))}
}

// EncodeMsgpack writes e as its error map: code, message, then Fields sorted by key.
func (e *Error) EncodeMsgpack(enc *msgpack.Encoder) error {
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		if k != "code" && k != "message" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if err := enc.EncodeMapLen(2 + len(keys)); err != nil {
		return err
	}
	for _, s := range []string{"code", e.Code, "message", e.Message} {
		if err := enc.EncodeString(s); err != nil {
			return err
		}
	}
	for _, k := range keys {
		if err := enc.EncodeString(k); err != nil {
			return err
		}
		if err := enc.Encode(e.Fields[k]); err != nil {
			return err
		}
	}
	return nil
}

// DecodeMsgpack reads an error map written by EncodeMsgpack (for clients). Entries other than code and
// message go to Fields. Decode only bytes that passed mpscan.Scan.
func (e *Error) DecodeMsgpack(dec *msgpack.Decoder) error {
	m, err := dec.DecodeMap()
	if err != nil {
		return err
	}
	*e = Error{}
	for k, v := range m {
		switch k {
		case "code", "message":
			var s string
			switch v := v.(type) {
			case string:
				s = v
			case []byte:
				s = string(v)
			default:
				return fmt.Errorf("msgpackrpc: error %s is %s, want str", k, typeName(v))
			}
			if k == "code" {
				e.Code = s
			} else {
				e.Message = s
			}
		default:
			if e.Fields == nil {
				e.Fields = make(map[string]any)
			}
			e.Fields[k] = v
		}
	}
	if e.Code == "" {
		return errors.New("msgpackrpc: error map without a code")
	}
	return nil
}

// errorFor maps a Handler's error to the *Error sent for it. Only an *Error's own message reaches the
// client; any other error's text stays in the server's log (as the Cause).
func errorFor(err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		if e == nil { // a typed nil returned as error
			return &Error{Code: CodeInternal, Message: "the handler returned a nil *Error"}
		}
		return e
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: CodeTimeout, Message: "deadline exceeded", Cause: err}
	default:
		return &Error{Code: CodeInternal, Message: internalMessage, Cause: err}
	}
}

// internalMessage is the message of a CodeInternal error made from a plain error.
const internalMessage = "internal error; the details are in the server's log"

func badRequest(format string, args ...any) *Error { return Errorf(CodeBadRequest, format, args...) }

// truncate shortens client-supplied text quoted in error messages.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
