package membership

import (
	"fmt"
	"maps"
)

// Limits on ClusterState.Flushes.
const (
	// MaxFlushes bounds the services with a flush epoch.
	MaxFlushes = 64
	// MaxFlushNameBytes bounds a service name in Flushes.
	MaxFlushNameBytes = 32
)

// Flush is a service's flush epoch (memcache flush_all): every value written at or before the cutoff
// (Cutoff) reads as deleted. It is part of the cluster state, so every node hides the same values, and a
// node that was down learns it with the state when it returns.
//
// Two times, both unix nanoseconds of the flushing node's clock: Epoch is in effect as soon as a node
// knows it (a flush with no delay); Pending is a delayed flush, in effect once the reader's clock reaches
// it. A delayed flush never uncovers what an earlier flush hid: Epoch stays while Pending waits.
//
// INVARIANT (Valid): Epoch >= 0; Pending == 0 or Pending > Epoch.
type Flush struct {
	Epoch   int64
	Pending int64
}

// Valid reports whether f keeps its invariant.
func (f Flush) Valid() bool {
	return f.Epoch >= 0 && (f.Pending == 0 || f.Pending > f.Epoch)
}

// Cutoff is the greatest LastMod (unix ns) hidden at now (unix ns, the reader's clock): Epoch, or Pending
// once now has reached it. 0 hides nothing.
func (f Flush) Cutoff(now int64) int64 {
	if f.Pending != 0 && now >= f.Pending {
		return max(f.Epoch, f.Pending)
	}
	return f.Epoch
}

// After returns f with one more flush applied: values written at or before at become hidden, at once if
// at <= now (now is the flushing node's clock), else from at on. Epochs only move forward: a flush earlier
// than one already recorded changes nothing, and of two delayed flushes the later one is kept (values
// written before the earlier one are then hidden from the later one on). A pending flush whose time now
// has passed becomes the Epoch.
func (f Flush) After(at, now int64) Flush {
	if f.Pending != 0 && f.Pending <= now {
		f.Epoch, f.Pending = max(f.Epoch, f.Pending), 0
	}
	if at <= now {
		f.Epoch = max(f.Epoch, at)
	} else {
		f.Pending = max(f.Pending, at)
	}
	if f.Pending <= f.Epoch {
		f.Pending = 0
	}
	return f
}

// FlushOf returns service's flush epoch (the zero Flush if it was never flushed).
func (s *ClusterState) FlushOf(service string) Flush { return s.Flushes[service] }

// SetFlush records a flush of service at at, issued at now (unix ns, the flushing node's clock): the
// service's Flush becomes Flush.After(at, now). When that changes nothing it returns s itself (same
// version) and no error.
func (s *ClusterState) SetFlush(service string, at, now int64) (*ClusterState, error) {
	if service == "" || len(service) > MaxFlushNameBytes {
		return nil, fmt.Errorf("%w: flush of service %q (want 1..%d bytes)", ErrInvalidState, service, MaxFlushNameBytes)
	}
	if at < 0 {
		return nil, fmt.Errorf("%w: flush of %s at %d (want >= 0)", ErrInvalidState, service, at)
	}
	cur, had := s.Flushes[service]
	next := cur.After(at, now)
	if next == cur {
		return s, nil
	}
	if !had && len(s.Flushes) >= MaxFlushes {
		return nil, fmt.Errorf("%w: flush epochs of %d services already (max %d)", ErrInvalidState, len(s.Flushes), MaxFlushes)
	}
	t := s.successor()
	t.Flushes = maps.Clone(s.Flushes)
	if t.Flushes == nil {
		t.Flushes = make(map[string]Flush, 1)
	}
	t.Flushes[service] = next
	return t.seal(s.Ring.Owners()), nil
}

// validateFlushes checks the bounds of Flushes and each epoch's invariant.
func (s *ClusterState) validateFlushes() error {
	if len(s.Flushes) > MaxFlushes {
		return fmt.Errorf("%w: flush epochs of %d services (max %d)", ErrInvalidState, len(s.Flushes), MaxFlushes)
	}
	for name, f := range s.Flushes {
		if name == "" || len(name) > MaxFlushNameBytes {
			return fmt.Errorf("%w: flush of service %q (want 1..%d bytes)", ErrInvalidState, name, MaxFlushNameBytes)
		}
		if !f.Valid() {
			return fmt.Errorf("%w: flush of %s: epoch %d, pending %d", ErrInvalidState, name, f.Epoch, f.Pending)
		}
	}
	return nil
}
