package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/gokai-kv/gokai/internal/pki"
	"github.com/gokai-kv/gokai/membership"
	rpc "github.com/gokai-kv/gokai/protocol/msgpackrpc"
)

// Gossip key rotation, cluster-wide (`gokai cluster keys`): every step (install, use, remove) runs on every
// member over the transport, and each node saves its keyring, so a restart keeps the rotated keys.
// The order that never cuts a node off: install the new key everywhere, use it everywhere, then remove the
// old one. list shows each node's keys (as SHA-256 prefixes: keys never leave a node).

// keyringOps are the steps.
var keyringOps = map[string]bool{"list": true, "install": true, "use": true, "remove": true}

// keyringLocal runs one step on this node: params [op, key (base64; not for list)].
func (n *Node) keyringLocal(params []any) (any, error) {
	op, key, err := keyringParams(params)
	if err != nil {
		return nil, err
	}
	g := n.cl.gossip
	switch op {
	case "install":
		err = g.InstallKey(key)
	case "use":
		err = g.UseKey(key)
	case "remove":
		err = g.RemoveKey(key)
	}
	if errors.Is(err, membership.ErrNoKeyring) {
		return nil, &rpc.Error{Code: "bad_request", Message: "gossip is not encrypted on this node (start it with -certs-dir)"}
	}
	if err != nil {
		return nil, &rpc.Error{Code: "bad_request", Message: err.Error()}
	}
	primary, all, err := g.Keys()
	if err != nil {
		return nil, &rpc.Error{Code: "bad_request", Message: err.Error()}
	}
	if op != "list" {
		if err := n.saveKeyring(primary, all); err != nil {
			return nil, fmt.Errorf("keyring: save: %w", err)
		}
		n.logger.Info("gossip keyring changed", "op", op, "key", pki.KeyID(key), "keys", len(all))
	}
	ids := make([]any, len(all))
	for i, k := range all {
		ids[i] = pki.KeyID(k)
	}
	return map[string]any{"primary": pki.KeyID(primary), "keys": ids}, nil
}

func keyringParams(params []any) (string, []byte, error) {
	op, err := rpc.Bytes(params, 0, "op")
	if err != nil {
		return "", nil, err
	}
	if !keyringOps[string(op)] {
		return "", nil, &rpc.Error{Code: "bad_request", Message: fmt.Sprintf("keys %q: want list, install, use or remove", op)}
	}
	if string(op) == "list" {
		return "list", nil, nil
	}
	raw, err := rpc.Bytes(params, 1, "key")
	if err != nil {
		return "", nil, err
	}
	key, err := pki.ParseGossipKey(string(raw))
	if err != nil {
		return "", nil, &rpc.Error{Code: "bad_request", Message: err.Error()}
	}
	return string(op), key, nil
}

// clusterKeys runs a keyring step on every member, this node first, and reports each node's result. It
// fails (after trying every node) if any member could not take the step: rerun it before the next step.
func (n *Node) clusterKeys(ctx context.Context, params []any) (any, error) {
	if _, _, err := keyringParams(params); err != nil {
		return nil, err
	}
	out := map[string]any{}
	failed := 0
	for _, m := range n.state().Members {
		var res any
		var err error
		if m.Name == n.self() {
			res, err = n.keyringLocal(params)
		} else if addr := n.transportAddr(m.Name); addr == "" {
			err = errors.New("no transport address")
		} else {
			res, err = n.callNode(ctx, addr, "keyring", params)
		}
		if err != nil {
			failed++
			out[string(m.Name)] = map[string]any{"error": err.Error()}
			continue
		}
		out[string(m.Name)] = res
	}
	if failed > 0 {
		return nil, &rpc.Error{Code: "partial", Message: fmt.Sprintf("%d of %d nodes did not take the step; run it again", failed, len(n.state().Members)),
			Fields: map[string]any{"nodes": out}}
	}
	return out, nil
}
