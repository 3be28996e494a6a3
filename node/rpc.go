package node

import (
	"context"
	"errors"
	"io/fs"
	"os"

	"github.com/gokai-kv/gokai/client"
	rpc "github.com/gokai-kv/gokai/protocol/msgpackrpc"
	"github.com/gokai-kv/gokai/service"
)

// rpcHandler serves gokai's msgpack-RPC API (docs/msgpack-rpc.md): the node's own methods and its services'.
type rpcHandler struct{ n *Node }

var _ rpc.Handler = rpcHandler{}

// ProtocolVersion is the msgpack-RPC API version reported by `version`.
const ProtocolVersion = 1

// operatorMethods change the cluster: they need an operator (isOperator), as do the services' methods marked
// Operator.
var operatorMethods = map[string]bool{"cluster_join": true, "cluster_leave": true, "cluster_clear": true,
	"cluster_plan": true, "cluster_commit": true, "cluster_keys": true}

// errNotOperator is the answer to an operator method from a client that is not one.
var errNotOperator = &rpc.Error{Code: "forbidden", Message: "an operator method: connect over TLS with an operator certificate " +
	"(gokai certs create-client), or from loopback on a node without certificates"}

// Call serves a service's method (service.Instance.Methods, by "<service>.<method>", the default service's
// also by "<method>") or one of the node's own.
func (h rpcHandler) Call(ctx context.Context, method string, params []any) (any, error) {
	if m, ok := h.n.methods[method]; ok {
		if m.Operator && !h.n.isOperator(ctx) {
			return nil, errNotOperator
		}
		res, err := m.Call(ctx, params)
		if err != nil {
			return nil, service.RPCError(err)
		}
		return res, nil
	}
	if operatorMethods[method] && !h.n.isOperator(ctx) {
		return nil, errNotOperator
	}
	switch method {
	case "ping":
		return "pong", nil
	case "version":
		return map[string]any{"version": Version, "protocol": ProtocolVersion}, nil
	case "stats":
		return h.n.statsMap(), nil
	case "ring":
		return h.n.ringInfo(), nil
	case "members":
		return h.n.members(), nil
	case "cluster_status":
		return h.n.clusterStatus(), nil
	case "transfers":
		return h.n.transfersInfo(), nil
	case "aae_status":
		return h.n.aaeStatus(), nil
	case "cluster_join":
		seed, err := rpc.Bytes(params, 0, "seed")
		if err != nil {
			return nil, err
		}
		if err := h.n.joinCluster(ctx, string(seed)); err != nil {
			return nil, h.clusterError(err)
		}
		return true, nil
	case "cluster_keys":
		out, err := h.n.clusterKeys(ctx, params)
		if err != nil {
			return nil, h.clusterError(err)
		}
		return out, nil
	case "cluster_leave", "cluster_clear", "cluster_plan", "cluster_commit":
		if method == "cluster_leave" && len(params) == 0 {
			params = []any{string(h.n.self())}
		}
		out, err := h.n.claimant(ctx, method, params)
		if err != nil {
			return nil, h.clusterError(err)
		}
		return out, nil
	case "preflist":
		key, err := rpc.Bytes(params, 0, "key")
		if err != nil {
			return nil, err
		}
		return h.n.preflistInfo(key), nil
	default:
		return nil, rpc.ErrUnknownMethod(method)
	}
}

// clusterError keeps structured errors (from the claimant) and wraps others.
func (h rpcHandler) clusterError(err error) error {
	var re *rpc.Error
	if errors.As(err, &re) {
		return re
	}
	var ce *client.Error
	if errors.As(err, &ce) {
		return &rpc.Error{Code: ce.Code, Message: ce.Message}
	}
	msg := err.Error()
	if namesAFile(err) {
		msg = "the cluster operation failed on a file; the details are in the node's log"
		h.n.logger.Warn("cluster operation failed", "err", err)
	}
	return &rpc.Error{Code: "unavailable", Message: msg, Cause: err}
}

// namesAFile reports whether err's text quotes a file's path (an os or fs error in its chain).
func namesAFile(err error) bool {
	var pe *fs.PathError
	var le *os.LinkError
	return errors.As(err, &pe) || errors.As(err, &le)
}
