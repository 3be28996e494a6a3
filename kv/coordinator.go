package kv

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/gokai-kv/gokai/coordinator"
)

// Coordinator is KV's get, put and delete, run by the node's coordinators (coordinator.Read and
// coordinator.Write with KV's protocol): every request is one supervised request actor, N/R/W quorums with
// sloppy fallbacks, read repair of stale and late replicas. Methods are safe for concurrent use and block
// the caller until the answer or ctx.
type Coordinator struct {
	svc   *coordinator.Service
	cfg   Config
	proto coordinator.Protocol[*Object]

	gets, puts, deletes, siblings atomic.Int64

	metrics *kvMetrics // nil: no Prometheus series (Start sets it once, before any request)
}

// Stats are KV's request counters and the coordinators' own (coordinator.Stats: repairs, timeouts, ...).
type Stats struct {
	coordinator.Stats
	Gets, Puts, Deletes int64
	SiblingsSeen        int64 // reads whose answer held more than one live sibling
}

// NewCoordinator runs KV's requests on svc. cfg.LWW must be the vnodes' (it reconciles reads); cfg.DeleteMode
// and cfg.ReapDelay decide what happens to tombstones.
func NewCoordinator(svc *coordinator.Service, cfg Config) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Coordinator{svc: svc, cfg: cfg, proto: &protocol{lww: cfg.LWW}}, nil
}

// Service returns the coordinators KV runs on.
func (c *Coordinator) Service() *coordinator.Service { return c.svc }

// Stats returns a snapshot of the counters.
func (c *Coordinator) Stats() Stats {
	return Stats{Stats: c.svc.Stats(), Gets: c.gets.Load(), Puts: c.puts.Load(), Deletes: c.deletes.Load(),
		SiblingsSeen: c.siblings.Load()}
}

// refused reports an error of a request that was never admitted (nothing ran).
func refused(err error) bool {
	return errors.Is(err, coordinator.ErrBadRequest) || errors.Is(err, coordinator.ErrOverload) ||
		errors.Is(err, coordinator.ErrShuttingDown)
}

// Get reads key at R replicas (opts may override R, PR, Timeout, NotFoundOK) and returns the reconciled
// object, tombstones and expired siblings included (nil if no replica holds the key), with the siblings a
// flush hides shown as tombstones (Object.Flushed; read repair had the real objects). Callers show
// Object.Live(now) to clients.
func (c *Coordinator) Get(ctx context.Context, key []byte, opts coordinator.ReadOptions) (*Object, error) {
	o, err := coordinator.Read(ctx, c.svc, c.proto, key, opts, getOp{})
	if refused(err) {
		return nil, err
	}
	c.gets.Add(1)
	if err == nil && o != nil {
		now := c.svc.Config().Now()
		o = o.Flushed(cutoff(c.cfg.FlushCutoff, now))
		live := o.LiveCount(now.Unix())
		if live > 1 {
			c.siblings.Add(1)
		}
		if m := c.metrics; m != nil && live > 0 {
			m.readSiblings.Observe(float64(live))
			m.getBytes.Observe(float64(o.Size()))
		}
	}
	return o, err
}

// Put writes value under key. vctx is the causal context from an earlier read (the write supersedes exactly
// the siblings that read returned); a nil vctx supersedes nothing (the write becomes a sibling of whatever
// the key holds). With blind, vctx is ignored and the context is whatever the coordinating vnode holds (the
// write supersedes that replica's siblings, seen by the writer or not): callers ask for it only on a
// client's explicit request (memcache set, msgpack-RPC {"blind": true}). It returns the written object as
// reads show it (Object.Flushed: siblings of it a flush hides are tombstones).
func (c *Coordinator) Put(ctx context.Context, key, value []byte, meta Meta, vctx VClock, blind bool, opts coordinator.WriteOptions) (*Object, error) {
	c.puts.Add(1)
	o, err := c.write(ctx, key, value, meta, vctx, blind, opts)
	if err == nil && o != nil {
		o = o.Flushed(cutoff(c.cfg.FlushCutoff, c.svc.Config().Now()))
	}
	return o, err
}

// Delete writes a tombstone for key under vctx (or blind), W/PW as for Put. In DeleteReap mode the tombstone
// is removed ReapDelay after every replica stored it.
func (c *Coordinator) Delete(ctx context.Context, key []byte, vctx VClock, blind bool, opts coordinator.WriteOptions) error {
	c.deletes.Add(1)
	if c.cfg.DeleteMode == DeleteReap {
		opts.ReapAfter = c.cfg.ReapDelay
	}
	_, err := c.write(ctx, key, nil, Meta{Deleted: true}, vctx, blind, opts)
	return err
}

// Repair is anti-entropy's repair of key (service.Instance.Repair): a read of every replica (R = N) whose
// coordinator writes the merged object to each replica that lacks it (read repair, after the replies). It
// counts as no client get. In reap mode a key that holds only tombstones is deleted again under the merged
// context, so once every primary stored that tombstone the reaper removes it from all of them: a tombstone
// reaped on some replicas but not on others ends as nothing everywhere, never as a resurrected value, and
// the next exchange finds the replicas equal (no ping-pong).
func (c *Coordinator) Repair(ctx context.Context, key []byte) error {
	n := c.svc.Config().N
	o, err := coordinator.Read(ctx, c.svc, c.proto, key, coordinator.ReadOptions{R: n}, getOp{})
	if err != nil {
		return err
	}
	if o == nil || c.cfg.DeleteMode != DeleteReap || !o.TombstoneOnly(c.svc.Config().Now().Unix()) {
		return nil
	}
	_, err = c.write(ctx, key, nil, Meta{Deleted: true}, o.Clock, false,
		coordinator.WriteOptions{W: n, ReapAfter: c.cfg.ReapDelay})
	return err
}

func (c *Coordinator) write(ctx context.Context, key, value []byte, meta Meta, vctx VClock, blind bool, opts coordinator.WriteOptions) (*Object, error) {
	meta.LastMod = c.svc.Config().Now().UnixNano()
	op := putOp{req: PutRequest{V: 1, Key: key, Coordinate: true, Context: vctx, Blind: blind, Value: value, Meta: meta}}
	o, err := coordinator.Write(ctx, c.svc, c.proto, key, opts, op)
	if m := c.metrics; m != nil && err == nil && o != nil && !meta.Deleted {
		m.putBytes.Observe(float64(o.Size()))
	}
	return o, err
}

// protocol is KV's coordinator.Protocol: objects merge with Sync, replies are GetReply and PutReply.
type protocol struct{ lww bool }

var _ coordinator.Protocol[*Object] = (*protocol)(nil)

// Missing: a vnode that holds nothing for the key answers a nil object.
func (p *protocol) Missing(o *Object) bool { return o == nil }

// Equal compares clocks and sibling dots (Object.Equal; nil equals empty).
func (p *protocol) Equal(a, b *Object) bool { return a.Equal(b) }

// Merge reconciles two replicas' objects (Sync).
func (p *protocol) Merge(a, b *Object) *Object { return Sync(a, b, p.lww) }

// Decode reads a vnode's GetReply or PutReply.
func (p *protocol) Decode(msg any) (coordinator.Reply[*Object], bool) {
	switch m := msg.(type) {
	case *GetReply:
		return coordinator.Reply[*Object]{Tag: m.Tag, Value: m.Object, Err: replyErr(m.Code, m.Err)}, true
	case *PutReply:
		return coordinator.Reply[*Object]{Tag: m.Tag, Value: m.Object, Err: replyErr(m.Code, m.Err), Write: true}, true
	}
	return coordinator.Reply[*Object]{}, false
}

// replyErr is the error a vnode's reply code and text stand for (nil for success).
func replyErr(code, msg string) error {
	switch {
	case code == CodeOK && msg == "":
		return nil
	case code == CodeTooManySiblings:
		return fmt.Errorf("%w: %s", ErrTooManySiblings, msg)
	case code == CodeDiskFull:
		return fmt.Errorf("coordinator: replica: %w: %s", ErrDiskFull, msg)
	default:
		return fmt.Errorf("coordinator: replica: %s", msg)
	}
}

// replicate is the command both ops send to make a replica hold o: replication of a write, read repair.
func replicate(key []byte, tag uint32, o *Object) any {
	return &PutRequest{V: 1, Tag: tag, Key: key, Object: o}
}

// getOp is a read's commands. The coordinator holds it inside the request actor, so the fan-out's
// GetRequests live in the actor's own allocation.
type getOp struct {
	reqs [4]GetRequest // N is usually <= 4
}

// Command is the read for replica tag. NB: one fan-out per request: each slot is sent once.
func (o *getOp) Command(key []byte, tag uint32) any {
	var req *GetRequest
	if int(tag) < len(o.reqs) {
		req = &o.reqs[tag]
	} else {
		req = new(GetRequest)
	}
	*req = GetRequest{V: 1, Tag: tag, Key: key}
	return req
}

// Replicate is the read repair of replica tag.
func (o *getOp) Replicate(key []byte, tag uint32, obj *Object) any { return replicate(key, tag, obj) }

// Reap is never called for reads.
func (o *getOp) Reap([]byte, *Object) any { return nil }

// OpName names reads for the coordinators' Observer (metrics).
func (o *getOp) OpName() string { return "get" }

// putOp is a write's (or delete's) commands.
type putOp struct {
	req PutRequest // the client's write, for the coordinating vnode (Coordinate set; Tag per send)
}

// Command is the client's write for the coordinating vnode tag: it applies it with Update, minting a new
// dot, and answers with the object to replicate.
func (o *putOp) Command(_ []byte, tag uint32) any {
	req := o.req
	req.Tag = tag
	return &req
}

// Replicate sends the coordinating vnode's object to replica tag (or a fallback), which merges it with Sync.
func (o *putOp) Replicate(key []byte, tag uint32, obj *Object) any { return replicate(key, tag, obj) }

// OpName names writes for the coordinators' Observer (metrics): a tombstone's is "delete". It reads only
// what was set before the request started.
func (o *putOp) OpName() string {
	if o.req.Meta.Deleted {
		return "delete"
	}
	return "put"
}

// Reap asks a replica to drop the tombstone if it is still what obj's clock describes (DeleteReap).
func (o *putOp) Reap(key []byte, obj *Object) any {
	return &ReapRequest{V: 1, Key: key, Clock: obj.Clock}
}
