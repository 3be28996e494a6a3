// Package service is what an application registers with a gokai node (node.WithService): riak_core's
// application on the vnode runtime. KV is one service (package kv); an application writes its own the same
// way and gets, per service, what KV gets:
//
//   - its own vnode per partition (a vnode.Factory), under its own vnode supervisor (actor name
//     "vnode-sup-<name>", children "vnode-<partition>", reachable from other nodes), in its own storage key
//     space (storage.KeySpace: the service's ID), so the data of two services never mix;
//   - its own coordinators (a coordinator.Service with the node's N/R/W, routed to the service's vnodes),
//     which its client code drives with coordinator.Read and coordinator.Write;
//   - ownership handoff of every partition that changes hands (the node reports a partition's transfer done
//     only when every service moved it), hinted handoff of the data its fallbacks took, retirement of its
//     empty vnodes when the node leaves, and, if it says how to drop a key (Rehome), re-homing of keys whose
//     preference list changed;
//   - its wire messages registered for the node-to-node transport (Wire);
//   - msgpack-RPC methods in its own name space ("counter" serves "counter.incr"), and stats in the node's;
//   - a flush epoch in the cluster state (Host.Flush sets it through the claimant, NodeInfo.FlushCutoff
//     reads it): KV's memcache flush_all; a service that serves reads hides what it hides.
//
// A Service is a static description; the node calls Vnode when it starts the service's vnodes and Start
// once its coordinators run, and serves what Start returns (an Instance) until it stops.
//
// Key space 0 is the layout of a node from before services: its storage keys are the bare partition
// prefixes and its vnode supervisor is named "vnode-sup" (not "vnode-sup-<name>"), so a data dir and a
// cluster from before read and talk unchanged. KV holds it; a new service takes an ID of its own, forever.
//
// Client errors (errors.go): Classify maps the runtime's errors (quorum failures, timeouts, overload, a full
// disk, shutdown) to the stable codes of the client faces, with messages that never quote the cause (a
// storage error names files); RPCError and MemcacheError put that in each face's form. A method that returns
// any other error is answered "internal".
//
// It does not own: the vnode actors and handoff (vnode, handoff), quorums (coordinator), where partitions
// live (ring, membership), nor the assembly of a node (node), which is the only package that runs services.
//
// Concurrency: a Service and its Instance are read-only once the node started them. Methods, Stats and the
// memcache Store are called concurrently from client connections and must be safe for it.
package service
