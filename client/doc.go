// Package client is gokai's Go client for the msgpack-RPC API (docs/msgpack-rpc.md): the Dynamo face of the
// store, with causal contexts, siblings, per-request quorums and the admin methods.
//
// # What it owns
//
//   - Transport (conn.go, pool.go): a pool of Config.PoolSize connections per node. One connection carries
//     many requests in flight: each request gets a msgid and a waiter, one reader goroutine per connection
//     frames the replies with the bounded pre-scan internal/mpscan (every byte read from a socket passes it
//     before anything decodes it) and hands each reply to its waiter. Replies may come in any order.
//     Broken connections are redialled on the next request; a node that refuses connections is tried last
//     for a short while.
//   - Encoding (wire.go): requests and replies are encoded and decoded field by field with
//     vmihailenco/msgpack's streaming Encoder and Decoder (no reflection on the request path).
//   - Routing (routing.go): Dynamo's client-driven coordination (§6.4). The client reads `ring` (owners per
//     partition, n) and `members` (name → rpc address) from a node, builds a ring.Ring and sends each
//     key's request to the first reachable node of the key's preference list, then to the seeds. The ring is
//     read again every Config.RefreshInterval and soon after an answer that suggests it moved.
//   - Errors (errors.go): the server's error map as *Error, matched with errors.Is against ErrNotFound,
//     ErrTimeout, ErrQuorum, ... (stable codes, append-only).
//   - GetResolved (resolve.go): semantic reconciliation with a Resolver: read, merge siblings, write the
//     merged value back under the read's context.
//
// It does not own the ring algorithm (ring), the server (protocol/msgpackrpc, node) or the CLI
// (cmd/gokai).
//
// # Retries
//
// A request is sent to the next candidate node only when it cannot have been applied: the connection could
// not be made or the request could not be written. Reads (get and the admin methods) are also retried when a
// connection breaks after the request was written; writes are not (a put that may have been applied is not
// repeated behind the caller's back), they return the transport error.
//
// # Concurrency
//
// A Client is safe for concurrent use by any number of goroutines. Every method takes a context: its
// cancellation or deadline ends the wait for the reply and frees the waiter (a reply that arrives later is
// dropped). Close stops the refresher, closes every connection, fails the requests in flight with ErrClosed
// and waits for the client's goroutines to exit.
package client
