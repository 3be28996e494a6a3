package entropy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/aae"
	"github.com/gokai-kv/gokai/vnode"
)

// exchangeActor runs one exchange: the same queries to both vnodes, their answers to aae.Exchange, then
// the repairs of the keys that differ (on a goroutine of its own), then it reports to the manager and stops.
type exchangeActor struct {
	m    *Manager
	t    task
	svc  Service
	base uint64 // query ids: base + 2*round + side

	ex      *aae.Exchange
	round   uint64
	pids    [2]*actor.PID
	answers [2]*vnode.AAEAnswer
	cancel  context.CancelFunc // the repairs'; nil until they start
	over    bool
}

// repairsDone ends the repair goroutine.
type repairsDone struct {
	repaired, failed int64
	err              error
}

func (x *exchangeActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		x.pids[0] = x.svc.Vnode(x.m.cfg.Node, x.t.pair.Local)
		x.pids[1] = x.svc.Vnode(x.t.pair.Peer, x.t.pair.Remote)
		if x.pids[0] == nil || x.pids[1] == nil {
			x.finish(ctx, aae.Outcome{}, repairsDone{err: errors.New("a vnode is unreachable")})
			return
		}
		x.ex = aae.NewExchange(x.m.cfg.MaxSegments)
		x.ask(ctx, x.ex.Start())
		ctx.SetReceiveTimeout(x.m.cfg.Timeout)
	case *vnode.AAEAnswer:
		side := msg.ID - x.base - 2*x.round
		if x.over || x.cancel != nil || side > 1 || x.answers[side] != nil {
			return // a late or foreign answer
		}
		x.answers[side] = msg
		if x.answers[0] == nil || x.answers[1] == nil {
			return
		}
		for i, a := range x.answers {
			if a.Err != "" {
				x.finish(ctx, x.ex.Outcome(), repairsDone{err: fmt.Errorf("%s vnode: %s", [2]string{"local", "peer"}[i], a.Err)})
				return
			}
		}
		next, done := x.ex.Answer(answerOf(x.answers[0]), answerOf(x.answers[1]))
		if !done {
			x.round++
			x.answers = [2]*vnode.AAEAnswer{}
			x.ask(ctx, next)
			return
		}
		out := x.ex.Outcome()
		if len(out.Keys) == 0 {
			x.finish(ctx, out, repairsDone{})
			return
		}
		ctx.CancelReceiveTimeout()
		rctx, cancel := context.WithCancel(context.Background())
		x.cancel = cancel
		sys, self, m, repair := ctx.ActorSystem(), ctx.Self(), x.m, x.svc.Repair
		go func() {
			sys.Root.Send(self, repairKeys(rctx, m, repair, out.Keys))
		}()
	case *actor.DeadLetterResponse:
		// NB: a vnode that stopped (retired, or its node is leaving) answers nothing: fail now rather than
		// hold a concurrency slot until the timeout.
		if x.cancel == nil {
			x.finish(ctx, x.exOutcome(), repairsDone{err: fmt.Errorf("vnode %s is gone", msg.Target)})
		}
	case *repairsDone:
		x.finish(ctx, x.ex.Outcome(), *msg)
	case *actor.ReceiveTimeout:
		if x.cancel == nil {
			x.finish(ctx, x.exOutcome(), repairsDone{err: fmt.Errorf("no answer within %s", x.m.cfg.Timeout)})
		}
	case *actor.Stopping:
		if x.cancel != nil {
			x.cancel()
		}
	}
}

func (x *exchangeActor) exOutcome() aae.Outcome {
	if x.ex == nil {
		return aae.Outcome{}
	}
	return x.ex.Outcome()
}

// ask sends q to both vnodes.
func (x *exchangeActor) ask(ctx actor.Context, q aae.Query) {
	for side, pid := range x.pids {
		ctx.Request(pid, &vnode.AAEQuery{V: 1, ID: x.base + 2*x.round + uint64(side), Source: x.t.pair.Source,
			Kind: q.Kind, Branches: q.Branches, Segments: q.Segments})
	}
}

func answerOf(a *vnode.AAEAnswer) aae.Answer {
	return aae.Answer{Root: a.Root, Branches: a.Branches, Segments: a.Segments, Keys: a.Keys}
}

// finish reports to the manager (once) and stops the actor.
func (x *exchangeActor) finish(ctx actor.Context, out aae.Outcome, r repairsDone) {
	if x.over {
		return
	}
	x.over = true
	ctx.Send(ctx.Parent(), &exchangeDone{t: x.t, outcome: out, repaired: r.repaired, failed: r.failed, err: r.err})
	ctx.Stop(ctx.Self())
}

// repairKeys repairs keys one by one at the manager's rate. It runs on its own goroutine.
func repairKeys(ctx context.Context, m *Manager, repair func(context.Context, []byte) error, keys [][]byte) *repairsDone {
	res := &repairsDone{}
	for _, k := range keys {
		if w := m.takeToken(); w > 0 {
			t := time.NewTimer(w)
			select {
			case <-ctx.Done():
				t.Stop()
				res.err = ctx.Err()
				return res
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			res.err = ctx.Err()
			return res
		}
		if err := repair(ctx, k); err != nil {
			res.failed++
			m.cfg.Logger.Debug("entropy: repair failed", "key", fmt.Sprintf("%q", k), "err", err)
			continue
		}
		res.repaired++
	}
	return res
}
