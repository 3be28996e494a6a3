// Package membership owns who holds which partition of the key space: the pure
// consistent-hashing ring now, the gossip shell later.
//
// # Pure ring (this package today)
//
// The ring is riak_core's chash/ring/apl in Go, with no I/O, no clock and no
// actors:
//
//   - ring.go: [Ring] splits a 64-bit hash space into Q equal partitions
//     (Q a power of two) and maps each partition to its owning [NodeID].
//     [KeyHash] is the first 8 bytes (big-endian) of SHA-1(key); partition
//     p covers hashes [p<<(64-log2 Q), (p+1)<<(64-log2 Q)).
//   - claim.go: [Claim] decides ownership: balanced (every node holds
//     floor(Q/nodes) or ceil(Q/nodes) partitions) and spread so that any N
//     consecutive partitions (wrapping) sit on N distinct nodes whenever that
//     is possible (see [TargetNFeasible] for the exact condition). Given the
//     current owners it moves few partitions (join, leave): claim_settle.go
//     repairs the current layout, claim_chain.go finds chains of moves that
//     make room, claim_paced.go solves small tight cases exactly.
//   - preflist.go: [Ring.Preflist] is riak_core's annotated preference list:
//     the N primaries for a key, with fallbacks standing in for primaries
//     whose node is down.
//   - ringdoc.go: the versioned msgpack ring document that gossip will carry.
//
// A Ring is immutable after construction: every method is safe for
// concurrent use by any number of goroutines, and a new ownership (a
// join, a leave) is a new Ring with a higher [Ring.Version]. Methods that
// return slices return copies, except [Ring.Preflist] which allocates only
// its result.
//
// # Not here
//
// This package does not start vnodes, move data or decide when a node is
// down: the caller passes liveness as an up(node) predicate. Handoff uses
// [Transfers] to learn which partitions change hands.
//
// # Gossip shell (later)
//
// A later change adds the shell in this package: hashicorp/memberlist for
// node liveness and a small "ring version" broadcast, with the full ring
// document moved by push-pull. The shell will own goroutines and sockets;
// the files above stay pure.
package membership
