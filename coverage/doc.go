// Package coverage runs requests that read every key once (riak_core's coverage plans and coverage FSM):
// list keys, count them, any fold a service's vnodes answer over a part of their data.
//
//   - plan.go (pure: no actors, no clock): NewPlan chooses, for a ring, a replica count N and which nodes
//     are up, a small set of primary vnodes and for each the hash partitions it answers for (its
//     vnode.Filter), so that every hash partition asked for is answered by exactly one vnode, re-planned
//     around nodes that are down; it fails with *UncoveredError when some range has no primary up.
//   - request.go (the shell): Service.Start plans a request on the node's current ring (Cluster) and spawns
//     one request actor for it, a temporary child of the service's coverage guardian (a crash stops that
//     request alone; its caller gets ErrCrashed). The actor sends every planned vnode a
//     vnode.CoverageRequest with the vnode's Filter, through one receiver child per vnode (so that every
//     message, a stream's chunk or a command's single reply, is known to come from that vnode), checks each
//     stream's sequence, and passes the results to its caller through a channel with room for what the
//     windows allow: Window chunks per vnode plus its last, so the actor never blocks. The caller's Stream.Ack
//     goes back through the actor to the vnode, so a caller that reads slowly slows the vnodes' folds, and a
//     request holds at most (Window+1) chunks per vnode whatever the amount of data.
//
// Failures: a vnode that cannot be reached, ends its stream with an error (it restarted or stopped mid-way),
// breaks its sequence, or stays silent for Idle while it owes a chunk (its window is not full) fails the
// whole request with a *VnodeError, after the other vnodes' folds were cancelled; the node of one that could
// not be reached or stayed silent is reported to the Cluster (failure suspicion), not that of one that
// answered with an error (a busy worker pool is load, not failure). A request is not retried on another replica inside the actor: the
// results delivered before the failure are correct parts of their vnodes' answers, and the caller, who
// knows how far each vnode got, resumes the missing part on a new plan (KV's list_keys resumes after the
// last key it took from each vnode, so every key is listed once; count asks again for the ranges whose
// vnode did not answer).
//
// Threading: a stream waiting for acknowledgements holds one of its node's vnode worker-pool goroutines
// (vnode.ManagerConfig.Workers), so a caller must take and acknowledge results as they come, never wait for
// one vnode while leaving another's results unacknowledged (a k-way merge over more streams than a node has
// workers would wait for a stream that cannot start).
//
// It does not own the vnode side of coverage (vnode: CoverageRequest, Filter, the chunked stream with its
// acknowledgements), nor what a service's coverage commands mean (the service: package kv for KV's
// CoverKeysRequest and CountKeysRequest), nor the ring (ring) or liveness (the node).
package coverage
