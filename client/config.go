package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"
)

// Defaults for Config fields left zero.
const (
	DefaultPoolSize         = 4
	DefaultDialTimeout      = 5 * time.Second
	DefaultRequestTimeout   = 10 * time.Second
	DefaultRefreshInterval  = 30 * time.Second
	DefaultMaxResponseBytes = 256 << 20
)

// Config configures a Client. The zero value of every field but Seeds means its default.
type Config struct {
	// Seeds are msgpack-RPC addresses (host:port) of nodes to bootstrap from and to fall back to. Required.
	Seeds []string
	// PoolSize is the number of connections per node; each one carries many requests in flight.
	// Default 4; 1..1024.
	PoolSize int
	// DialTimeout bounds one connection attempt. Default 5s.
	DialTimeout time.Duration
	// Dial makes the TCP connection to a node (network "tcp", addr host:port). Its context carries the
	// DialTimeout deadline. An error from it means nothing was sent: the request goes to the next candidate.
	// Default nil: a net.Dialer. A custom one reaches nodes through a proxy, a tunnel or another network
	// namespace.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// RequestTimeout bounds the wait for one reply when the caller's context has no earlier deadline.
	// A request with a server-side Timeout option waits at least that Timeout plus one second. Default 10s.
	RequestTimeout time.Duration
	// DisableRouting turns partition-aware routing off: every request goes to the seeds, in order (the
	// first reachable one). Default false: routing on (Dynamo §6.4 client-driven coordination).
	DisableRouting bool
	// Resolver merges siblings for GetResolved. Default nil: GetResolved fails with ErrNoResolver when a
	// key has siblings. LastWriteWins is one resolver.
	Resolver Resolver
	// RefreshInterval is how often the ring is read again when routing is on. Default 30s.
	RefreshInterval time.Duration
	// MaxResponseBytes bounds one reply message; a larger one closes its connection and fails its
	// requests. A get returns every sibling, each up to 16 MiB. Default 256 MiB; at least 64 KiB.
	MaxResponseBytes int
	// TLS, when set, speaks TLS to every node (a node started with -rpc-tls). An operator's certificate in
	// TLS.Certificates makes the client an operator (cluster changes). Default nil: plaintext.
	TLS *tls.Config

	// minRefreshGap spaces out ring reads asked for by errors; tests shorten it. Default 1s.
	minRefreshGap time.Duration
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.PoolSize == 0 {
		c.PoolSize = DefaultPoolSize
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.minRefreshGap == 0 {
		c.minRefreshGap = time.Second
	}
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = DefaultMaxResponseBytes
	}
	return c
}

// Validate reports the first field out of range, naming field and value. Zero fields are valid (defaults)
// except Seeds.
func (c Config) Validate() error {
	switch {
	case len(c.Seeds) == 0:
		return fmt.Errorf("client: Config.Seeds is empty, want at least one host:port")
	case c.PoolSize < 0 || c.PoolSize > 1024:
		return fmt.Errorf("client: Config.PoolSize = %d, want 1..1024 (0 = default %d)", c.PoolSize, DefaultPoolSize)
	case c.DialTimeout < 0:
		return fmt.Errorf("client: Config.DialTimeout = %v, want > 0 (0 = default %v)", c.DialTimeout, DefaultDialTimeout)
	case c.RequestTimeout < 0:
		return fmt.Errorf("client: Config.RequestTimeout = %v, want > 0 (0 = default %v)", c.RequestTimeout, DefaultRequestTimeout)
	case c.RefreshInterval < 0:
		return fmt.Errorf("client: Config.RefreshInterval = %v, want > 0 (0 = default %v)", c.RefreshInterval, DefaultRefreshInterval)
	case c.MaxResponseBytes != 0 && c.MaxResponseBytes < 64<<10:
		return fmt.Errorf("client: Config.MaxResponseBytes = %d, want >= %d (0 = default %d)",
			c.MaxResponseBytes, 64<<10, DefaultMaxResponseBytes)
	}
	for i, s := range c.Seeds {
		if s == "" {
			return fmt.Errorf("client: Config.Seeds[%d] is empty, want host:port", i)
		}
	}
	return nil
}
