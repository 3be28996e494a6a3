package counter

import (
	"context"
	"errors"
	"fmt"

	rpc "github.com/gokai-kv/gokai/protocol/msgpackrpc"
	"github.com/gokai-kv/gokai/service"
)

// The counter's msgpack-RPC methods, served as "counter.incr" and "counter.value" (docs/msgpack-rpc.md):
//
//	counter.incr(name, by, opts)  -> true     opts: w, pw, timeout_ms
//	counter.value(name, opts)     -> integer  opts: r, pr, timeout_ms, notfound_ok
//
// name is bin or str, 1..MaxNameLen bytes; by is an integer with |by| <= MaxBy (negative decrements).

// MaxNameLen bounds a counter's name.
const MaxNameLen = 1024

type methods struct {
	c     *Client
	stats *stats
}

func (m methods) table() map[string]service.Method {
	return map[string]service.Method{
		"incr":  {Call: m.incr},
		"value": {Call: m.value},
	}
}

func badRequest(format string, args ...any) error {
	return &rpc.Error{Code: rpc.CodeBadRequest, Message: fmt.Sprintf(format, args...)}
}

// rpcError is the client's error for err: the counter's own (out of range) first, then the runtime's
// (service.RPCError: quorum failures, timeouts, overload, a full disk).
func rpcError(err error) error {
	switch {
	case errors.Is(err, ErrBadIncrement):
		return badRequest("by: want an integer with |by| < 2^53")
	case errors.Is(err, ErrOutOfRange), errors.Is(err, ErrTooManyActors):
		return &rpc.Error{Code: CodeOutOfRange, Message: "the counter would leave the int64 range (or has too many actors)", Cause: err}
	}
	return service.RPCError(err)
}

func name(params []any) ([]byte, error) {
	n, err := rpc.Bytes(params, 0, "name")
	if err != nil {
		return nil, err
	}
	if len(n) == 0 || len(n) > MaxNameLen {
		return nil, badRequest("name of %d bytes: want 1..%d", len(n), MaxNameLen)
	}
	return n, nil
}

// incr: (name, by, opts) -> true.
func (m methods) incr(ctx context.Context, params []any) (any, error) {
	if len(params) < 2 || len(params) > 3 {
		return nil, badRequest("incr takes (name, by, opts), got %d params", len(params))
	}
	n, err := name(params)
	if err != nil {
		return nil, err
	}
	by, ok, err := rpc.Int(map[string]any{"by": params[1]}, "by")
	switch {
	case err != nil || !ok:
		return nil, badRequest("by: want an integer")
	case by > MaxBy || by < -MaxBy:
		return nil, rpcError(ErrBadIncrement)
	}
	opts, err := rpc.Map(params, 2, "opts")
	if err != nil {
		return nil, err
	}
	wo, err := service.WriteOptions(opts) // the options KV's put takes
	if err != nil {
		return nil, err
	}
	err = m.c.Incr(ctx, n, by, wo)
	m.stats.count(&m.stats.incrs, &m.stats.incrErrs, err)
	if err != nil {
		return nil, rpcError(err)
	}
	return true, nil
}

// value: (name, opts) -> integer.
func (m methods) value(ctx context.Context, params []any) (any, error) {
	if len(params) < 1 || len(params) > 2 {
		return nil, badRequest("value takes (name, opts), got %d params", len(params))
	}
	n, err := name(params)
	if err != nil {
		return nil, err
	}
	opts, err := rpc.Map(params, 1, "opts")
	if err != nil {
		return nil, err
	}
	ro, err := service.ReadOptions(opts) // the options KV's get takes
	if err != nil {
		return nil, err
	}
	v, err := m.c.Value(ctx, n, ro)
	m.stats.count(&m.stats.values, &m.stats.valueErrs, err)
	if err != nil {
		return nil, rpcError(err)
	}
	return v, nil
}
