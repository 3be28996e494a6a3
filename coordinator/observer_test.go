package coordinator_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// observed is one Observer.Done call.
type observed struct {
	op   string
	took time.Duration
	err  error
}

type recordingObserver struct {
	mu  sync.Mutex
	got []observed
}

func (r *recordingObserver) Done(op string, took time.Duration, err error) {
	r.mu.Lock()
	r.got = append(r.got, observed{op, took, err})
	r.mu.Unlock()
}

func (r *recordingObserver) take() []observed {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = nil
	return out
}

// namedRegOp is regOp naming itself for the Observer.
type namedRegOp struct{ regOp }

func (o *namedRegOp) OpName() string {
	if o.n == 0 {
		return "get"
	}
	return "incr"
}

// TestObserverSeesEveryRequest: every Read and Write is reported once to the Config's Observer, answered or
// refused, under the op's own name when it has one (else read / write), with the time the clock says it took.
func TestObserverSeesEveryRequest(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	sys := actors.NewSystem(logger)
	t.Cleanup(sys.Shutdown)
	rg, err := ring.New(8, 3, []ring.NodeID{"n1"})
	if err != nil {
		t.Fatal(err)
	}
	vnodes, err := vnode.StartManager(sys, vnode.ManagerConfig{Node: "n1", Partitions: rg.PartitionsOf("n1"),
		Factory: func() vnode.Behaviour { return &regVnode{} }, Store: storage.NewMemory(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = vnodes.Stop(context.Background()) })
	// A clock that moves 3ms each time it is read: every request took exactly one step.
	var clockMu sync.Mutex
	now := time.Unix(1000, 0)
	obs := &recordingObserver{}
	cfg := coordinator.DefaultConfig("n1")
	cfg.Linger, cfg.Logger, cfg.Observer = 0, logger, obs
	cfg.Now = func() time.Time {
		clockMu.Lock()
		defer clockMu.Unlock()
		now = now.Add(3 * time.Millisecond)
		return now
	}
	svc, err := coordinator.Start(sys, cfg, regRouter{ring: rg, vnodes: vnodes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop(context.Background()) })
	var proto coordinator.Protocol[reg] = regProtocol{}
	ctx := context.Background()
	key := []byte("k")

	if _, err := coordinator.Write(ctx, svc, proto, key, coordinator.WriteOptions{}, regOp{n: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := coordinator.Read(ctx, svc, proto, key, coordinator.ReadOptions{}, regOp{}); err != nil {
		t.Fatal(err)
	}
	if _, err := coordinator.Write(ctx, svc, proto, key, coordinator.WriteOptions{}, namedRegOp{regOp{n: 6}}); err != nil {
		t.Fatal(err)
	}
	if _, err := coordinator.Read(ctx, svc, proto, key, coordinator.ReadOptions{R: 4}, namedRegOp{}); !errors.Is(err, coordinator.ErrBadRequest) {
		t.Fatalf("R=4: %v", err)
	}
	got := obs.take()
	want := []string{"write", "read", "incr", "get"}
	if len(got) != len(want) {
		t.Fatalf("observed %d requests, want %d: %+v", len(got), len(want), got)
	}
	for i, o := range got {
		if o.op != want[i] {
			t.Errorf("request %d observed as %q, want %q", i, o.op, want[i])
		}
		// Each request reads Config.Now at its start and its end; nothing else on its path reads it
		// while the caller waits (Linger 0), so the span is at least one step.
		if o.took < 3*time.Millisecond {
			t.Errorf("request %d took %s by the clock, want >= 3ms", i, o.took)
		}
	}
	if got[0].err != nil || got[3].err == nil || !errors.Is(got[3].err, coordinator.ErrBadRequest) {
		t.Fatalf("errors observed: %+v", got)
	}

	// Refused after Stop: still observed, with the refusal.
	if err := svc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := coordinator.Read(ctx, svc, proto, key, coordinator.ReadOptions{}, regOp{}); !errors.Is(err, coordinator.ErrShuttingDown) {
		t.Fatalf("read after Stop: %v", err)
	}
	if got := obs.take(); len(got) != 1 || !errors.Is(got[0].err, coordinator.ErrShuttingDown) {
		t.Fatalf("refused read observed as %+v", got)
	}
}
