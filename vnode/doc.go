// Package vnode is gokai's vnode framework (riak_core's vnode and vnode_master): the vnode actor that serves
// one ring partition, the vnode supervisor (Manager) that runs one vnode per partition the node holds, the
// Behaviour interface (riak_core's vnode callbacks in Go) that a service implements, and the handoff protocol
// every behaviour gets for free (BeginHandoff ... HandoffDrop, HandoffBatch and HandoffForward on the wire,
// FoldRequest and IsEmptyRequest for the node's scans).
//
// Vnode actors: a vnode's state lives in storage (one goleveldb per node, partition-prefixed keys), so a
// vnode that panics is restarted alone by the vnode supervisor, and its behaviour reopens its partition in
// Init. A behaviour that acknowledges a write only after storage took it loses nothing it acknowledged. Past
// its restart limit a vnode stops and the manager escalates to the node.
//
// It does not own any service: the KV behaviour, its objects and its messages are package kv, which imports
// this one (never the other way round). Nor does it own where partitions live (ring, membership), how many
// replicas answer (coordinator), nor the storage engine (storage).
//
// Concurrency: a Behaviour is called by its vnode actor only, one message at a time. Manager methods are
// safe for concurrent use.
package vnode
