package memcache

import (
	"context"
	"time"
)

// Value is one sibling as memcache sees it.
type Value struct {
	Data    []byte
	Flags   uint32
	Expiry  int64 // absolute unix seconds, 0 = never
	LastMod int64 // unix nanoseconds
}

// Entry is a read result. Siblings holds all live (not deleted, not expired) siblings, Chosen indexes the one a
// plain `get` returns (gokai's rule: newest LastMod). Cas names the whole sibling set (hash of the causal
// context); Context (filled in when the Get asked for it, Read.Context) is the opaque causal context to
// pass back to Set/Delete (as Supersede{Context: Context}) to supersede exactly these siblings. A miss may carry a Context too: that of the tombstones (or expired
// siblings) the read found, which a write over it supersedes; a miss that found nothing has an empty one.
type Entry struct {
	Found    bool
	Siblings []Value
	Chosen   int
	Cas      uint64
	Context  []byte
}

// Supersede says which of a key's siblings a write replaces. The zero value replaces none: the write becomes
// a sibling of whatever the key holds, so it can never drop a value its writer did not see (Riak's rule for a
// write without a context). A write replaces more only when asked: with the context of a read, or blind.
type Supersede struct {
	// Blind asks for a blind write: it replaces whatever the coordinating replica holds when it applies the
	// write, seen or not (plain `set`, memcached's last-writer-wins). Writes that replica has not seen yet
	// stay siblings of it. Context must be empty.
	Blind bool
	// Context is the causal context of an earlier read (Entry.Context): the write replaces exactly the
	// siblings (and tombstones) that read returned. Empty (nil or zero length) replaces nothing.
	Context []byte
}

// Read says what a Store.Get must fill in beyond an Entry's values and cas. The zero value asks for the
// least: what a plain `get` shows.
type Read struct {
	// Context asks for Entry.Context. The server asks for it only when it writes over what it read (cas,
	// add, append, incr, touch, gat, mg with T, ...); a plain get, gets or mg shows values and the cas unique
	// only, so the Store may leave Context empty and skip encoding it.
	Context bool
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
	// Get reads key. Entry.Context is filled in when want.Context is set (a Store may fill it in always);
	// everything else in the Entry does not depend on want.
	Get(ctx context.Context, key []byte, want Read) (Entry, error)
	// Set writes v, replacing the siblings over says (see Supersede: the zero value replaces none). v.LastMod
	// is the server's clock at the request; the Store may restamp it. A Supersede with both Blind and a
	// Context is an error.
	//
	// It returns the cas unique of what the write left (binary SET and meta ms hand it to the client): when
	// v is then the key's only live sibling, the Entry.Cas a later Get returns if nothing newer arrives;
	// when siblings the writer did not see survive the write, a value no Get returns, so that a cas with it
	// fails (EXISTS) instead of superseding siblings its writer never saw. Never 0.
	Set(ctx context.Context, key []byte, v Value, over Supersede) (cas uint64, err error)
	// Delete writes a tombstone that replaces the siblings over says, as Set.
	Delete(ctx context.Context, key []byte, over Supersede) error
	// FlushAll makes every value written at or before at read as gone from at on (at once when at is not
	// in the future): memcached's flush_all and its delayed form. at is the server's clock (Config.Now).
	// The Store records a delayed flush itself (the server keeps no timer); a later call with an earlier
	// at must not uncover what an earlier call hid. A Store that cannot record the flush returns an
	// error and the client is told so.
	FlushAll(ctx context.Context, at time.Time) error
	Stats() []Stat // gokai's own counters, appended to `stats` output
}

// Stat is one "STAT <name> <value>" line. Name must not hold spaces; neither may hold CR or LF.
type Stat struct{ Name, Value string }
