// Package membership owns who is in the cluster and who holds which
// partition of the key space: the pure consistent-hashing ring, the pure
// cluster state with the claimant's transitions, and the gossip shell that
// spreads that state and detects failures.
//
// # Pure ring
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
//     whose node is down. The primaries follow Dynamo's skip rule: walking
//     the ring from the key's partition, a partition whose owner is already
//     listed is skipped, so a key's replicas are on N distinct nodes even
//     where the claim could not spread every N consecutive partitions.
//   - ringdoc.go: a standalone versioned msgpack ring document (gossip
//     carries the ring inside the cluster state instead).
//
// A Ring is immutable after construction: every method is safe for
// concurrent use by any number of goroutines, and a new ownership (a
// join, a leave) is a new Ring with a higher [Ring.Version]. Methods that
// return slices return copies, except [Ring.Preflist] which allocates only
// its result.
//
// # Cluster state (pure)
//
//   - state.go: [ClusterState] is the versioned cluster document: members
//     (joining, valid, leaving, exiting), the ring (same version), the
//     claimant, staged changes and the pending transfers of the last
//     commit. The claimant's transitions (StageJoin, StageLeave,
//     ClearStaged, Commit, CompleteTransfer, UpdateMember, TakeClaim) each
//     return a new state with Version+1 and never modify the receiver;
//     [ClusterState.Plan] shows what a commit would do. [Newer] is the
//     merge rule: the higher version, then the higher [ClusterState.Hash].
//   - statedoc.go: the msgpack encoding, and UnmarshalClusterState, which
//     bounds and validates untrusted bytes (mpscan first).
//
// # Gossip shell
//
//   - gossip.go, gossip_delegate.go, messages.go: [Gossip] runs
//     hashicorp/memberlist (failure detection, node meta) and spreads the
//     ClusterState: a small version broadcast, a reliable pull of the full
//     state from the node that announced it, and push-pull as anti-entropy.
//     Nodes of another cluster are refused. reconnect.go re-joins members
//     memberlist declared dead or has not seen (so a partition longer than
//     memberlist's GossipToTheDeadTime still heals). It owns goroutines and sockets;
//     every method is safe for concurrent use, and memberlist's callbacks
//     never block.
//
// # Not here
//
// This package does not start vnodes or move data, and the pure files take
// liveness as an up(node) predicate (the node wires [Gossip.Alive] in).
// Handoff reads the pending transfers from the ClusterState and reports
// them done to the claimant, which applies [ClusterState.CompleteTransfer].
package membership
