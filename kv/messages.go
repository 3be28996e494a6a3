package kv

import "github.com/gokai-kv/gokai/storage"

// Messages the KV behaviour handles. Field tags are explicit because these structs cross the node-to-node
// transport once the cluster exists; V is the wire version (1). Replies echo Tag, which the sender uses to
// match a reply to the replica it asked.

// Error codes carried by replies (append-only: they cross the wire).
const (
	CodeOK              = ""
	CodeTooManySiblings = "too_many_siblings"
	CodeStorage         = "storage"
	CodeBadRequest      = "bad_request"
	CodeDiskFull        = "disk_full" // the replica's disk is full: it takes no write until space is freed
)

// ErrDiskFull is what a coordinator makes of a replica's CodeDiskFull: the same error as storage's, so
// errors.Is(err, storage.ErrDiskFull) holds on both sides of the wire.
var ErrDiskFull = storage.ErrDiskFull

// GetRequest asks a vnode for its copy of Key.
type GetRequest struct {
	V   uint8  `msgpack:"v"`
	Tag uint32 `msgpack:"t"`
	Key []byte `msgpack:"k"`
}

// GetReply carries a vnode's copy of the key: Object is nil when the vnode holds nothing for it. Tombstones
// and expired siblings are included: the coordinator reconciles and hides them.
type GetReply struct {
	V         uint8   `msgpack:"v"`
	Tag       uint32  `msgpack:"t"`
	Partition int     `msgpack:"p"`
	Object    *Object `msgpack:"o"`
	Code      string  `msgpack:"c"`
	Err       string  `msgpack:"e"`
}

// PutRequest writes Key at a vnode. With Coordinate, the vnode is the write's coordinator: it applies the
// client's write (Value, Meta, Context/Blind) with Update, minting a new dot with its own actor id, and
// replies with the resulting object, which the coordinator then replicates. Without Coordinate, Object is
// merged into the vnode's copy with Sync (replication, read repair, handoff).
type PutRequest struct {
	V          uint8   `msgpack:"v"`
	Tag        uint32  `msgpack:"t"`
	Key        []byte  `msgpack:"k"`
	Coordinate bool    `msgpack:"co"`
	Context    VClock  `msgpack:"cx"`
	Blind      bool    `msgpack:"b"`
	Value      []byte  `msgpack:"val"`
	Meta       Meta    `msgpack:"m"`
	Object     *Object `msgpack:"o"`
	// ReturnObject asks a replicating vnode to send back its merged object (coordinating vnodes always do).
	ReturnObject bool `msgpack:"r"`
}

// PutReply acknowledges a PutRequest once the write is in the vnode's storage.
type PutReply struct {
	V         uint8   `msgpack:"v"`
	Tag       uint32  `msgpack:"t"`
	Partition int     `msgpack:"p"`
	Object    *Object `msgpack:"o"`
	Code      string  `msgpack:"c"`
	Err       string  `msgpack:"e"`
}

// ReapRequest removes Key's tombstone if the vnode's copy is still only tombstones (or expired values) and
// Clock descends it, i.e. no write the reaper has not seen arrived since. It has no reply.
type ReapRequest struct {
	V     uint8  `msgpack:"v"`
	Key   []byte `msgpack:"k"`
	Clock VClock `msgpack:"c"`
}

// DropRequest removes each Keys[i] whose stored object is still exactly Objects[i] (the encoded object a
// fold read), so that nothing written since is lost: the node's re-home sends a vnode's misplaced keys to
// the vnodes of their preference list, then drops them here. The reply is *DropReply. Local only (it is
// not registered on the wire).
type DropRequest struct {
	Keys    [][]byte
	Objects [][]byte
}

// DropReply answers DropRequest: Dropped keys were removed; the others changed since (or Err is set).
type DropReply struct {
	Dropped int
	Err     string
}

// KeysRequest lists up to Limit keys the vnode holds (0 = all), for operators and tests.
type KeysRequest struct {
	V     uint8 `msgpack:"v"`
	Limit int   `msgpack:"l"`
}

// KeysReply answers KeysRequest.
type KeysReply struct {
	V         uint8    `msgpack:"v"`
	Partition int      `msgpack:"p"`
	Keys      [][]byte `msgpack:"k"`
	Err       string   `msgpack:"e"`
}

// CoverKeysRequest is a coverage command (the Cmd of a vnode.CoverageRequest): the vnode streams the keys it
// holds, within the request's filter, that start with Prefix, sort after After (when set) and hold a live
// value (keys whose siblings are all tombstones or expired are left out), in ascending byte order, one key
// per chunk item. After resumes a listing: the fold seeks past it instead of reading the keys before.
type CoverKeysRequest struct {
	V      uint8  `msgpack:"v"`
	Prefix []byte `msgpack:"p"`
	After  []byte `msgpack:"a"`
}

// CountKeysRequest is a coverage command: the vnode counts the keys a CoverKeysRequest with Prefix would
// stream. The reply is *CountKeysReply.
type CountKeysRequest struct {
	V      uint8  `msgpack:"v"`
	Prefix []byte `msgpack:"p"`
}

// CountKeysReply answers CountKeysRequest; Err is set when the count is not complete.
type CountKeysReply struct {
	V         uint8  `msgpack:"v"`
	Partition int    `msgpack:"p"`
	Count     uint64 `msgpack:"n"`
	Err       string `msgpack:"e"`
}
