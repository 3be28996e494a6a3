package service

import (
	"context"
	"errors"

	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/protocol/memcache"
	rpc "github.com/gokai-kv/gokai/protocol/msgpackrpc"
	"github.com/gokai-kv/gokai/storage"
)

// ClientError is what a client is told about a failed request, on either face: a stable code (msgpack-RPC's
// error codes), a message made only of the request's own terms, and the fields of a quorum failure. The
// error's own text never goes out: it can name files (a storage failure quotes the data directory), hosts
// or internals. The cause stays with the error for the node's log.
type ClientError struct {
	Code   string
	Msg    string
	Fields map[string]any
}

// Messages of the codes whose message is fixed.
const (
	MsgDiskFull     = "the node's disk is full: writes fail until space is freed; reads still work"
	MsgOverload     = "the node runs its maximum of requests in flight; retry later"
	MsgShuttingDown = "the node is shutting down"
	MsgTimeout      = "the request's deadline passed"
	MsgInternal     = "internal error; the details are in the node's log"
)

// Classify maps the runtime's errors to what a client is told. It is the one place that decides it for
// every service; a service with errors of its own (KV: too many siblings) checks those first. RPC and
// Memcache only put the result in their face's form.
func Classify(err error) ClientError {
	var qe *coordinator.QuorumError
	switch {
	case errors.As(err, &qe):
		code := rpc.CodeQuorumFailed
		if qe.Timeout {
			code = rpc.CodeTimeout
		}
		bare := *qe
		bare.Errs = nil // NB: the replicas' errors are their storage's text: the log has them
		return ClientError{Code: code, Msg: bare.Error(),
			Fields: map[string]any{"need": qe.Need, "got": qe.Got, "primary": qe.Primary}}
	case errors.Is(err, storage.ErrDiskFull):
		return ClientError{Code: rpc.CodeDiskFull, Msg: MsgDiskFull}
	case errors.Is(err, coordinator.ErrOverload):
		return ClientError{Code: rpc.CodeOverload, Msg: MsgOverload}
	case errors.Is(err, coordinator.ErrShuttingDown):
		return ClientError{Code: rpc.CodeShuttingDown, Msg: MsgShuttingDown}
	case errors.Is(err, coordinator.ErrBadRequest):
		// NB: made by the coordinator from the request's options (R > N and the like).
		return ClientError{Code: rpc.CodeBadRequest, Msg: err.Error()}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return ClientError{Code: rpc.CodeTimeout, Msg: MsgTimeout}
	default:
		return ClientError{Code: rpc.CodeInternal, Msg: MsgInternal}
	}
}

// RPC is ce as a msgpack-RPC error, keeping cause for the server's log.
func (ce ClientError) RPC(cause error) error {
	return &rpc.Error{Code: ce.Code, Message: ce.Msg, Fields: ce.Fields, Cause: cause}
}

// memcacheText is the SERVER_ERROR text of each code: memcached's where it has one.
var memcacheText = map[string]string{
	rpc.CodeDiskFull: "out of space",
	rpc.CodeOverload: "overload: too many requests in flight, retry later",
}

// Memcache is ce as the SERVER_ERROR line the memcache face sends, keeping cause for the server's log
// (rate-limited per code).
func (ce ClientError) Memcache(cause error) error {
	msg, ok := memcacheText[ce.Code]
	if !ok {
		msg = ce.Msg
	}
	return &memcache.StoreError{Code: ce.Code, Msg: msg, Err: cause}
}

// RPCError maps err to the msgpack-RPC API's stable error codes (Classify); nil stays nil. An *rpc.Error
// passes as it is (a service's own answer).
func RPCError(err error) error {
	if err == nil {
		return nil
	}
	var re *rpc.Error
	if errors.As(err, &re) {
		return re
	}
	return Classify(err).RPC(err)
}

// MemcacheError maps err to the SERVER_ERROR line the memcache face sends (Classify); nil stays nil.
func MemcacheError(err error) error {
	if err == nil {
		return nil
	}
	return Classify(err).Memcache(err)
}
