package vnode

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
)

// CoverageReceiverPrefix names the actors RequestCoverage spawns to receive a vnode's chunks; other nodes
// may address them (actors.AllowRemoteTarget).
const CoverageReceiverPrefix = "vnode-coverage-"

// RequestCoverage sends req to one vnode and blocks until its answer is complete: for a stream it calls
// onChunk with the items of every chunk, in order, and acknowledges a chunk only once onChunk returned (so
// a slow onChunk slows the vnode's fold, and at most req.Window chunks wait in between); for a command the
// behaviour answers with one message (Reply, Async) it returns that message. It is the simplest coverage
// requester (one vnode, the caller's goroutine): tools, tests, and the model for a coverage request actor.
//
// req.ID is chosen at random when 0. The request fails when ctx ends or onChunk returns an error (the
// stream is cancelled), when the vnode ends the stream with an error (the items so far were delivered),
// or when nothing arrives from the vnode for idle (0: the stream's ack timeout plus 30s).
func RequestCoverage(ctx context.Context, system *actor.ActorSystem, pid *actor.PID, req *CoverageRequest, idle time.Duration,
	onChunk func(items [][]byte) error) (reply any, err error) {
	r := *req
	if r.ID == 0 {
		r.ID = rand.Uint64() | 1
	}
	if r.V == 0 {
		r.V = 1
	}
	_, _, window, ackTimeout := r.normalize()
	if idle <= 0 {
		idle = ackTimeout + 30*time.Second
	}
	// NB: the receiver's buffer holds what the vnode may send unacknowledged: window chunks plus the last.
	in := make(chan any, window+2)
	// NB: under CoverageReceiverPrefix, so that chunks from another node's vnode pass the transport's guard.
	recv := system.Root.SpawnPrefix(actors.WireProps(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case actor.SystemMessage, actor.AutoReceiveMessage:
		default:
			select {
			case in <- m:
			default: // more than the window allows: a confused vnode; the sequence check fails the request
			}
		}
	})), CoverageReceiverPrefix)
	defer system.Root.Stop(recv)
	cancel := func() { system.Root.Send(pid, &CoverageCancel{V: 1, ID: r.ID}) }
	system.Root.RequestWithCustomSender(pid, &r, recv)

	timer := time.NewTimer(idle)
	defer timer.Stop()
	var next uint64 = 1
	for {
		var msg any
		select {
		case <-ctx.Done():
			cancel()
			return nil, fmt.Errorf("vnode: coverage request %d: %w", r.ID, ctx.Err())
		case <-timer.C:
			cancel()
			return nil, fmt.Errorf("vnode: coverage request %d: nothing from %s/%s for %v", r.ID, pid.Address, pid.Id, idle)
		case msg = <-in:
			timer.Reset(idle)
		}
		ch, ok := msg.(*CoverageChunk)
		switch {
		case !ok:
			if _, dead := msg.(*actor.DeadLetterResponse); dead {
				return nil, fmt.Errorf("vnode: coverage request %d: %w", r.ID, actor.ErrDeadLetter)
			}
			return msg, nil // the behaviour's single reply
		case ch.ID != r.ID:
			continue
		case ch.Seq != next:
			cancel()
			return nil, fmt.Errorf("vnode: coverage request %d: chunk %d, want %d", r.ID, ch.Seq, next)
		}
		next++
		if len(ch.Items) > 0 {
			if err := onChunk(ch.Items); err != nil {
				cancel()
				return nil, err
			}
		}
		if ch.Done {
			if ch.Err != "" {
				return nil, errors.New(ch.Err)
			}
			return nil, nil
		}
		system.Root.Send(pid, &CoverageAck{V: 1, ID: r.ID, Seq: ch.Seq})
	}
}
