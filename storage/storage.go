package storage

import (
	"bytes"
	"errors"
	"fmt"
)

// Sentinel errors. Compare with errors.Is: most are returned wrapped with the
// operation and partition (`storage: put partition 12: storage: closed`).
var (
	// ErrNotFound is returned by Get when the key is absent. It is returned
	// bare (not wrapped) so that misses, which are frequent, do not allocate.
	ErrNotFound = errors.New("storage: not found")
	// ErrClosed is returned by every method called after Close (and by a
	// second Close).
	ErrClosed = errors.New("storage: closed")
	// ErrStopFold is returned by a Fold callback to stop the fold early.
	// Fold then returns nil.
	ErrStopFold = errors.New("storage: stop fold")
	// ErrKeyTooLarge is returned for a key longer than MaxKeySize.
	ErrKeyTooLarge = errors.New("storage: key too large")
)

// MaxKeySize is the largest key, in bytes, a Backend accepts. The empty key is
// a valid key.
const MaxKeySize = 64 << 10

// Op is one operation of an atomic batch (Backend.Write). If Delete is set,
// Value is ignored.
type Op struct {
	Key, Value []byte
	Delete     bool
}

// Backend stores the key/value entries of many partitions.
//
// Concurrency: all methods are safe for concurrent use by the vnodes of
// different partitions. A given partition is used by one vnode at a time;
// the backend does not order concurrent operations on one partition beyond
// each call being atomic.
//
// Ownership: slices passed in may be reused by the caller once a call
// returns; slices returned (Get) are copies owned by the caller.
//
// After Close every method returns an error wrapping ErrClosed; none panics.
type Backend interface {
	// Get returns a copy of the value stored under key, or ErrNotFound.
	// An empty stored value is returned as a non-nil empty slice.
	Get(partition uint32, key []byte) ([]byte, error)
	// Put stores value under key, replacing any previous value.
	Put(partition uint32, key, value []byte) error
	// Delete removes key. Deleting a missing key is not an error.
	Delete(partition uint32, key []byte) error
	// Write applies ops atomically, in order (a later op on the same key
	// wins). An empty batch is a no-op.
	Write(partition uint32, ops []Op) error
	// Fold calls fn for each entry of the partition in ascending byte order of
	// key, over a consistent snapshot taken when Fold starts: writes made
	// during the fold (even by fn) are not visited. fn must not retain or
	// modify key or value (they may be reused); it may call other Backend
	// methods. fn returning ErrStopFold stops the fold and Fold returns nil;
	// any other error stops the fold and is returned wrapped.
	Fold(partition uint32, fn func(key, value []byte) error) error
	// FoldFrom is Fold starting at the first key >= start (nil or empty:
	// the first key): it seeks there instead of visiting the keys before,
	// so a fold resumed after a key costs what is left, not what was read.
	FoldFrom(partition uint32, start []byte, fn func(key, value []byte) error) error
	// IsEmpty reports whether the partition holds no entry.
	IsEmpty(partition uint32) (bool, error)
	// DropPartition removes all of the partition's entries.
	DropPartition(partition uint32) error
	// Partitions returns the partitions holding at least one entry, in
	// ascending order.
	Partitions() ([]uint32, error)
	// Close releases the backend. Later calls return ErrClosed.
	Close() error
}

// Partition is a convenience view of a Backend bound to one partition.
// It is a value type: copying it is cheap and it owns nothing.
type Partition struct {
	Backend Backend
	ID      uint32
}

// Get calls Backend.Get for p's partition.
func (p Partition) Get(key []byte) ([]byte, error) { return p.Backend.Get(p.ID, key) }

// Put calls Backend.Put for p's partition.
func (p Partition) Put(key, value []byte) error { return p.Backend.Put(p.ID, key, value) }

// Delete calls Backend.Delete for p's partition.
func (p Partition) Delete(key []byte) error { return p.Backend.Delete(p.ID, key) }

// Write calls Backend.Write for p's partition.
func (p Partition) Write(ops []Op) error { return p.Backend.Write(p.ID, ops) }

// Fold calls Backend.Fold for p's partition.
func (p Partition) Fold(fn func(key, value []byte) error) error { return p.Backend.Fold(p.ID, fn) }

// FoldFrom calls Backend.FoldFrom for p's partition.
func (p Partition) FoldFrom(start []byte, fn func(key, value []byte) error) error {
	return p.Backend.FoldFrom(p.ID, start, fn)
}

// FoldRange folds the keys k of p's partition with start <= k < end (end nil: to the partition's end), in
// order: a FoldFrom that seeks to start and stops at end, so it reads only that range (anti-entropy's
// segment folds read a few index ranges this way).
func (p Partition) FoldRange(start, end []byte, fn func(key, value []byte) error) error {
	return p.Backend.FoldFrom(p.ID, start, func(k, v []byte) error {
		if end != nil && bytes.Compare(k, end) >= 0 {
			return ErrStopFold
		}
		return fn(k, v)
	})
}

// IsEmpty calls Backend.IsEmpty for p's partition.
func (p Partition) IsEmpty() (bool, error) { return p.Backend.IsEmpty(p.ID) }

// Drop calls Backend.DropPartition for p's partition.
func (p Partition) Drop() error { return p.Backend.DropPartition(p.ID) }

// checkKey reports whether key is acceptable to a Backend.
func checkKey(key []byte) error {
	if len(key) > MaxKeySize {
		return fmt.Errorf("%w (%d bytes, max %d)", ErrKeyTooLarge, len(key), MaxKeySize)
	}
	return nil
}

// checkOps checks the keys of a batch.
func checkOps(ops []Op) error {
	for i := range ops {
		if err := checkKey(ops[i].Key); err != nil {
			return fmt.Errorf("op %d: %w", i, err)
		}
	}
	return nil
}

// opError wraps err with the operation and partition, the package's error
// context convention.
func opError(op string, partition uint32, err error) error {
	return fmt.Errorf("storage: %s partition %d: %w", op, partition, err)
}
