// Package netserve holds what gokai's TCP servers (memcache, msgpack-RPC) share: the accept loop that
// survives transient accept errors with a bounded backoff, the Tracker of a server's listeners and
// connections (the MaxConns check, graceful shutdown, the wait for connection goroutines), and the Budget
// of bytes their requests and responses in flight may hold, node-wide, with an Account per connection.
//
// A Budget is a counter with a limit, not an allocator: a server reserves a buffer's bytes before it fills
// it and releases them when it drops it, on every path (errors and closed connections included); what does
// not fit is refused at once, and the server answers that request with an overload error. The last eighth
// of a Budget is kept for reservations of at most SmallReservation bytes, so that large requests cannot
// starve small ones.
//
// It does not own any protocol: what a connection does, how a full server turns a client away, and how a
// connection is asked to stop are the server's, passed in as functions.
//
// # Concurrency
//
// AcceptLoop runs on the caller's goroutine; accept is called on it, one connection at a time. A Tracker's
// methods may be called from any goroutine; the functions passed to Close and Each run with the Tracker's
// lock held, so they must not call back into it (they may close sockets and signal goroutines). Budget and
// Account methods may be called from any goroutine (atomics); Budget.OnLow runs on a goroutine of its own.
package netserve
