package client

import (
	"context"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// VersionInfo is the result of `version`.
type VersionInfo struct {
	Version  string `json:"version"`
	Protocol int    `json:"protocol"`
}

// Stats is the result of `stats`: counter name → int64, or string for text (node name), or, for a kind a
// newer node may add, the msgpack decoder's generic value.
type Stats map[string]any

// Int returns a counter; ok is false when it is absent or not an integer.
func (s Stats) Int(name string) (v int64, ok bool) {
	v, ok = s[name].(int64)
	return v, ok
}

// String returns a stat as text (any kind), "" when absent.
func (s Stats) String(name string) string {
	v, ok := s[name]
	if !ok {
		return ""
	}
	if str, ok := v.(string); ok {
		return str
	}
	return fmtAny(v)
}

// RingInfo is the result of `ring`: the owner (node name) of each of Q partitions, the ring version and
// the replica count N.
type RingInfo struct {
	Q       int      `json:"q"`
	Version uint64   `json:"version"`
	N       int      `json:"n"`
	Owners  []string `json:"owners"`
}

// Member is one entry of `members`.
type Member struct {
	Name         string `json:"name"`
	Status       string `json:"status"`
	RPCAddr      string `json:"rpc_addr"`
	MemcacheAddr string `json:"memcache_addr"`
	Partitions   int    `json:"partitions"`
}

// PrefEntry is one replica of a key's preference list, as the node computes it.
type PrefEntry struct {
	Partition int    `json:"partition"`
	Node      string `json:"node"`
	Primary   bool   `json:"primary"`
}

// The admin methods go to the seeds, in order (the first one that answers).

// Ping sends `ping` and returns the round-trip time (including a dial when no connection was open).
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	var pong string
	err := c.do(ctx, c.seedCandidates(), true, "ping", c.cfg.RequestTimeout, nil,
		func(d *msgpack.Decoder) (err error) {
			pong, err = d.DecodeString()
			return err
		})
	if err != nil {
		return 0, err
	}
	if pong != "pong" {
		return 0, protoErr("ping answered %q", pong)
	}
	return time.Since(start), nil
}

// Version returns the node's version and API protocol version.
func (c *Client) Version(ctx context.Context) (VersionInfo, error) {
	var v VersionInfo
	err := c.do(ctx, c.seedCandidates(), true, "version", c.cfg.RequestTimeout, nil,
		func(d *msgpack.Decoder) (err error) {
			v, err = decodeVersion(d)
			return err
		})
	return v, err
}

// Stats returns the node's counters.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	err := c.do(ctx, c.seedCandidates(), true, "stats", c.cfg.RequestTimeout, nil,
		func(d *msgpack.Decoder) (err error) {
			s, err = decodeStats(d)
			return err
		})
	return s, err
}

// Ring returns the node's ring.
func (c *Client) Ring(ctx context.Context) (*RingInfo, error) {
	var r *RingInfo
	err := c.do(ctx, c.seedCandidates(), true, "ring", c.cfg.RequestTimeout, nil,
		func(d *msgpack.Decoder) (err error) {
			r, err = decodeRing(d)
			return err
		})
	return r, err
}

// Members returns the cluster's members as the node knows them.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	var ms []Member
	err := c.do(ctx, c.seedCandidates(), true, "members", c.cfg.RequestTimeout, nil,
		func(d *msgpack.Decoder) (err error) {
			ms, err = decodeMembers(d)
			return err
		})
	return ms, err
}

// Preflist returns key's preference list as the node computes it (with fallbacks for down nodes).
func (c *Client) Preflist(ctx context.Context, key []byte) ([]PrefEntry, error) {
	var pl []PrefEntry
	err := c.do(ctx, c.seedCandidates(), true, "preflist", c.cfg.RequestTimeout,
		func(e *msgpack.Encoder) error {
			if err := e.EncodeArrayLen(1); err != nil {
				return err
			}
			return e.EncodeBytes(nonNil(key))
		},
		func(d *msgpack.Decoder) (err error) {
			pl, err = decodePreflist(d)
			return err
		})
	return pl, err
}

func fmtAny(v any) string { return fmt.Sprint(v) }

// Call sends any method to the seeds (in order, the first that answers) and decodes its result into
// result (a pointer, as for msgpack.Unmarshal; nil to discard it). Not idempotent calls are not repeated
// on another node after they were sent. It is the way to reach methods without a typed wrapper, such as
// the cluster administration calls.
func (c *Client) Call(ctx context.Context, method string, params []any, result any, idempotent bool) error {
	return c.do(ctx, c.seedCandidates(), idempotent, method, c.cfg.RequestTimeout,
		func(e *msgpack.Encoder) error {
			if params == nil {
				params = []any{}
			}
			return e.Encode(params)
		},
		func(d *msgpack.Decoder) error {
			if result == nil {
				return d.Skip()
			}
			return d.Decode(result)
		})
}
