package memcache

import (
	"container/list"
	"sync"
)

// itemBits are the per-item bits memcached keeps beside a value and the meta commands expose, which gokai's
// store does not hold (they are cache hints, not data): whether the item was read before (mg h), when it
// was last read (mg l), whether a client was handed the right to recache it (mg W, then Z for the others),
// and whether it was marked stale (md I, ms I; mg X).
type itemBits struct {
	fetched    bool
	tokenSent  bool
	stale      bool
	lastAccess int64 // unix seconds of the last read through this node; 0 = none seen
}

func (b itemBits) zero() bool { return b == itemBits{} }

// itemStates is the node's bounded table of itemBits, one entry per key, each naming the cas unique it
// belongs to: a key written since (through any node: its cas changed) reads as a fresh item, as a new item
// is in memcached. Entries are kept in least-recently-used order and dropped beyond maxBytes (key bytes plus
// a fixed overhead each), so the table never grows past its bound; a dropped entry reads as a fresh item
// again (never hit, no token sent, not stale), which is what memcached shows for an item it evicted and
// re-stored.
//
// The table is per node: a client that reads an item through another node sees that node's bits. The
// bits are advisory in memcached too (a token is lost with its item); gokai documents where they live.
//
// It is safe for concurrent use; it holds no clock (callers pass unix seconds) and does no I/O.
type itemStates struct {
	mu       sync.Mutex
	m        map[string]*list.Element // of *itemEntry; REQUIRES: mu held
	lru      list.List                // front = most recently used
	bytes    int
	maxBytes int
}

type itemEntry struct {
	key string
	cas uint64
	// pending: a client won the right to create the missing key (mg N) and is writing it; the cas is not
	// known yet. The first cas seen for the key while pending is adopted.
	pending bool
	bits    itemBits
}

// itemEntryOverhead approximates an entry's memory beside its key: map slot, list element, entry.
const itemEntryOverhead = 128

// defaultItemStateBytes bounds the node's item-state table: 4 MiB, some 20 thousand entries of 80-byte keys.
const defaultItemStateBytes = 4 << 20

func newItemStates(maxBytes int) *itemStates {
	t := &itemStates{m: make(map[string]*list.Element), maxBytes: maxBytes}
	t.lru.Init()
	return t
}

// update runs fn on the bits of key at cas (zero bits if the table has none for that cas), stores what fn
// leaves, and returns the bits as they were before. An entry whose bits end up zero is dropped.
func (t *itemStates) update(key []byte, cas uint64, fn func(*itemBits)) (before itemBits) {
	t.mu.Lock()
	defer t.mu.Unlock()
	el, ok := t.m[string(key)]
	var e *itemEntry
	if ok {
		e = el.Value.(*itemEntry)
		switch {
		case e.pending:
			e.cas, e.pending = cas, false
		case e.cas != cas:
			e.bits = itemBits{}
			e.cas = cas
		}
		before = e.bits
	}
	bits := before
	if fn != nil {
		fn(&bits)
	}
	switch {
	case ok && bits.zero():
		t.removeLocked(el)
	case ok:
		e.bits = bits
		t.lru.MoveToFront(el)
	case !bits.zero():
		t.insertLocked(&itemEntry{key: string(key), cas: cas, bits: bits})
	}
	return before
}

// markFetched records a read of key at cas at now (unix seconds) and returns the bits as they were before:
// update with the fetched bit and last access set, without a closure (the read path of every get).
func (t *itemStates) markFetched(key []byte, cas uint64, now int64) (before itemBits) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.m[string(key)]; ok {
		e := el.Value.(*itemEntry)
		switch {
		case e.pending:
			e.cas, e.pending = cas, false
		case e.cas != cas:
			e.bits, e.cas = itemBits{}, cas
		}
		before = e.bits
		e.bits.fetched, e.bits.lastAccess = true, now
		t.lru.MoveToFront(el)
		return before
	}
	t.insertLocked(&itemEntry{key: string(key), cas: cas, bits: itemBits{fetched: true, lastAccess: now}})
	return itemBits{}
}

// get returns the bits of key at cas without changing anything (not even the recency).
func (t *itemStates) get(key []byte, cas uint64) itemBits {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.m[string(key)]; ok {
		if e := el.Value.(*itemEntry); e.pending || e.cas == cas {
			return e.bits
		}
	}
	return itemBits{}
}

// move carries key's bits from cas from to cas to: the item was rewritten without changing what it is
// (touched, or marked stale), and keeps its bits, changed by fn if not nil.
func (t *itemStates) move(key []byte, from, to uint64, fn func(*itemBits)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var bits itemBits
	el, ok := t.m[string(key)]
	if ok {
		if e := el.Value.(*itemEntry); e.pending || e.cas == from {
			bits = e.bits
		}
	}
	if fn != nil {
		fn(&bits)
	}
	switch {
	case ok && bits.zero():
		t.removeLocked(el)
	case ok:
		e := el.Value.(*itemEntry)
		e.cas, e.pending, e.bits = to, false, bits
		t.lru.MoveToFront(el)
	case !bits.zero():
		t.insertLocked(&itemEntry{key: string(key), cas: to, bits: bits})
	}
}

// claim records that a client is creating the missing key and holds its win token (mg N on a miss). It
// reports false if another claim for the key is pending or the key has an entry with the token sent:
// someone else won.
func (t *itemStates) claim(key []byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.m[string(key)]; ok {
		e := el.Value.(*itemEntry)
		if e.pending {
			return false
		}
		t.removeLocked(el) // an entry for a cas the read did not find any more: the item is gone
	}
	t.insertLocked(&itemEntry{key: string(key), pending: true, bits: itemBits{tokenSent: true}})
	return true
}

// settle ends a claim: with ok the created item has cas (it keeps the token); without, the creation did not
// happen and the claim is dropped.
func (t *itemStates) settle(key []byte, cas uint64, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	el, found := t.m[string(key)]
	if !found {
		return
	}
	e := el.Value.(*itemEntry)
	if !e.pending {
		return // a reader adopted the created item's cas already
	}
	if !ok {
		t.removeLocked(el)
		return
	}
	e.cas, e.pending = cas, false
}

// reset drops every entry (flush_all).
func (t *itemStates) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m = make(map[string]*list.Element)
	t.lru.Init()
	t.bytes = 0
}

// insertLocked adds e and evicts the least recently used entries beyond the bound. REQUIRES: mu held.
func (t *itemStates) insertLocked(e *itemEntry) {
	t.m[e.key] = t.lru.PushFront(e)
	t.bytes += len(e.key) + itemEntryOverhead
	for t.bytes > t.maxBytes && t.lru.Len() > 1 {
		t.removeLocked(t.lru.Back())
	}
}

// removeLocked drops el. REQUIRES: mu held.
func (t *itemStates) removeLocked(el *list.Element) {
	e := t.lru.Remove(el).(*itemEntry)
	delete(t.m, e.key)
	t.bytes -= len(e.key) + itemEntryOverhead
}

// size returns the number of entries and their accounted bytes.
func (t *itemStates) size() (entries, bytes int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lru.Len(), t.bytes
}
