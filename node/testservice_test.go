package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/coordinator"
	rpc "github.com/gokai-kv/gokai/protocol/msgpackrpc"
	"github.com/gokai-kv/gokai/service"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// regService is a second service for the node's tests: "reg", a max-register per key (a write keeps the
// larger of the stored and the written value; values are > 0). It is as small as a service can be and
// still be a real one: its own wire messages, its own vnodes with handoff (forwarding writes during a
// handoff), re-home, coordinators for quorum reads and writes, and msgpack-RPC methods reg.put, reg.get and
// reg.vnode_get (operators: one replica, below the coordinators).
func regService() service.Service {
	return service.Service{
		Name: "reg", ID: 7,
		Vnode: func(service.NodeInfo) (vnode.Factory, error) {
			return func() vnode.Behaviour { return &regVnode{} }, nil
		},
		Wire: []service.Wire{
			{Code: 65200, New: func() any { return &regRead{} }},
			{Code: 65201, New: func() any { return &regWrite{} }},
			{Code: 65202, New: func() any { return &regReply{} }},
		},
		Rehome: &service.Rehome{
			Drop: func(keys, values [][]byte) any { return &regDrop{keys: keys, values: values} },
			Dropped: func(reply any) (int, error) {
				d, ok := reply.(*regDropped)
				if !ok {
					return 0, fmt.Errorf("reg: drop: reply %T", reply)
				}
				return d.n, d.err
			},
		},
		Start: func(h service.Host) (*service.Instance, error) {
			r := &regClient{h: h}
			return &service.Instance{Methods: map[string]service.Method{
				"put":       {Call: r.put},
				"get":       {Call: r.get},
				"vnode_get": {Call: r.vnodeGet, Operator: true},
			}}, nil
		},
	}
}

// The reg service's messages. Replies carry the command's tag.
type regRead struct {
	V   uint8  `msgpack:"v"`
	Tag uint32 `msgpack:"t"`
	Key []byte `msgpack:"k"`
}

type regWrite struct {
	V     uint8  `msgpack:"v"`
	Tag   uint32 `msgpack:"t"`
	Key   []byte `msgpack:"k"`
	Value uint64 `msgpack:"x"`
}

type regReply struct {
	V     uint8  `msgpack:"v"`
	Tag   uint32 `msgpack:"t"`
	Value uint64 `msgpack:"x"` // 0: the vnode holds none
	Write bool   `msgpack:"w"`
	Err   string `msgpack:"e"`
}

// regDrop removes keys[i] if it still holds values[i] (re-home; local only).
type regDrop struct{ keys, values [][]byte }

type regDropped struct {
	n   int
	err error
}

// regVnode is the behaviour: key -> 8-byte big-endian value, in the vnode's storage partition.
type regVnode struct{ env vnode.Env }

var (
	_ vnode.Behaviour        = (*regVnode)(nil)
	_ vnode.HandoffCommander = (*regVnode)(nil)
)

func (r *regVnode) Init(env vnode.Env) error { r.env = env; return nil }

func (r *regVnode) load(key []byte) (uint64, error) {
	raw, err := r.env.Store.Get(key)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, err
	case len(raw) != 8:
		return 0, fmt.Errorf("reg: %d-byte value", len(raw))
	}
	return binary.BigEndian.Uint64(raw), nil
}

// merge stores max(stored, v) and returns it.
func (r *regVnode) merge(key []byte, v uint64) (uint64, error) {
	cur, err := r.load(key)
	if err != nil || v <= cur {
		return cur, err
	}
	return v, r.env.Store.Put(key, binary.BigEndian.AppendUint64(nil, v))
}

func (r *regVnode) HandleCommand(cmd any, _ vnode.Sender) vnode.Result {
	switch c := cmd.(type) {
	case *regRead:
		v, err := r.load(c.Key)
		return vnode.Reply(regReplyOf(c.Tag, v, false, err))
	case *regWrite:
		v, err := r.merge(c.Key, c.Value)
		return vnode.Reply(regReplyOf(c.Tag, v, true, err))
	case *regDrop:
		d := &regDropped{}
		for i, k := range c.keys {
			raw, err := r.env.Store.Get(k)
			if err == nil && bytes.Equal(raw, c.values[i]) {
				if err = r.env.Store.Delete(k); err == nil {
					d.n++
				}
			}
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				d.err = err
				break
			}
		}
		return vnode.Reply(d)
	}
	return vnode.NoReply()
}

func regReplyOf(tag uint32, v uint64, write bool, err error) *regReply {
	rep := &regReply{V: 1, Tag: tag, Value: v, Write: write}
	if err != nil {
		rep.Err = err.Error()
	}
	return rep
}

// HandleHandoffCommand applies a write and forwards it to the new owner, so no write taken during a
// handoff is lost.
func (r *regVnode) HandleHandoffCommand(cmd any, from vnode.Sender) (vnode.Result, []byte) {
	res := r.HandleCommand(cmd, from)
	if w, ok := cmd.(*regWrite); ok {
		if rep, ok := res.Reply().(*regReply); ok && rep.Err == "" {
			item, _ := r.EncodeHandoffItem(w.Key, binary.BigEndian.AppendUint64(nil, rep.Value))
			return res, item
		}
	}
	return res, nil
}

func (r *regVnode) HandoffFold(fn func(key, value []byte) error) error { return r.env.Store.Fold(fn) }

// EncodeHandoffItem: uvarint key length, key, 8-byte value.
func (r *regVnode) EncodeHandoffItem(key, value []byte) ([]byte, error) {
	out := binary.AppendUvarint(nil, uint64(len(key)))
	return append(append(out, key...), value...), nil
}

func (r *regVnode) HandleHandoffData(data []byte) error {
	n, w := binary.Uvarint(data)
	if w <= 0 || n > uint64(len(data)-w) || uint64(len(data)-w)-n != 8 {
		return errors.New("reg: bad handoff item")
	}
	key := data[w : w+int(n)]
	_, err := r.merge(key, binary.BigEndian.Uint64(data[w+int(n):]))
	return err
}

func (r *regVnode) IsEmpty() (bool, error) { return r.env.Store.IsEmpty() }
func (r *regVnode) Delete() error          { return r.env.Store.Drop() }
func (r *regVnode) Terminate(any)          {}

// regProto is the coordinators' view of reg's values: 0 is "not found", merge is max.
type regProto struct{}

func (regProto) Missing(v uint64) bool    { return v == 0 }
func (regProto) Equal(a, b uint64) bool   { return a == b }
func (regProto) Merge(a, b uint64) uint64 { return max(a, b) }
func (regProto) Decode(msg any) (coordinator.Reply[uint64], bool) {
	rep, ok := msg.(*regReply)
	if !ok {
		return coordinator.Reply[uint64]{}, false
	}
	out := coordinator.Reply[uint64]{Tag: rep.Tag, Value: rep.Value, Write: rep.Write}
	if rep.Err != "" {
		out.Err = errors.New(rep.Err)
	}
	return out, true
}

// regOp builds one request's commands: a read (value 0) or a write of value.
type regOp struct{ value uint64 }

func (o *regOp) Command(key []byte, tag uint32) any {
	if o.value == 0 {
		return &regRead{V: 1, Tag: tag, Key: key}
	}
	return &regWrite{V: 1, Tag: tag, Key: key, Value: o.value}
}
func (o *regOp) Replicate(key []byte, tag uint32, v uint64) any {
	return &regWrite{V: 1, Tag: tag, Key: key, Value: v}
}
func (o *regOp) Reap([]byte, uint64) any { return nil }

// regClient is reg's client side: its RPC methods over its coordinators.
type regClient struct{ h service.Host }

func (r *regClient) put(ctx context.Context, params []any) (any, error) {
	key, err := rpc.Bytes(params, 0, "key")
	if err != nil {
		return nil, err
	}
	v, err := intParam(params, 1)
	if err != nil || v <= 0 {
		return nil, &rpc.Error{Code: rpc.CodeBadRequest, Message: "value: want an integer > 0"}
	}
	_, err = coordinator.Write(ctx, r.h.Coordinators, regProto{}, key, coordinator.WriteOptions{}, regOp{value: uint64(v)})
	return true, err
}

func (r *regClient) get(ctx context.Context, params []any) (any, error) {
	key, err := rpc.Bytes(params, 0, "key")
	if err != nil {
		return nil, err
	}
	v, err := coordinator.Read(ctx, r.h.Coordinators, regProto{}, key, coordinator.ReadOptions{}, regOp{})
	if err != nil {
		return nil, err
	}
	if v == 0 {
		return nil, &rpc.Error{Code: rpc.CodeNotFound, Message: "not found"}
	}
	return v, nil
}

// vnodeGet reads this node's vnode of a partition: [partition, key] -> value (0: none).
func (r *regClient) vnodeGet(ctx context.Context, params []any) (any, error) {
	p, err := intParam(params, 0)
	if err != nil {
		return nil, err
	}
	key, err := rpc.Bytes(params, 1, "key")
	if err != nil {
		return nil, err
	}
	pid := r.h.Vnodes.PID(int(p))
	if pid == nil {
		return nil, &rpc.Error{Code: rpc.CodeNotFound, Message: "no such vnode"}
	}
	res, err := actors.Request(ctx, r.h.System, pid, &regRead{V: 1, Key: key}, r.h.Timeout)
	if err != nil {
		return nil, err
	}
	rep, ok := res.(*regReply)
	if !ok || rep.Err != "" {
		return nil, fmt.Errorf("reg: vnode_get: %v", res)
	}
	return rep.Value, nil
}
