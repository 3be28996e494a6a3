// Package membership owns who is in the cluster: the pure cluster state
// with the claimant's transitions, and the gossip shell that spreads that
// state and detects failures. The consistent-hashing ring the state carries
// (partitions, claim, preference lists) is package ring, which this package
// imports; ring imports nothing of gokai, so code that only routes keys (the
// Go client) does not pull in memberlist.
//
// # Cluster state (pure)
//
//   - state.go: [ClusterState] is the versioned cluster document: members
//     (joining, valid, leaving, exiting), the ring (a [ring.Ring] of the
//     same version), the claimant, staged changes, the pending transfers
//     of the last commit and the services' flush epochs (flush.go: [Flush],
//     memcache flush_all). The claimant's transitions (StageJoin, StageLeave,
//     ClearStaged, Commit, CompleteTransfer, UpdateMember, TakeClaim, SetFlush) each
//     return a new state with Version+1 and never modify the receiver;
//     [ClusterState.Plan] shows what a commit would do. [Newer] is the
//     merge rule: the higher version, then the higher [ClusterState.Hash].
//   - statedoc.go: the msgpack encoding, and UnmarshalClusterState, which
//     bounds and validates untrusted bytes (mpscan first).
//   - gossip.go also takes a state sent directly by another node
//     ([Gossip.Install]: the claimant hands a new flush epoch to every member
//     before it answers), under the same checks as a gossiped one.
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
// This package does not start vnodes or move data, nor build preference
// lists (package ring, which takes liveness as an up(node) predicate; the
// node wires [Gossip.Alive] in).
// Handoff reads the pending transfers from the ClusterState and reports
// them done to the claimant, which applies [ClusterState.CompleteTransfer].
package membership
