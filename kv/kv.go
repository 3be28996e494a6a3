package kv

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"

	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// Storage layout of a KV vnode inside its partition's key space: one byte of namespace, then the rest.
// NB: append-only; changing these orphans stored data.
const (
	nsObject = 'k' // 'k' + user key -> Object.MarshalBinary
	nsMeta   = 'm' // 'm' + name     -> vnode metadata (not handed off)
)

var (
	metaVnodeID = []byte{nsMeta, 'i', 'd'}
	metaLease   = []byte{nsMeta, 's', 'e', 'q'}
)

// maxKeptEncoding bounds the encoding buffer a vnode keeps between stores (Vnode.enc): a larger object's
// buffer is left to the collector.
const maxKeptEncoding = 64 << 10

// counterLease is how many dot counters a vnode reserves per write of its lease.
const counterLease = 1 << 16

// KV is gokai's key/value behaviour: each key holds an Object (dotted version vectors, siblings,
// tombstones). It implements Behaviour.
type Vnode struct {
	cfg   Config
	env   vnode.Env
	actor string // this vnode's actor id in vector clocks
	buf   []byte
	enc   []byte        // the encoding of the object being stored (store), reused: storage copies it
	ops   [2]storage.Op // write's batch: the item's op and the hash trees' index entry
	cache *objectCache  // nil when disabled
	// seq is the highest dot counter this vnode issued (for any key); lease is the persisted bound below
	// which counters may have been issued. INVARIANT: seq < lease.
	seq, lease uint64
}

var (
	_ vnode.Behaviour          = (*Vnode)(nil)
	_ vnode.HandoffCommander   = (*Vnode)(nil)
	_ vnode.HandoffMerger      = (*Vnode)(nil)
	_ vnode.HandoffBatchMerger = (*Vnode)(nil)
	_ vnode.ConcurrentFold     = (*Vnode)(nil)
	_ vnode.AAEHasher          = (*Vnode)(nil)
)

// ConcurrentFoldSafe: KV's fold reads a storage snapshot and its encoder is pure.
func (vn *Vnode) ConcurrentFoldSafe() {}

// HandleHandoffCommand applies writes locally and forwards the resulting object to the new owner, so a
// write that lands after the fold's snapshot still reaches it. Reads and reaps are handled locally only.
func (vn *Vnode) HandleHandoffCommand(cmd any, from vnode.Sender) (vnode.Result, []byte) {
	req, ok := cmd.(*PutRequest)
	if !ok {
		return vn.HandleCommand(cmd, from), nil
	}
	want := req.ReturnObject
	r := *req
	r.ReturnObject = true
	rep := vn.put(&r)
	if rep.Err != "" || rep.Object == nil {
		return vnode.Reply(rep), nil
	}
	raw, err := rep.Object.MarshalBinary()
	if err != nil {
		return vnode.Reply(rep), nil
	}
	fwd, err := vn.EncodeHandoffItem(req.Key, raw)
	if err != nil {
		return vnode.Reply(rep), nil
	}
	if !want && !req.Coordinate {
		out := *rep
		out.Object = nil
		rep = &out
	}
	return vnode.Reply(rep), fwd
}

// NewVnode returns a Factory of KV behaviours with cfg.
func NewVnode(cfg Config) vnode.Factory {
	return func() vnode.Behaviour { return &Vnode{cfg: cfg} }
}

// Init loads (or mints, on first use) the vnode's actor id. The id is node/partition/epoch, where the epoch
// is random and persisted with the data: a vnode that lost its data mints a new epoch, so it can never
// reissue a dot it issued before (which would make two different writes look identical).
func (vn *Vnode) Init(env vnode.Env) error {
	vn.env = env
	vn.cache = newObjectCache(vn.cfg.CacheBytes)
	id, err := env.Store.Get(metaVnodeID)
	switch {
	case err == nil:
		vn.actor = string(id)
	case errors.Is(err, storage.ErrNotFound):
		var epoch [4]byte
		if _, err := rand.Read(epoch[:]); err != nil {
			return fmt.Errorf("kv: mint id: %w", err)
		}
		vn.actor = fmt.Sprintf("%s/%d/%s", env.Node, env.Partition, hex.EncodeToString(epoch[:]))
		if err := env.Store.Put(metaVnodeID, []byte(vn.actor)); err != nil {
			return fmt.Errorf("kv: store id: %w", err)
		}
	default:
		return fmt.Errorf("kv: load id: %w", err)
	}
	// Counters below the stored lease may have been issued before a crash: start above it.
	raw, err := env.Store.Get(metaLease)
	switch {
	case err == nil && len(raw) == 8:
		vn.seq = binary.BigEndian.Uint64(raw)
	case err == nil:
		return fmt.Errorf("kv: counter lease of %d bytes", len(raw))
	case !errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("kv: load counter lease: %w", err)
	}
	return vn.extendLease()
}

// extendLease persists a new lease above seq.
func (vn *Vnode) extendLease() error {
	vn.lease = vn.seq + counterLease
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], vn.lease)
	if err := vn.env.Store.Put(metaLease, b[:]); err != nil {
		return fmt.Errorf("kv: store counter lease: %w", err)
	}
	return nil
}

// ActorID is the id this vnode writes into vector clocks.
func (vn *Vnode) ActorID() string { return vn.actor }

func (vn *Vnode) objectKey(key []byte) []byte {
	vn.buf = append(append(vn.buf[:0], nsObject), key...)
	return vn.buf
}

func (vn *Vnode) load(key []byte) (*Object, error) {
	if o, ok := vn.cache.get(key); ok {
		return o, nil
	}
	raw, err := vn.env.Store.Get(vn.objectKey(key))
	if errors.Is(err, storage.ErrNotFound) {
		vn.cache.put(key, nil)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	o, err := UnmarshalObject(raw)
	if err != nil {
		return nil, err
	}
	vn.cache.put(key, o)
	return o, nil
}

// store writes o over old (what the vnode held: nil for nothing); o is then cached and shared: nobody may
// modify it afterwards.
func (vn *Vnode) store(key []byte, old, o *Object) error {
	raw, err := o.AppendBinary(vn.enc[:0])
	if err != nil {
		return err
	}
	if cap(raw) <= maxKeptEncoding {
		vn.enc = raw // NB: storage copied it (Backend's ownership rule): the next store reuses it
	}
	if err := vn.write(key, old, storage.Op{Key: vn.objectKey(key), Value: raw}, VersionHash(o)); err != nil {
		// NB: the write may or may not have reached storage: forget the key so the next read asks it.
		vn.cache.drop(key)
		return err
	}
	vn.cache.put(key, o)
	return nil
}

// write stores op, the one storage change of key, whose version goes from old's to newV (0: absent):
// through the hash trees when the vnode has them, so their index changes in the same batch.
func (vn *Vnode) write(key []byte, old *Object, op storage.Op, newV uint64) error {
	if vn.env.AAE == nil {
		if op.Delete {
			return vn.env.Store.Delete(op.Key)
		}
		return vn.env.Store.Put(op.Key, op.Value)
	}
	// NB: the batch lives in the vnode, with room for the index entry Write appends: no allocation.
	vn.ops[0] = op
	err := vn.env.AAE.Write(vn.ops[:1:len(vn.ops)], vnode.AAEChange{StoreKey: op.Key, Key: key, Old: VersionHash(old), New: newV})
	vn.ops = [2]storage.Op{}
	return err
}

func (vn *Vnode) nowNanos() int64 { return vn.env.Now().UnixNano() }

// storageCode is the reply code for a storage failure: CodeDiskFull when the disk is full (so coordinators
// can tell clients so), else CodeStorage.
func storageCode(err error) string {
	if errors.Is(err, storage.ErrDiskFull) {
		return CodeDiskFull
	}
	return CodeStorage
}

// HandleCommand serves GetRequest, PutRequest, ReapRequest, KeysRequest and DropRequest.
func (vn *Vnode) HandleCommand(cmd any, _ vnode.Sender) vnode.Result {
	switch req := cmd.(type) {
	case *GetRequest:
		o, err := vn.load(req.Key)
		rep := &GetReply{V: 1, Tag: req.Tag, Partition: vn.env.Partition, Object: o}
		if err != nil {
			rep.Code, rep.Err = storageCode(err), err.Error()
		}
		return vnode.Reply(rep)
	case *PutRequest:
		return vnode.Reply(vn.put(req))
	case *ReapRequest:
		vn.reap(req)
		return vnode.NoReply()
	case *KeysRequest:
		return vnode.Reply(vn.keys(req))
	case *DropRequest:
		return vnode.Reply(vn.drop(req))
	default:
		vn.env.Logger.Warn("kv: unknown command", "type", fmt.Sprintf("%T", cmd))
		return vnode.NoReply()
	}
}

func (vn *Vnode) put(req *PutRequest) *PutReply {
	rep, _ := vn.apply(req)
	return rep
}

// apply carries out a PutRequest; stored reports whether it changed what storage holds.
func (vn *Vnode) apply(req *PutRequest) (rep *PutReply, stored bool) {
	rep = &PutReply{V: 1, Tag: req.Tag, Partition: vn.env.Partition}
	local, err := vn.load(req.Key)
	if err != nil {
		rep.Code, rep.Err = storageCode(err), err.Error()
		return rep, false
	}
	var next *Object
	if req.Coordinate {
		next, err = Update(local, vn.actor, req.Context, req.Blind, req.Value, req.Meta, vn.nowNanos(),
			UpdateOptions{LWW: vn.cfg.LWW, MaxSiblings: vn.cfg.MaxSiblings, Prune: vn.cfg.Prune, MinCounter: vn.seq})
		if err != nil {
			rep.Err = err.Error()
			rep.Code = CodeBadRequest
			if errors.Is(err, ErrTooManySiblings) {
				rep.Code = CodeTooManySiblings
			}
			return rep, false
		}
		for _, sib := range next.Siblings {
			if sib.Dot.Actor == vn.actor && sib.Dot.Counter > vn.seq {
				vn.seq = sib.Dot.Counter
			}
		}
		// NB: the lease is persisted before the write is stored and acknowledged, so a counter in any
		// stored object is always below the lease a restarted vnode starts from.
		if vn.seq >= vn.lease {
			if err := vn.extendLease(); err != nil {
				rep.Code, rep.Err = storageCode(err), err.Error()
				return rep, false
			}
		}
	} else {
		if req.Object == nil {
			rep.Code, rep.Err = CodeBadRequest, "kv: replicate without object"
			return rep, false
		}
		// Keep the incoming object itself when it is what Sync would make (immutable, like every object),
		// so that the replicas of one write share it and a read's comparison of their copies is a pointer
		// comparison. NB: SyncKeeps spares the merge in the common case (a write coordinated on what this
		// replica holds).
		if SyncKeeps(local, req.Object, vn.cfg.LWW) {
			next = req.Object
		} else if next = Sync(local, req.Object, vn.cfg.LWW); next.Equal(req.Object) {
			next = req.Object
		}
		if local != nil && next.Equal(local) {
			// Nothing new: the replica already holds everything (idempotent replication and repair).
			if req.ReturnObject {
				rep.Object = local
			}
			return rep, false
		}
	}
	if err := vn.store(req.Key, local, next); err != nil {
		rep.Code, rep.Err = storageCode(err), err.Error()
		return rep, false
	}
	if req.Coordinate || req.ReturnObject {
		rep.Object = next
	}
	return rep, true
}

func (vn *Vnode) reap(req *ReapRequest) {
	local, err := vn.load(req.Key)
	if err != nil || local == nil {
		return
	}
	if !local.TombstoneOnly(vn.env.Now().Unix()) || !req.Clock.Descends(local.Clock) {
		return
	}
	err = vn.write(req.Key, local, storage.Op{Key: vn.objectKey(req.Key), Delete: true}, 0)
	vn.cache.drop(req.Key)
	if err != nil {
		vn.env.Logger.Warn("kv: reap failed", "err", err)
	}
}

// drop removes the keys whose stored bytes are still the ones given (see DropRequest).
func (vn *Vnode) drop(req *DropRequest) *DropReply {
	rep := &DropReply{}
	if len(req.Keys) != len(req.Objects) {
		rep.Err = fmt.Sprintf("kv: drop: %d keys, %d objects", len(req.Keys), len(req.Objects))
		return rep
	}
	for i, key := range req.Keys {
		raw, err := vn.env.Store.Get(vn.objectKey(key))
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			rep.Err = err.Error()
			return rep
		}
		if !bytes.Equal(raw, req.Objects[i]) {
			continue // written since the fold read it: keep it (a later scan moves the new version)
		}
		var old *Object
		if vn.env.AAE != nil {
			if old, err = UnmarshalObject(raw); err != nil {
				rep.Err = err.Error()
				return rep
			}
		}
		err = vn.write(key, old, storage.Op{Key: vn.objectKey(key), Delete: true}, 0)
		vn.cache.drop(key)
		if err != nil {
			rep.Err = err.Error()
			return rep
		}
		rep.Dropped++
	}
	return rep
}

func (vn *Vnode) keys(req *KeysRequest) *KeysReply {
	rep := &KeysReply{V: 1, Partition: vn.env.Partition}
	err := vn.HandoffFold(func(k, _ []byte) error {
		rep.Keys = append(rep.Keys, bytes.Clone(k))
		if req.Limit > 0 && len(rep.Keys) >= req.Limit {
			return storage.ErrStopFold
		}
		return nil
	})
	if err != nil {
		rep.Err = err.Error()
	}
	return rep
}

// HandoffFold visits every stored object as (user key, encoded object).
func (vn *Vnode) HandoffFold(fn func(key, value []byte) error) error {
	// NB: the objects' range alone: the partition also holds an anti-entropy index entry per object (after
	// them), which a whole-partition fold would read for nothing, twice per transfer (count, then send).
	return vn.env.Store.FoldRange(objectsStart, objectsEnd, func(k, v []byte) error {
		return fn(k[1:], v)
	})
}

// The stored-key range of the objects: every key in nsObject.
var (
	objectsStart = []byte{nsObject}
	objectsEnd   = []byte{nsObject + 1}
)

// EncodeHandoffItem frames one folded item: a msgpack array [key, encoded object], both bin, in one
// allocation of the exact size.
func (vn *Vnode) EncodeHandoffItem(key, value []byte) ([]byte, error) {
	out := make([]byte, 0, 1+binHeaderLen(len(key))+len(key)+binHeaderLen(len(value))+len(value))
	out = append(out, 0x92)
	out = appendBin(out, key)
	return appendBin(out, value), nil
}

// binHeaderLen is the size of the msgpack bin header of n bytes (bin 8, 16 or 32).
func binHeaderLen(n int) int {
	switch {
	case n <= math.MaxUint8:
		return 2
	case n <= math.MaxUint16:
		return 3
	default:
		return 5
	}
}

// appendBin appends b as msgpack bin, in the shortest of bin 8, 16 and 32; readBin reads it back.
// REQUIRES: len(b) <= math.MaxUint32 (storage bounds keys and values far below).
func appendBin(dst, b []byte) []byte {
	switch n := len(b); {
	case n <= math.MaxUint8:
		dst = append(dst, 0xc4, byte(n))
	case n <= math.MaxUint16:
		dst = append(dst, 0xc5)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, 0xc6)
		dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	}
	return append(dst, b...)
}

// DecodeHandoffItem is the inverse of EncodeHandoffItem; it checks every declared length against the
// bytes present before using it.
func DecodeHandoffItem(data []byte) (key, object []byte, err error) {
	if len(data) < 1 || data[0] != 0x92 {
		return nil, nil, errors.New("kv: handoff item: not a 2-element array")
	}
	rest := data[1:]
	if key, rest, err = readBin(rest); err != nil {
		return nil, nil, fmt.Errorf("kv: handoff item key: %w", err)
	}
	if object, rest, err = readBin(rest); err != nil {
		return nil, nil, fmt.Errorf("kv: handoff item object: %w", err)
	}
	if len(rest) != 0 {
		return nil, nil, errors.New("kv: handoff item: trailing bytes")
	}
	return key, object, nil
}

// readBin reads one msgpack bin8/16/32 from b without trusting its declared length.
func readBin(b []byte) (v, rest []byte, err error) {
	if len(b) < 1 {
		return nil, nil, errors.New("truncated")
	}
	var n, hdr int
	switch b[0] {
	case 0xc4:
		if len(b) < 2 {
			return nil, nil, errors.New("truncated")
		}
		n, hdr = int(b[1]), 2
	case 0xc5:
		if len(b) < 3 {
			return nil, nil, errors.New("truncated")
		}
		n, hdr = int(binary.BigEndian.Uint16(b[1:])), 3
	case 0xc6:
		if len(b) < 5 {
			return nil, nil, errors.New("truncated")
		}
		n, hdr = int(binary.BigEndian.Uint32(b[1:])), 5
	default:
		return nil, nil, fmt.Errorf("want bin, got 0x%02x", b[0])
	}
	if n > len(b)-hdr {
		return nil, nil, fmt.Errorf("declared %d bytes, %d present", n, len(b)-hdr)
	}
	return b[hdr : hdr+n], b[hdr+n:], nil
}

// HandleHandoffData merges one handed-off item into this vnode's copy, never overwriting a newer version.
func (vn *Vnode) HandleHandoffData(data []byte) error {
	_, err := vn.MergeHandoffData(data)
	return err
}

// MergeHandoffData is HandleHandoffData; changed is false when the vnode's copy already held everything
// the item carries (nothing was stored).
func (vn *Vnode) MergeHandoffData(data []byte) (changed bool, err error) {
	key, raw, err := DecodeHandoffItem(data)
	if err != nil {
		return false, err
	}
	in, err := UnmarshalObject(raw)
	if err != nil {
		return false, err
	}
	rep, stored := vn.apply(&PutRequest{V: 1, Key: key, Object: in})
	if rep.Err != "" {
		return false, errors.New(rep.Err)
	}
	return stored, nil
}

// MergeHandoffBatch implements vnode.HandoffBatchMerger: every item merged as MergeHandoffData would, in
// order (an item merges with the vnode's copy and with the earlier items of its key), and the changed
// objects stored in one storage write (with their hash-tree index entries), then cached. A load failure or an
// item that does not decode ends the batch there: the items before it are still stored.
func (vn *Vnode) MergeHandoffBatch(items [][]byte, changed []bool) (int, error) {
	var (
		writes []batchWrite
		at     = make(map[string]int, len(items)) // key -> its index in writes
		n      = len(items)
		failed error
		held   = vn.prefetch(items)
	)
	for i, it := range items {
		key, raw, err := DecodeHandoffItem(it)
		if err != nil {
			n, failed = i, err
			break
		}
		in, err := UnmarshalObject(raw)
		if err != nil {
			n, failed = i, err
			break
		}
		w, seen := at[string(key)]
		var local *Object
		if seen {
			local = writes[w].obj
		} else if o, ok := held[string(key)]; ok {
			local = o
		} else if local, err = vn.load(key); err != nil {
			n, failed = i, err
			break
		}
		// NB: exactly apply's merge of a replicated object (a PutRequest without Coordinate).
		next := Sync(local, in, vn.cfg.LWW)
		if next.Equal(in) {
			next = in
		}
		if local != nil && next.Equal(local) {
			continue
		}
		changed[i] = true
		if seen {
			writes[w].obj = next
		} else {
			at[string(key)] = len(writes)
			writes = append(writes, batchWrite{key: key, old: local, obj: next})
		}
	}
	if err := vn.storeBatch(writes); err != nil {
		clear(changed)
		return 0, err
	}
	return n, failed
}

// prefetchMin is the smallest batch whose stored copies prefetch reads with one fold.
const prefetchMin = 16

// prefetch reads the stored copies of a batch's keys (nil for an absent key) with one storage fold over their
// range, as load would read them one by one (the object cache first, and caching what it read): one seek
// instead of one per key. It returns nil, and load reads each key, for a short batch, keys out of order (a
// fold's batches are in storage order), or a fold that fails (load then reports the failure at its item).
func (vn *Vnode) prefetch(items [][]byte) map[string]*Object {
	if len(items) < prefetchMin {
		return nil
	}
	keys := make([][]byte, 0, len(items))
	for _, it := range items {
		key, _, err := DecodeHandoffItem(it)
		if err != nil {
			break // NB: the batch ends at this item: nothing after it is read
		}
		if len(keys) > 0 && bytes.Compare(keys[len(keys)-1], key) > 0 {
			return nil
		}
		keys = append(keys, key)
	}
	if len(keys) < prefetchMin {
		return nil
	}
	held := make(map[string]*Object, len(keys))
	next, last := 0, keys[len(keys)-1]
	// absentUpTo records every key before k (all of them for nil) as absent, unless the cache says otherwise.
	absentUpTo := func(k []byte) {
		for ; next < len(keys) && (k == nil || bytes.Compare(keys[next], k) < 0); next++ {
			if _, ok := held[string(keys[next])]; !ok {
				held[string(keys[next])] = nil
			}
		}
	}
	for _, k := range keys {
		if o, ok := vn.cache.get(k); ok {
			held[string(k)] = o
		}
	}
	err := vn.env.Store.FoldFrom(vn.objectKey(keys[0]), func(sk, v []byte) error {
		if len(sk) == 0 || sk[0] != nsObject || bytes.Compare(sk[1:], last) > 0 {
			return storage.ErrStopFold
		}
		k := sk[1:]
		absentUpTo(k)
		if next == len(keys) || !bytes.Equal(keys[next], k) {
			return nil // a key the vnode holds that the batch does not carry
		}
		for ; next < len(keys) && bytes.Equal(keys[next], k); next++ {
		}
		if _, ok := held[string(k)]; ok {
			return nil // cached: the same object, decoded already
		}
		o, err := UnmarshalObject(v)
		if err != nil {
			return err
		}
		held[string(k)] = o
		vn.cache.put(k, o)
		return nil
	})
	if err != nil {
		return nil
	}
	absentUpTo(nil)
	for _, k := range keys {
		if o := held[string(k)]; o == nil {
			vn.cache.put(k, nil)
		}
	}
	return held
}

// batchWrite is one object of storeBatch: the user key, what the vnode held (nil: nothing) and the new object.
type batchWrite struct {
	key      []byte
	old, obj *Object
}

// storeBatch is store of several objects (one per key) in one storage write: the objects are then cached
// and shared.
func (vn *Vnode) storeBatch(writes []batchWrite) error {
	if len(writes) == 0 {
		return nil
	}
	size := 0
	for _, w := range writes {
		size += 1 + len(w.key)
	}
	keys := make([]byte, 0, size) // NB: every store key in one allocation; never grows past size
	ops := make([]storage.Op, len(writes), len(writes)+1)
	var chs []vnode.AAEChange
	if vn.env.AAE != nil {
		chs = make([]vnode.AAEChange, len(writes))
	}
	for i, w := range writes {
		raw, err := w.obj.MarshalBinary()
		if err != nil {
			return err
		}
		start := len(keys)
		keys = append(append(keys, nsObject), w.key...)
		ops[i] = storage.Op{Key: keys[start:len(keys):len(keys)], Value: raw}
		if chs != nil {
			chs[i] = vnode.AAEChange{StoreKey: ops[i].Key, Key: w.key, Old: VersionHash(w.old), New: VersionHash(w.obj)}
		}
	}
	var err error
	if chs != nil {
		err = vn.env.AAE.WriteBatch(ops, chs)
	} else {
		err = vn.env.Store.Write(ops)
	}
	for _, w := range writes {
		if err != nil {
			// NB: the write may or may not have reached storage: forget the key so the next read asks it.
			vn.cache.drop(w.key)
		} else {
			vn.cache.put(w.key, w.obj)
		}
	}
	return err
}

// IsEmpty reports whether the vnode holds no objects.
func (vn *Vnode) IsEmpty() (bool, error) {
	empty := true
	err := vn.HandoffFold(func(_, _ []byte) error {
		empty = false
		return storage.ErrStopFold
	})
	return empty, err
}

// Delete drops the partition's data, including the vnode id (a later vnode here mints a new epoch).
func (vn *Vnode) Delete() error {
	vn.cache.clear()
	return vn.env.Store.Drop()
}

// Terminate has nothing to release: all state is in storage.
func (vn *Vnode) Terminate(any) {}
