package node

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gokai-kv/gokai/coordinator"
)

// Config is everything a node can be told, apart from its services' own settings (KV's are kv.Options).
// Every field has a flag of the same name (see Bind) and a config-file key of the same name; flags override
// the file, the file overrides the defaults.
type Config struct {
	Name    string // node id in clocks and rings; default "gokai@127.0.0.1"
	DataDir string // default "./gokai-data"

	Backend      string // storage backend: "leveldb" (default) or "memory" (nothing survives a restart)
	Sync         bool   // fsync every write; default false
	WriteBufMiB  int    // goleveldb write buffer, MiB; default 4
	BlockCacheMB int    // goleveldb block cache, MiB; default 8

	Q int // ring partitions: power of two, 1..65536; default 64; fixed once the data dir exists

	N, R, W, PR, PW int           // replication and default quorums; defaults 3, 2, 2, 0, 0
	Timeout         time.Duration // request deadline; default 5s
	Linger          time.Duration // wait for late replies (read repair); default 1s
	MaxInFlight     int           // concurrent coordinators, per service; default 10000

	NotFoundOK bool // a read answers "not found" once R replicas said so (riak's notfound_ok); default false

	VnodeMaxRestarts int           // per vnode within VnodeRestartWindow; default 10
	VnodeRestartWin  time.Duration // default 10s

	// ClientMemoryMiB is the budget, in MiB, for the bytes client requests and responses in flight hold on
	// both faces together (data blocks and read buffers reserved before they are filled, responses before
	// they are queued); past it a request fails at once (overload / SERVER_ERROR out of memory ...) and its
	// connection keeps serving. Default 256; range 64..1048576 (a 16 MiB message is held twice for a moment,
	// and large reservations leave the last eighth to small ones).
	ClientMemoryMiB int

	MemcacheListen      string        // default "127.0.0.1:11211"; "" disables
	MemcacheMaxConns    int           // default 1024
	MemcacheMaxValue    int           // bytes; default 1048576
	MemcacheIdle        time.Duration // close idle connections after; default 0 (never)
	MemcacheReadTimeout time.Duration // the rest of a started request must come within; default 30s; 0 = none
	MemcacheFlushAll    bool          // allow flush_all; default false
	// MemcacheAuthFile is memcached's user file (lines of "user:password", its -Y authfile and SASL
	// password database format): when set, memcache clients must log in, binary ones with SASL PLAIN
	// (memcached's -S), text and meta ones with memcached's -Y token. Read at start. Default "" (no login).
	MemcacheAuthFile string
	// MemcacheProtocol is which memcache protocols clients may speak: auto (text, meta or binary, chosen
	// per connection by its first byte), ascii (text and meta) or binary; memcached's -B. Default auto.
	MemcacheProtocol string

	RPCListen      string        // msgpack-RPC listen address; default "127.0.0.1:11011"; "" disables
	RPCMaxConns    int           // default 1024
	RPCIdle        time.Duration // close connections idle (nothing received, no call in flight) this long; default 0 (never)
	RPCReadTimeout time.Duration // the rest of a started message must come within; default 30s; 0 = none
	RPCMaxConnMiB  int           // what one connection may hold of ClientMemoryMiB, MiB; default 64; range 33..ClientMemoryMiB

	GossipListen        string        // memberlist host:port (UDP and TCP); default "127.0.0.1:11012"
	TransportListen     string        // node-to-node actor transport host:port; default "127.0.0.1:11013"
	GossipProbeInterval time.Duration // failure detector probe interval; default 1s
	GossipSuspicionMult int           // suspicion timeout multiplier; default 3
	HandoffConcurrency  int           // ownership transfers at once per node; default 2
	FailureSuspicion    time.Duration // a node whose replica failed or did not answer a request counts as down at least this long, then until it answers a ping; default 2s; 0 off
	FailureProbe        time.Duration // how often a suspected node is pinged (and each ping's timeout); default 500ms

	DebugListen string // net/http/pprof on this host:port; default "" (off). Loopback only, by hand.

	// HTTPListen is the operators' HTTP listener: /metrics (Prometheus), /healthz, /readyz and the status
	// page (docs/metrics.md). Over TLS with certs-dir, where everything but the health checks needs an
	// operator's (or a node's) certificate. Default "127.0.0.1:11080"; "" disables it and the request
	// metrics with it.
	HTTPListen string

	// Advertise addresses: where other nodes and clients reach this node, when that is not where it binds
	// (a listener on 0.0.0.0 or ::, or a node behind NAT). AdvertiseHost replaces the host of every
	// listener bound to an unspecified address (the port stays the bound one, which must then be fixed);
	// the per-port host:port settings override it, port included (NAT). Gossip carries the msgpack-RPC and
	// memcache ones to clients and `gokai cluster status`; the gossip and transport ones are how peers
	// reach this node. Default "" each: the bound addresses.
	AdvertiseHost      string
	GossipAdvertise    string
	TransportAdvertise string
	RPCAdvertise       string
	MemcacheAdvertise  string

	// Active anti-entropy (docs/anti-entropy.md), for the services that opt in.
	AAE               string        // on (default), passive (trees kept, no exchange started here) or off (no trees)
	AAEExchangePeriod time.Duration // every exchange this node plans starts within one period; default 10m, at least 10ms
	AAEConcurrency    int           // exchanges at once; default 2, range 1..64
	AAERepairRate     float64       // keys repaired a second, node-wide; default 100, range 1..1e6
	AAERebuildPeriod  time.Duration // a verifying rebuild of each vnode's trees this long after the last; default 0 (never)

	CertsDir    string // certificates (gokai certs): mutual TLS between nodes, encrypted gossip; default "" (none)
	Insecure    bool   // allow listeners off loopback without certs-dir (a trusted network); default false
	RPCTLS      bool   // serve msgpack-RPC over TLS (needs certs-dir); default false
	MemcacheTLS bool   // serve memcache over TLS (needs certs-dir; memcached's -Z); default false

	LogLevel string // debug, info (default), warn, error
	LogJSON  bool   // JSON logs instead of text; default false
}

// Default returns the embedded defaults: a single node on loopback with data in ./gokai-data.
func Default() Config {
	return Config{
		Name: "gokai@127.0.0.1", DataDir: "./gokai-data", Backend: "leveldb", WriteBufMiB: 4, BlockCacheMB: 8,
		Q: 64, N: 3, R: 2, W: 2, Timeout: 5 * time.Second, Linger: time.Second, MaxInFlight: 10000,
		VnodeMaxRestarts: 10, VnodeRestartWin: 10 * time.Second,
		ClientMemoryMiB: 256,
		MemcacheListen:  "127.0.0.1:11211", MemcacheProtocol: "auto", MemcacheMaxConns: 1024, MemcacheMaxValue: 1 << 20, MemcacheReadTimeout: 30 * time.Second,
		RPCListen: "127.0.0.1:11011", RPCMaxConns: 1024, RPCReadTimeout: 30 * time.Second, RPCMaxConnMiB: 64,
		GossipListen: "127.0.0.1:11012", TransportListen: "127.0.0.1:11013", GossipProbeInterval: time.Second,
		HTTPListen:          "127.0.0.1:11080",
		GossipSuspicionMult: 3, HandoffConcurrency: 2, FailureSuspicion: 2 * time.Second, FailureProbe: 500 * time.Millisecond,
		AAE: "on", AAEExchangePeriod: 10 * time.Minute, AAEConcurrency: 2, AAERepairRate: 100,
		LogLevel: "info",
	}
}

// Validate reports the first invalid field by its flag name.
func (c Config) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("config: name is empty")
	case c.Backend != "leveldb" && c.Backend != "memory":
		return fmt.Errorf("config: backend %q: want leveldb or memory", c.Backend)
	case c.Backend == "leveldb" && c.DataDir == "":
		return errors.New("config: data-dir is empty")
	case c.Q < 1 || c.Q > 1<<16 || c.Q&(c.Q-1) != 0:
		return fmt.Errorf("config: q %d: want a power of two in 1..65536", c.Q)
	case c.N > c.Q:
		return fmt.Errorf("config: n %d > q %d", c.N, c.Q)
	case c.MemcacheProtocol != "auto" && c.MemcacheProtocol != "ascii" && c.MemcacheProtocol != "binary":
		return fmt.Errorf("config: memcache-protocol %q: want auto, ascii or binary", c.MemcacheProtocol)
	case c.MemcacheMaxConns < 1:
		return fmt.Errorf("config: memcache-max-conns %d: want >= 1", c.MemcacheMaxConns)
	case c.MemcacheMaxValue < 1:
		return fmt.Errorf("config: memcache-max-value %d: want >= 1", c.MemcacheMaxValue)
	case c.HandoffConcurrency < 1 || c.HandoffConcurrency > 64:
		return fmt.Errorf("config: handoff-concurrency %d: want 1..64", c.HandoffConcurrency)
	case c.GossipListen == "" || c.TransportListen == "":
		return errors.New("config: gossip-listen and transport-listen are required")
	case c.FailureSuspicion < 0:
		return fmt.Errorf("config: failure-suspicion %s: want >= 0", c.FailureSuspicion)
	case c.FailureProbe < 10*time.Millisecond:
		return fmt.Errorf("config: failure-probe-interval %s: want >= 10ms", c.FailureProbe)
	case c.WriteBufMiB < 1 || c.BlockCacheMB < 0:
		return fmt.Errorf("config: write-buffer-mib %d / block-cache-mib %d out of range", c.WriteBufMiB, c.BlockCacheMB)
	case c.ClientMemoryMiB < 64 || c.ClientMemoryMiB > 1<<20:
		return fmt.Errorf("config: client-memory-mib %d: want 64..1048576", c.ClientMemoryMiB)
	case c.RPCMaxConnMiB < 33 || c.RPCMaxConnMiB > c.ClientMemoryMiB:
		return fmt.Errorf("config: rpc-max-conn-mib %d: want 33..client-memory-mib (%d): a 16 MiB message buffered and decoded",
			c.RPCMaxConnMiB, c.ClientMemoryMiB)
	case c.MemcacheReadTimeout < 0 || c.RPCReadTimeout < 0 || c.RPCIdle < 0 || c.MemcacheIdle < 0:
		return fmt.Errorf("config: memcache-read-timeout %s, rpc-read-timeout %s, rpc-idle-timeout %s, memcache-idle-timeout %s: want >= 0",
			c.MemcacheReadTimeout, c.RPCReadTimeout, c.RPCIdle, c.MemcacheIdle)
	case c.MemcacheMaxValue > c.ClientMemoryMiB<<20/2:
		return fmt.Errorf("config: memcache-max-value %d: want at most half of client-memory-mib (%d MiB)",
			c.MemcacheMaxValue, c.ClientMemoryMiB)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	switch {
	case c.AAE != "on" && c.AAE != "passive" && c.AAE != "off":
		return fmt.Errorf("config: aae %q: want on, passive or off", c.AAE)
	case c.AAEExchangePeriod < 10*time.Millisecond:
		return fmt.Errorf("config: aae-exchange-period %s: want >= 10ms", c.AAEExchangePeriod)
	case c.AAEConcurrency < 1 || c.AAEConcurrency > 64:
		return fmt.Errorf("config: aae-concurrency %d: want 1..64", c.AAEConcurrency)
	case c.AAERepairRate < 1 || c.AAERepairRate > 1e6:
		return fmt.Errorf("config: aae-repair-rate %g: want 1..1e6", c.AAERepairRate)
	case c.AAERebuildPeriod < 0:
		return fmt.Errorf("config: aae-rebuild-period %s: want >= 0", c.AAERebuildPeriod)
	}
	if err := c.checkBinds(); err != nil {
		return err
	}
	if err := c.checkAdvertise(); err != nil {
		return err
	}
	if (c.RPCTLS || c.MemcacheTLS) && c.CertsDir == "" {
		return errors.New("config: rpc-tls and memcache-tls need certs-dir")
	}
	if err := c.coordinatorConfig().Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

func (c Config) coordinatorConfig() coordinator.Config {
	cc := coordinator.DefaultConfig("")
	cc.Node = nodeID(c.Name)
	cc.N, cc.R, cc.W, cc.PR, cc.PW = c.N, c.R, c.W, c.PR, c.PW
	cc.Timeout, cc.Linger, cc.MaxInFlight = c.Timeout, c.Linger, c.MaxInFlight
	cc.NotFoundOK = c.NotFoundOK
	return cc
}

// Bind registers one flag per field on fs, writing into c (whose values are the flag defaults). A binary
// binds its services' settings on the same FlagSet (kv.Options.Bind), so LoadFile reads them from the same
// file.
func (c *Config) Bind(fs *flag.FlagSet) {
	fs.StringVar(&c.Name, "name", c.Name, "node name (id in clocks and rings)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "data directory")
	fs.StringVar(&c.Backend, "backend", c.Backend, "storage backend: leveldb or memory")
	fs.BoolVar(&c.Sync, "sync", c.Sync, "fsync every write")
	fs.IntVar(&c.WriteBufMiB, "write-buffer-mib", c.WriteBufMiB, "goleveldb write buffer (MiB)")
	fs.IntVar(&c.BlockCacheMB, "block-cache-mib", c.BlockCacheMB, "goleveldb block cache (MiB)")
	fs.IntVar(&c.Q, "q", c.Q, "ring partitions (power of two; fixed once the data dir exists)")
	fs.IntVar(&c.N, "n", c.N, "replicas per key")
	fs.IntVar(&c.R, "r", c.R, "read quorum")
	fs.IntVar(&c.W, "w", c.W, "write quorum")
	fs.IntVar(&c.PR, "pr", c.PR, "primary read quorum")
	fs.IntVar(&c.PW, "pw", c.PW, "primary write quorum")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "request deadline")
	fs.DurationVar(&c.Linger, "linger", c.Linger, "wait for late replies before read repair")
	fs.IntVar(&c.MaxInFlight, "max-in-flight", c.MaxInFlight, "concurrent coordinators, per service (overload past it)")
	fs.BoolVar(&c.NotFoundOK, "notfound-ok", c.NotFoundOK, "answer \"not found\" once R replicas said so, rather than once all did (or at the deadline)")
	fs.IntVar(&c.VnodeMaxRestarts, "vnode-max-restarts", c.VnodeMaxRestarts, "vnode restarts within the window before the node stops")
	fs.DurationVar(&c.VnodeRestartWin, "vnode-restart-window", c.VnodeRestartWin, "vnode restart window")
	fs.IntVar(&c.ClientMemoryMiB, "client-memory-mib", c.ClientMemoryMiB, "memory for client requests and responses in flight, both faces (MiB); past it requests fail with overload")
	fs.StringVar(&c.MemcacheListen, "memcache-listen", c.MemcacheListen, "memcache listen address (\"\" disables)")
	fs.IntVar(&c.MemcacheMaxConns, "memcache-max-conns", c.MemcacheMaxConns, "memcache connections")
	fs.IntVar(&c.MemcacheMaxValue, "memcache-max-value", c.MemcacheMaxValue, "memcache value size limit (bytes)")
	fs.DurationVar(&c.MemcacheIdle, "memcache-idle-timeout", c.MemcacheIdle, "close idle memcache connections (0 = never)")
	fs.DurationVar(&c.MemcacheReadTimeout, "memcache-read-timeout", c.MemcacheReadTimeout, "the rest of a started memcache request must come within this (0 = no limit)")
	fs.BoolVar(&c.MemcacheFlushAll, "memcache-flush-all", c.MemcacheFlushAll, "allow flush_all")
	fs.StringVar(&c.MemcacheProtocol, "memcache-protocol", c.MemcacheProtocol, "memcache protocols served: auto (chosen per connection), ascii (text and meta) or binary")
	fs.StringVar(&c.MemcacheAuthFile, "memcache-auth-file", c.MemcacheAuthFile, "memcache clients log in as a user of this file of user:password lines (binary: SASL PLAIN; text: a set of \"user password\"); \"\" = no login")
	fs.StringVar(&c.RPCListen, "rpc-listen", c.RPCListen, "msgpack-RPC listen address (\"\" disables)")
	fs.IntVar(&c.RPCMaxConns, "rpc-max-conns", c.RPCMaxConns, "msgpack-RPC connections")
	fs.DurationVar(&c.RPCIdle, "rpc-idle-timeout", c.RPCIdle, "close msgpack-RPC connections idle this long (0 = never)")
	fs.DurationVar(&c.RPCReadTimeout, "rpc-read-timeout", c.RPCReadTimeout, "the rest of a started msgpack-RPC message must come within this (0 = no limit)")
	fs.IntVar(&c.RPCMaxConnMiB, "rpc-max-conn-mib", c.RPCMaxConnMiB, "what one msgpack-RPC connection may hold of client-memory-mib (MiB)")
	fs.StringVar(&c.GossipListen, "gossip-listen", c.GossipListen, "memberlist gossip address (UDP and TCP)")
	fs.StringVar(&c.TransportListen, "transport-listen", c.TransportListen, "node-to-node transport address")
	fs.DurationVar(&c.GossipProbeInterval, "gossip-probe-interval", c.GossipProbeInterval, "failure detector probe interval")
	fs.IntVar(&c.GossipSuspicionMult, "gossip-suspicion-mult", c.GossipSuspicionMult, "failure detector suspicion multiplier")
	fs.DurationVar(&c.FailureSuspicion, "failure-suspicion", c.FailureSuspicion, "treat a node whose replica failed or did not answer a request as down at least this long, then until it answers a ping (0 = off)")
	fs.DurationVar(&c.FailureProbe, "failure-probe-interval", c.FailureProbe, "ping a suspected node this often")
	fs.IntVar(&c.HandoffConcurrency, "handoff-concurrency", c.HandoffConcurrency, "ownership transfers at once")
	fs.StringVar(&c.HTTPListen, "http-listen", c.HTTPListen, "HTTP listener for /metrics, /healthz, /readyz and the status page (\"\" disables it and request metrics)")
	fs.StringVar(&c.AdvertiseHost, "advertise-host", c.AdvertiseHost, "host other nodes and clients reach this node at, for listeners bound to 0.0.0.0 or :: (\"\" = the bound addresses)")
	fs.StringVar(&c.GossipAdvertise, "gossip-advertise", c.GossipAdvertise, "IP:port peers reach gossip at (NAT; overrides advertise-host)")
	fs.StringVar(&c.TransportAdvertise, "transport-advertise", c.TransportAdvertise, "host:port peers reach the transport at (NAT; overrides advertise-host)")
	fs.StringVar(&c.RPCAdvertise, "rpc-advertise", c.RPCAdvertise, "host:port clients reach msgpack-RPC at (NAT; overrides advertise-host)")
	fs.StringVar(&c.MemcacheAdvertise, "memcache-advertise", c.MemcacheAdvertise, "host:port clients reach memcache at (NAT; overrides advertise-host)")
	fs.StringVar(&c.AAE, "aae", c.AAE, "active anti-entropy: on, passive (hash trees kept, no exchange started here) or off")
	fs.DurationVar(&c.AAEExchangePeriod, "aae-exchange-period", c.AAEExchangePeriod, "every anti-entropy exchange of this node starts within one period")
	fs.IntVar(&c.AAEConcurrency, "aae-concurrency", c.AAEConcurrency, "anti-entropy exchanges at once")
	fs.Float64Var(&c.AAERepairRate, "aae-repair-rate", c.AAERepairRate, "keys anti-entropy repairs a second, node-wide")
	fs.DurationVar(&c.AAERebuildPeriod, "aae-rebuild-period", c.AAERebuildPeriod, "rebuild each vnode's hash trees from storage this long after the last build, verifying them (0 = never)")
	fs.StringVar(&c.DebugListen, "debug-listen", c.DebugListen, "serve net/http/pprof on this address (\"\" = off)")
	fs.StringVar(&c.CertsDir, "certs-dir", c.CertsDir, "certificates directory (gokai certs): mutual TLS between nodes, encrypted gossip")
	fs.BoolVar(&c.Insecure, "insecure", c.Insecure, "allow listeners off loopback without certs-dir (a network you trust)")
	fs.BoolVar(&c.RPCTLS, "rpc-tls", c.RPCTLS, "serve msgpack-RPC over TLS with the node certificate (needs certs-dir)")
	fs.BoolVar(&c.MemcacheTLS, "memcache-tls", c.MemcacheTLS, "serve memcache over TLS with the node certificate (needs certs-dir)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.BoolVar(&c.LogJSON, "log-json", c.LogJSON, "JSON logs")
}

// LoadFile applies a config file to fs: one "name = value" per line, names as the flags, # comments.
// Flags already set on the command line keep their value. Unknown names are errors.
func LoadFile(fs *flag.FlagSet, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	return loadReader(fs, f, path)
}

func loadReader(fs *flag.FlagSet, r io.Reader, name string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("config: %s:%d: want name = value", name, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		}
		if fs.Lookup(k) == nil {
			return fmt.Errorf("config: %s:%d: unknown setting %q", name, line, k)
		}
		if set[k] {
			continue
		}
		if err := fs.Set(k, v); err != nil {
			return fmt.Errorf("config: %s:%d: %s: %w", name, line, k, err)
		}
	}
	return sc.Err()
}

// Attrs lists the effective settings for the start-up log line, sorted by name.
func Attrs(fs *flag.FlagSet) []any {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	out := make([]any, 0, 2*len(names))
	for _, n := range names {
		if n == "config" {
			continue
		}
		out = append(out, n, fs.Lookup(n).Value.String())
	}
	return out
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("config: log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}
