// Package msgpackrpc is gokai's MessagePack-RPC face: the server side of the msgpack-rpc spec, over a
// Handler that runs the methods (docs/msgpack-rpc.md lists gokai's methods, error codes and limits).
//
// # What it owns
//
//   - Framing: a connection's bytes are cut into messages by mpscan (internal/mpscan), which checks every
//     declared length, the nesting depth and the element count against Config before vmihailenco/msgpack
//     decodes anything, so hostile headers (an array32 of 4 billion, a bin32 of 4 GiB, thousands of nested
//     array16 headers) cost a header check, not memory.
//   - The codec of the hot path: the message envelope (type, msgid, method) is read by hand from the framed
//     bytes, params are decoded by vmihailenco/msgpack; a result made of the usual dynamic types (nil, bool,
//     numbers, str, bin, []any, map[string]any) is written by hand, anything else by vmihailenco/msgpack,
//     with the same bytes either way (codec_test.go checks both against vmihailenco/msgpack alone).
//   - Message shapes: request [0, msgid, method, params] is answered [1, msgid, error, result];
//     notification [2, method, params] is not answered (ping is a no-op, others are ignored). method may be a
//     str or a bin. msgid is an integer in 0..2^32-1.
//   - Concurrency per connection: each request runs on its own goroutine, up to MaxInFlightPerConn per
//     connection; responses are written as calls complete, out of request order.
//   - Errors: the *Error type and its stable codes, the wire form {"code", "message", ...fields}, and param
//     helpers (Bytes, OptBytes, Map, Int, Bool) that return bad_request errors naming the parameter.
//   - Memory: what a connection holds (a message's buffer, a call's decoded request, a response until it
//     is written) is reserved from a budget shared with the node's other client servers (Config.Memory)
//     and capped per connection (MaxConnBytes); see "Memory" below.
//   - Connection limits, read, idle and write timeouts, graceful Shutdown, Stats.
//
// It does not own the methods (the Handler does, including unknown_method), the mapping of storage errors
// to codes (the node's Handler does), authentication, or a client.
//
// # Bad input
//
// What the server does with a message depends on whether the stream is still in sync and whether a msgid
// can be read (the message is an array whose first element is 0 or 1 and second an integer in uint32 range):
//
//	not msgpack (0xc1), over MaxMessageBytes, MaxDepth or MaxElems
//	    msgid readable: error response (too_large with "limit", or bad_request), then close
//	    otherwise: close
//	complete msgpack of the wrong shape (a response from the client, wrong length or element types,
//	params that do not decode, such as a map with int keys or an unknown ext type)
//	    msgid readable: bad_request, and the connection keeps serving
//	    otherwise (not an array, unknown type, notification of the wrong shape): close
//
// A message over a limit is rejected as soon as its header declares it, without reading its bytes. Before
// closing after an error response, the server half-closes and discards input for up to a second, so the
// client reads the response rather than a reset.
//
// # Memory
//
// A connection's read buffer starts at 4 KiB. When a message does not fit, the size it declares (its
// declared lengths, mpscan's lower bound) is reserved from the budget before more of it is read; the
// buffer then grows with the bytes that actually arrive, so a header declaring 16 MiB costs a reservation,
// not an allocation. A message the budget has no room for is answered overload (if it has a msgid; a
// notification is dropped) and its bytes are passed over as they arrive (mpscan's Skip) without being
// kept, so the connection stays in sync and serves the next message; one without a msgid that is not a
// notification closes the connection. A request's decoded params are reserved before decoding and held
// while its call runs; a response's bytes before it is encoded (after, for results whose size cannot be
// told beforehand) and until it is written; a response that does not fit is answered overload instead.
// Error responses are small and always sent. A closed connection releases everything it held at once.
//
// Pipelining is bounded in bytes as well as in count: a call starts only while the bytes the connection
// holds, plus the estimated responses of its running calls, plus its own estimate, fit in MaxConnBytes
// (or when none runs); otherwise the reader waits, as for a slot. A call's estimate is the largest of the
// connection's last four responses, MaxMessageBytes until it has sent four: a new connection that
// pipelines gets of big values runs a few at a time, one whose responses are small as many as slots allow.
// NB: the estimate is learned, so a client whose recent responses were small can still start many calls
// whose results turn out big; their responses are then refused (overload), but the node's read path
// (coordinators, vnodes) holds their values meanwhile, outside this budget.
//
// # Concurrency
//
// A connection has one reader goroutine: it frames messages, decodes them and starts a goroutine per
// request, after taking one of MaxInFlightPerConn slots and room in its byte window (when there is none it
// stops reading, so TCP pushes back on the client). A slot is released when the response has been written, so a client that does not
// read its responses also stops the reading. Responses are written under a per-connection lock by whichever
// goroutine finds the writer idle; it writes everything queued meanwhile in one writev. Handler.Call runs
// concurrently for many requests and connections. Server counters are atomics; Shutdown and Stats may be
// called from any goroutine.
//
// # Lifecycle of a connection
//
// When the client closes (or half-closes) its side, calls in flight run to completion and their responses
// are written, then the server closes. A read error, an idle timeout, a message whose rest does not come
// within ReadTimeout of the server's first wait for it (however it trickles), a failed or timed-out write,
// or a protocol error cancels the context of the connection's calls.
//
// # Errors and logs
//
// Only an *Error's own message reaches a client; any other error from a Handler, and a panic, is answered
// internal with a fixed message, and its text (which may name files or hosts) goes to the log. Warnings a
// flood can repeat (internal errors, refusals for memory, bad messages, turned-away connections) are
// rate-limited to one line per kind per second, carrying the count of the ones suppressed. Shutdown stops reading, answers requests
// already buffered but not started with shutting_down, waits for calls in flight and their responses (up to
// its context), and closes.
package msgpackrpc
