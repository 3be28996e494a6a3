// Package coverage runs requests that read every key once (riak_core's coverage plans and coverage FSM):
// list keys, count them, any fold a service's vnodes answer over a part of their data.
//
//   - plan.go (pure: no actors, no clock): NewPlan chooses, for a ring, a replica count N and which nodes
//     are up, a small set of primary vnodes and for each the hash partitions it answers for (its
//     vnode.Filter), so that every hash partition asked for is answered by exactly one vnode, re-planned
//     around nodes that are down; it fails with *UncoveredError when some range has no primary up.
//
// It does not own the vnode side of coverage (vnode: CoverageRequest, Filter, the chunked stream with its
// acknowledgements), nor what a service's coverage commands mean (the service: package kv for KV's
// CoverKeysRequest and CountKeysRequest), nor the ring (ring) or liveness (the node).
package coverage
