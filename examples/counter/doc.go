// Package counter is a service built on gokai from scratch, the one docs/extending.md walks through: named
// PN-counters, a state-based CRDT, replicated N ways with quorums, handed off, repaired and re-homed by the
// runtime. Run it with its binary (cmd/gokai-counter: a gokai node with KV and counters) and call
// counter.incr(name, by) and counter.value(name) over msgpack-RPC.
//
// What it is made of, one file per part:
//
//   - state.go: the CRDT, pure. Per counter, per actor (a vnode incarnation: node/partition/epoch), grow-only
//     totals P (increments) and N (decrements); Merge is the pointwise max of every entry (commutative,
//     associative, idempotent); the value is sum(P) - sum(N). A hardened binary encoding.
//   - vnode.go: the vnode behaviour. An increment is applied by one replica, the coordinating vnode, under
//     its own actor id; every other replica only merges states it is sent. Handoff folds and merges whole
//     states; during a handoff the framework forwards commands to the new owner (its default).
//   - messages.go: the wire messages (codes 1024..1027) and their replies.
//   - coordinator.go: the coordinator protocol (merge, equality, replies) and the two requests: Incr
//     (coordinator.Write: apply at one vnode, replicate its new state, W acknowledgements) and Value
//     (coordinator.Read: R replies merged; late and stale replicas read-repaired with the merge).
//   - rpc.go: the msgpack-RPC methods; service.go: the service.Service a node registers.
//
// Why one replica applies an increment: an increment is not idempotent, a state is. Applied by one vnode
// under its own actor id, it becomes a state that can be merged anywhere any number of times; applied by
// every replica under one shared id, concurrent increments would overwrite each other (riak's counters
// work the same way: vnode_vclocks). An increment whose request failed or timed out may or may not have been
// applied (indeterminate); one that was acknowledged is in W replicas' states and survives any later merge.
//
// Limits: |by| < 2^53 per increment; the value and every actor's totals stay in the int64 range (an
// increment that would leave it is refused whole); a name is 1..1024 bytes. An actor's entry is never
// removed, even once its vnode's data was handed off and dropped (removing it safely would need every
// replica to agree that it was merged everywhere), so a counter gains an entry per vnode incarnation that
// ever coordinated one of its increments; past MaxActors (1024) the counter refuses increments coordinated
// by a new actor.
//
// Concurrency: the vnode behaviour runs in its vnode actor, one message at a time; Client and the methods are
// safe for concurrent use. It does not own quorums, routing, handoff or supervision (the runtime's), nor a
// node's assembly (node, cmd).
package counter
