// Package kv is gokai's key/value service: the first service on the vnode runtime, built like any other. It
// owns the KV object model, the KV vnode behaviour, the messages between KV coordinators and KV vnodes (and
// their wire codes), and the coordination of KV's get, put and delete.
//
// Object model (object.go, vclock.go; pure, no clock, no I/O): an Object is a set of siblings plus a causal
// context (a version vector of vnode actor ids). Each sibling carries a dot, the (actor, counter) event that
// wrote it: dotted version vectors as in Riak 2.0. A write at a coordinating vnode (Update) drops the local
// siblings its context covers and adds one with a fresh dot; replication, read repair and handoff merge
// replicas with Sync. Two writes with the same context never overwrite each other (they become siblings),
// and a write with the merged context of a read supersedes exactly what that read saw.
//
// The behaviour (kv.go, cache.go): Vnode implements vnode.Behaviour. It acknowledges a write (PutReply) only
// after storage took it, keeps its actor id and dot-counter lease in its partition, and keeps a bounded
// write-through cache of decoded objects (cache.go), so a hot key costs neither a storage read nor a decode.
// During a handoff it forwards the result of every write to the new owner.
//
// Messages (messages.go, wire.go): GetRequest, PutRequest, ReapRequest and KeysRequest with their replies
// cross the node-to-node transport under the wire codes 1..7; DropRequest is local only (the node's re-home).
//
// It does not own: the vnode actors, their supervision and the handoff protocol (vnode), where replicas are
// (ring, membership), nor the storage engine (storage).
//
// Concurrency: a Vnode is called by its vnode actor only, one message at a time. The object model functions
// are pure and never mutate their arguments. Objects are immutable once made: a vnode's replies and its cache
// share them, so no caller may modify an Object (or its Value and Clock slices) it received; derive a new one
// (Update, Sync, Clone) instead.
package kv
