// Package handoff moves partitions between nodes. The Manager (one per node) runs a transfer actor for every
// pending ownership move whose source is this node (Sync) and for every hinted move a hint scan found
// (SyncHinted), at most Concurrency at once. A node runs several services, each with its own vnode of every
// partition, so a move names a service and a partition (a Slot): an ownership transfer of partition p is one
// move per service (Config.Services), and "transfer done" is reported to the claimant (Report) only by the
// transfer that completes p last, when every service's part is done; the parts done earlier stay in handoff
// mode, forwarding their writes to the new owner, meanwhile. Each transfer waits for the target vnode to run
// (a new owner starts it once it sees the committed state, a moment after the claimant), puts the local vnode
// in handoff mode (a session named by the vnode), folds its partition into batches sent to the target vnode
// (one batch in flight: backpressure), waits until the writes forwarded during the fold are acknowledged, and
// then reports the
// ownership move done or drops the hints. A vnode whose behaviour refuses the handoff (vnode.HandoffStarter)
// fails the attempt before any session begins. A failed transfer is retried from the start in a new session after
// a backoff (items merge by version, so repeats are harmless; nothing of the failed session is waited for); a
// transfer whose move is no longer pending is cancelled. A hinted move runs again only when a scan finds data
// again, and not at all when the hints are gone by the time it starts.
//
// It does not own: which partitions move (membership's cluster state), where hints are (the node's hint
// scan), how a vnode folds or merges (vnode), how "done" reaches the claimant (the node's Report function).
//
// Concurrency: Manager methods are safe for concurrent use. The fold of a transfer runs on its own
// goroutine, owned by the transfer actor, which it only talks to by messages.
package handoff
