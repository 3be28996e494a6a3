package kv

import (
	"fmt"
	"time"
)

// Config configures the KV service: its vnodes (NewVnode) and its coordinators (NewCoordinator). One value
// serves both, so that they agree on LWW.
type Config struct {
	// LWW makes every key last-write-wins: one value survives, the one with the newest timestamp (ties by
	// dot). Concurrent writes are then silently lost; use it only for data where that is acceptable. The
	// vnodes merge and the coordinators reconcile reads by it. Default false (siblings).
	LWW bool
	// MaxSiblings caps the siblings of one key; a write that would exceed it fails with
	// ErrTooManySiblings. 0 = unlimited. Default 100.
	MaxSiblings int
	// Prune bounds the size of vector clocks (riak's small/big/young/old vclock).
	Prune PruneConfig
	// CacheBytes bounds each vnode's write-through cache of decoded objects (hot keys are then read from
	// memory, not storage). 0 disables it. Default 512 KiB (the node divides its object-cache budget
	// among its vnodes).
	CacheBytes int
	// DeleteMode says what happens to tombstones. Default DeleteKeep.
	DeleteMode DeleteMode
	// ReapDelay is how long after every replica stored a tombstone it is reaped (DeleteReap only).
	// Default 3s; must be > 0 with DeleteReap.
	ReapDelay time.Duration
	// FlushCutoff is KV's flush epoch (service.NodeInfo.FlushCutoff): reads hide every sibling written at
	// or before what it returns (flush.go). Not a setting: the node provides it. Default nil: none.
	FlushCutoff func(nowNs int64) int64
}

// DeleteMode says what happens to tombstones.
type DeleteMode string

const (
	// DeleteKeep keeps tombstones forever (safest; costs space per deleted key).
	DeleteKeep DeleteMode = "keep"
	// DeleteReap removes a tombstone ReapDelay after every replica acknowledged it.
	DeleteReap DeleteMode = "reap"
)

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{MaxSiblings: 100, Prune: DefaultPruneConfig(), CacheBytes: 512 << 10,
		DeleteMode: DeleteKeep, ReapDelay: 3 * time.Second}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.MaxSiblings < 0:
		return fmt.Errorf("kv: Config.MaxSiblings %d < 0", c.MaxSiblings)
	case c.CacheBytes < 0:
		return fmt.Errorf("kv: Config.CacheBytes %d < 0", c.CacheBytes)
	case c.Prune.SmallVClock < 1 || c.Prune.BigVClock < c.Prune.SmallVClock:
		return fmt.Errorf("kv: Config.Prune small=%d big=%d: need 1 <= small <= big", c.Prune.SmallVClock, c.Prune.BigVClock)
	case c.DeleteMode != DeleteKeep && c.DeleteMode != DeleteReap:
		return fmt.Errorf("kv: Config.DeleteMode %q: want keep or reap", c.DeleteMode)
	case c.DeleteMode == DeleteReap && c.ReapDelay <= 0:
		return fmt.Errorf("kv: Config.ReapDelay %s must be > 0", c.ReapDelay)
	}
	return nil
}
