// Package netserve holds what gokai's TCP servers (memcache, msgpack-RPC) share: the accept loop that
// survives transient accept errors with a bounded backoff, and the Tracker of a server's listeners and
// connections (the MaxConns check, graceful shutdown, the wait for connection goroutines).
//
// It does not own any protocol: what a connection does, how a full server turns a client away, and how a
// connection is asked to stop are the server's, passed in as functions.
//
// # Concurrency
//
// AcceptLoop runs on the caller's goroutine; accept is called on it, one connection at a time. A Tracker's
// methods may be called from any goroutine; the functions passed to Close and Each run with the Tracker's
// lock held, so they must not call back into it (they may close sockets and signal goroutines).
package netserve
