// Package counter is an example of a custom vnode behaviour: named counters, riak_core style. It shows what
// a gokai application writes (the Behaviour callbacks) and what it gets for free: one supervised vnode actor
// per partition, state kept in the node's storage across crashes, and ownership handoff (fold, encode,
// merge, forwarding of writes during the move).
//
// Route a counter name to its partition with the ring (ring.Ring.PartitionForKey) and send the
// partition's vnode an Incr or a Read.
package counter

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// Incr adds By to the counter Name and replies with a Value.
type Incr struct {
	Name string
	By   uint64
}

// Read replies with the counter's Value.
type Read struct{ Name string }

// Value is a counter's current value.
type Value struct {
	Name  string
	Count uint64
	Err   string
}

// Counter is the behaviour. It is not safe for concurrent use: the vnode actor calls it one message at a
// time, which is the point.
type Counter struct{ env vnode.Env }

var (
	_ vnode.Behaviour        = (*Counter)(nil)
	_ vnode.HandoffCommander = (*Counter)(nil)
	_ vnode.ConcurrentFold   = (*Counter)(nil)
)

// New is the vnode.Factory for counters.
func New() vnode.Behaviour { return &Counter{} }

// Init keeps the environment; all state is in storage.
func (c *Counter) Init(env vnode.Env) error { c.env = env; return nil }

func (c *Counter) load(name string) (uint64, error) {
	raw, err := c.env.Store.Get([]byte(name))
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil || len(raw) != 8 {
		return 0, fmt.Errorf("counter %q: %v (%d bytes)", name, err, len(raw))
	}
	return binary.BigEndian.Uint64(raw), nil
}

func (c *Counter) store(name string, v uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return c.env.Store.Put([]byte(name), b[:])
}

// HandleCommand serves Incr and Read.
func (c *Counter) HandleCommand(cmd any, _ vnode.Sender) vnode.Result {
	switch m := cmd.(type) {
	case *Incr:
		v, err := c.load(m.Name)
		if err == nil {
			v += m.By
			err = c.store(m.Name, v)
		}
		return vnode.Reply(reply(m.Name, v, err))
	case *Read:
		v, err := c.load(m.Name)
		return vnode.Reply(reply(m.Name, v, err))
	}
	return vnode.NoReply()
}

func reply(name string, v uint64, err error) *Value {
	out := &Value{Name: name, Count: v}
	if err != nil {
		out.Err = err.Error()
	}
	return out
}

// HandleHandoffCommand applies increments locally during a handoff and forwards the resulting value, so
// the new owner never misses one.
func (c *Counter) HandleHandoffCommand(cmd any, from vnode.Sender) (vnode.Result, []byte) {
	res := c.HandleCommand(cmd, from)
	if _, ok := cmd.(*Incr); !ok {
		return res, nil
	}
	v, _ := res.Reply().(*Value)
	if v == nil || v.Err != "" {
		return res, nil
	}
	item, err := c.EncodeHandoffItem([]byte(v.Name), binary.BigEndian.AppendUint64(nil, v.Count))
	if err != nil {
		return res, nil
	}
	return res, item
}

// ConcurrentFoldSafe: the fold reads a storage snapshot.
func (c *Counter) ConcurrentFoldSafe() {}

// HandoffFold visits every counter.
func (c *Counter) HandoffFold(fn func(key, value []byte) error) error { return c.env.Store.Fold(fn) }

// EncodeHandoffItem frames name and value: 2-byte name length, name, 8-byte count.
func (c *Counter) EncodeHandoffItem(key, value []byte) ([]byte, error) {
	if len(key) > 0xffff || len(value) != 8 {
		return nil, fmt.Errorf("counter: bad item (%d-byte name, %d-byte value)", len(key), len(value))
	}
	out := binary.BigEndian.AppendUint16(nil, uint16(len(key)))
	out = append(out, key...)
	return append(out, value...), nil
}

// HandleHandoffData merges a handed-off counter: the larger value wins (the old owner's value only grows,
// and writes during the move were forwarded).
func (c *Counter) HandleHandoffData(data []byte) error {
	if len(data) < 2 {
		return errors.New("counter: short handoff item")
	}
	n := int(binary.BigEndian.Uint16(data))
	if len(data) != 2+n+8 {
		return errors.New("counter: malformed handoff item")
	}
	name, v := string(data[2:2+n]), binary.BigEndian.Uint64(data[2+n:])
	cur, err := c.load(name)
	if err != nil {
		return err
	}
	if v > cur {
		return c.store(name, v)
	}
	return nil
}

// IsEmpty reports whether the partition holds no counters.
func (c *Counter) IsEmpty() (bool, error) { return c.env.Store.IsEmpty() }

// Delete drops the partition's counters after a completed handoff.
func (c *Counter) Delete() error { return c.env.Store.Drop() }

// Terminate has nothing to release.
func (c *Counter) Terminate(any) {}
