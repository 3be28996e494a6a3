package bench

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Config is one benchmark run. Every field has a flag of the same name (see Bind).
type Config struct {
	Protocol    string // wire protocol: "memcache" (text, default), "memcache-binary", "memcache-meta" or "msgpack-rpc" (gokai's get and put)
	Addr        string // server host:port, or several joined by commas (connection i goes to the (i mod n)th); "" (default): 127.0.0.1:11211 for the memcache ones, 127.0.0.1:11011 for msgpack-rpc
	AllowRemote bool   // allow a non-loopback Addr; default false (a load generator aimed at the wrong host is an attack)

	Conns    int     // connections, each driven by one worker; 1..10000; default 50
	Pipeline int     // requests in flight per connection; 1..1024 (maxPipeline); default 1
	Rate     float64 // total ops/s, spread over the connections (open loop); 0 = closed loop (default)

	GetRatio  float64 // fraction of operations that are gets, the rest are sets; 0..1; default 0.9
	Keys      int     // key space size: keys KeyPrefix+"0" .. KeyPrefix+(Keys-1); 1..100_000_000; default 10000
	KeyPrefix string  // default "bench:"; no spaces or control characters
	Dist      string  // key popularity: "uniform" (default) or "zipfian"
	ZipfS     float64 // zipfian exponent s (P(k) ∝ (1+k)^-s); > 1; default 1.01
	ValueSize int     // bytes per set value; 0..1048576; default 100

	Duration time.Duration // measured run length; 1ms..24h; default 10s
	Ops      int64         // stop after this many operations; 0 = no count limit (default)
	Seed     uint64        // workload random seed; default 1

	Prefill        bool          // set every key once before measuring; default true
	PrefillTimeout time.Duration // bound on the prefill; default 60s

	// Labels, recorded in the JSON report for `gokai bench table`; they do not change the run. At most
	// maxLabel bytes of UTF-8 without control characters; default "".
	Scenario string // what was measured, e.g. "1 node, closed loop": the table compares targets within one
	Target   string // the server under test, e.g. "gokai" or "memcached" (the table's baseline)
}

// Default returns the defaults: 50 connections to a memcache server on 127.0.0.1:11211, closed loop, 90% gets
// over 10000 uniformly chosen keys with 100-byte values, 10 seconds, after a prefill.
func Default() Config {
	return Config{
		Protocol: "memcache",
		Conns:    50, Pipeline: 1,
		GetRatio: 0.9, Keys: 10000, KeyPrefix: "bench:", Dist: "uniform", ZipfS: 1.01, ValueSize: 100,
		Duration: 10 * time.Second, Seed: 1,
		Prefill: true, PrefillTimeout: 60 * time.Second,
	}
}

// Limits checked by Validate.
const (
	maxConns     = 10000
	maxPipeline  = 1024
	maxKeys      = 100_000_000
	maxValueSize = 1 << 20
	maxDuration  = 24 * time.Hour
	maxRate      = 1e8
	maxLabel     = 200
)

// ServerAddr is the address a run connects to: Addr, or the protocol's default when Addr is empty.
func (c Config) ServerAddr() string {
	if c.Addr != "" {
		return c.Addr
	}
	return protocols[c.Protocol].addr
}

// maxAddrs bounds the comma-separated servers of one run.
const maxAddrs = 64

// ServerAddrs splits ServerAddr at its commas: the servers the connections are spread over, round-robin.
func (c Config) ServerAddrs() []string {
	return strings.Split(c.ServerAddr(), ",")
}

// Validate reports the first invalid field by its flag name and value.
func (c Config) Validate() error {
	proto, ok := protocols[c.Protocol]
	switch {
	case !ok:
		return fmt.Errorf("bench: protocol %q: want memcache, memcache-binary, memcache-meta or msgpack-rpc", c.Protocol)
	case c.Conns < 1 || c.Conns > maxConns:
		return fmt.Errorf("bench: conns %d: want 1..%d", c.Conns, maxConns)
	case c.Pipeline < 1 || c.Pipeline > maxPipeline:
		return fmt.Errorf("bench: pipeline %d: want 1..%d", c.Pipeline, maxPipeline)
	case math.IsNaN(c.Rate) || c.Rate < 0 || c.Rate > maxRate:
		return fmt.Errorf("bench: rate %v: want 0 (closed loop) or up to %g ops/s", c.Rate, maxRate)
	case math.IsNaN(c.GetRatio) || c.GetRatio < 0 || c.GetRatio > 1:
		return fmt.Errorf("bench: get-ratio %v: want 0..1", c.GetRatio)
	case c.Keys < 1 || c.Keys > maxKeys:
		return fmt.Errorf("bench: keys %d: want 1..%d", c.Keys, maxKeys)
	case c.Dist != "uniform" && c.Dist != "zipfian":
		return fmt.Errorf("bench: dist %q: want uniform or zipfian", c.Dist)
	case math.IsNaN(c.ZipfS) || c.ZipfS <= 1 || c.ZipfS > 100:
		return fmt.Errorf("bench: zipf-s %v: want > 1 and <= 100", c.ZipfS)
	case c.ValueSize < 0 || c.ValueSize > maxValueSize:
		return fmt.Errorf("bench: value-size %d: want 0..%d", c.ValueSize, maxValueSize)
	case c.Duration < time.Millisecond || c.Duration > maxDuration:
		return fmt.Errorf("bench: duration %v: want 1ms..%v", c.Duration, maxDuration)
	case c.Ops < 0:
		return fmt.Errorf("bench: ops %d: want >= 0 (0 = no limit)", c.Ops)
	case c.Prefill && c.PrefillTimeout <= 0:
		return fmt.Errorf("bench: prefill-timeout %v: want > 0", c.PrefillTimeout)
	}
	if err := validKeyPrefix(c.KeyPrefix, c.Keys, c.Protocol, proto); err != nil {
		return err
	}
	if err := validLabel("scenario", c.Scenario); err != nil {
		return err
	}
	if err := validLabel("target", c.Target); err != nil {
		return err
	}
	addrs := c.ServerAddrs()
	if len(addrs) > maxAddrs {
		return fmt.Errorf("bench: addr %q: %d servers, want at most %d", c.ServerAddr(), len(addrs), maxAddrs)
	}
	for _, a := range addrs {
		if err := validAddr(a, c.AllowRemote); err != nil {
			return err
		}
	}
	return nil
}

// validKeyPrefix checks that every key of the space is a legal key of the protocol.
func validKeyPrefix(prefix string, keys int, name string, proto protocol) error {
	if n := len(prefix) + len(strconv.Itoa(keys-1)); n > proto.maxKeyLen {
		return fmt.Errorf("bench: key-prefix %q: keys would be %d bytes, %s allows %d", prefix, n, name, proto.maxKeyLen)
	}
	for i := 0; i < len(prefix) && !proto.binaryKeys; i++ {
		if b := prefix[i]; b <= ' ' || b == 0x7f {
			return fmt.Errorf("bench: key-prefix %q: byte %d is a space or control character", prefix, i)
		}
	}
	return nil
}

// validLabel accepts up to maxLabel bytes of UTF-8 without control characters (a label ends up in a
// markdown table, one line per row).
func validLabel(flag, v string) error {
	if len(v) > maxLabel {
		return fmt.Errorf("bench: %s %q: %d bytes, want at most %d", flag, v, len(v), maxLabel)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("bench: %s %q: not UTF-8", flag, v)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return fmt.Errorf("bench: %s %q: control character %U", flag, v, r)
		}
	}
	return nil
}

// validAddr accepts host:port with a loopback host (an IP or "localhost") unless remote targets are allowed.
// Host names other than localhost are refused without -allow-remote: Validate does no DNS.
func validAddr(addr string, allowRemote bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("bench: addr %q: %w", addr, err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("bench: addr %q: port %q: want 1..65535", addr, port)
	}
	if allowRemote || host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().IsLoopback() {
		return nil
	}
	return fmt.Errorf("bench: addr %q: not a loopback address (pass -allow-remote to load a remote server)", addr)
}

// Bind registers one flag per field on fs, writing into c (whose values are the flag defaults).
func (c *Config) Bind(fs *flag.FlagSet) {
	fs.StringVar(&c.Protocol, "protocol", c.Protocol,
		"wire protocol: memcache (text), memcache-binary, memcache-meta or msgpack-rpc")
	fs.StringVar(&c.Addr, "addr", c.Addr,
		"server address host:port, or several joined by commas to spread the connections over them round-robin\n"+
			"(default 127.0.0.1:11211 for the memcache protocols, 127.0.0.1:11011 for msgpack-rpc)")
	fs.BoolVar(&c.AllowRemote, "allow-remote", c.AllowRemote, "allow a non-loopback -addr")
	fs.IntVar(&c.Conns, "conns", c.Conns, "connections (one worker each)")
	fs.IntVar(&c.Pipeline, "pipeline", c.Pipeline,
		"requests in flight per connection (memcache protocols: sent in batches; msgpack-rpc, closed loop: a sliding window)")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "total ops/s, open loop (0 = closed loop)")
	fs.Float64Var(&c.GetRatio, "get-ratio", c.GetRatio, "fraction of gets (the rest are sets)")
	fs.IntVar(&c.Keys, "keys", c.Keys, "key space size")
	fs.StringVar(&c.KeyPrefix, "key-prefix", c.KeyPrefix, "key prefix")
	fs.StringVar(&c.Dist, "dist", c.Dist, "key popularity: uniform or zipfian")
	fs.Float64Var(&c.ZipfS, "zipf-s", c.ZipfS, "zipfian exponent (> 1)")
	fs.IntVar(&c.ValueSize, "value-size", c.ValueSize, "set value size (bytes)")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "measured run length (hard cap: duration + 5s)")
	fs.Int64Var(&c.Ops, "ops", c.Ops, "stop after this many operations (0 = no limit)")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "workload random seed")
	fs.BoolVar(&c.Prefill, "prefill", c.Prefill, "set every key once before measuring")
	fs.DurationVar(&c.PrefillTimeout, "prefill-timeout", c.PrefillTimeout, "bound on the prefill")
	fs.StringVar(&c.Scenario, "scenario", c.Scenario,
		"label recorded in the JSON report: what is measured (gokai bench table compares targets within a scenario)")
	fs.StringVar(&c.Target, "target", c.Target,
		"label recorded in the JSON report: the server under test, e.g. gokai or memcached (default: the address)")
}

// errNoProtocol is returned for a Config that skipped Validate.
var errNoProtocol = errors.New("bench: unknown protocol")
