package storage

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

var _ Backend = (*LevelDB)(nil)

// LevelDBConfig configures the goleveldb backend. Start from
// DefaultLevelDBConfig; in a literal, a zero WriteBufferMiB, BlockCacheMiB or
// OpenFilesCacheCapacity means that field's default, but a zero
// BloomFilterBits disables the bloom filter.
type LevelDBConfig struct {
	// Dir is the directory of the node's one DB. Required; created if missing.
	Dir string
	// Sync fsyncs the journal before every write is acknowledged. Default
	// false: acknowledged writes survive a process crash but not a power loss
	// or kernel crash. True survives power loss at ~100x lower write rate.
	Sync bool
	// WriteBufferMiB is the memtable size in MiB: how much is buffered (and
	// preallocated, per open DB) before a flush to a level-0 table.
	// Default 4 (0 means 4); range 1..1024.
	WriteBufferMiB int
	// BlockCacheMiB is the shared cache of uncompressed table blocks, in MiB.
	// Default 8 (0 means 8); range 1..65536.
	BlockCacheMiB int
	// OpenFilesCacheCapacity is how many table files are kept open.
	// Default 500 (0 means 500); range 1..1000000. Keep it under the
	// process's file descriptor limit.
	OpenFilesCacheCapacity int
	// BloomFilterBits is the bloom filter's bits per key; it saves a disk read
	// for most Gets of absent keys. Default 10 (~1% false positives);
	// range 0..64, 0 disables the filter.
	BloomFilterBits int
}

const (
	defaultWriteBufferMiB         = 4
	defaultBlockCacheMiB          = 8
	defaultOpenFilesCacheCapacity = 500
	defaultBloomFilterBits        = 10

	// dropBatchSize is how many deletes DropPartition puts in one batch.
	dropBatchSize = 1000
)

// DefaultLevelDBConfig returns the default configuration for a DB in dir.
func DefaultLevelDBConfig(dir string) LevelDBConfig {
	return LevelDBConfig{
		Dir:                    dir,
		Sync:                   false,
		WriteBufferMiB:         defaultWriteBufferMiB,
		BlockCacheMiB:          defaultBlockCacheMiB,
		OpenFilesCacheCapacity: defaultOpenFilesCacheCapacity,
		BloomFilterBits:        defaultBloomFilterBits,
	}
}

// Validate reports the first invalid field, naming the field and its value.
func (c LevelDBConfig) Validate() error {
	if c.Dir == "" {
		return errors.New("storage: LevelDBConfig.Dir is empty: a directory is required")
	}
	for _, f := range []struct {
		name     string
		v, lo, h int
		zeroOK   bool
	}{
		{"WriteBufferMiB", c.WriteBufferMiB, 1, 1024, true},
		{"BlockCacheMiB", c.BlockCacheMiB, 1, 65536, true},
		{"OpenFilesCacheCapacity", c.OpenFilesCacheCapacity, 1, 1_000_000, true},
		{"BloomFilterBits", c.BloomFilterBits, 0, 64, false},
	} {
		if (f.v == 0 && f.zeroOK) || (f.v >= f.lo && f.v <= f.h) {
			continue
		}
		return fmt.Errorf("storage: LevelDBConfig.%s = %d: out of range %d..%d", f.name, f.v, f.lo, f.h)
	}
	return nil
}

// options translates c (already validated) into goleveldb options.
func (c LevelDBConfig) options() *opt.Options {
	o := &opt.Options{
		WriteBuffer:            orDefault(c.WriteBufferMiB, defaultWriteBufferMiB) * opt.MiB,
		BlockCacheCapacity:     orDefault(c.BlockCacheMiB, defaultBlockCacheMiB) * opt.MiB,
		OpenFilesCacheCapacity: orDefault(c.OpenFilesCacheCapacity, defaultOpenFilesCacheCapacity),
	}
	if c.BloomFilterBits > 0 {
		o.Filter = filter.NewBloomFilter(c.BloomFilterBits)
	}
	return o
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// LevelDB is the default Backend: one goleveldb DB per node holding every
// partition, each key prefixed by its partition (see doc.go for the layout).
type LevelDB struct {
	db     *leveldb.DB
	wo     *opt.WriteOptions
	scanRO *opt.ReadOptions // for Fold and DropPartition: do not evict hot blocks
	closed atomic.Bool
}

// OpenLevelDB opens (creating if needed) the DB in cfg.Dir. Only one process
// may open a directory at a time (goleveldb holds a file lock).
func OpenLevelDB(cfg LevelDBConfig) (*LevelDB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	db, err := leveldb.OpenFile(cfg.Dir, cfg.options())
	if err != nil {
		return nil, fmt.Errorf("storage: open leveldb %q: %w", cfg.Dir, err)
	}
	return &LevelDB{
		db:     db,
		wo:     &opt.WriteOptions{Sync: cfg.Sync},
		scanRO: &opt.ReadOptions{DontFillCache: true},
	}, nil
}

// fail wraps err for op on partition, reporting ErrClosed for anything that
// fails because the DB was closed (goleveldb's own ErrClosed, or an iterator
// cut short by a concurrent Close).
func (l *LevelDB) fail(op string, partition uint32, err error) error {
	if errors.Is(err, leveldb.ErrClosed) || l.closed.Load() {
		err = ErrClosed
	}
	return opError(op, partition, err)
}

// Get implements Backend.
func (l *LevelDB) Get(partition uint32, key []byte) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, opError("get", partition, err)
	}
	if l.closed.Load() {
		return nil, opError("get", partition, ErrClosed)
	}
	v, err := l.db.Get(encodeKey(partition, key), nil)
	if err != nil {
		if errors.Is(err, leveldb.ErrNotFound) {
			return nil, ErrNotFound
		}
		return nil, l.fail("get", partition, err)
	}
	if v == nil {
		v = []byte{} // NB: goleveldb returns nil for an empty value.
	}
	return v, nil
}

// Put implements Backend.
func (l *LevelDB) Put(partition uint32, key, value []byte) error {
	if err := checkKey(key); err != nil {
		return opError("put", partition, err)
	}
	if l.closed.Load() {
		return opError("put", partition, ErrClosed)
	}
	if err := l.db.Put(encodeKey(partition, key), value, l.wo); err != nil {
		return l.fail("put", partition, err)
	}
	return nil
}

// Delete implements Backend.
func (l *LevelDB) Delete(partition uint32, key []byte) error {
	if err := checkKey(key); err != nil {
		return opError("delete", partition, err)
	}
	if l.closed.Load() {
		return opError("delete", partition, ErrClosed)
	}
	if err := l.db.Delete(encodeKey(partition, key), l.wo); err != nil {
		return l.fail("delete", partition, err)
	}
	return nil
}

// Write implements Backend.
func (l *LevelDB) Write(partition uint32, ops []Op) error {
	if err := checkOps(ops); err != nil {
		return opError("write", partition, err)
	}
	if l.closed.Load() {
		return opError("write", partition, ErrClosed)
	}
	if len(ops) == 0 {
		return nil
	}
	var b leveldb.Batch
	var kb []byte // NB: Batch copies keys and values, so one key buffer serves all ops.
	for i := range ops {
		kb = appendKey(kb[:0], partition, ops[i].Key)
		if ops[i].Delete {
			b.Delete(kb)
		} else {
			b.Put(kb, ops[i].Value)
		}
	}
	if err := l.db.Write(&b, l.wo); err != nil {
		return l.fail("write", partition, err)
	}
	return nil
}

// iterPartition returns an iterator over the partition's stored keys. A
// goleveldb iterator reads an implicit snapshot taken at creation.
func (l *LevelDB) iterPartition(partition uint32, ro *opt.ReadOptions) iterator.Iterator {
	return l.db.NewIterator(util.BytesPrefix(partitionPrefix(partition)), ro)
}

// Fold implements Backend.
func (l *LevelDB) Fold(partition uint32, fn func(key, value []byte) error) error {
	if l.closed.Load() {
		return opError("fold", partition, ErrClosed)
	}
	it := l.iterPartition(partition, l.scanRO)
	defer it.Release()
	for it.Next() {
		if err := fn(it.Key()[prefixLen:], it.Value()); err != nil {
			if errors.Is(err, ErrStopFold) {
				return nil
			}
			return opError("fold", partition, err)
		}
	}
	if err := it.Error(); err != nil {
		return l.fail("fold", partition, err)
	}
	return nil
}

// IsEmpty implements Backend.
func (l *LevelDB) IsEmpty(partition uint32) (bool, error) {
	if l.closed.Load() {
		return false, opError("is-empty", partition, ErrClosed)
	}
	it := l.iterPartition(partition, nil)
	defer it.Release()
	if it.First() {
		return false, nil
	}
	if err := it.Error(); err != nil {
		return false, l.fail("is-empty", partition, err)
	}
	return true, nil
}

// DropPartition implements Backend: it deletes the partition's keys in
// batches of dropBatchSize, then compacts the partition's range so that the
// space (and the tombstones) are reclaimed. The compaction first flushes the
// memtable, so a drop costs at least one table write and a few fsyncs; an
// already empty partition is only checked.
func (l *LevelDB) DropPartition(partition uint32) error {
	if l.closed.Load() {
		return opError("drop", partition, ErrClosed)
	}
	it := l.iterPartition(partition, l.scanRO)
	defer it.Release()
	var b leveldb.Batch
	deleted := 0
	for it.Next() {
		b.Delete(it.Key())
		deleted++
		if b.Len() >= dropBatchSize {
			if err := l.db.Write(&b, l.wo); err != nil {
				return l.fail("drop", partition, err)
			}
			b.Reset()
		}
	}
	if err := it.Error(); err != nil {
		return l.fail("drop", partition, err)
	}
	if b.Len() > 0 {
		if err := l.db.Write(&b, l.wo); err != nil {
			return l.fail("drop", partition, err)
		}
	}
	if deleted == 0 {
		return nil // NB: CompactRange would still flush the memtable.
	}
	if err := l.db.CompactRange(*util.BytesPrefix(partitionPrefix(partition))); err != nil {
		return l.fail("drop: compact", partition, err)
	}
	return nil
}

// Partitions implements Backend. It skips from one partition's first key to
// the next partition's prefix, so its cost grows with the number of
// partitions, not of keys.
func (l *LevelDB) Partitions() ([]uint32, error) {
	if l.closed.Load() {
		return nil, fmt.Errorf("storage: partitions: %w", ErrClosed)
	}
	it := l.db.NewIterator(nil, nil)
	defer it.Release()
	var ps []uint32
	for ok := it.First(); ok; {
		p, valid := decodePartition(it.Key())
		if !valid {
			return nil, fmt.Errorf("storage: partitions: malformed key %q (shorter than the %d-byte partition prefix)", it.Key(), prefixLen)
		}
		ps = append(ps, p)
		if p == ^uint32(0) {
			break
		}
		ok = it.Seek(partitionPrefix(p + 1))
	}
	if err := it.Error(); err != nil {
		if errors.Is(err, leveldb.ErrClosed) || l.closed.Load() {
			err = ErrClosed
		}
		return nil, fmt.Errorf("storage: partitions: %w", err)
	}
	if ps == nil {
		ps = []uint32{}
	}
	return ps, nil
}

// Close implements Backend. It waits for goleveldb's background compaction to
// stop. Folds still running see ErrClosed or finish on their snapshot.
func (l *LevelDB) Close() error {
	if !l.closed.CompareAndSwap(false, true) {
		return fmt.Errorf("storage: close: %w", ErrClosed)
	}
	if err := l.db.Close(); err != nil {
		return fmt.Errorf("storage: close: %w", err)
	}
	return nil
}
