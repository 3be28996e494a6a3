package storage

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

var _ Backend = (*Memory)(nil)

// Memory is an in-memory Backend for tests and for nodes that need no
// durability. Its data is lost on Close.
//
// Each partition is a map guarded by one RWMutex for the whole backend; Fold
// takes a snapshot of the partition's entries under the read lock, sorts it and
// visits it without holding the lock, so fn may call back into the backend.
type Memory struct {
	mu sync.RWMutex
	// parts holds only non-empty partitions. Stored values are private copies
	// and are never modified in place (a Put replaces the slice), so a Fold
	// snapshot may share them.
	parts  map[uint32]map[string][]byte // GUARDED_BY(mu)
	closed bool                         // GUARDED_BY(mu)
}

// NewMemory returns an empty in-memory backend.
func NewMemory() *Memory {
	return &Memory{parts: make(map[uint32]map[string][]byte)}
}

// Get implements Backend.
func (m *Memory) Get(partition uint32, key []byte) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, opError("get", partition, err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, opError("get", partition, ErrClosed)
	}
	v, ok := m.parts[partition][string(key)]
	if !ok {
		return nil, ErrNotFound
	}
	return append([]byte{}, v...), nil
}

// Put implements Backend.
func (m *Memory) Put(partition uint32, key, value []byte) error {
	if err := checkKey(key); err != nil {
		return opError("put", partition, err)
	}
	v := append([]byte{}, value...)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return opError("put", partition, ErrClosed)
	}
	m.putLocked(partition, string(key), v)
	return nil
}

// Delete implements Backend.
func (m *Memory) Delete(partition uint32, key []byte) error {
	if err := checkKey(key); err != nil {
		return opError("delete", partition, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return opError("delete", partition, ErrClosed)
	}
	m.deleteLocked(partition, string(key))
	return nil
}

// Write implements Backend.
func (m *Memory) Write(partition uint32, ops []Op) error {
	if err := checkOps(ops); err != nil {
		return opError("write", partition, err)
	}
	// Copy values before taking the lock.
	vals := make([][]byte, len(ops))
	for i := range ops {
		if !ops[i].Delete {
			vals[i] = append([]byte{}, ops[i].Value...)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return opError("write", partition, ErrClosed)
	}
	for i := range ops {
		if ops[i].Delete {
			m.deleteLocked(partition, string(ops[i].Key))
		} else {
			m.putLocked(partition, string(ops[i].Key), vals[i])
		}
	}
	return nil
}

// REQUIRES: mu held for writing.
func (m *Memory) putLocked(partition uint32, key string, value []byte) {
	p := m.parts[partition]
	if p == nil {
		p = make(map[string][]byte)
		m.parts[partition] = p
	}
	p[key] = value
}

// REQUIRES: mu held for writing.
func (m *Memory) deleteLocked(partition uint32, key string) {
	p := m.parts[partition]
	if p == nil {
		return
	}
	delete(p, key)
	if len(p) == 0 {
		// INVARIANT: parts holds only non-empty partitions.
		delete(m.parts, partition)
	}
}

type memEntry struct {
	key   string
	value []byte
}

// Fold implements Backend.
func (m *Memory) Fold(partition uint32, fn func(key, value []byte) error) error {
	return m.FoldFrom(partition, nil, fn)
}

// FoldFrom implements Backend.
func (m *Memory) FoldFrom(partition uint32, start []byte, fn func(key, value []byte) error) error {
	m.mu.RLock()
	if m.closed {
		m.mu.RUnlock()
		return opError("fold", partition, ErrClosed)
	}
	p := m.parts[partition]
	snap := make([]memEntry, 0, len(p))
	for k, v := range p {
		if k >= string(start) {
			snap = append(snap, memEntry{k, v})
		}
	}
	m.mu.RUnlock()

	slices.SortFunc(snap, func(a, b memEntry) int { return strings.Compare(a.key, b.key) })
	// Hand fn reused buffers, as goleveldb's iterator does, so that a caller
	// which wrongly retains them fails its tests on this backend too.
	var kbuf, vbuf []byte
	for _, e := range snap {
		kbuf = append(kbuf[:0], e.key...)
		vbuf = append(vbuf[:0], e.value...)
		if err := fn(kbuf, vbuf); err != nil {
			if errors.Is(err, ErrStopFold) {
				return nil
			}
			return opError("fold", partition, err)
		}
	}
	return nil
}

// IsEmpty implements Backend.
func (m *Memory) IsEmpty(partition uint32) (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return false, opError("is-empty", partition, ErrClosed)
	}
	return len(m.parts[partition]) == 0, nil
}

// DropPartition implements Backend.
func (m *Memory) DropPartition(partition uint32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return opError("drop", partition, ErrClosed)
	}
	delete(m.parts, partition)
	return nil
}

// Partitions implements Backend.
func (m *Memory) Partitions() ([]uint32, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, fmt.Errorf("storage: partitions: %w", ErrClosed)
	}
	ps := make([]uint32, 0, len(m.parts))
	for p := range m.parts {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps, nil
}

// Close implements Backend. It discards the data.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("storage: close: %w", ErrClosed)
	}
	m.closed = true
	m.parts = nil
	return nil
}
