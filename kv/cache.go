package kv

// objectCache is a KV vnode's bounded write-through cache of decoded objects, so that a hot key is read
// from memory instead of from storage and decoded again. Every replica of a get is read (R answer, the
// rest feed read repair), so on one node a get costs N storage reads and N decodes without it.
//
// Cached objects are shared with whoever the vnode answers (replies carry the same pointer): like every
// Object a vnode hands out, they are immutable. Their values are owned (decoded copies, or a client's
// fresh copy per the protocol servers' ownership contract), never views of a reused buffer.
//
// It is owned by one vnode actor: no locking. It stays coherent because every write to the partition's
// objects goes through the KV behaviour inside that actor (put, reap, delete of the partition); a
// behaviour restart starts with an empty cache. It caches absence too (a nil value), since reads of
// missing keys are as common as reads of present ones on fallbacks and after deletes were reaped.
//
// Eviction is CLOCK (second chance): each entry has a referenced bit set on a hit; the hand clears bits
// until it finds an unreferenced entry. That approximates LRU with O(1) work per hit and no list
// pointers to update.
type objectCache struct {
	max, size int // bytes, as counted by entryCost
	index     map[string]int32
	entries   []cacheEntry
	hand      int
	hits      uint64
	misses    uint64
}

type cacheEntry struct {
	key   string
	value *Object // nil: the key is absent from storage
	cost  int
	ref   bool
}

// cacheEntryOverhead approximates an entry's memory beyond its key and object: the map slot, the slice
// element and the string header.
const cacheEntryOverhead = 96

// entryCost approximates the memory an entry holds: the encoded size plus the decoded form's headers
// (the Object, 72 bytes per sibling, 40 per clock entry).
func entryCost(key string, o *Object) int {
	n := len(key) + cacheEntryOverhead
	if o != nil {
		n += 48 + o.Size() + 72*len(o.Siblings) + 40*len(o.Clock)
	}
	return n
}

// newObjectCache returns a cache of at most maxBytes, or nil (no cache) when maxBytes <= 0.
func newObjectCache(maxBytes int) *objectCache {
	if maxBytes <= 0 {
		return nil
	}
	return &objectCache{max: maxBytes, index: make(map[string]int32)}
}

// get returns the cached object of key; ok is false when key is not cached, and value is nil with ok
// true when key is cached as absent. The returned object must not be modified.
func (c *objectCache) get(key []byte) (value *Object, ok bool) {
	if c == nil {
		return nil, false
	}
	i, ok := c.index[string(key)] // NB: no allocation for the lookup
	if !ok {
		c.misses++
		return nil, false
	}
	c.hits++
	e := &c.entries[i]
	e.ref = true
	return e.value, true
}

// put caches value (nil for absent) under key, evicting as needed. value is retained: nobody may modify
// it afterwards. An entry larger than the whole cache is not cached (and its old entry goes).
func (c *objectCache) put(key []byte, value *Object) {
	if c == nil {
		return
	}
	cost := entryCost(string(key), value)
	if i, ok := c.index[string(key)]; ok {
		e := &c.entries[i]
		if cost > c.max {
			c.remove(i)
			return
		}
		c.size += cost - e.cost
		e.value, e.cost, e.ref = value, cost, true
		c.evict(int(i))
		return
	}
	if cost > c.max {
		return
	}
	k := string(key)
	c.index[k] = int32(len(c.entries))
	c.entries = append(c.entries, cacheEntry{key: k, value: value, cost: cost})
	c.size += cost
	c.evict(len(c.entries) - 1)
}

// evict removes entries until the cache fits, never the entry at keep (the one just written).
func (c *objectCache) evict(keep int) {
	for c.size > c.max && len(c.entries) > 1 {
		if c.hand >= len(c.entries) {
			c.hand = 0
		}
		e := &c.entries[c.hand]
		switch {
		case c.hand == keep:
			c.hand++
		case e.ref:
			e.ref = false
			c.hand++
		default:
			last := len(c.entries) - 1
			if keep == last {
				keep = c.hand // remove moves the last entry into the hand's slot
			}
			c.remove(int32(c.hand))
		}
	}
}

// remove deletes entry i by moving the last entry into its slot.
func (c *objectCache) remove(i int32) {
	e := c.entries[i]
	c.size -= e.cost
	delete(c.index, e.key)
	last := int32(len(c.entries) - 1)
	if i != last {
		c.entries[i] = c.entries[last]
		c.index[c.entries[i].key] = i
	}
	c.entries[last] = cacheEntry{}
	c.entries = c.entries[:last]
}

// drop forgets key.
func (c *objectCache) drop(key []byte) {
	if c == nil {
		return
	}
	if i, ok := c.index[string(key)]; ok {
		c.remove(i)
	}
}

// clear forgets everything.
func (c *objectCache) clear() {
	if c == nil {
		return
	}
	clear(c.index)
	clear(c.entries)
	c.entries, c.size, c.hand = c.entries[:0], 0, 0
}
