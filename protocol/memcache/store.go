package memcache

import "context"

// Value is one sibling as memcache sees it.
type Value struct {
	Data    []byte
	Flags   uint32
	Expiry  int64 // absolute unix seconds, 0 = never
	LastMod int64 // unix nanoseconds
}

// Entry is a read result. Siblings holds all live (not deleted, not expired) siblings, Chosen indexes the one a
// plain `get` returns (gokai's rule: newest LastMod). Cas names the whole sibling set (hash of the causal
// context); Context is the opaque causal context to pass back to Set/Delete to supersede exactly these
// siblings.
type Entry struct {
	Found    bool
	Siblings []Value
	Chosen   int
	Cas      uint64
	Context  []byte
}

// Store is what the memcache server needs from gokai; the node implements it.
//
// Methods are called concurrently, from one goroutine per client connection, and may block (a quorum read or
// write); they must honour ctx, which is cancelled when the server is forced to stop.
//
// Ownership: the server passes fresh copies of keys and of Value.Data and never touches them after the call,
// so a Store may keep them (for example in messages to replicas that outlive the call). The server only reads
// the slices of a returned Entry (and hands Entry.Context and sibling data back to Set), never writes to them.
type Store interface {
	Get(ctx context.Context, key []byte) (Entry, error)
	// Set writes v. context nil = blind write (supersedes what the coordinating replica holds); non-nil =
	// supersede exactly the siblings that context describes. v.LastMod is the server's clock at the request;
	// the Store may restamp it.
	Set(ctx context.Context, key []byte, v Value, context []byte) error
	Delete(ctx context.Context, key []byte, context []byte) error
	FlushAll(ctx context.Context) error
	Stats() []Stat // gokai's own counters, appended to `stats` output
}

// Stat is one "STAT <name> <value>" line. Name must not hold spaces; neither may hold CR or LF.
type Stat struct{ Name, Value string }
