// Package kv is gokai's key/value service: the first service on the vnode runtime, built like any other
// (the runtime packages vnode, coordinator and handoff never import it). It owns the KV object model, the
// KV vnode behaviour, the messages between KV coordinators and KV vnodes (and their wire codes), KV's get,
// put and delete, and its faces (msgpack-RPC methods, the memcache store).
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
// During a handoff it forwards the result of every write to the new owner; as the new owner it applies a
// received batch with one storage read (a fold over the batch's keys) and one storage write
// (MergeHandoffBatch), exactly as its items one by one would merge. It opts into active
// anti-entropy (aae.go): its items are its objects, their version hash (VersionHash) covers what
// Object.Equal compares, and every object write, reap and re-home drop goes through the vnode's hash
// trees (Env.AAE); Coordinator.Repair is its repair path (docs/anti-entropy.md).
//
// Coverage (coverage.go): the behaviour serves two coverage commands (vnode.CoverageHandler), folding a
// storage snapshot on the vnode worker pool, never in the vnode actor: CoverKeysRequest streams the live
// keys (not only tombstones, not expired) of the request's hash partitions with a prefix, in byte order;
// CountKeysRequest counts them. CoverKeysRequest.After resumes a listing: the fold seeks past that key.
//
// Listing (listkeys.go, cursor.go): Lister pages through every live key once over coverage requests
// (package coverage). A page streams from a few planned vnodes at once, takes their keys as they come and
// acknowledges each chunk as soon as it took it (so no stream waits on another: see package coverage on the
// worker pool), and ends at MaxKeys keys or about 1 MiB. Its continuation (listCursor) names the hash
// partitions listed in full and the ranges listed part of the way with the last key taken from each; the
// next page resumes those on a fresh plan, after that key, whichever replica answers then, so a key is listed
// once across pages, replicas, re-plans and failed vnodes. Count sums the CountKeysReply of every planned
// vnode, asking again for the ranges whose vnode failed.
//
// Messages (messages.go, wire.go): GetRequest, PutRequest, ReapRequest and KeysRequest with their replies
// cross the node-to-node transport under the wire codes 1..7, CoverKeysRequest, CountKeysRequest and
// CountKeysReply under 64..66; DropRequest is local only (the node's re-home).
//
// Coordination (coordinator.go): Coordinator's Get, Put and Delete are thin functions over the generic
// coordinators (coordinator.Read and coordinator.Write): KV's protocol merges replicas with Sync and reads
// GetReply and PutReply; a read's op sends GetRequests (kept in the request actor's own allocation), a
// write's op sends the client's write to the coordinating vnode (Coordinate: it mints the new dot), then
// the resulting object to the others, and read repair sends the merged object. A delete is a write of a
// tombstone; with DeleteReap a ReapRequest follows once every replica stored it.
//
// Flush epochs (flush.go): reads hide every sibling written at or before the service's flush cutoff
// (Config.FlushCutoff, from the cluster state): Coordinator.Get and Put return Object.Flushed views (read
// repair and replication work on the real objects), and the coverage folds skip keys whose every sibling is
// hidden. Stored objects are never rewritten for a flush; writes supersede hidden siblings as usual.
//
// As a service (service.go, options.go, rpc.go, memcache.go): Service(Options) is what a binary registers
// with a node (node.WithService): KV keeps storage key space 0 and the vnode supervisor name "vnode-sup", so
// data dirs and clusters from before services work unchanged, and it is the node's default service: its
// msgpack-RPC methods (get, put, delete, list_keys, count, and vnode_get for operators) answer with and
// without the "kv." prefix, and it serves the memcache face (its flush_all sets KV's flush epoch:
// Host.Flush). Options holds its settings as `gokai start` flags (lww, max-siblings, vclock-*, delete-mode,
// reap-delay, object-cache-mib). Its faces map its own error (too many
// siblings) to a client code and everything else through service.Classify. DropRequest lets the node
// re-home KV's misplaced keys.
//
// It does not own: the vnode actors, their supervision and the handoff protocol (vnode), coverage plans and
// coverage request actors (coverage), quorums, timers,
// fallbacks and the request actors (coordinator), where replicas are (ring, membership), the storage engine
// (storage), nor the node that runs it (node, which does not import kv) and its listeners.
//
// Concurrency: a Vnode is called by its vnode actor only, one message at a time. Coordinator methods are
// safe for concurrent use and block until the answer or ctx. The object model functions are pure and never
// mutate their arguments. Objects are immutable once made: a vnode's replies and its cache share them, so no
// caller may modify an Object (or its Value and Clock slices) it received; derive a new one (Update, Sync,
// Clone) instead.
package kv
