package kv

import (
	"encoding/binary"
	"hash/fnv"
)

// Active anti-entropy: KV's items are its objects, placed by their user key; an object's version hash
// covers what Object.Equal compares (the clock's actors and counters and the siblings' dots), so two
// replicas hash alike exactly when neither has anything to give the other. Tombstones and expired values
// are siblings with dots like any other: a tombstone on one replica and nothing (a reaped tombstone) on
// another differ, and the exchange's repair propagates the tombstone, which the reaper then removes on
// every replica (see Coordinator.Repair).

// VersionHash is o's version hash for anti-entropy: 0 for nil (absent), never 0 otherwise.
func VersionHash(o *Object) uint64 {
	if o == nil {
		return 0
	}
	h := fnv.New64a()
	var b [8]byte
	for _, e := range o.Clock {
		_, _ = h.Write([]byte(e.Actor))
		binary.BigEndian.PutUint64(b[:], e.Counter)
		_, _ = h.Write([]byte{0})
		_, _ = h.Write(b[:])
	}
	_, _ = h.Write([]byte{1})
	for _, s := range o.Siblings {
		_, _ = h.Write([]byte(s.Dot.Actor))
		binary.BigEndian.PutUint64(b[:], s.Dot.Counter)
		_, _ = h.Write([]byte{0})
		_, _ = h.Write(b[:])
	}
	if v := h.Sum64(); v != 0 {
		return v
	}
	return 1
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
