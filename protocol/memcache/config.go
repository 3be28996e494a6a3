package memcache

import (
	"fmt"
	"time"

	"github.com/gokai-kv/gokai/internal/netserve"
)

// Defaults for Config fields left zero.
const (
	DefaultMaxLineBytes = 64 << 10
	DefaultMaxConns     = 1024
	DefaultReadTimeout  = 30 * time.Second
	DefaultWriteTimeout = 30 * time.Second
	DefaultVersion      = "0.0.0"
)

// Limits on Config fields.
const (
	// minLineBytes fits the longest legal non-retrieval line: a cas with a 250-byte key and every number at
	// its widest.
	minLineBytes = 512
	maxLineBytes = 16 << 20
	maxValueMax  = 1 << 30
)

// Config configures a Server. The zero value is valid and means every default.
type Config struct {
	// MaxValueBytes bounds the data block of one storage command and the result of append/prepend, in
	// bytes. Larger blocks are read and discarded and answered "SERVER_ERROR object too large for cache".
	// Default 1 MiB (memcached's -I default); range 1 to 1 GiB.
	MaxValueBytes int
	// MaxLineBytes bounds one request line, including its CRLF. A longer line is discarded up to its newline
	// and answered "CLIENT_ERROR line too long". memcached caps most lines at 2048 bytes but lets get/gets
	// key lists run to its read buffer, so one limit here must fit a long multi-get. Default 64 KiB; range
	// 512 bytes to 16 MiB.
	MaxLineBytes int
	// MaxConns is the most client connections served at once; one more is answered "SERVER_ERROR too many
	// open connections" and closed (as memcached does). Default 1024; at least 1.
	MaxConns int
	// IdleTimeout closes a connection that has not started a new request for this long, without a reply
	// (memcached's idle_timeout). Default 0: never.
	IdleTimeout time.Duration
	// ReadTimeout bounds the wait for the rest of a request once it has started (a partial line or data
	// block): from the first time the server waits for more of it, the whole request must arrive within
	// ReadTimeout, however it trickles, or the connection is closed. Default 30 s; negative disables.
	ReadTimeout time.Duration
	// Memory is the budget of bytes held by requests and replies in flight, shared with the node's other
	// client servers: a data block is reserved before it is read, a long request line as it grows, the
	// values of a get reply before they are written. A request that does not fit is answered "SERVER_ERROR
	// out of memory storing object" (its data block is read and dropped, never kept), "... reading
	// request" or "... writing get response" (memcached's texts), and the connection keeps serving.
	// Default nil: the server makes its own budget of netserve.DefaultBudgetBytes (256 MiB).
	Memory *netserve.Budget
	// WriteTimeout bounds each write of replies to a client that does not read them; on expiry the connection
	// is closed. Default 30 s; negative disables.
	WriteTimeout time.Duration
	// FlushAllEnabled allows flush_all; when false it is answered "CLIENT_ERROR flush_all disabled".
	// Default false: one stray command would empty the whole cluster.
	FlushAllEnabled bool
	// Version is the text of "VERSION <v>", of the binary VERSION reply and of the version stat. Default
	// "0.0.0". Clients parse it as memcached's major.minor.patch and choose behaviour by it (libmemcached
	// treats anything below 1.4 as an old server): CompatVersion makes a string they accept.
	Version string
	// Protocols is which protocols clients may speak, memcached's -B: "auto" (text and meta, or binary,
	// chosen per connection by its first byte), "ascii" (text and meta only: a binary packet is read as a
	// text line) or "binary" (binary only: a connection that does not start with the binary magic is
	// closed). Default "auto".
	Protocols string
	// Users, when set, requires every connection to log in before it runs a command: binary clients with
	// SASL PLAIN (SASL_LIST_MECHS answers "PLAIN"), text and meta clients with memcached's -Y token, a set
	// whose data block is "user password" ("STORED", or "CLIENT_ERROR authentication failure"; any other
	// command is "CLIENT_ERROR unauthenticated"). Default nil: no login.
	Users *Users
	// Now is the clock for exptimes, LastMod stamps and the time stats. Default time.Now. Timeouts always use
	// the real clock.
	Now func() time.Time
}

// MemcachedVersion is the memcached release whose protocol the server speaks (text, meta and binary).
const MemcachedVersion = "1.6.18"

// CompatVersion returns the version string to announce for a server of version v:
// "<MemcachedVersion>-gokai-<v>", which clients read as a modern memcached and people as gokai.
func CompatVersion(v string) string { return MemcachedVersion + "-gokai-" + v }

// Validate reports the first field that is out of range, naming field and value. Zero fields are valid
// (they mean the default).
func (c Config) Validate() error {
	switch {
	case c.MaxValueBytes < 0 || c.MaxValueBytes > maxValueMax:
		return fmt.Errorf("memcache: Config.MaxValueBytes = %d, want 1..%d (0 = default %d)",
			c.MaxValueBytes, maxValueMax, DefaultMaxValueBytes)
	case c.MaxLineBytes != 0 && (c.MaxLineBytes < minLineBytes || c.MaxLineBytes > maxLineBytes):
		return fmt.Errorf("memcache: Config.MaxLineBytes = %d, want %d..%d (0 = default %d)",
			c.MaxLineBytes, minLineBytes, maxLineBytes, DefaultMaxLineBytes)
	case c.MaxConns < 0:
		return fmt.Errorf("memcache: Config.MaxConns = %d, want >= 1 (0 = default %d)", c.MaxConns, DefaultMaxConns)
	case c.IdleTimeout < 0:
		return fmt.Errorf("memcache: Config.IdleTimeout = %v, want >= 0 (0 = none)", c.IdleTimeout)
	case c.Protocols != "" && c.Protocols != "auto" && c.Protocols != "ascii" && c.Protocols != "binary":
		return fmt.Errorf("memcache: Config.Protocols = %q, want auto, ascii or binary", c.Protocols)
	case len(c.Version) > 200 || !printable(c.Version):
		return fmt.Errorf("memcache: Config.Version = %q, want at most 200 printable bytes without spaces", c.Version)
	}
	return nil
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.MaxValueBytes == 0 {
		c.MaxValueBytes = DefaultMaxValueBytes
	}
	if c.MaxLineBytes == 0 {
		c.MaxLineBytes = DefaultMaxLineBytes
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.Version == "" {
		c.Version = DefaultVersion
	}
	if c.Protocols == "" {
		c.Protocols = "auto"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}
