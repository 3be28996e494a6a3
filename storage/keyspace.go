package storage

import (
	"errors"
	"fmt"
)

// Key spaces: the services of a node share its one Backend, each in its own key space, so their data never
// mix. Partition p of key space s is the backend partition SpacePartition(s, p):
//
//	backend partition = s << 16 | p          (p < 65536: gokai's ring has at most 65536 partitions)
//
//	space 0, partition 7  -> 0x0000_0007     the layout of a data dir from before services: KV keeps space 0
//	space 1, partition 7  -> 0x0001_0007
//
// Space 0 is the identity, so a data dir written before key spaces existed reads unchanged as space 0. A
// service's space id is part of its on-disk format: it must never change, nor be given to another service.

// MaxSpacePartition is the largest partition number a key space holds.
const MaxSpacePartition = 1<<16 - 1

// ErrSpacePartition is returned for a partition number a key space cannot hold (over MaxSpacePartition).
var ErrSpacePartition = errors.New("storage: partition out of the key space's range")

// SpacePartition is the backend partition of partition p of key space space. REQUIRES: p <=
// MaxSpacePartition.
func SpacePartition(space uint16, p uint32) uint32 { return uint32(space)<<16 | p }

// SplitPartition is the inverse of SpacePartition.
func SplitPartition(partition uint32) (space uint16, p uint32) {
	return uint16(partition >> 16), partition & MaxSpacePartition
}

// KeySpace is the view of a Backend that one key space sees: its partitions are numbered from 0 as the
// ring numbers them, and it never reads or writes another space's. It is a value type and owns nothing, so
// its Close does nothing: the backend's owner closes the backend, once, and every view then fails with
// ErrClosed.
type KeySpace struct {
	Backend Backend
	Space   uint16
}

var _ Backend = KeySpace{}

func (k KeySpace) partition(op string, p uint32) (uint32, error) {
	if p > MaxSpacePartition {
		return 0, fmt.Errorf("storage: %s partition %d of key space %d: %w", op, p, k.Space, ErrSpacePartition)
	}
	return SpacePartition(k.Space, p), nil
}

// Get implements Backend.
func (k KeySpace) Get(p uint32, key []byte) ([]byte, error) {
	bp, err := k.partition("get", p)
	if err != nil {
		return nil, err
	}
	return k.Backend.Get(bp, key)
}

// Put implements Backend.
func (k KeySpace) Put(p uint32, key, value []byte) error {
	bp, err := k.partition("put", p)
	if err != nil {
		return err
	}
	return k.Backend.Put(bp, key, value)
}

// Delete implements Backend.
func (k KeySpace) Delete(p uint32, key []byte) error {
	bp, err := k.partition("delete", p)
	if err != nil {
		return err
	}
	return k.Backend.Delete(bp, key)
}

// Write implements Backend.
func (k KeySpace) Write(p uint32, ops []Op) error {
	bp, err := k.partition("write", p)
	if err != nil {
		return err
	}
	return k.Backend.Write(bp, ops)
}

// Fold implements Backend.
func (k KeySpace) Fold(p uint32, fn func(key, value []byte) error) error {
	bp, err := k.partition("fold", p)
	if err != nil {
		return err
	}
	return k.Backend.Fold(bp, fn)
}

// FoldFrom implements Backend.
func (k KeySpace) FoldFrom(p uint32, start []byte, fn func(key, value []byte) error) error {
	bp, err := k.partition("fold", p)
	if err != nil {
		return err
	}
	return k.Backend.FoldFrom(bp, start, fn)
}

// IsEmpty implements Backend.
func (k KeySpace) IsEmpty(p uint32) (bool, error) {
	bp, err := k.partition("is-empty", p)
	if err != nil {
		return false, err
	}
	return k.Backend.IsEmpty(bp)
}

// DropPartition implements Backend.
func (k KeySpace) DropPartition(p uint32) error {
	bp, err := k.partition("drop", p)
	if err != nil {
		return err
	}
	return k.Backend.DropPartition(bp)
}

// Partitions implements Backend: the space's partitions holding an entry, numbered within the space.
func (k KeySpace) Partitions() ([]uint32, error) {
	all, err := k.Backend.Partitions()
	if err != nil {
		return nil, err
	}
	var out []uint32
	for _, bp := range all {
		if s, p := SplitPartition(bp); s == k.Space {
			out = append(out, p)
		}
	}
	return out, nil
}

// Close does nothing (see KeySpace): the shared backend stays open for the other spaces.
func (k KeySpace) Close() error { return nil }
