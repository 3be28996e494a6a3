package bench

import (
	"errors"
	"io"
)

// Client speaks one wire protocol over one connection. Requests are queued, sent together by Flush, and their
// replies read back in order with Read, one call per queued request (pipelining). A Client never allocates
// per operation in the steady state and is owned by one worker: not safe for concurrent use.
//
// A protocol whose replies carry a request id (msgpack-RPC) also implements windowClient.
type Client interface {
	// Queue buffers one request; it may write to the connection if the buffer fills up.
	Queue(kind OpKind, key, value []byte) error
	// Flush sends every queued request.
	Flush() error
	// Read reads the reply to the oldest unanswered request, which was of kind for key. An error that wraps
	// *ReplyError leaves the connection usable; any other error means the connection is out of step or broken.
	Read(kind OpKind, key []byte) (Outcome, error)
}

// windowClient is a Client whose replies are matched to requests by id, so they may arrive in any order: a
// worker keeps a window of requests in flight, each in a slot it names, and refills a slot as soon as its
// reply arrives. The two ways of using a client (Queue/Read and Send/Next) must not overlap: switch only
// when no request is in flight.
type windowClient interface {
	Client
	// Send buffers one request in slot (0 <= slot < maxPipeline), which must not be in flight.
	Send(slot int, kind OpKind, key, value []byte) error
	// Next reads replies until one to a Send arrives and returns its slot, now free again. Errors are
	// classified as for Read; only a nil or *ReplyError error returns a valid slot.
	Next() (slot int, out Outcome, err error)
	// Buffered reports whether a complete reply is already buffered, so that Next will not block. A worker
	// flushes its refills only when it is not, batching its writes as the replies come.
	Buffered() bool
}

// Outcome is what a successful reply said.
type Outcome uint8

const (
	Hit    Outcome = iota // a get found the key
	Miss                  // a get found nothing
	Stored                // a set was stored
)

// protocol describes one wire protocol the runner speaks.
type protocol struct {
	addr       string                        // default server address
	maxKeyLen  int                           // longest key the server accepts
	binaryKeys bool                          // keys may hold spaces and control characters
	newClient  func(rw io.ReadWriter) Client // a client over an established connection
}

// protocols maps Config.Protocol to its description.
var protocols = map[string]protocol{
	"memcache": {addr: "127.0.0.1:11211", maxKeyLen: 250,
		newClient: func(rw io.ReadWriter) Client { return newMemcacheClient(rw) }},
	"memcache-binary": {addr: "127.0.0.1:11211", maxKeyLen: 250, binaryKeys: true,
		newClient: func(rw io.ReadWriter) Client { return newBinaryClient(rw) }},
	"memcache-meta": {addr: "127.0.0.1:11211", maxKeyLen: 250,
		newClient: func(rw io.ReadWriter) Client { return newMetaClient(rw) }},
	"msgpack-rpc": {addr: "127.0.0.1:11011", maxKeyLen: 65535, binaryKeys: true,
		newClient: func(rw io.ReadWriter) Client { return newRPCClient(rw) }},
}

// ErrProtocol wraps replies that break the protocol (the connection is out of step and must be closed).
var ErrProtocol = errors.New("bench: protocol error")

// ReplyError is a well-formed reply other than the expected one (SERVER_ERROR, NOT_STORED, ..., a msgpack-RPC
// error object); the connection stays in step.
type ReplyError struct {
	Line string // memcache: the reply line without CRLF; msgpack-RPC: "code: message"; at most 128 bytes
}

func (e *ReplyError) Error() string { return "bench: unexpected reply " + e.Line }

// quoteLine keeps error text short and printable.
func quoteLine(line []byte) string {
	const limit = 128
	if len(line) > limit {
		line = line[:limit]
	}
	out := make([]byte, 0, len(line))
	for _, b := range line {
		if b < ' ' || b >= 0x7f {
			b = '?'
		}
		out = append(out, b)
	}
	return string(out)
}
