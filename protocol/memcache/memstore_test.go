package memcache

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"slices"
	"strconv"
	"sync"
	"time"
)

// memStore is a small in-memory Store for tests. It mimics gokai's version model closely enough for the
// protocol: each sibling carries a dot (a unique write id); the causal context of an entry is the list of its
// live dots; a write with a context replaces exactly the siblings whose dots it lists and keeps the others
// as siblings (an empty context replaces none); a blind write replaces everything. Deletes leave no
// tombstones. Like the node, it leaves Entry.Context empty unless the Get asks for it (Read.Context), so a
// server path that writes over a read without asking for its context shows in the tests (its write becomes a
// sibling instead of replacing).
type memStore struct {
	now         func() time.Time
	hideExpired bool // as the real node does; off to test the server's own expiry check

	mu      sync.Mutex
	items   map[string][]memSibling
	nextDot uint64
	fail    map[string]error // Get/Set/Delete of these keys fail
	flushes int
	flushAt []time.Time // every FlushAll's at, in call order
	// flushDot hides the siblings with a dot up to it (the last immediate flush: an exact cliff, as the
	// node's nanosecond LastMod stamps are under a clock that moves); pending the delayed flushes (unix ns):
	// each hides the siblings with LastMod up to it once the clock reaches it.
	flushDot uint64
	pending  []int64
	block    chan struct{} // when set, Get waits for it to close (or ctx) before it reads
	entered  chan struct{} // when set, Get signals here before blocking
	hold     chan struct{} // when set, Get signals on held after it read, then waits for hold to close
	held     chan struct{}
	reads    []Read // what every Get asked for, in call order
}

type memSibling struct {
	dot uint64
	v   Value
}

var _ Store = (*memStore)(nil)

func newMemStore(now func() time.Time) *memStore {
	return &memStore{now: now, hideExpired: true, items: map[string][]memSibling{}, fail: map[string]error{}}
}

func (m *memStore) Get(ctx context.Context, key []byte, want Read) (Entry, error) {
	m.mu.Lock()
	block, entered := m.block, m.entered
	m.mu.Unlock()
	if block != nil {
		if entered != nil {
			entered <- struct{}{}
		}
		select {
		case <-block:
		case <-ctx.Done():
			return Entry{}, ctx.Err()
		}
	}
	m.mu.Lock()
	m.reads = append(m.reads, want)
	e, err := m.getLocked(key)
	if !want.Context {
		e.Context = nil
	}
	hold, held := m.hold, m.held
	m.mu.Unlock()
	if err != nil || hold == nil {
		return e, err
	}
	held <- struct{}{}
	select {
	case <-hold:
		return e, nil
	case <-ctx.Done():
		return Entry{}, ctx.Err()
	}
}

// getLocked reads key. REQUIRES: mu held.
func (m *memStore) getLocked(key []byte) (Entry, error) {
	if err := m.fail[string(key)]; err != nil {
		return Entry{}, err
	}
	return m.readLocked(key, m.hideExpired)
}

// readLocked reads key, hiding expired siblings if hide. REQUIRES: mu held.
func (m *memStore) readLocked(key []byte, hide bool) (Entry, error) {
	now := m.now().Unix()
	var e Entry
	var dots []uint64 // every sibling's, hidden ones included: as the node's context covers them
	for _, s := range m.items[string(key)] {
		dots = append(dots, s.dot)
		if hide && Expired(s.v.Expiry, now) || m.flushedLocked(s) {
			continue
		}
		v := s.v
		v.Data = append([]byte(nil), v.Data...)
		e.Siblings = append(e.Siblings, v)
	}
	if len(dots) == 0 {
		return Entry{}, nil
	}
	e.Context = encodeDots(dots)
	h := fnv.New64a()
	h.Write(e.Context)
	cas := h.Sum64() | 1
	if len(e.Siblings) == 0 {
		return Entry{Context: e.Context}, nil // expired: not found, but a write over it supersedes them
	}
	e.Found = true
	e.Chosen = newest(e.Siblings)
	e.Cas = cas
	return e, nil
}

// takeReads returns what the Gets since the last call asked for and forgets them.
func (m *memStore) takeReads() []Read {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.reads
	m.reads = nil
	return r
}

func encodeDots(dots []uint64) []byte {
	dots = slices.Clone(dots)
	slices.Sort(dots)
	b := make([]byte, 0, 8*len(dots))
	for _, d := range dots {
		b = binary.BigEndian.AppendUint64(b, d)
	}
	return b
}

func decodeDots(b []byte) map[uint64]bool {
	seen := map[uint64]bool{}
	for ; len(b) >= 8; b = b[8:] {
		seen[binary.BigEndian.Uint64(b)] = true
	}
	return seen
}

// supersedeLocked returns the siblings of key a write over `over` keeps: none for a blind write, else those
// whose dots the context does not list (all of them for an empty context). REQUIRES: mu held.
func (m *memStore) supersedeLocked(key string, over Supersede) ([]memSibling, error) {
	if over.Blind {
		if len(over.Context) > 0 {
			return nil, errors.New("memstore: blind write with a context")
		}
		return nil, nil
	}
	seen := decodeDots(over.Context)
	var keep []memSibling
	for _, s := range m.items[key] {
		if !seen[s.dot] {
			keep = append(keep, s)
		}
	}
	return keep, nil
}

// Set returns the cas unique the node's Store returns: the one a read then shows when the written value is
// the key's only sibling, else one no read shows.
func (m *memStore) Set(_ context.Context, key []byte, v Value, over Supersede) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail[string(key)]; err != nil {
		return 0, err
	}
	keep, err := m.supersedeLocked(string(key), over)
	if err != nil {
		return 0, err
	}
	m.nextDot++
	m.items[string(key)] = append(keep, memSibling{dot: m.nextDot, v: v})
	e, _ := m.readLocked(key, false)
	if len(keep) == 0 {
		return e.Cas, nil
	}
	return ^e.Cas, nil
}

func (m *memStore) Delete(_ context.Context, key []byte, over Supersede) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail[string(key)]; err != nil {
		return err
	}
	keep, err := m.supersedeLocked(string(key), over)
	if err != nil {
		return err
	}
	if len(keep) == 0 {
		delete(m.items, string(key))
	} else {
		m.items[string(key)] = keep
	}
	return nil
}

// FlushAll hides, as the node does, without deleting: a write over a flushed key supersedes its hidden
// siblings through the context.
func (m *memStore) FlushAll(_ context.Context, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.flushes++
	m.flushAt = append(m.flushAt, at)
	if at.After(m.now()) {
		m.pending = append(m.pending, at.UnixNano())
	} else {
		m.flushDot = m.nextDot
	}
	return nil
}

// flushedLocked reports whether a flush hides s. REQUIRES: mu held.
func (m *memStore) flushedLocked(s memSibling) bool {
	if s.dot <= m.flushDot {
		return true
	}
	now := m.now().UnixNano()
	for _, at := range m.pending {
		if now >= at && s.v.LastMod <= at {
			return true
		}
	}
	return false
}

func (m *memStore) flushTimes() []time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.flushAt)
}

func (m *memStore) Stats() []Stat {
	m.mu.Lock()
	defer m.mu.Unlock()
	return []Stat{{"gokai_keys", strconv.Itoa(len(m.items))}, {"gokai_flushes", strconv.Itoa(m.flushes)}}
}

// addSibling stores v next to what key holds, as a concurrent write through another replica would.
func (m *memStore) addSibling(key string, v Value) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nextDot++
	m.items[key] = append(m.items[key], memSibling{dot: m.nextDot, v: v})
}

func (m *memStore) setFail(key string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		delete(m.fail, key)
	} else {
		m.fail[key] = err
	}
}

func (m *memStore) flushCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.flushes
}

func (m *memStore) siblingCount(key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.items[key])
}

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
}
