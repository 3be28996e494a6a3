package bench

import (
	"errors"
	"io"
)

// Client speaks one wire protocol over one connection. Requests are queued, sent together by Flush, and their
// replies read back in order with Read, one call per queued request (pipelining). A Client never allocates
// per operation in the steady state and is owned by one worker: not safe for concurrent use.
//
// New protocols (msgpack-RPC) implement Client and register in protocols.
type Client interface {
	// Queue buffers one request; it may write to the connection if the buffer fills up.
	Queue(kind OpKind, key, value []byte) error
	// Flush sends every queued request.
	Flush() error
	// Read reads the reply to the oldest unanswered request, which was of kind for key. An error that wraps
	// *ReplyError leaves the connection usable; any other error means the connection is out of step or broken.
	Read(kind OpKind, key []byte) (Outcome, error)
}

// Outcome is what a successful reply said.
type Outcome uint8

const (
	Hit    Outcome = iota // a get found the key
	Miss                  // a get found nothing
	Stored                // a set was stored
)

// protocols maps Config.Protocol to a constructor over an established connection.
var protocols = map[string]func(rw io.ReadWriter) Client{
	"memcache": func(rw io.ReadWriter) Client { return newMemcacheClient(rw) },
}

// ErrProtocol wraps replies that break the protocol (the connection is out of step and must be closed).
var ErrProtocol = errors.New("bench: protocol error")

// ReplyError is a well-formed reply other than the expected one (SERVER_ERROR, NOT_STORED, ...); the connection
// stays in step.
type ReplyError struct {
	Line string // the reply line without CRLF, truncated to 128 bytes
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
