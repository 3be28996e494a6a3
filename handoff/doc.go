// Package handoff moves partitions between nodes. The Manager (one per node) runs a transfer actor for every
// pending ownership move whose source is this node, at most Concurrency at once; each transfer puts the
// local vnode in handoff mode, folds its partition into batches sent to the new owner's vnode (one batch in
// flight: backpressure), waits until the writes forwarded during the fold are acknowledged, and reports the
// transfer done. A failed transfer is retried from the start after a backoff (items merge by version, so
// repeats are harmless); a transfer whose move is no longer pending is cancelled.
//
// It does not own: which partitions move (membership's cluster state), how a vnode folds or merges (vnode),
// how "done" reaches the claimant (the node's Report function).
//
// Concurrency: Manager methods are safe for concurrent use. The fold of a transfer runs on its own
// goroutine, owned by the transfer actor, which it only talks to by messages.
package handoff
