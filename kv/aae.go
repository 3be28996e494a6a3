package kv

// Active anti-entropy: KV's items are its objects, placed by their user key; an object's version hash
// covers what Object.Equal compares (the clock's actors and counters and the siblings' dots), so two
// replicas hash alike exactly when neither has anything to give the other. Tombstones and expired values
// are siblings with dots like any other: a tombstone on one replica and nothing (a reaped tombstone) on
// another differ, and the exchange's repair propagates the tombstone, which the reaper then removes on
// every replica (see Coordinator.Repair).

// VersionHash is o's version hash for anti-entropy: 0 for nil (absent), never 0 otherwise. It is FNV-1a
// over the clock's entries and the siblings' dots (actor, 0, counter big-endian), a 1 between the two;
// computed inline, with no allocation, as it runs twice on every write.
func VersionHash(o *Object) uint64 {
	if o == nil {
		return 0
	}
	h := uint64(fnvOffset)
	for _, e := range o.Clock {
		h = fnvCounter(fnvString(h, e.Actor), e.Counter)
	}
	h = fnvByte(h, 1)
	for _, s := range o.Siblings {
		h = fnvCounter(fnvString(h, s.Dot.Actor), s.Dot.Counter)
	}
	if h != 0 {
		return h
	}
	return 1
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvByte(h uint64, b byte) uint64 { return (h ^ uint64(b)) * fnvPrime }

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = fnvByte(h, s[i])
	}
	return h
}

// fnvCounter hashes a 0 separator, then n big-endian.
func fnvCounter(h uint64, n uint64) uint64 {
	h = fnvByte(h, 0)
	for shift := 56; shift >= 0; shift -= 8 {
		h = fnvByte(h, byte(n>>uint(shift)))
	}
	return h
}

// AAEItem implements vnode.AAEHasher: objects are items, placed by their user key; metadata is not.
func (vn *Vnode) AAEItem(storeKey, value []byte) (key []byte, version uint64, ok bool) {
	if len(storeKey) == 0 || storeKey[0] != nsObject {
		return nil, 0, false
	}
	o, err := UnmarshalObject(value)
	if err != nil {
		// NB: an undecodable object still is an item: give it a version no healthy replica has, so the
		// exchange repairs it from the others.
		return storeKey[1:], 1, true
	}
	return storeKey[1:], VersionHash(o), true
}
