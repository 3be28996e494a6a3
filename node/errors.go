package node

import (
	"context"
	"errors"

	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/kv"
	"github.com/gokai-kv/gokai/protocol/memcache"
	rpc "github.com/gokai-kv/gokai/protocol/msgpackrpc"
	"github.com/gokai-kv/gokai/storage"
)

// clientError is what a client is told about a failed request, on either face: a stable code (msgpack-RPC's
// error codes), a message made only of the request's own terms, and the fields of a quorum failure. The
// error's own text never goes out: it can name files (a storage failure quotes the data directory), hosts
// or internals. The cause stays with the error for the node's log.
type clientError struct {
	code   string
	msg    string
	fields map[string]any
}

// Messages of the codes whose message is fixed.
const (
	msgDiskFull     = "the node's disk is full: writes fail until space is freed; reads still work"
	msgOverload     = "the node runs its maximum of requests in flight; retry later"
	msgShuttingDown = "the node is shutting down"
	msgSiblings     = "the write would exceed max-siblings: read the key, merge its siblings, write with the context"
	msgTimeout      = "the request's deadline passed"
	msgInternal     = "internal error; the details are in the node's log"
)

// classify maps gokai's errors to what a client is told. It is the one place that decides it; rpcError and
// memcacheError only put it in their face's form.
func classify(err error) clientError {
	var qe *coordinator.QuorumError
	switch {
	case errors.As(err, &qe):
		code := rpc.CodeQuorumFailed
		if qe.Timeout {
			code = rpc.CodeTimeout
		}
		bare := *qe
		bare.Errs = nil // NB: the replicas' errors are their storage's text: the log has them
		return clientError{code: code, msg: bare.Error(),
			fields: map[string]any{"need": qe.Need, "got": qe.Got, "primary": qe.Primary}}
	case errors.Is(err, storage.ErrDiskFull):
		return clientError{code: rpc.CodeDiskFull, msg: msgDiskFull}
	case errors.Is(err, coordinator.ErrOverload):
		return clientError{code: rpc.CodeOverload, msg: msgOverload}
	case errors.Is(err, coordinator.ErrShuttingDown):
		return clientError{code: rpc.CodeShuttingDown, msg: msgShuttingDown}
	case errors.Is(err, kv.ErrTooManySiblings):
		return clientError{code: rpc.CodeTooManySiblings, msg: msgSiblings}
	case errors.Is(err, coordinator.ErrBadRequest):
		// NB: made by the coordinator from the request's options (R > N and the like).
		return clientError{code: rpc.CodeBadRequest, msg: err.Error()}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return clientError{code: rpc.CodeTimeout, msg: msgTimeout}
	default:
		return clientError{code: rpc.CodeInternal, msg: msgInternal}
	}
}

// rpcError maps gokai's errors to the msgpack-RPC API's stable error codes (see classify); the server logs
// the cause of an internal one.
func rpcError(err error) error {
	ce := classify(err)
	return &rpc.Error{Code: ce.code, Message: ce.msg, Fields: ce.fields, Cause: err}
}

// memcacheText is the SERVER_ERROR text of each code: memcached's where it has one.
var memcacheText = map[string]string{
	rpc.CodeDiskFull: "out of space",
	rpc.CodeOverload: "overload: too many requests in flight, retry later",
}

// memcacheError maps gokai's errors to the SERVER_ERROR line the memcache face sends (see classify); the
// server logs the cause, rate-limited per code.
func memcacheError(err error) error {
	if err == nil {
		return nil
	}
	ce := classify(err)
	msg, ok := memcacheText[ce.code]
	if !ok {
		msg = ce.msg
	}
	return &memcache.StoreError{Code: ce.code, Msg: msg, Err: err}
}
