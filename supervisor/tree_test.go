package supervisor

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/eventually"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

type recorder struct {
	mu  sync.Mutex
	log []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.log = append(r.log, s)
	r.mu.Unlock()
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.log...)
}

func child(r *recorder, name string, startErr error) Child {
	return Child{
		Name:  name,
		Start: func(context.Context) error { r.add("start " + name); return startErr },
		Stop:  func(context.Context) error { r.add("stop " + name); return nil },
	}
}

func TestStartsInOrderStopsInReverse(t *testing.T) {
	r := &recorder{}
	tr := New(quiet(), nil)
	for _, n := range []string{"storage", "ring", "vnodes", "listeners"} {
		tr.Add(child(r, n, nil))
	}
	ctx := context.Background()
	if err := tr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tr.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"start storage", "start ring", "start vnodes", "start listeners",
		"stop listeners", "stop vnodes", "stop ring", "stop storage"}
	if got := r.get(); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

func TestFailedStartStopsWhatStarted(t *testing.T) {
	r := &recorder{}
	tr := New(quiet(), nil)
	tr.Add(child(r, "storage", nil))
	tr.Add(child(r, "ring", errors.New("bad ring")))
	tr.Add(child(r, "vnodes", nil))
	err := tr.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "start ring: bad ring") {
		t.Fatalf("err %v", err)
	}
	want := []string{"start storage", "start ring", "stop storage"}
	if got := r.get(); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
}

func TestRunIsRestartedThenEscalates(t *testing.T) {
	// A fake clock: every crash happens "at the same time", so all count within the window.
	now := time.Unix(1000, 0)
	tr := New(quiet(), func() time.Time { return now })
	var runs atomic.Int64
	tr.Add(Child{Name: "listener", MaxRestarts: 3, Window: time.Minute, Run: func(ctx context.Context) error {
		if runs.Add(1) == 2 {
			panic("boom") // a panic is a crash too
		}
		return errors.New("accept failed")
	}})
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-tr.Done():
		if !strings.Contains(err.Error(), "listener crashed 4 times") {
			t.Fatalf("escalation: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no escalation")
	}
	if got := runs.Load(); got != 4 {
		t.Fatalf("runs %d, want 4 (1 + 3 restarts)", got)
	}
	if err := tr.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestCrashesOutsideTheWindowAreForgiven(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	tr := New(quiet(), func() time.Time { mu.Lock(); defer mu.Unlock(); now = now.Add(time.Hour); return now })
	var runs atomic.Int64
	tr.Add(Child{Name: "flaky", MaxRestarts: 1, Window: time.Minute, Run: func(ctx context.Context) error {
		if runs.Add(1) < 10 {
			return errors.New("crash")
		}
		<-ctx.Done()
		return nil
	}})
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 5*time.Second, "the child restarted until its tenth run", func() bool { return runs.Load() >= 10 })
	select {
	case err := <-tr.Done():
		t.Fatalf("escalated although crashes were an hour apart: %v", err)
	default:
	}
	if err := tr.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestStopJoinsErrorsAndStillStopsEveryone(t *testing.T) {
	r := &recorder{}
	tr := New(quiet(), nil)
	tr.Add(child(r, "a", nil))
	tr.Add(Child{Name: "b", Stop: func(context.Context) error { r.add("stop b"); return errors.New("stuck") }})
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := tr.Stop(context.Background())
	if err == nil || !strings.Contains(err.Error(), "stop b: stuck") {
		t.Fatalf("err %v", err)
	}
	if got := r.get(); !reflect.DeepEqual(got, []string{"start a", "stop b", "stop a"}) {
		t.Fatalf("got %v", got)
	}
}
