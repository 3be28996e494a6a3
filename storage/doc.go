// Package storage keeps the key/value entries of a node's partitions.
//
// It owns the on-disk (or in-memory) representation of entries and exports
// the Backend interface that vnode actors consume, with two implementations:
// LevelDB (goleveldb, the default) and Memory (tests, nodes without
// durability). Keys and values are opaque bytes here: encoding objects,
// vector clocks and tombstones belongs to the vnode's behaviour, and handoff
// and anti-entropy (and coverage listings) are built by their packages on top
// of Fold and FoldFrom (Partition.FoldRange, a FoldFrom that stops at an end
// key, reads one key range: the vnode's anti-entropy index reads a few
// segments this way). Storage knows
// nothing of the ring, actors or the network.
//
// # Key layout (LevelDB)
//
// A node opens one goleveldb DB for all its partitions. Each stored key is the
// partition number as 4 big-endian bytes followed by the user key:
//
//	stored key = BE32(partition) ‖ user key
//
//	00 00 00 07 | "user:42"      partition 7
//	00 00 00 08 | ""             partition 8, empty user key
//	ff ff ff ff | ff ff ...      partition 0xFFFFFFFF (no upper bound)
//
// Services share the backend in key spaces (KeySpace, keyspace.go): partition p of space s is the backend
// partition s<<16 | p, so a service's partitions are as contiguous as any other and never hold another
// service's keys. Space 0 is the identity: a data dir from before key spaces is space 0, which KV keeps.
//
//	00 01 00 07 | "user:42"      space 1, partition 7
//
// Big-endian keeps a partition's keys contiguous and in user-key byte order,
// so Fold, IsEmpty and DropPartition read the range util.BytesPrefix(BE32(p))
// (for 0xFFFFFFFF that range is open-ended), FoldFrom seeks to
// BE32(p) ‖ start within it (a listing resumed after a key reads only what
// is left), and Partitions skips from one partition's first key straight to
// the next prefix.
//
// # Why one DB per node, not one per partition
//
// Every open goleveldb DB allocates its whole write buffer (memtable, 4 MiB by
// default) when it opens, and runs its own goroutines, journal and file
// handles. Measured with
//
//	GOKAI_MEASURE=1 go test -run TestMemoryOneDBVsPerPartition -v ./storage/
//
// (Go 1.26, linux/amd64, 2 CPUs; 64 partitions, default config; "filled" is
// after writing the same 128 MiB, 2 MiB per partition, to each layout; deltas
// from a fresh process):
//
//	layout / phase          heap in use   RSS        goroutines  fds
//	64 DBs / open           +262 MiB      +4-8 MiB   +320        +256
//	64 DBs / filled         +264 MiB      +143 MiB   +320        +256
//	1 DB, prefixed / open   +4 MiB        +0.7 MiB   +5          +4-6
//	1 DB, prefixed / filled +15-17 MiB    +21-27 MiB +5          +12-14
//
// The memtables count as heap in use at once (raising the GC's target heap);
// their pages become resident as they fill, so per-partition DBs approach
// partitions × 4 MiB of RSS (up to twice that while a full memtable is being
// flushed): 256 MiB at Q=64, 1 GiB at Q=256. With one DB memory is bounded by
// the config, whatever Q is. The price is that dropping a partition is not
// "delete a directory" but delete its keys in batches of 1000 (DropPartition),
// which costs time proportional to the partition's size, and a compaction
// later to take the space back (below).
//
// # Dropping a partition: when the space comes back
//
// goleveldb has no range deletion: DropPartition writes a tombstone per key,
// and the deleted values (and the tombstones) take disk space until a
// compaction rewrites the tables holding them. Compacting the range at once,
// drop by drop, flushed the memtable and rewrote every level-0 table that
// overlaps the range (all of them, for keys written in any order) on every
// drop; a node giving away half its partitions after a join spent three
// quarters of its CPU on it. So a drop only deletes and records its partition,
// and a compactor owned by the LevelDB (one goroutine, started by the first
// drop, stopped by Close) compacts the recorded ranges together:
//
//   - when no partition has been dropped for LevelDBConfig.DropCompactQuiet
//     (default 5 s), but no later than DropCompactMaxDelay (default 1 min)
//     after the first drop still pending, so space comes back while drops
//     keep coming;
//   - consecutive partitions merge into one range; more than 4 separate
//     ranges become one range from the lowest dropped partition to the highest
//     (one pass over the span costs less than many flushes and level-0
//     rewrites);
//   - a compaction that fails (a reopen after a full disk closed the DB under
//     it) is retried a quiet delay later; Close cuts one in progress short and
//     does not run one still pending: after a restart the tombstones go with
//     goleveldb's own compactions, as writes reach their tables.
//
// Until then a dropped partition reads as empty (its tombstones hide the old
// values) and a fold, IsEmpty or Partitions reads over its tombstones: about
// the cost of folding the keys it held, without their values. A partition
// written again after its drop (handed back) keeps its new keys: they are
// newer than the tombstones, and the compaction keeps them.
// DropCompactions reports the compactions done and the partitions pending.
//
// # Durability
//
// With LevelDBConfig.Sync false (the default) a write is acknowledged once it
// is in goleveldb's journal in the OS page cache: it survives a crash of the
// process, but not a power loss or kernel crash, which can lose the last
// writes (replicas on other nodes cover this, as in Riak). With Sync true every
// write is fsynced before it is acknowledged and survives power loss, at a much
// lower write rate. Memory keeps nothing across Close.
//
// Concurrent writes (Put, Delete, Write from different partitions' vnodes) are merged into one goleveldb
// batch by a group commit (commit.go); each caller still returns only once the batch holding its write is
// written (and fsynced, with Sync), or with that batch's error: the durability above holds per call.
//
// # A full disk
//
// goleveldb keeps a failed journal write (ENOSPC) as a sticky error: every later write fails the same way
// until the DB is reopened, even once space is back. LevelDB makes a full disk a state instead: the first
// write that fails for want of space (ENOSPC or EDQUOT, in the journal or a compaction) turns it disk-full;
// from then on every write fails at once with ErrDiskFull, reads go on, and Heal (which the node runs under
// its supervisor) logs it, looks for free space with statfs every 250 ms to 2 s, and once there is room to
// flush the memtable twice over reopens the DB in place: operations in flight finish first (folds
// included; new ones wait, a new fold fails with ErrUnavailable), the old DB is closed, and goleveldb
// recovers from its journal every write it had acknowledged (a write is acknowledged only once goleveldb
// took it; the half-written record of the one that failed is dropped by the journal's checksums). If the
// read-write open fails (the space went again), the DB is opened read-only so reads go on, and Heal
// retries. The *LevelDB the vnodes hold never changes, so neither they nor their caches see the reopen
// (a vnode drops from its cache the object of any write that failed). DiskFull and Recoveries report the
// state (the node's gokai_disk_full and gokai_disk_full_recoveries stats).
//
// # Concurrency
//
// All Backend methods are safe for concurrent use. The contract vnodes rely on
// is narrower: many partitions' vnodes use one Backend at once, each partition
// by one vnode at a time; the backend orders nothing within a partition beyond
// making each call (and each Write batch) atomic. Fold reads a snapshot taken
// when it starts, runs fn on the caller's goroutine, and lets fn call back
// into the Backend; a long fold pins that snapshot (LevelDB keeps
// superseded data on disk until the fold ends). Close may race with other
// calls: they then return ErrClosed, never panic; a fold in progress stops
// with ErrClosed or finishes on its snapshot.
//
// # Errors
//
// Get reports a missing key as the bare ErrNotFound (misses do not allocate).
// Other errors wrap a sentinel (ErrClosed, ErrKeyTooLarge, ErrDiskFull,
// ErrUnavailable) or the goleveldb error with the operation and partition:
// "storage: put partition 12: ...". Test with errors.Is. The goleveldb errors
// quote file paths: they are for the node's log, never for a client.
package storage
