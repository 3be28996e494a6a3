package actors

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Well-known actor names on a node (append-only: remote nodes will address them by name).
const (
	VnodeSupervisorName       = "vnode-sup"
	CoordinatorSupervisorName = "coordinator-sup"
	HandoffSupervisorName     = "handoff-sup"
)

// VnodeName is the name of partition p's vnode under the vnode supervisor.
func VnodeName(p int) string { return fmt.Sprintf("vnode-%d", p) }

// NewSystem makes an actor system that logs through logger (protoactor's own chatter at Warn and above
// only) and exposes no metrics endpoint.
func NewSystem(logger *slog.Logger) *actor.ActorSystem {
	l := slog.New(levelFloor{Handler: logger.With("component", "actor").Handler(), min: slog.LevelWarn})
	return actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return l }))
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

// Request sends msg to pid and waits for the reply, at most timeout and at most until ctx ends.
func Request(ctx context.Context, system *actor.ActorSystem, pid *actor.PID, msg any, timeout time.Duration) (any, error) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("actors: request to %s: %w", pid.Id, context.DeadlineExceeded)
	}
	res, err := system.Root.RequestFuture(pid, msg, timeout).Result()
	if err != nil {
		return nil, fmt.Errorf("actors: request to %s: %w", pid.Id, err)
	}
	return res, nil
}
