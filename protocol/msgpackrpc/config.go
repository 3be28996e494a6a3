package msgpackrpc

import (
	"fmt"
	"time"

	"github.com/gokai-kv/gokai/internal/mpscan"
	"github.com/gokai-kv/gokai/internal/netserve"
)

// Defaults for Config fields left zero.
const (
	DefaultMaxMessageBytes    = 16<<20 + 1<<10
	DefaultMaxDepth           = 32
	DefaultMaxElems           = 1 << 20
	DefaultMaxInFlightPerConn = 128
	DefaultMaxConns           = 1024
	DefaultWriteTimeout       = 30 * time.Second
	DefaultReadTimeout        = 30 * time.Second
	// DefaultMaxConnBytes is four messages of the default maximum size.
	DefaultMaxConnBytes = 4 * DefaultMaxMessageBytes
)

// Limits on Config fields.
const (
	minMessageBytes = 64 // a request with a short method and a few small params
	maxMessageBytes = 1 << 30
	minDepth        = 2 // [0, msgid, method, [params]]
	minElems        = 8
	maxInFlight     = 1 << 16
)

// Config configures a Server. The zero value is valid and means every default.
type Config struct {
	// MaxMessageBytes bounds one message (request or notification), in bytes. A message declaring more is
	// answered too_large (when its msgid can be read) and the connection closed, before its bytes are
	// read. Default 16 MiB + 1 KiB (a 16 MiB value and the rest of a put); range 64 bytes to 1 GiB. A
	// connection's read buffer grows with the bytes actually received, up to this size.
	MaxMessageBytes int
	// MaxDepth bounds the nesting of arrays and maps in one message; the message array is depth 1 and its
	// params array depth 2. Deeper is answered bad_request and the connection closed. Default 32; range 2
	// to 256.
	MaxDepth int
	// MaxElems bounds the array and map elements of one message together (a map entry counts two). It is
	// what bounds the memory a decoded message takes: up to about 135 bytes per element for tiny maps.
	// More is answered too_large and the connection closed. Default 1<<20; at least 8.
	MaxElems int
	// MaxInFlightPerConn bounds the requests of one connection that are running or whose responses are
	// waiting to be written. When it is reached the connection stops reading (backpressure through TCP)
	// until a response has been written. Default 128; range 1 to 65536.
	MaxInFlightPerConn int
	// MaxConns is the most client connections served at once; one more is closed at once. Default 1024;
	// at least 1.
	MaxConns int
	// IdleTimeout closes a connection that has received nothing and had no request in flight for this
	// long (the check runs every IdleTimeout, so the close comes between one and two IdleTimeouts after the
	// last activity). Default 0: never.
	IdleTimeout time.Duration
	// ReadTimeout bounds the wait for the rest of a message once its first bytes have come: from the
	// first time the server waits for more of it, the whole message must arrive within ReadTimeout, or the
	// connection is closed (its buffer released at once) and the contexts of its calls cancelled. It
	// stops a client from holding a partial message, and the memory it declares, open. Default 30 s;
	// negative disables.
	ReadTimeout time.Duration
	// Memory is the budget of bytes held by requests and responses in flight, shared with the node's other
	// client servers: a message's declared size is reserved before it is buffered, a request's decoded
	// params while its call runs, a response's bytes before it is queued. What does not fit is answered
	// overload at once (a message is then passed over without being kept), and the connection keeps
	// serving. Default nil: the server makes its own budget of netserve.DefaultBudgetBytes (256 MiB).
	Memory *netserve.Budget
	// MaxConnBytes bounds what one connection holds of the budget (its read buffer, its calls' requests
	// and its unwritten responses), so that one pipelining client cannot take it all: beyond it, requests
	// and responses are answered overload, and calls wait for room before they start. Default 4 ×
	// MaxMessageBytes (64 MiB + 4 KiB); at least 2 × MaxMessageBytes + 8 KiB (a message of the maximum
	// size is held twice for a moment: in the read buffer and decoded).
	MaxConnBytes int
	// WriteTimeout bounds each write of responses to a client that does not read them; on expiry the
	// connection is closed and the contexts of its calls cancelled. Default 30 s; negative disables.
	WriteTimeout time.Duration
}

// Validate reports the first field that is out of range, naming field and value. Zero fields are valid
// (they mean the default).
func (c Config) Validate() error {
	switch {
	case c.MaxMessageBytes != 0 && (c.MaxMessageBytes < minMessageBytes || c.MaxMessageBytes > maxMessageBytes):
		return fmt.Errorf("msgpackrpc: Config.MaxMessageBytes = %d, want %d..%d (0 = default %d)",
			c.MaxMessageBytes, minMessageBytes, maxMessageBytes, DefaultMaxMessageBytes)
	case c.MaxDepth != 0 && (c.MaxDepth < minDepth || c.MaxDepth > mpscan.MaxDepthLimit):
		return fmt.Errorf("msgpackrpc: Config.MaxDepth = %d, want %d..%d (0 = default %d)",
			c.MaxDepth, minDepth, mpscan.MaxDepthLimit, DefaultMaxDepth)
	case c.MaxElems != 0 && c.MaxElems < minElems:
		return fmt.Errorf("msgpackrpc: Config.MaxElems = %d, want >= %d (0 = default %d)",
			c.MaxElems, minElems, DefaultMaxElems)
	case c.MaxInFlightPerConn < 0 || c.MaxInFlightPerConn > maxInFlight:
		return fmt.Errorf("msgpackrpc: Config.MaxInFlightPerConn = %d, want 1..%d (0 = default %d)",
			c.MaxInFlightPerConn, maxInFlight, DefaultMaxInFlightPerConn)
	case c.MaxConns < 0:
		return fmt.Errorf("msgpackrpc: Config.MaxConns = %d, want >= 1 (0 = default %d)",
			c.MaxConns, DefaultMaxConns)
	case c.IdleTimeout < 0:
		return fmt.Errorf("msgpackrpc: Config.IdleTimeout = %v, want >= 0 (0 = none)", c.IdleTimeout)
	case c.MaxConnBytes < 0:
		return fmt.Errorf("msgpackrpc: Config.MaxConnBytes = %d, want >= %d (0 = default)", c.MaxConnBytes, c.minConnBytes())
	case c.MaxConnBytes != 0 && c.MaxConnBytes < c.minConnBytes():
		return fmt.Errorf("msgpackrpc: Config.MaxConnBytes = %d, want >= %d (2 × MaxMessageBytes + %d)",
			c.MaxConnBytes, c.minConnBytes(), 2*readBufferSize)
	}
	return nil
}

// minConnBytes is the least MaxConnBytes: a message of the maximum size in the read buffer (with its
// slack) and decoded.
func (c Config) minConnBytes() int {
	m := c.MaxMessageBytes
	if m == 0 {
		m = DefaultMaxMessageBytes
	}
	return 2 * (m + readBufferSize)
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.MaxDepth == 0 {
		c.MaxDepth = DefaultMaxDepth
	}
	if c.MaxElems == 0 {
		c.MaxElems = DefaultMaxElems
	}
	if c.MaxInFlightPerConn == 0 {
		c.MaxInFlightPerConn = DefaultMaxInFlightPerConn
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.MaxConnBytes == 0 {
		c.MaxConnBytes = 4 * c.MaxMessageBytes
	}
	return c
}

// limits are the mpscan limits of one message.
func (c Config) limits() mpscan.Limits {
	return mpscan.Limits{MaxBytes: c.MaxMessageBytes, MaxDepth: c.MaxDepth, MaxElems: c.MaxElems}
}
