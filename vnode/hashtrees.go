package vnode

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/aae"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/storage"
)

// Anti-entropy in the vnode: a behaviour that implements AAEHasher gets hash trees (package aae), one per
// hash-partition source of the keys it holds, kept current on every write it makes through Env.AAE, persisted
// with the partition, rebuilt from storage when they cannot be trusted, and queried by exchanges (AAEQuery).
//
// Storage: the trees share the partition's key space with the behaviour, under keys that start with
// AAEReservedPrefix (0xFF 'A'); a behaviour must not write such keys itself, and its HandoffFold must not
// yield them (KV's keys start with 'k' or 'm'). Drop deletes them with the rest.
//
//	0xFF 'A' 'i' segment(2) keyhash(8) key  ->  store key      the index: a segment's items, for exchanges
//	0xFF 'A' 't' source(2)                  ->  encoded tree   written at a clean stop
//	0xFF 'A' 'c'                            ->  items(8)       the clean-stop marker
//
// The index entry of an item is written in the same storage batch as the item's creation and deleted in
// the batch of its deletion (Env.AAE.Write), so the index never disagrees with the data on which items
// exist; it holds no version, so an overwrite (the common write) adds no index write. A segment fold
// (QueryKeys) reads only the index range of the segments asked, then each listed item's stored value for
// its version (a few reads: the segments that differ), never the whole partition. The in-memory trees are updated after the batch is stored. A
// vnode that stops cleanly writes its trees and the marker in one batch; one that starts and finds the
// marker loads the trees and deletes the marker (so a crash from then on leaves none). Without the marker
// (a crash, a restart after a panic, a data dir from before anti-entropy) the trees are suspect: the
// persisted ones, if any, keep answering exchanges while a throttled rebuild folds the data (state
// rebuilding); with none, exchanges are refused until the rebuild ends (state building).

// AAEHasher is implemented by a behaviour that opts into active anti-entropy.
type AAEHasher interface {
	// AAEItem tells, for one entry of the partition as Env.Store holds it, the key the ring places it by
	// and its version hash (never 0: two replicas hold the same version of the item exactly when their
	// hashes are equal); ok is false for entries that are not items (the behaviour's metadata). It must be
	// pure and safe on any goroutine: rebuilds call it inside the vnode.
	AAEItem(storeKey, value []byte) (key []byte, version uint64, ok bool)
}

// AAEReservedPrefix starts every storage key the hash trees use inside a partition.
var AAEReservedPrefix = []byte{0xff, 'A'}

var (
	aaeIndexPrefix = []byte{0xff, 'A', 'i'}
	aaeTreePrefix  = []byte{0xff, 'A', 't'}
	aaeCleanKey    = []byte{0xff, 'A', 'c'}
)

// AAEConfig configures the vnodes' hash trees (ManagerConfig.AAE).
type AAEConfig struct {
	// Q is the ring's partition count (a power of two); 0 turns hash trees off.
	Q int
	// RebuildChunk is how many items a rebuild step folds inside the vnode. Default 256, range 1..65536.
	RebuildChunk int
	// RebuildPause is the pause between rebuild steps (the throttle). Default 5ms; negative means none.
	RebuildPause time.Duration
	// RebuildPeriod starts a verifying rebuild this long after the last one ended; 0 (default) never.
	RebuildPeriod time.Duration
	// RebuildConcurrency bounds the rebuilds that fold data at once across the manager's vnodes (after a
	// crash every vnode rebuilds; riak_kv allowed one per node). Rebuilds of empty partitions do not count.
	// Default 2, range 1..1024.
	RebuildConcurrency int
}

func (c *AAEConfig) setDefaults() {
	if c.RebuildChunk == 0 {
		c.RebuildChunk = 256
	}
	if c.RebuildPause == 0 {
		c.RebuildPause = 5 * time.Millisecond
	}
	if c.RebuildConcurrency == 0 {
		c.RebuildConcurrency = 2
	}
}

func (c *AAEConfig) validate() error {
	switch {
	case c.Q < 0 || c.Q > storage.MaxSpacePartition+1 || (c.Q > 0 && c.Q&(c.Q-1) != 0):
		return fmt.Errorf("vnode: AAEConfig.Q %d: want 0 or a power of two up to 65536", c.Q)
	case c.RebuildChunk < 0 || c.RebuildChunk > 1<<16:
		return fmt.Errorf("vnode: AAEConfig.RebuildChunk %d out of range 1..65536", c.RebuildChunk)
	case c.RebuildPeriod < 0:
		return fmt.Errorf("vnode: AAEConfig.RebuildPeriod %s must be >= 0", c.RebuildPeriod)
	case c.RebuildConcurrency < 0 || c.RebuildConcurrency > 1024:
		return fmt.Errorf("vnode: AAEConfig.RebuildConcurrency %d out of range 1..1024", c.RebuildConcurrency)
	}
	return nil
}

// Tree states (AAEStatus.State).
const (
	AAEBuilt      = "built"      // the trees match storage
	AAERebuilding = "rebuilding" // a rebuild runs; the previous trees answer exchanges meanwhile
	AAEBuilding   = "building"   // a rebuild runs and there are no trees to answer with yet
)

// AAEStatus is a snapshot of one vnode's hash trees.
type AAEStatus struct {
	State   string
	Items   int64     // items in the trees
	Trees   int       // sources with a tree
	BuiltAt time.Time // when the trees were last built or loaded (zero: never)
	// Rebuilds counts rebuilds finished since the node started; Fixed counts index entries a rebuild had
	// to correct and Mismatched the rebuilds whose result differed from the trees they replaced.
	Rebuilds, Fixed, Mismatched int64
}

// AAEChange is the change one write makes to one item: its store key, the key the ring places it by, and
// its version hash before and after (0: absent).
type AAEChange struct {
	StoreKey, Key []byte
	Old, New      uint64
}

// Hashtrees is a vnode's anti-entropy trees as its behaviour sees them (Env.AAE): nil when anti-entropy is
// off for the vnode. Used inside the vnode actor only.
type Hashtrees struct {
	store  storage.Partition
	hasher AAEHasher
	cfg    AAEConfig
	bits   int
	now    func() time.Time
	trees  map[int]*aae.Tree // serving; nil while building with nothing to serve
	items  *atomic.Int64     // items in the serving trees (read by Manager.AAEStatus)
	state  string
	built  time.Time
	build  *treeBuild
	status *atomic.Pointer[AAEStatus]
	counts *AAEStatus // cumulative counters, copied into status
	timer  *time.Timer
	closed bool
	system *actor.ActorSystem // set by kick: where rebuild steps are sent
	self   *actor.PID
	// slots is the manager's rebuild semaphore (AAEConfig.RebuildConcurrency); holding: this rebuild has one.
	slots   chan struct{}
	holding bool
	ibuf    []byte
}

// treeBuild is a rebuild under way: the trees of the items up to cursor (store order).
type treeBuild struct {
	trees   map[int]*aae.Tree
	items   int64
	cursor  []byte // the last store key folded; nil before the first
	started bool
	fixed   int64
}

// openHashtrees loads a vnode's trees (built, after a clean stop) or starts a rebuild.
func openHashtrees(env Env, hasher AAEHasher, cfg AAEConfig, status *atomic.Pointer[AAEStatus], counts *AAEStatus,
	items *atomic.Int64, slots chan struct{}) (*Hashtrees, error) {
	h := &Hashtrees{store: env.Store, hasher: hasher, cfg: cfg, bits: bits.TrailingZeros(uint(cfg.Q)), now: env.Now,
		status: status, counts: counts, items: items, slots: slots}
	items.Store(0)
	trees := map[int]*aae.Tree{}
	err := h.store.FoldRange(aaeTreePrefix, prefixEnd(aaeTreePrefix), func(k, v []byte) error {
		if len(k) != len(aaeTreePrefix)+2 {
			return nil
		}
		t := &aae.Tree{}
		if err := t.UnmarshalBinary(v); err != nil {
			return nil // NB: an unreadable tree is as good as none: the rebuild makes it again
		}
		trees[int(binary.BigEndian.Uint16(k[len(aaeTreePrefix):]))] = t
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("vnode: load hash trees: %w", err)
	}
	marker, err := h.store.Get(aaeCleanKey)
	switch {
	case err == nil && len(marker) == 8:
		if err := h.store.Delete(aaeCleanKey); err != nil {
			return nil, fmt.Errorf("vnode: hash trees: clear the clean-stop marker: %w", err)
		}
		h.trees, h.state, h.built = trees, AAEBuilt, h.now()
		h.items.Store(int64(binary.BigEndian.Uint64(marker)))
	case err == nil || errors.Is(err, storage.ErrNotFound):
		h.trees = trees
		if len(trees) == 0 {
			h.trees = nil
		}
		h.startBuild()
	default:
		return nil, fmt.Errorf("vnode: hash trees: read the clean-stop marker: %w", err)
	}
	h.publish()
	return h, nil
}

// dropCleanMarker deletes the clean-stop marker if the partition has one.
func dropCleanMarker(store storage.Partition) error {
	_, err := store.Get(aaeCleanKey)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("hash trees: read the clean-stop marker: %w", err)
	}
	if err := store.Delete(aaeCleanKey); err != nil {
		return fmt.Errorf("hash trees: clear the clean-stop marker: %w", err)
	}
	return nil
}

// prefixEnd is the first key after every key starting with p (p's last byte is below 0xff).
func prefixEnd(p []byte) []byte {
	e := bytes.Clone(p)
	e[len(e)-1]++
	return e
}

// source is the hash-partition source of an item with ring key hash kh.
func (h *Hashtrees) source(kh uint64) int {
	if h.bits == 0 {
		return 0
	}
	return int(kh >> (64 - h.bits))
}

func (h *Hashtrees) indexKey(kh uint64, key []byte) []byte {
	b := append(h.ibuf[:0], aaeIndexPrefix...)
	b = binary.BigEndian.AppendUint16(b, uint16(aae.SegmentOf(kh)))
	b = binary.BigEndian.AppendUint64(b, kh)
	b = append(b, key...)
	h.ibuf = b
	return bytes.Clone(b)
}

// Write stores ops (the behaviour's write of one item, and anything else it writes with it) in one atomic
// batch with the item's index entry, then updates the trees. On error nothing may have been stored, or
// everything: the trees are then marked suspect and rebuilt, so they never claim what storage lacks.
func (h *Hashtrees) Write(ops []storage.Op, ch AAEChange) error {
	kh := ring.KeyHash(ch.Key)
	if op, ok := h.indexOp(kh, ch); ok {
		ops = append(ops, op)
	}
	if err := h.store.Write(ops); err != nil {
		h.writeFailed()
		return err
	}
	h.apply(kh, ch)
	return nil
}

// WriteBatch is Write of several items in one atomic batch: ops are the behaviour's writes of them (and
// anything else it writes with them), chs the change of each item, at most one per item. On error nothing
// may have been stored, or everything (see Write).
func (h *Hashtrees) WriteBatch(ops []storage.Op, chs []AAEChange) error {
	khs := make([]uint64, len(chs))
	for i, ch := range chs {
		khs[i] = ring.KeyHash(ch.Key)
		if op, ok := h.indexOp(khs[i], ch); ok {
			ops = append(ops, op)
		}
	}
	if err := h.store.Write(ops); err != nil {
		h.writeFailed()
		return err
	}
	for i, ch := range chs {
		h.apply(khs[i], ch)
	}
	return nil
}

// indexOp is the index change of ch, if the item appears or disappears (an overwrite changes no index).
func (h *Hashtrees) indexOp(kh uint64, ch AAEChange) (storage.Op, bool) {
	switch {
	case ch.Old == 0 && ch.New != 0:
		return storage.Op{Key: h.indexKey(kh, ch.Key), Value: bytes.Clone(ch.StoreKey)}, true
	case ch.Old != 0 && ch.New == 0:
		return storage.Op{Key: h.indexKey(kh, ch.Key), Delete: true}, true
	}
	return storage.Op{}, false
}

// writeFailed marks the trees suspect after a failed write: they are rebuilt.
func (h *Hashtrees) writeFailed() {
	if h.build == nil {
		h.startBuild()
		h.publish()
		if h.system != nil {
			h.schedule(h.system, h.self, max(h.cfg.RebuildPause, 100*time.Millisecond))
		}
	}
}

// apply updates the trees with a stored change ch of the item with key hash kh.
func (h *Hashtrees) apply(kh uint64, ch AAEChange) {
	if ch.Old == ch.New {
		return
	}
	src := h.source(kh)
	if h.trees != nil {
		h.items.Add(itemDelta(ch.Old, ch.New))
		treeOf(h.trees, src).Update(kh, ch.Old, ch.New)
	}
	if b := h.build; b != nil && b.started && bytes.Compare(ch.StoreKey, b.cursor) <= 0 {
		b.items += itemDelta(ch.Old, ch.New)
		treeOf(b.trees, src).Update(kh, ch.Old, ch.New)
	}
}

func itemDelta(o, n uint64) int64 {
	switch {
	case o == 0 && n != 0:
		return 1
	case o != 0 && n == 0:
		return -1
	}
	return 0
}

func treeOf(m map[int]*aae.Tree, src int) *aae.Tree {
	t := m[src]
	if t == nil {
		t = &aae.Tree{}
		m[src] = t
	}
	return t
}

// release gives back the rebuild slot this vnode holds, if any.
func (h *Hashtrees) release() {
	if h.holding {
		<-h.slots
		h.holding = false
	}
}

// noItems reports whether the partition holds nothing but the trees' own keys (a rebuild has nothing to
// fold).
func (h *Hashtrees) noItems() (bool, error) {
	empty := true
	err := h.store.FoldRange([]byte{}, AAEReservedPrefix, func(_, _ []byte) error {
		empty = false
		return storage.ErrStopFold
	})
	return empty, err
}

// startBuild starts a rebuild (the serving trees, if any, keep serving).
func (h *Hashtrees) startBuild() {
	if h.build != nil {
		return
	}
	h.build = &treeBuild{trees: map[int]*aae.Tree{}}
	h.state = AAEBuilding
	if h.trees != nil {
		h.state = AAERebuilding
	}
}

// aaeStep is the vnode's message to itself that runs the next rebuild step (or starts a periodic one).
type aaeStep struct{ h *Hashtrees }

// schedule arranges the next step: at once when pause is 0 or less.
func (h *Hashtrees) schedule(system *actor.ActorSystem, self *actor.PID, pause time.Duration) {
	if h.closed || h.timer != nil {
		return
	}
	if pause <= 0 {
		system.Root.Send(self, &aaeStep{h: h})
		return
	}
	h.timer = time.AfterFunc(pause, func() { system.Root.Send(self, &aaeStep{h: h}) })
}

// kick schedules what the trees need next: a rebuild step, or the next periodic rebuild.
func (h *Hashtrees) kick(system *actor.ActorSystem, self *actor.PID) {
	h.system, h.self = system, self
	switch {
	case h.build != nil:
		h.schedule(system, self, 0)
	case h.cfg.RebuildPeriod > 0:
		h.schedule(system, self, h.cfg.RebuildPeriod)
	}
}

// step runs on aaeStep inside the vnode: one chunk of the rebuild, or the start of a periodic one.
func (h *Hashtrees) step(system *actor.ActorSystem, self *actor.PID, logger interface{ Warn(string, ...any) }) {
	h.timer = nil
	if h.closed {
		return
	}
	if h.build == nil {
		h.startBuild()
		h.publish()
	}
	if !h.holding {
		empty, err := h.noItems()
		switch {
		case err == nil && empty:
			// NB: nothing to fold: the rebuild ends at once and takes no slot.
		case h.slots == nil:
		default:
			select {
			case h.slots <- struct{}{}:
				h.holding = true
			default:
				h.schedule(system, self, max(h.cfg.RebuildPause, 50*time.Millisecond)) // a slot is taken: later
				return
			}
		}
	}
	done, err := h.buildChunk()
	if err != nil {
		logger.Warn("vnode: hash tree rebuild step failed; retrying", "err", err)
		h.schedule(system, self, max(h.cfg.RebuildPause, 100*time.Millisecond))
		return
	}
	if !done {
		h.schedule(system, self, h.cfg.RebuildPause)
		return
	}
	b := h.build
	h.build = nil
	h.release()
	h.counts.Rebuilds++
	h.counts.Fixed += b.fixed
	if h.trees != nil && !sameTrees(h.trees, b.trees) {
		h.counts.Mismatched++
		logger.Warn("vnode: hash tree rebuild found the trees out of step with storage", "items", b.items)
	}
	h.trees, h.state, h.built = b.trees, AAEBuilt, h.now()
	h.items.Store(b.items)
	h.publish()
	if h.cfg.RebuildPeriod > 0 {
		h.schedule(system, self, h.cfg.RebuildPeriod)
	}
}

func sameTrees(a, b map[int]*aae.Tree) bool {
	var empty aae.Tree
	for s, t := range a {
		o := b[s]
		if o == nil {
			o = &empty
		}
		if !t.Equal(o) {
			return false
		}
	}
	for s, t := range b {
		if a[s] == nil && !t.Equal(&empty) {
			return false
		}
	}
	return true
}

// buildChunk folds the next RebuildChunk items after the cursor into the building trees and corrects
// their index entries; done once the data is folded.
func (h *Hashtrees) buildChunk() (done bool, err error) {
	b := h.build
	start := []byte{}
	if b.started {
		start = append(bytes.Clone(b.cursor), 0)
	}
	n := 0
	var last []byte
	var fix []storage.Op
	err = h.store.FoldRange(start, AAEReservedPrefix, func(k, v []byte) error {
		if n == h.cfg.RebuildChunk {
			return storage.ErrStopFold
		}
		n++
		last = append(last[:0], k...)
		key, ver, ok := h.hasher.AAEItem(k, v)
		if !ok || ver == 0 {
			return nil
		}
		kh := ring.KeyHash(key)
		treeOf(b.trees, h.source(kh)).Insert(kh, ver)
		b.items++
		ik := h.indexKey(kh, key)
		got, err := h.store.Get(ik)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if !bytes.Equal(got, k) {
			fix = append(fix, storage.Op{Key: ik, Value: bytes.Clone(k)})
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	if len(fix) > 0 {
		if err := h.store.Write(fix); err != nil {
			return false, err
		}
		b.fixed += int64(len(fix))
	}
	if n > 0 {
		b.cursor, b.started = last, true
	}
	return n < h.cfg.RebuildChunk, nil
}

// persist writes the trees and the clean-stop marker (a clean stop, with the trees built): the next start
// loads them instead of rebuilding. Empty trees are not written, so an empty partition stays empty.
func (h *Hashtrees) persist() error {
	if h.closed || h.state != AAEBuilt {
		return nil
	}
	var ops []storage.Op
	for src, t := range h.trees {
		k := binary.BigEndian.AppendUint16(bytes.Clone(aaeTreePrefix), uint16(src))
		if t.Empty() {
			ops = append(ops, storage.Op{Key: k, Delete: true})
			continue
		}
		v, _ := t.MarshalBinary()
		ops = append(ops, storage.Op{Key: k, Value: v})
	}
	if h.items.Load() == 0 {
		return h.store.Write(append(ops, storage.Op{Key: aaeCleanKey, Delete: true}))
	}
	ops = append(ops, storage.Op{Key: aaeCleanKey, Value: binary.BigEndian.AppendUint64(nil, uint64(h.items.Load()))})
	return h.store.Write(ops)
}

// close ends the trees' timers (the incarnation ends).
func (h *Hashtrees) close() {
	h.closed = true
	h.release()
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
}

func (h *Hashtrees) publish() {
	st := *h.counts
	st.State, st.Trees, st.BuiltAt = h.state, len(h.trees), h.built
	h.status.Store(&st)
}

// Limits on what an AAEQuery may ask and an answer may carry.
const (
	// MaxAAEAnswerBytes bounds the keys of one QueryKeys answer; an answer that would exceed it fails (the
	// exchange then asks for fewer segments next time).
	MaxAAEAnswerBytes = 8 << 20
)

// AAEQuery asks a vnode about its hash tree of Source (a hash partition whose keys it holds). The reply is
// *AAEAnswer with the same ID.
type AAEQuery struct {
	V        uint8         `msgpack:"v"`
	ID       uint64        `msgpack:"id"`
	Source   int           `msgpack:"s"`
	Kind     aae.QueryKind `msgpack:"q"`
	Branches []int         `msgpack:"b"` // QuerySegments
	Segments []int         `msgpack:"g"` // QueryKeys, ascending
}

// AAEAnswer answers an AAEQuery. Err is set when the vnode cannot answer (no trees, a tree still building
// with nothing to serve, a bad query, a fold that failed).
type AAEAnswer struct {
	V         uint8            `msgpack:"v"`
	ID        uint64           `msgpack:"id"`
	Partition int              `msgpack:"p"`
	State     string           `msgpack:"st"`
	Root      uint64           `msgpack:"r"`
	Branches  []uint64         `msgpack:"b"`
	Segments  []uint64         `msgpack:"g"`
	Keys      []aae.KeyVersion `msgpack:"k"`
	Err       string           `msgpack:"e"`
}

// check validates a query from the wire against the ring size q.
func (q *AAEQuery) check(ring int) error {
	if q.Source < 0 || q.Source >= ring {
		return fmt.Errorf("source %d out of range 0..%d", q.Source, ring-1)
	}
	switch q.Kind {
	case aae.QueryRoot, aae.QueryBranches:
	case aae.QuerySegments:
		if len(q.Branches) > aae.Branches {
			return fmt.Errorf("%d branches", len(q.Branches))
		}
		for _, b := range q.Branches {
			if b < 0 || b >= aae.Branches {
				return fmt.Errorf("branch %d out of range", b)
			}
		}
	case aae.QueryKeys:
		if len(q.Segments) > aae.Segments || !slices.IsSorted(q.Segments) {
			return fmt.Errorf("%d segments, or not ascending", len(q.Segments))
		}
		for _, s := range q.Segments {
			if s < 0 || s >= aae.Segments {
				return fmt.Errorf("segment %d out of range", s)
			}
		}
	default:
		return fmt.Errorf("unknown query kind %d", q.Kind)
	}
	return nil
}

// handleAAE answers an AAEQuery: tree queries at once, inside the vnode; key queries by a segment fold on
// the worker pool. It reports whether msg was one.
func (a *vnodeActor) handleAAE(ctx actor.Context, msg any) bool {
	q, ok := msg.(*AAEQuery)
	if !ok {
		return false
	}
	from := Sender{system: ctx.ActorSystem(), pid: ctx.Sender()}
	rep := &AAEAnswer{V: 1, ID: q.ID, Partition: a.env.Partition}
	h := a.aae
	switch {
	case h == nil:
		rep.Err = "vnode: anti-entropy is off for this vnode"
	case h.trees == nil:
		rep.State, rep.Err = h.state, "vnode: hash trees are building"
	default:
		rep.State = h.state
		if err := q.check(h.cfg.Q); err != nil {
			rep.Err = "vnode: bad anti-entropy query: " + err.Error()
			break
		}
		if q.Kind != aae.QueryKeys {
			t := h.trees[q.Source]
			if t == nil {
				t = &aae.Tree{}
			}
			ans := aae.AnswerFrom(t, aae.Query{Kind: q.Kind, Branches: q.Branches})
			rep.Root, rep.Branches, rep.Segments = ans.Root, ans.Branches, ans.Segments
			break
		}
		store, src, segs, hasher := h.store, q.Source, q.Segments, h.hasher
		source := h.source
		a.execute(ctx, Async(func(c context.Context) any {
			keys, err := foldSegments(c, store, hasher, source, src, segs)
			if err != nil {
				rep.Err = err.Error()
			} else {
				rep.Keys = keys
			}
			return rep
		}).IfBusy(&AAEAnswer{V: 1, ID: q.ID, Partition: a.env.Partition, State: h.state,
			Err: "vnode: worker pool busy"}), from)
		return true
	}
	from.Send(rep)
	return true
}

// foldSegments reads the index entries of segments segs whose key belongs to source src (a range read per
// run of consecutive segments), then the stored value of each for its version. It never reads the rest of
// the partition. Keys come back sorted.
func foldSegments(ctx context.Context, store storage.Partition, hasher AAEHasher, source func(uint64) int, src int,
	segs []int) ([]aae.KeyVersion, error) {
	var out []aae.KeyVersion
	var storeKeys [][]byte
	size := 0
	for i := 0; i < len(segs); {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		j := i + 1
		for j < len(segs) && segs[j] == segs[j-1]+1 {
			j++
		}
		lo := binary.BigEndian.AppendUint16(bytes.Clone(aaeIndexPrefix), uint16(segs[i]))
		hi := binary.BigEndian.AppendUint16(bytes.Clone(aaeIndexPrefix), uint16(segs[j-1]+1))
		if segs[j-1]+1 == aae.Segments {
			hi = prefixEnd(aaeIndexPrefix)
		}
		i = j
		err := store.FoldRange(lo, hi, func(k, v []byte) error {
			if len(k) < len(lo)+8 {
				return nil
			}
			kh := binary.BigEndian.Uint64(k[len(lo):])
			if source(kh) != src {
				return nil
			}
			key := bytes.Clone(k[len(lo)+8:])
			size += len(key) + 16
			if size > MaxAAEAnswerBytes {
				return fmt.Errorf("vnode: segment fold over %d bytes", MaxAAEAnswerBytes)
			}
			out = append(out, aae.KeyVersion{Key: key})
			storeKeys = append(storeKeys, bytes.Clone(v))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	// The versions, from the items themselves. NB: an item deleted since the index fold is left out (it is
	// absent now, as the trees say).
	kept := out[:0]
	for i, kv := range out {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		val, err := store.Get(storeKeys[i])
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if _, ver, ok := hasher.AAEItem(storeKeys[i], val); ok && ver != 0 {
			kv.Version = ver
			kept = append(kept, kv)
		}
	}
	aae.SortKeys(kept)
	return kept, nil
}
