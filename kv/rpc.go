package kv

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/coordinator"
	rpc "github.com/gokai-kv/gokai/protocol/msgpackrpc"
	"github.com/gokai-kv/gokai/service"
	"github.com/gokai-kv/gokai/vnode"
)

// KV's msgpack-RPC methods (docs/msgpack-rpc.md): get, put and delete over the coordinators, list_keys and
// count over coverage requests (listkeys.go), and vnode_get, an operator's read of one replica. KV is the node's default service, so they answer as "get" and as
// "kv.get".

// rpcFaces serves KV's methods on one node.
type rpcFaces struct {
	coord   *Coordinator
	now     func() time.Time
	system  *actor.ActorSystem
	vnodes  *vnode.Manager
	timeout time.Duration
	lister  *Lister
}

// methods is KV's method table.
func (h rpcFaces) methods() map[string]service.Method {
	return map[string]service.Method{
		"get":       {Call: h.get},
		"put":       {Call: h.put},
		"delete":    {Call: h.delete},
		"vnode_get": {Call: h.vnodeGet, Operator: true},
		"list_keys": {Call: h.listKeys},
		"count":     {Call: h.count},
	}
}

// msgSiblings is the client's message for ErrTooManySiblings.
const msgSiblings = "the write would exceed max-siblings: read the key, merge its siblings, write with the context"

// clientError is service.Classify with KV's own error: a write that would exceed max-siblings.
func clientError(err error) service.ClientError {
	if errors.Is(err, ErrTooManySiblings) {
		return service.ClientError{Code: rpc.CodeTooManySiblings, Msg: msgSiblings}
	}
	return service.Classify(err)
}

// rpcError maps an error of KV's to the msgpack-RPC error a client gets (clientError).
func rpcError(err error) error { return clientError(err).RPC(err) }

// memcacheError maps an error of KV's to the memcache face's SERVER_ERROR (clientError); nil stays nil.
func memcacheError(err error) error {
	if err == nil {
		return nil
	}
	return clientError(err).Memcache(err)
}

func intParam(params []any, i int) (int64, error) {
	if i >= len(params) {
		return 0, badRequest("missing parameter %d", i)
	}
	v, ok, err := rpc.Int(map[string]any{"v": params[i]}, "v")
	if err != nil || !ok {
		return 0, badRequest("parameter %d: want an integer", i)
	}
	return v, nil
}

func badRequest(format string, args ...any) error {
	return &rpc.Error{Code: "bad_request", Message: fmt.Sprintf(format, args...)}
}

func (h rpcFaces) key(params []any) ([]byte, error) {
	key, err := rpc.Bytes(params, 0, "key")
	if err != nil {
		return nil, err
	}
	if len(key) == 0 || len(key) > 65535 {
		return nil, badRequest("key length %d: want 1..65535 bytes", len(key))
	}
	return key, nil
}

func (h rpcFaces) get(ctx context.Context, params []any) (any, error) {
	if len(params) < 1 || len(params) > 2 {
		return nil, badRequest("get takes (key, opts), got %d params", len(params))
	}
	key, err := h.key(params)
	if err != nil {
		return nil, err
	}
	opts, err := rpc.Map(params, 1, "opts")
	if err != nil {
		return nil, err
	}
	ro, err := service.ReadOptions(opts)
	if err != nil {
		return nil, err
	}
	o, err := h.coord.Get(ctx, key, ro)
	if err != nil {
		return nil, rpcError(err)
	}
	body, ok, err := h.body(o)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &rpc.Error{Code: "not_found", Message: "not found"}
	}
	return body, nil
}

// body renders an object's live siblings and context; ok is false when nothing is live.
func (h rpcFaces) body(o *Object) (map[string]any, bool, error) {
	if o == nil {
		return nil, false, nil
	}
	live := o.Live(h.now().Unix())
	if len(live) == 0 {
		return nil, false, nil
	}
	values := make([]any, len(live))
	meta := make([]any, len(live))
	for i, s := range live {
		values[i] = s.Value
		meta[i] = map[string]any{"flags": s.Meta.Flags, "expiry": s.Meta.Expiry, "last_modified": s.Meta.LastMod}
	}
	ctxb, err := o.Clock.MarshalBinary()
	if err != nil {
		return nil, false, err
	}
	return map[string]any{"values": values, "metadata": meta, "context": ctxb}, true, nil
}

// contextParams reads what a put or delete supersedes: params[i], the context of an earlier get, and the
// "blind" option. A context supersedes exactly the siblings that get returned; blind supersedes whatever the
// coordinating replica holds; neither (a nil or empty context) supersedes nothing. Both is a bad request.
// given reports a non-empty context.
func contextParams(params []any, i int, opts map[string]any) (vc VClock, blind, given bool, err error) {
	raw, err := rpc.OptBytes(params, i, "context")
	if err != nil {
		return nil, false, false, err
	}
	if blind, _, err = rpc.Bool(opts, "blind"); err != nil {
		return nil, false, false, err
	}
	if len(raw) == 0 {
		return nil, blind, false, nil
	}
	if blind {
		return nil, false, false, badRequest("a blind write takes no context")
	}
	if vc, err = UnmarshalVClock(raw); err != nil {
		return nil, false, false, badRequest("context: %v", err)
	}
	return vc, false, true, nil
}

// put writes with the context given (see contextParams): without one, the value becomes a sibling of what
// the key holds; it never replaces a value its writer did not read unless the writer asked for blind.
func (h rpcFaces) put(ctx context.Context, params []any) (any, error) {
	if len(params) < 2 || len(params) > 4 {
		return nil, badRequest("put takes (key, value, context, opts), got %d params", len(params))
	}
	key, err := h.key(params)
	if err != nil {
		return nil, err
	}
	value, err := rpc.Bytes(params, 1, "value")
	if err != nil {
		return nil, err
	}
	if len(value) > maxRPCValue {
		return nil, &rpc.Error{Code: "too_large", Message: fmt.Sprintf("value of %d bytes over the %d limit", len(value), maxRPCValue), Fields: map[string]any{"limit": maxRPCValue}}
	}
	opts, err := rpc.Map(params, 3, "opts")
	if err != nil {
		return nil, err
	}
	vc, blind, _, err := contextParams(params, 2, opts)
	if err != nil {
		return nil, err
	}
	wo, err := service.WriteOptions(opts)
	if err != nil {
		return nil, err
	}
	var meta Meta
	if f, ok, err := rpc.Int(opts, "flags"); err != nil {
		return nil, err
	} else if ok {
		if f < 0 || f > 1<<32-1 {
			return nil, badRequest("flags %d out of uint32 range", f)
		}
		meta.Flags = uint32(f)
	}
	if e, ok, err := rpc.Int(opts, "expiry"); err != nil {
		return nil, err
	} else if ok {
		meta.Expiry = e
	}
	returnBody, _, err := rpc.Bool(opts, "return_body")
	if err != nil {
		return nil, err
	}
	o, err := h.coord.Put(ctx, key, value, meta, vc, blind, wo)
	if err != nil {
		return nil, rpcError(err)
	}
	if !returnBody {
		return map[string]any{}, nil
	}
	body, _, err := h.body(o)
	if err != nil {
		return nil, err
	}
	if body == nil {
		body = map[string]any{}
	}
	return body, nil
}

// delete writes a tombstone with the context given. Without a context (and without blind) it deletes what
// a read finds, as riak_kv does for a delete without a vclock: it reads the key at the node's R and writes
// the tombstone over that read's context, so it supersedes the values the read returned and no write the
// read did not see (that one survives, as a sibling of the tombstone). A key with nothing live is left
// alone. A tombstone that superseded nothing would delete nothing: every value would stay visible.
func (h rpcFaces) delete(ctx context.Context, params []any) (any, error) {
	if len(params) < 1 || len(params) > 3 {
		return nil, badRequest("delete takes (key, context, opts), got %d params", len(params))
	}
	key, err := h.key(params)
	if err != nil {
		return nil, err
	}
	opts, err := rpc.Map(params, 2, "opts")
	if err != nil {
		return nil, err
	}
	vc, blind, given, err := contextParams(params, 1, opts)
	if err != nil {
		return nil, err
	}
	wo, err := service.WriteOptions(opts)
	if err != nil {
		return nil, err
	}
	if !given && !blind {
		o, err := h.coord.Get(ctx, key, coordinator.ReadOptions{Timeout: wo.Timeout})
		if err != nil {
			return nil, rpcError(err)
		}
		if o.TombstoneOnly(h.now().Unix()) {
			return true, nil
		}
		vc = o.Clock
	}
	if err := h.coord.Delete(ctx, key, vc, blind, wo); err != nil {
		return nil, rpcError(err)
	}
	return true, nil
}

// vnodeGet reads one replica: this node's vnode of a partition, below the coordinator (no quorum, no
// repair). For operators and tests checking where data is. Result: {found, values, context, deleted}.
func (h rpcFaces) vnodeGet(ctx context.Context, params []any) (any, error) {
	p, err := intParam(params, 0)
	if err != nil {
		return nil, err
	}
	key, err := rpc.Bytes(params, 1, "key")
	if err != nil {
		return nil, err
	}
	pid := h.vnodes.PID(int(p))
	if pid == nil {
		return nil, &rpc.Error{Code: "not_found", Message: fmt.Sprintf("no vnode for partition %d here", p)}
	}
	res, err := actors.Request(ctx, h.system, pid, &GetRequest{V: 1, Key: key}, h.timeout)
	if err != nil {
		return nil, rpcError(err)
	}
	rep, ok := res.(*GetReply)
	switch {
	case !ok:
		return nil, rpcError(fmt.Errorf("vnode_get: partition %d: unexpected reply %T", p, res))
	case rep.Code == CodeDiskFull:
		return nil, rpcError(fmt.Errorf("vnode_get: partition %d: %w: %s", p, ErrDiskFull, rep.Err))
	case rep.Err != "":
		return nil, rpcError(fmt.Errorf("vnode_get: partition %d: %s", p, rep.Err))
	}
	body, found, err := h.body(rep.Object)
	if err != nil {
		return nil, err
	}
	if !found {
		body = map[string]any{}
	}
	body["found"] = found
	return body, nil
}

// maxRPCValue bounds one value written over msgpack-RPC (16 MiB).
const maxRPCValue = 16 << 20
