// Package vnode owns gokai's virtual nodes: the vnode actor that serves one ring partition, the vnode
// supervisor (Manager) that runs one vnode per partition the node holds, the Behaviour interface (riak_core's
// vnode callbacks in Go), and the first behaviour, KV, with its pure object model.
//
// Object model (object.go, vclock.go; pure, no clock, no I/O): an Object is a set of siblings plus a causal
// context (a version vector of vnode actor ids). Each sibling carries a dot, the (actor, counter) event that
// wrote it: dotted version vectors as in Riak 2.0. A write at a coordinating vnode (Update) drops the local
// siblings its context covers and adds one with a fresh dot; replication, read repair and handoff merge
// replicas with Sync. Two writes with the same context never overwrite each other (they become siblings),
// and a write with the merged context of a read supersedes exactly what that read saw.
//
// Vnode actors: a vnode's state lives in storage (one goleveldb per node, partition-prefixed keys), so a
// vnode that panics is restarted alone by the vnode supervisor, reopens its partition, and loses nothing it
// acknowledged: a write is acknowledged (PutReply) only after storage took it. Past its restart limit a
// vnode stops and the manager escalates to the node. A KV vnode keeps a bounded write-through cache of
// decoded objects (cache.go), so a hot key costs neither a storage read nor a decode.
//
// It does not own: where partitions live (membership), how many replicas answer (coordinator), nor the
// storage engine (storage).
//
// Concurrency: a Behaviour is called by its vnode actor only, one message at a time. Manager methods are
// safe for concurrent use. The object model functions are pure and never mutate their arguments.
//
// Objects are immutable once made: a vnode's replies and its cache share them, so no caller may modify an
// Object (or its Value and Clock slices) it received; derive a new one (Update, Sync, Clone) instead.
package vnode
