package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Child is one service of the tree.
type Child struct {
	Name string
	// Start brings the service up; the tree waits for it before starting the next child. Optional.
	Start func(ctx context.Context) error
	// Run, if set, is the service's long-running loop, started after Start in its own goroutine. It must
	// return when ctx is cancelled (return nil or ctx.Err()). Any other return is a crash: Run is restarted
	// within the child's restart limits.
	Run func(ctx context.Context) error
	// Stop brings the service down; called in reverse start order. Optional.
	Stop func(ctx context.Context) error
	// MaxRestarts of Run within Window before escalating. Defaults 5 within 10s.
	MaxRestarts int
	Window      time.Duration
}

// Tree is a node's supervision tree.
type Tree struct {
	logger   *slog.Logger
	now      func() time.Time
	children []Child
	started  int

	runCtx    context.Context
	runCancel context.CancelFunc
	wg        sync.WaitGroup

	once sync.Once
	done chan error
}

// New makes an empty tree. now is the clock for restart windows (time.Now if nil).
func New(logger *slog.Logger, now func() time.Time) *Tree {
	if logger == nil {
		logger = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	return &Tree{logger: logger, now: now, done: make(chan error, 1)}
}

// Add appends a child; children start in the order added.
func (t *Tree) Add(c Child) {
	if c.MaxRestarts == 0 {
		c.MaxRestarts = 5
	}
	if c.Window == 0 {
		c.Window = 10 * time.Second
	}
	t.children = append(t.children, c)
}

// Start starts every child in order. If one fails, the ones already started are stopped in reverse and
// the error is returned.
func (t *Tree) Start(ctx context.Context) error {
	t.runCtx, t.runCancel = context.WithCancel(context.Background())
	for i, c := range t.children {
		if c.Start != nil {
			if err := c.Start(ctx); err != nil {
				err = fmt.Errorf("supervisor: start %s: %w", c.Name, err)
				t.logger.Error("start failed", "child", c.Name, "err", err)
				_ = t.Stop(ctx)
				return err
			}
		}
		t.started = i + 1
		if c.Run != nil {
			t.wg.Add(1)
			go t.supervise(c)
		}
		t.logger.Debug("started", "child", c.Name)
	}
	return nil
}

// supervise runs c.Run, restarting it after a crash within its limits.
func (t *Tree) supervise(c Child) {
	defer t.wg.Done()
	var crashes []time.Time
	for {
		err := runSafely(t.runCtx, c.Run)
		if t.runCtx.Err() != nil {
			return
		}
		now := t.now()
		crashes = append(crashes, now)
		for len(crashes) > 0 && now.Sub(crashes[0]) > c.Window {
			crashes = crashes[1:]
		}
		if len(crashes) > c.MaxRestarts {
			t.Escalate(fmt.Errorf("supervisor: %s crashed %d times within %s, last: %w", c.Name, len(crashes), c.Window, err))
			return
		}
		t.logger.Warn("child crashed, restarting", "child", c.Name, "err", err)
	}
}

func runSafely(ctx context.Context, run func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	if err = run(ctx); err == nil {
		err = errors.New("returned without cancellation")
	}
	return err
}

// Escalate reports a failure the tree cannot handle below the node: Done delivers it (first one wins).
func (t *Tree) Escalate(err error) {
	t.once.Do(func() {
		t.logger.Error("escalating failure: node will stop", "err", err)
		t.done <- err
	})
}

// Done delivers the first escalated failure.
func (t *Tree) Done() <-chan error { return t.done }

// Stop stops the started children in reverse order; every child's Stop is called even if an earlier one
// failed, and the errors are joined.
func (t *Tree) Stop(ctx context.Context) error {
	if t.runCancel != nil {
		t.runCancel()
	}
	var errs []error
	for i := t.started - 1; i >= 0; i-- {
		c := t.children[i]
		if c.Stop != nil {
			if err := c.Stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("supervisor: stop %s: %w", c.Name, err))
			}
		}
		t.logger.Debug("stopped", "child", c.Name)
	}
	t.started = 0
	waited := make(chan struct{})
	go func() { t.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("supervisor: run loops still running: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}
