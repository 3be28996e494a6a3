// Package node assembles one gokai node: its configuration (flags and config file), its supervision tree
// (storage → cluster → each service's vnode supervisor → handoff → coordinators → listeners) and the
// services it is given (WithService; cmd/gokai gives it KV). cmd/gokai is a thin shell over it; integration
// tests start real nodes through it or through the gokai binary.
//
// Services (services.go): each service (package service) gets its own vnode supervisor (actor name
// "vnode-sup-<name>", "vnode-sup" for key space 0), its vnodes in its own storage key space, its own
// coordinators with a router to its vnodes, its wire messages registered, and its msgpack-RPC methods in the
// node's table under its name space (the default service's also unprefixed); the node's stats add up every
// service's vnodes and coordinators and append each service's own.
//
// The cluster watch (cluster.go) makes the node match each cluster state: a pure plan (plan.go: planCluster,
// planHints; every decision per service and partition) says which vnodes to start, which ownership moves
// to send (one per service; the partition is reported done once every service moved it), which completed
// moves to settle, which vnodes to probe for hints, hand off and retire; the watch only carries it out. It
// also re-homes keys whose preference list no longer names the partition holding them, for every service
// that says how to drop a key (rehome.go, on its own goroutine, one pass at a time).
//
// Flush epochs (flush.go): a service's flush (service.Host.Flush, memcache flush_all) is recorded by the
// claimant in the cluster state, which then hands the new state to every live member before it answers;
// each service reads its cutoff from the current state (service.NodeInfo.FlushCutoff).
//
// It does not own: any service (kv and the others are given to it; it imports none), what a service is
// (service), the ring algorithm (ring), the cluster state (membership), storage formats (storage, the
// services), the request FSMs (coordinator), transfers (handoff), wire protocols (protocol/...).
//
// Concurrency: New, Start and Stop are called by one goroutine; the accessors are safe from any goroutine
// once Start returned. The plan is made and carried out on the cluster-watch goroutine only.
package node
