package vnode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/vmihailenco/msgpack/v5"
)

// Coverage: the vnode side of riak_core's coverage commands. A coverage request (one actor per request,
// package coverage) sends CoverageRequest to a set of vnodes that together hold every key once, each with
// the Filter of the hash partitions it must cover. The vnode hands the command to its behaviour's
// HandleCoverage, which answers with one reply (Reply or Async) or a stream (Stream):
//
//	requester                                vnode (fold on the worker pool)
//	    │── CoverageRequest{ID, Filter, Cmd} ──►│
//	    │◄── CoverageChunk{ID, Seq 1, Items} ───│   at most Window chunks unacknowledged
//	    │── CoverageAck{ID, Seq 1} ────────────►│
//	    │◄── CoverageChunk{ID, Seq 2, Items} ───│
//	    │                  ...                  │
//	    │◄── CoverageChunk{ID, Seq n, Done} ────│   the last chunk (Err set if the fold failed)
//
// Flow control: the vnode sends chunk i+Window only once chunk i was acknowledged, so a slow requester
// slows the fold, and neither side holds more than Window chunks of at most MaxItems items or MaxBytes
// bytes (plus one item). Chunks come from the vnode's PID: acknowledge with ctx.Respond (or send the ack to
// the vnode). A chunk unacknowledged for AckTimeout ends the stream (the requester is gone).
//
// Cancel: CoverageCancel{ID}, or an ack with Stop, ends the stream at once; the vnode then sends a last
// chunk with Done and Err. A stream also ends when the vnode restarts or stops (last chunk: Err).
//
// IDs: a requester chooses ID so that no two of its requests to one vnode share it while both run, and
// different requesters cannot collide (a random 64-bit number per request). A vnode refuses a request
// whose ID names a stream still running (a last chunk with Err at once).

// Limits on what a requester may ask (requests come from other nodes: never trust their sizes).
const (
	DefaultCoverageChunkItems = 1000
	MaxCoverageChunkItems     = 10000
	DefaultCoverageChunkBytes = 256 << 10
	MaxCoverageChunkBytes     = 4 << 20
	DefaultCoverageWindow     = 2
	MaxCoverageWindow         = 16
	DefaultCoverageAckTimeout = 30 * time.Second
	MinCoverageAckTimeout     = 10 * time.Millisecond
	MaxCoverageAckTimeout     = 10 * time.Minute
)

// CoverageRequest asks a vnode to run a coverage command over the part of its data that Filter names. Cmd
// is the behaviour's own command (a registered wire message, to cross nodes). The reply goes to the
// request's sender: the behaviour's reply message (Reply, Async), or CoverageChunks (Stream), or, when the
// vnode cannot run the command at all, one CoverageChunk with Done and Err.
type CoverageRequest struct {
	V      uint8
	ID     uint64
	Filter Filter
	Cmd    any
	// Chunking and flow control of a stream (0: the default; larger values are capped at the maximum).
	MaxItems   int           // items per chunk: default 1000, at most 10000
	MaxBytes   int           // item bytes per chunk: default 256 KiB, at most 4 MiB (a larger single item goes alone)
	Window     int           // chunks sent ahead of acknowledgements: default 2, at most 16
	AckTimeout time.Duration // how long a chunk may stay unacknowledged: default 30s, within [10ms, 10min]
}

// coverageRequestWire is CoverageRequest on the wire, Cmd as a nested wire envelope.
type coverageRequestWire struct {
	V          uint8         `msgpack:"v"`
	ID         uint64        `msgpack:"id"`
	Filter     Filter        `msgpack:"f"`
	Cmd        []byte        `msgpack:"c"`
	MaxItems   int           `msgpack:"mi"`
	MaxBytes   int           `msgpack:"mb"`
	Window     int           `msgpack:"w"`
	AckTimeout time.Duration `msgpack:"at"`
}

var (
	_ msgpack.CustomEncoder = (*CoverageRequest)(nil)
	_ msgpack.CustomDecoder = (*CoverageRequest)(nil)
)

// EncodeMsgpack encodes r for the wire; Cmd must be a registered wire message.
func (r *CoverageRequest) EncodeMsgpack(enc *msgpack.Encoder) error {
	cmd, err := encodeNested(r.Cmd)
	if err != nil {
		return fmt.Errorf("vnode: coverage request: %w", err)
	}
	return enc.Encode(&coverageRequestWire{V: r.V, ID: r.ID, Filter: r.Filter, Cmd: cmd, MaxItems: r.MaxItems,
		MaxBytes: r.MaxBytes, Window: r.Window, AckTimeout: r.AckTimeout})
}

// DecodeMsgpack decodes a request from the wire (Cmd included; nothing is validated here but its bounds).
func (r *CoverageRequest) DecodeMsgpack(dec *msgpack.Decoder) error {
	var w coverageRequestWire
	if err := dec.Decode(&w); err != nil {
		return err
	}
	cmd, err := decodeNested(w.Cmd)
	if err != nil {
		return fmt.Errorf("vnode: coverage request: %w", err)
	}
	*r = CoverageRequest{V: w.V, ID: w.ID, Filter: w.Filter, Cmd: cmd, MaxItems: w.MaxItems, MaxBytes: w.MaxBytes,
		Window: w.Window, AckTimeout: w.AckTimeout}
	return nil
}

// CoverageChunk is a part of a coverage stream. Seq counts from 1; the chunk with Done is the last (it may
// carry items too, and needs no acknowledgement). Err, on the last chunk, says why the stream ended early
// or never started: its items so far are not the whole answer.
type CoverageChunk struct {
	V         uint8    `msgpack:"v"`
	ID        uint64   `msgpack:"id"`
	Partition int      `msgpack:"p"` // the vnode's partition
	Seq       uint64   `msgpack:"s"`
	Items     [][]byte `msgpack:"i"`
	Done      bool     `msgpack:"d"`
	Err       string   `msgpack:"e"`
}

// CoverageAck acknowledges chunk Seq of stream ID; with Stop it ends the stream instead.
type CoverageAck struct {
	V    uint8  `msgpack:"v"`
	ID   uint64 `msgpack:"id"`
	Seq  uint64 `msgpack:"s"`
	Stop bool   `msgpack:"x"`
}

// CoverageCancel ends stream ID (the requester gave up: its caller went away, another vnode failed).
type CoverageCancel struct {
	V  uint8  `msgpack:"v"`
	ID uint64 `msgpack:"id"`
}

// errStreamCancelled: the requester cancelled the stream.
var errStreamCancelled = errors.New("vnode: coverage stream cancelled by the requester")

// coverageStream is a running stream, owned by the vnode actor (the fold's goroutine sees acks and cancel
// through the channel and the context).
type coverageStream struct {
	acks   chan uint64 // capacity Window: never more acks than unacknowledged chunks
	cancel context.CancelCauseFunc
}

// coverageStreamEnded tells the vnode that a stream's fold returned.
type coverageStreamEnded struct {
	id uint64
	st *coverageStream
}

// streamParams is what the fold's goroutine needs to send chunks.
type streamParams struct {
	system     *actor.ActorSystem
	self, to   *actor.PID
	id         uint64
	partition  int
	maxItems   int
	maxBytes   int
	window     int
	ackTimeout time.Duration
}

// normalize applies defaults and caps to a request's flow control.
func (r *CoverageRequest) normalize() (maxItems, maxBytes, window int, ackTimeout time.Duration) {
	clamp := func(v, def, hi int) int {
		if v <= 0 {
			return def
		}
		return min(v, hi)
	}
	maxItems = clamp(r.MaxItems, DefaultCoverageChunkItems, MaxCoverageChunkItems)
	maxBytes = clamp(r.MaxBytes, DefaultCoverageChunkBytes, MaxCoverageChunkBytes)
	window = clamp(r.Window, DefaultCoverageWindow, MaxCoverageWindow)
	switch ackTimeout = r.AckTimeout; {
	case ackTimeout <= 0:
		ackTimeout = DefaultCoverageAckTimeout
	case ackTimeout < MinCoverageAckTimeout:
		ackTimeout = MinCoverageAckTimeout
	case ackTimeout > MaxCoverageAckTimeout:
		ackTimeout = MaxCoverageAckTimeout
	}
	return
}

// handleCoverage handles the coverage messages; it reports whether msg was one.
func (a *vnodeActor) handleCoverage(ctx actor.Context, msg any) bool {
	switch m := msg.(type) {
	case *CoverageRequest:
		a.coverage(ctx, m)
	case *CoverageAck:
		st := a.streams[m.ID]
		switch {
		case st == nil:
		case m.Stop:
			st.cancel(errStreamCancelled)
		default:
			select {
			case st.acks <- m.Seq:
			default: // more acks than chunks sent: a confused requester; the stream checks the sequence
			}
		}
	case *CoverageCancel:
		if st := a.streams[m.ID]; st != nil {
			st.cancel(errStreamCancelled)
		}
	case *coverageStreamEnded:
		if a.streams[m.id] == m.st {
			delete(a.streams, m.id)
		}
	default:
		return false
	}
	return true
}

// coverage serves a CoverageRequest.
func (a *vnodeActor) coverage(ctx actor.Context, m *CoverageRequest) {
	to := ctx.Sender()
	if to == nil {
		a.env.Logger.Warn("vnode: coverage request without a sender: nobody to answer", "id", m.ID)
		return
	}
	refuse := func(err string) {
		ctx.Send(to, &CoverageChunk{V: 1, ID: m.ID, Partition: a.env.Partition, Seq: 1, Done: true, Err: err})
	}
	ch, ok := a.b.(CoverageHandler)
	switch {
	case !ok:
		refuse(fmt.Sprintf("vnode: partition %d: the behaviour handles no coverage commands", a.env.Partition))
		return
	case m.Cmd == nil:
		refuse("vnode: coverage request without a command")
		return
	case a.streams[m.ID] != nil:
		refuse(fmt.Sprintf("vnode: coverage stream %d is running already", m.ID))
		return
	}
	if err := m.Filter.Validate(); err != nil {
		refuse(err.Error())
		return
	}
	from := Sender{system: ctx.ActorSystem(), pid: to}
	res := ch.HandleCoverage(m.Cmd, m.Filter, from)
	if res.kind != resultStream {
		a.execute(ctx, res, from)
		return
	}
	maxItems, maxBytes, window, ackTimeout := m.normalize()
	p := streamParams{system: ctx.ActorSystem(), self: ctx.Self(), to: to, id: m.ID, partition: a.env.Partition,
		maxItems: maxItems, maxBytes: maxBytes, window: window, ackTimeout: ackTimeout}
	sctx, cancel := context.WithCancelCause(context.Background())
	st := &coverageStream{acks: make(chan uint64, window), cancel: cancel}
	ended := func() {
		cancel(nil)
		p.system.Root.Send(p.self, &coverageStreamEnded{id: p.id, st: st})
	}
	fold := res.fold
	ok = a.submit(ctx, job{
		run: func(pctx context.Context) {
			defer ended()
			stop := context.AfterFunc(pctx, func() { cancel(errors.New("vnode: stopping")) })
			defer stop()
			runStream(sctx, p, st.acks, fold)
		},
		drop: func() {
			ended()
			p.system.Root.Send(p.to, &CoverageChunk{V: 1, ID: p.id, Partition: p.partition, Seq: 1, Done: true, Err: "vnode: stopping"})
		},
	})
	if !ok {
		a.shared.metrics.asyncRefused.Add(1)
		if res.hasBusy && res.busy != nil {
			ctx.Send(to, res.busy)
		} else {
			refuse(fmt.Sprintf("vnode: partition %d: worker pool busy", a.env.Partition))
		}
		return
	}
	a.streams[m.ID] = st
}

// runStream runs fold and sends what it emits in chunks, within the window. It runs on a pool goroutine.
func runStream(ctx context.Context, p streamParams, acks <-chan uint64, fold StreamFunc) {
	var (
		sent, acked uint64
		items       [][]byte
		size        int
	)
	// waitAck waits for the acknowledgement of chunk acked+1.
	waitAck := func() error {
		timer := time.NewTimer(p.ackTimeout)
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case s := <-acks:
				if s != acked+1 {
					return fmt.Errorf("vnode: coverage stream %d: ack of chunk %d, want %d", p.id, s, acked+1)
				}
				acked = s
				return nil
			case <-timer.C:
				return fmt.Errorf("vnode: coverage stream %d: chunk %d not acknowledged within %v", p.id, acked+1, p.ackTimeout)
			}
		}
	}
	send := func(done bool, errMsg string) error {
		for sent-acked >= uint64(p.window) {
			if err := waitAck(); err != nil {
				return err
			}
		}
		sent++
		c := &CoverageChunk{V: 1, ID: p.id, Partition: p.partition, Seq: sent, Items: items, Done: done, Err: errMsg}
		// NB: sent as from the vnode, which routes the acknowledgement back to this goroutine.
		p.system.Root.RequestWithCustomSender(p.to, c, p.self)
		items, size = nil, 0
		return nil
	}
	emit := func(item []byte) error {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		items = append(items, item)
		size += len(item)
		if len(items) >= p.maxItems || size >= p.maxBytes {
			return send(false, "")
		}
		return nil
	}
	err := fold(ctx, emit)
	if err == nil && ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	if err == nil {
		if err = send(true, ""); err == nil {
			return
		}
	}
	// The stream failed or was cancelled: the last chunk says why (a requester that went silent may never
	// read it; one that cancelled learns that the fold stopped).
	p.system.Root.Send(p.to, &CoverageChunk{V: 1, ID: p.id, Partition: p.partition, Seq: sent + 1, Done: true, Err: err.Error()})
}
