package client

import (
	"errors"
	"fmt"
)

// Error codes of the msgpack-RPC API (docs/msgpack-rpc.md). Append-only: a code never changes meaning.
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
	CodeForbidden       = "forbidden"
	CodeDiskFull        = "disk_full"
)

// Sentinel errors. An *Error from the server matches the one of its code with errors.Is; the others come
// from the client itself.
var (
	ErrNotFound        = errors.New("client: not found")
	ErrTimeout         = errors.New("client: timeout")
	ErrQuorum          = errors.New("client: quorum failed")
	ErrOverload        = errors.New("client: overload")
	ErrTooLarge        = errors.New("client: too large")
	ErrTooManySiblings = errors.New("client: too many siblings")
	ErrBadRequest      = errors.New("client: bad request")
	ErrUnknownMethod   = errors.New("client: unknown method")
	ErrShuttingDown    = errors.New("client: node shutting down")
	ErrInternal        = errors.New("client: internal server error")
	// ErrForbidden: an operator method without an operator identity (see docs/security.md).
	ErrForbidden = errors.New("client: forbidden")
	ErrDiskFull  = errors.New("client: the node's disk is full")

	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("client: closed")
	// ErrUnavailable: no candidate node could be reached (wraps the last transport error).
	ErrUnavailable = errors.New("client: no node reachable")
	// ErrNoResolver: GetResolved met siblings and Config.Resolver is nil.
	ErrNoResolver = errors.New("client: siblings and no resolver")
	// ErrProtocol: a reply that does not follow the API (wraps the detail).
	ErrProtocol = errors.New("client: protocol error")
)

var codeSentinel = map[string]error{
	CodeNotFound:        ErrNotFound,
	CodeTimeout:         ErrTimeout,
	CodeQuorumFailed:    ErrQuorum,
	CodeOverload:        ErrOverload,
	CodeTooLarge:        ErrTooLarge,
	CodeTooManySiblings: ErrTooManySiblings,
	CodeBadRequest:      ErrBadRequest,
	CodeUnknownMethod:   ErrUnknownMethod,
	CodeShuttingDown:    ErrShuttingDown,
	CodeInternal:        ErrInternal,
	CodeForbidden:       ErrForbidden,
	CodeDiskFull:        ErrDiskFull,
}

// Error is an error answered by a node: the API's error map. Code is one of the Code constants (or a code
// added by a newer server); Need and Got are set for timeout and quorum_failed, Primary for quorum_failed
// (the PR/PW primaries were missing), Limit for too_large.
type Error struct {
	Code    string
	Message string
	Need    int
	Got     int
	Primary bool
	Limit   int
}

func (e *Error) Error() string {
	if e.Message == "" || e.Message == e.Code {
		return "gokai: " + e.Code
	}
	return fmt.Sprintf("gokai: %s: %s", e.Code, e.Message)
}

// Is reports whether target is the sentinel of e's code (errors.Is(err, ErrNotFound), ...).
func (e *Error) Is(target error) bool {
	s, ok := codeSentinel[e.Code]
	return ok && s == target
}

// opError is a transport failure talking to one node.
type opError struct {
	addr string
	op   string // "dial", "write", "read"
	err  error
	// sent is true when the request may have reached the node (it was written, at least in part).
	sent bool
}

func (e *opError) Error() string { return fmt.Sprintf("client: %s %s: %v", e.op, e.addr, e.err) }
func (e *opError) Unwrap() error { return e.err }

// refreshHint reports whether err suggests the ring moved, so the client should read it again soon.
func refreshHint(err error) bool {
	var oe *opError
	if errors.As(err, &oe) {
		return true
	}
	var e *Error
	if errors.As(err, &e) {
		switch e.Code {
		case CodeShuttingDown:
			return true
		case CodeQuorumFailed:
			return e.Primary
		}
	}
	return false
}
