// Package node assembles one gokai node: its configuration (flags and config file), its supervision tree
// (storage → ring → vnode supervisor → coordinator supervisor → listeners), the KV service on that runtime
// (kv's vnodes and kv.Coordinator), and the adapters between the protocol faces and KV. cmd/gokai is a thin shell over it; integration tests start real nodes
// through it or through the gokai binary. Its cluster watch (cluster.go) reconciles vnodes and transfers
// with each cluster state, hands hints to their owners, and re-homes keys whose preference list no longer
// names the partition holding them (rehome.go, on its own goroutine, one pass at a time).
//
// It does not own: the ring algorithm (ring), the cluster state (membership), storage formats (storage,
// kv), the request FSMs (coordinator), the KV service (kv), wire protocols (protocol/...).
//
// Concurrency: New, Start and Stop are called by one goroutine; the accessors are safe from any goroutine
// once Start returned.
package node
