// Package actors is gokai's runtime layer over protoactor-go: it makes a node's actor system (with the
// node's slog logger injected, no global logger, no metrics listener), names the well-known actors, and
// offers request helpers that always carry a deadline. It holds no domain logic.
//
// The node-to-node transport (protoactor-go remote with one msgpack envelope type) joins this package when
// gokai becomes a cluster.
//
// Concurrency: everything here is safe for concurrent use; Request blocks its caller (never call it from
// inside an actor's Receive: use ctx.Request and a reply message there).
package actors
