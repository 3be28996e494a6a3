package actors

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	cmap "github.com/orcaman/concurrent-map"
)

// Well-known actor names on a node (append-only: remote nodes will address them by name).
const (
	VnodeSupervisorName   = "vnode-sup"
	HandoffSupervisorName = "handoff-sup"
)

// VnodeName is the name of partition p's vnode under the vnode supervisor.
func VnodeName(p int) string { return fmt.Sprintf("vnode-%d", p) }

// NewSystem makes an actor system that logs through logger (protoactor's own chatter at Warn and above
// only) and exposes no metrics endpoint. Its Root context wraps wire messages addressed to other nodes once
// the system has a Remote (see StartRemote), so Root.Send and Root.Request reach other nodes too.
func NewSystem(logger *slog.Logger) *actor.ActorSystem {
	l := slog.New(levelFloor{Handler: logger.With("component", "actor").Handler(), min: slog.LevelWarn})
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return l }))
	// NB: WithSenderMiddleware sets the field on system.Root in place; nothing else can use the system yet.
	system.Root.WithSenderMiddleware(rootWireSender)
	shrinkRegistry(system)
	return system
}

// registryBuckets is how many concurrent maps the process registry spreads local actors over. protoactor
// makes 1024 of them, each of 32 Go maps. With an actor per request, names spread over all 32,768 maps:
// their tables (~9 MB) were scanned by every garbage collection, and every spawn and stop touched a map
// no CPU cache held (registry inserts were 5% of a node's CPU under load). 16 buckets (512 maps) keep the
// lock striping far above any core count.
const registryBuckets = 16

// shrinkRegistry rebuilds a new system's registry with registryBuckets buckets, moving what the system
// registered at creation. REQUIRES: nothing else uses the system yet.
func shrinkRegistry(system *actor.ActorSystem) {
	sm := system.ProcessRegistry.LocalPIDs
	old := sm.LocalPIDs
	buckets := make([]cmap.ConcurrentMap, registryBuckets)
	for i := range buckets {
		buckets[i] = cmap.New()
	}
	sm.LocalPIDs = buckets
	for _, m := range old {
		m.IterCb(func(id string, process any) { sm.GetBucket(id).Set(id, process) })
	}
}

// levelFloor drops records below min.
type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (h levelFloor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h levelFloor) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFloor{Handler: h.Handler.WithAttrs(a), min: h.min}
}

func (h levelFloor) WithGroup(name string) slog.Handler {
	return levelFloor{Handler: h.Handler.WithGroup(name), min: h.min}
}

// Request sends msg to pid and waits for the reply, at most timeout and at most until ctx ends. For a pid
// on another node, a registered msg travels as a wire message and the reply is decoded (a reply that does not
// decode is an error wrapping ErrWireMalformed, ErrWireVersion or ErrWireUnknownType). A request the
// transport refuses (the peer's queue is full) fails at once with actor.ErrDeadLetter.
func Request(ctx context.Context, system *actor.ActorSystem, pid *actor.PID, msg any, timeout time.Duration) (any, error) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("actors: request to %s: %w", pidString(pid), context.DeadlineExceeded)
	}
	if r := remoteOf(system); r != nil && r.isRemote(pid) {
		if _, ok := WireTypeOf(msg); ok {
			// NB: wrap here too, so this works on a system whose Root lacks the wire middleware.
			bv, err := EncodeWire(msg)
			if err != nil {
				return nil, fmt.Errorf("actors: request to %s: %w", pidString(pid), err)
			}
			msg = bv
		}
	}
	res, err := system.Root.RequestFuture(pid, msg, timeout).Result()
	if err != nil {
		return nil, fmt.Errorf("actors: request to %s: %w", pidString(pid), err)
	}
	res, err = DecodeReply(system, res)
	if err != nil {
		return nil, fmt.Errorf("actors: reply from %s: %w", pidString(pid), err)
	}
	return res, nil
}
