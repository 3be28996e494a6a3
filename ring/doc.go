// Package ring is gokai's consistent-hashing ring: riak_core's chash, ring and apl in Go, with no I/O, no
// clock, no actors and no dependency beyond the standard library and msgpack. It decides which partition a
// key falls in, which node owns each partition, and which vnodes hold a key's replicas.
//
//   - ring.go: [Ring] splits a 64-bit hash space into Q equal partitions (Q a power of two) and maps each
//     partition to its owning [NodeID]. [KeyHash] is the first 8 bytes (big-endian) of SHA-1(key);
//     partition p covers hashes [p<<(64-log2 Q), (p+1)<<(64-log2 Q)).
//   - claim.go: [Claim] decides ownership: balanced (every node holds floor(Q/nodes) or ceil(Q/nodes)
//     partitions) and spread so that any N consecutive partitions (wrapping) sit on N distinct nodes
//     whenever that is possible (see [TargetNFeasible] for the exact condition). Given the current owners
//     it moves few partitions (join, leave): claim_settle.go repairs the current layout, claim_chain.go
//     finds chains of moves that make room, claim_paced.go solves small tight cases exactly.
//   - preflist.go: [Ring.Preflist] is riak_core's annotated preference list: the N primaries for a key, with
//     fallbacks ([PrefEntry] with Primary false) standing in for primaries whose node is down. The
//     primaries follow Dynamo's skip rule: walking the ring from the key's partition, a partition whose
//     owner is already listed is skipped, so a key's replicas are on N distinct nodes even where the claim
//     could not spread every N consecutive partitions.
//   - ringdoc.go: a standalone versioned msgpack ring document ([Ring.MarshalBinary], [Unmarshal], bounded
//     on untrusted input); gossip carries the ring inside the cluster state instead.
//
// It does not own who is in the cluster, liveness or the gossip that spreads the ring (membership), nor
// where vnodes run (vnode) or how requests use a preference list (coordinator). Liveness enters only as an
// up(node) predicate given by the caller.
//
// Concurrency: a Ring is immutable after construction, so every method is safe for concurrent use by any
// number of goroutines; a new ownership (a join, a leave) is a new Ring with a higher [Ring.Version].
// Methods that return slices return copies, except [Ring.Preflist], which allocates only its result.
package ring
