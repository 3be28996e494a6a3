package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/internal/mpscan"
	rpc "github.com/gokai-kv/gokai/protocol/msgpackrpc"
	"github.com/gokai-kv/gokai/ring"
)

// The control plane: node-to-node calls (a joining node's stage join, a handoff's transfer done, operator
// changes and flush epochs forwarded to the claimant, a claimant's new state handed to members directly
// (flush.go), gossip key rotation, a seed's join information) travel over the
// transport to every node's control actor, never over the client port. With certificates the transport
// authenticates the calling node (actors.Peer), and each method checks the caller may make it: a node
// stages only its own join and reports only its own transfers; forwarded operator changes and keyring steps
// come only from members.

// ControlName is every node's control actor.
const ControlName = "control"

// Wire codes of the control plane (block 40..47).
const (
	WireControlRequest actors.WireType = 40
	WireControlReply   actors.WireType = 41
)

// ControlRequest asks a node's control actor to run Method with Params (a msgpack array, the same shapes
// as the msgpack-RPC method of the same name).
type ControlRequest struct {
	V      uint8  `msgpack:"v"`
	Method string `msgpack:"m"`
	Params []byte `msgpack:"p"`
}

// ControlReply answers a ControlRequest: Result (msgpack), or an error Code and Message (msgpack-RPC's
// codes).
type ControlReply struct {
	V       uint8  `msgpack:"v"`
	Result  []byte `msgpack:"r"`
	Code    string `msgpack:"c"`
	Message string `msgpack:"e"`
}

func init() {
	actors.RegisterWire(WireControlRequest, func() any { return &ControlRequest{} })
	actors.RegisterWire(WireControlReply, func() any { return &ControlReply{} })
	actors.AllowRemoteTarget(ControlName)
}

// controlTimeout bounds one control call; controlLimits a decoded params or result.
const controlTimeout = 10 * time.Second

var controlLimits = mpscan.Limits{MaxBytes: 1 << 20, MaxDepth: 8, MaxElems: 1 << 16}

// controlActor runs control calls, each on its own goroutine (some wait on gossip or the claimant), and
// answers the caller when it is done.
type controlActor struct{ n *Node }

func (a *controlActor) Receive(ctx actor.Context) {
	req, ok := ctx.Message().(*ControlRequest)
	if !ok || ctx.Sender() == nil {
		return
	}
	peer, remote := actors.Peer(ctx)
	sender, sys := ctx.Sender(), ctx.ActorSystem()
	go func() {
		c, cancel := context.WithTimeout(context.Background(), controlTimeout)
		defer cancel()
		sys.Root.Send(sender, a.n.serveControl(c, req, caller{peer: ring.NodeID(peer), remote: remote}))
	}()
}

// caller is who made a control call: a local call, or another node (authenticated by name with TLS).
type caller struct {
	peer   ring.NodeID
	remote bool
}

// mayActAs reports whether the caller may make a call on behalf of node: a local call, a node without TLS
// (the transport is then trusted: loopback or -insecure), or the node itself.
func (n *Node) mayActAs(c caller, node ring.NodeID) bool {
	return !c.remote || n.pki == nil || c.peer == node
}

// isMemberCaller reports whether the caller is local, unauthenticated (no TLS), or a member.
func (n *Node) isMemberCaller(c caller) bool {
	if !c.remote || n.pki == nil {
		return true
	}
	_, ok := n.state().Member(c.peer)
	return ok
}

func (n *Node) serveControl(ctx context.Context, req *ControlRequest, c caller) *ControlReply {
	var params []any
	if len(req.Params) > 0 {
		if err := decodeBounded(req.Params, &params); err != nil {
			return controlError(&rpc.Error{Code: "bad_request", Message: "params: " + err.Error()})
		}
	}
	out, err := n.control(ctx, req.Method, params, c)
	if err != nil {
		return controlError(err)
	}
	b, err := msgpack.Marshal(out)
	if err != nil {
		return controlError(err)
	}
	return &ControlReply{V: 1, Result: b}
}

func controlError(err error) *ControlReply {
	var re *rpc.Error
	if errors.As(err, &re) {
		return &ControlReply{V: 1, Code: re.Code, Message: re.Message}
	}
	return &ControlReply{V: 1, Code: "internal", Message: err.Error()}
}

var errNotAllowed = &rpc.Error{Code: "forbidden", Message: "the calling node may not make this call"}

// control runs one control method for caller c.
func (n *Node) control(ctx context.Context, method string, params []any, c caller) (any, error) {
	switch method {
	case "join_info":
		// Any node of the cluster's CA may ask (it is about to join); without TLS the transport is trusted.
		s := n.state()
		return map[string]any{"name": string(n.self()), "cluster": s.Cluster, "gossip": n.cl.gossip.Addr()}, nil
	case "cluster_stage_join":
		m, err := memberParam(params)
		if err != nil {
			return nil, err
		}
		if !n.mayActAs(c, m.Name) {
			return nil, errNotAllowed
		}
		return n.applyClaimant(method, params)
	case "cluster_transfer_done":
		from, err := rpc.Bytes(params, 1, "from")
		if err != nil {
			return nil, err
		}
		if !n.mayActAs(c, ring.NodeID(from)) {
			return nil, errNotAllowed
		}
		return n.applyClaimant(method, params)
	case "cluster_leave", "cluster_clear", "cluster_plan", "cluster_commit":
		if !n.isMemberCaller(c) {
			return nil, errNotAllowed
		}
		return n.applyClaimant(method, params)
	case "cluster_flush":
		if !n.isMemberCaller(c) {
			return nil, errNotAllowed
		}
		return n.applyFlush(ctx, params)
	case "cluster_state":
		if !n.isMemberCaller(c) {
			return nil, errNotAllowed
		}
		return n.installState(params)
	case "keyring":
		if !n.isMemberCaller(c) {
			return nil, errNotAllowed
		}
		return n.keyringLocal(params)
	}
	return nil, rpc.ErrUnknownMethod(method)
}

// callNode runs a control method on the node whose transport address is addr.
func (n *Node) callNode(ctx context.Context, addr, method string, params []any) (any, error) {
	var pb []byte
	if params != nil {
		var err error
		if pb, err = msgpack.Marshal(params); err != nil {
			return nil, err
		}
	}
	res, err := actors.Request(ctx, n.system, n.cl.remote.PID(addr, ControlName),
		&ControlRequest{V: 1, Method: method, Params: pb}, controlTimeout)
	if err != nil {
		return nil, fmt.Errorf("cluster: %s at %s: %w", method, addr, err)
	}
	rep, ok := res.(*ControlReply)
	if !ok {
		return nil, fmt.Errorf("cluster: %s at %s: unexpected reply %T", method, addr, res)
	}
	if rep.Code != "" {
		return nil, &rpc.Error{Code: rep.Code, Message: rep.Message}
	}
	var out any
	if len(rep.Result) > 0 {
		if err := decodeBounded(rep.Result, &out); err != nil {
			return nil, fmt.Errorf("cluster: %s at %s: result: %w", method, addr, err)
		}
	}
	return out, nil
}

// decodeBounded decodes msgpack from another node after checking its structure (mpscan).
func decodeBounded(b []byte, v any) error {
	n, err := mpscan.Scan(b, controlLimits)
	if err != nil {
		return err
	}
	if n != len(b) {
		return fmt.Errorf("%d trailing bytes", len(b)-n)
	}
	return msgpack.Unmarshal(b, v)
}

// transportAddr is a member's transport address: gossip's view first (current), else the cluster state.
func (n *Node) transportAddr(node ring.NodeID) string {
	if addr, ok := (*n.cl.live.Load())[node]; ok {
		return addr
	}
	for _, m := range n.cl.gossip.Members() {
		if m.Name == node && m.TransportAddr != "" {
			return m.TransportAddr
		}
	}
	if m, ok := n.state().Member(node); ok {
		return m.TransportAddr
	}
	return ""
}

// startControl spawns the control actor (after the transport: its PID must carry the node's address).
func (n *Node) startControl(context.Context) error {
	props := actors.WireProps(actor.PropsFromProducer(func() actor.Actor { return &controlActor{n: n} }))
	if _, err := n.system.Root.SpawnNamed(props, ControlName); err != nil {
		return fmt.Errorf("control: %w", err)
	}
	return nil
}
