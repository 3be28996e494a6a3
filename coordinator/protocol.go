package coordinator

// What a service gives the coordinators: a Protocol (how its values merge, how to read its replicas'
// replies), once, and an Op per request (the commands that request sends). KV's are in package kv.

// Protocol is what the coordinators need to know about one service's values and replies. Its methods are
// called from request actors, concurrently for different requests: they must be safe for concurrent use,
// must not block, and must not modify the values they are given.
type Protocol[V any] interface {
	Values[V]
	// Decode reads a message a replica sent the request actor: the reply to a command (Op.Command or
	// Op.Replicate) sent with tag r.Tag. ok is false for a message that is none of the service's replies
	// (the actor ignores it).
	Decode(msg any) (r Reply[V], ok bool)
}

// Reply is a replica's answer, as Protocol.Decode reads it.
type Reply[V any] struct {
	// Tag is the tag of the command it answers: the index of the replica in the request's targets.
	Tag uint32
	// Value is the replica's value: for a read, its copy of the key (Values.Missing: it holds none); for
	// the coordinating write, the value it wrote, which the coordinator replicates to the others. Ignored
	// for other writes.
	Value V
	// Err is set when the replica failed the command (a storage error, a full disk, a rejected write). It
	// counts as that replica's failure (and is reported to the Router), never toward a quorum.
	Err error
	// Write marks the acknowledgement of a write (Op.Command of a write, Op.Replicate). A read ignores
	// those (they acknowledge its repairs), and a write ignores replies that are not.
	Write bool
}

// Op builds the commands of one request. The request actor holds the op by value (Read and Write take it
// by value), so the commands it builds can live in the actor's own allocation: KV's read keeps its fan-out
// messages there and allocates none.
//
// Its methods are called by the request actor only, one at a time, and must not block. A command is sent
// to a replica's vnode with the actor as sender; the vnode's behaviour answers it with a message Decode
// reads, carrying the command's tag. The messages must not be modified once returned (they may be read
// by a vnode or encoded for another node after the call).
type Op[V any] interface {
	// Command is the request's own command for the target tag: the read sent to every replica (Read), or
	// the write sent to the coordinating replica (Write), which applies it and answers with the value to
	// replicate (KV: mints the new version).
	Command(key []byte, tag uint32) any
	// Replicate is the command that makes the target tag hold v, merged with what it holds: the
	// replication of a write's value to the other replicas and fallbacks, and the read repair of a
	// replica that answered with less. The reply's Value is ignored.
	Replicate(key []byte, tag uint32, v V) any
	// Reap is the command sent, without a reply, to every replica once a write that asked for it
	// (WriteOptions.ReapAfter) was stored by all of them, ReapAfter later (KV: drop a tombstone that every
	// replica holds). nil sends nothing. Reads never call it.
	Reap(key []byte, v V) any
}

// OpPtr constrains the op type O of Read and Write: its pointer implements Op[V]. Callers never name it:
// Go infers it from the op they pass.
type OpPtr[V, O any] interface {
	*O
	Op[V]
}
