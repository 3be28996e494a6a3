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
//   - Connection limits, idle and write timeouts, graceful Shutdown, Stats.
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
// # Concurrency
//
// A connection has one reader goroutine: it frames messages, decodes them and starts a goroutine per
// request, after taking one of MaxInFlightPerConn slots (when none is free it stops reading, so TCP pushes
// back on the client). A slot is released when the response has been written, so a client that does not
// read its responses also stops the reading. Responses are written under a per-connection lock by whichever
// goroutine finds the writer idle; it writes everything queued meanwhile in one writev. Handler.Call runs
// concurrently for many requests and connections. Server counters are atomics; Shutdown and Stats may be
// called from any goroutine.
//
// # Lifecycle of a connection
//
// When the client closes (or half-closes) its side, calls in flight run to completion and their responses
// are written, then the server closes. A read error, an idle timeout, a failed or timed-out write, or a
// protocol error cancels the context of the connection's calls. Shutdown stops reading, answers requests
// already buffered but not started with shutting_down, waits for calls in flight and their responses (up to
// its context), and closes.
package msgpackrpc
