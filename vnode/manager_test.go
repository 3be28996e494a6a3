package vnode_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/kv"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) { w.t.Log(strings.TrimSpace(string(p))); return len(p), nil }

func newSystem(t *testing.T) *actor.ActorSystem {
	s := actors.NewSystem(testLogger(t))
	t.Cleanup(s.Shutdown)
	return s
}

// testLogger logs warnings and errors to t.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func startManager(t *testing.T, db storage.Backend, cfg vnode.ManagerConfig) *vnode.Manager {
	t.Helper()
	cfg.Node, cfg.Store = "n1", db
	if cfg.Factory == nil {
		cfg.Factory = kv.NewVnode(kv.DefaultConfig())
	}
	m, err := vnode.StartManager(newSystem(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Stop(ctx)
	})
	return m
}

func ask(t *testing.T, m *vnode.Manager, p int, msg any) any {
	t.Helper()
	res, err := actors.Request(context.Background(), m.System(), m.PID(p), msg, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestCrashedVnodeRestartsAloneAndKeepsItsData(t *testing.T) {
	db, err := storage.OpenLevelDB(storage.DefaultLevelDBConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m := startManager(t, db, vnode.ManagerConfig{Partitions: []int{0, 1, 2}})
	rep := ask(t, m, 1, &kv.PutRequest{V: 1, Key: []byte("k"), Coordinate: true, Blind: true, Value: []byte("v")}).(*kv.PutReply)
	if rep.Err != "" {
		t.Fatal(rep.Err)
	}
	actor1 := rep.Object.Siblings[0].Dot.Actor
	pid := m.PID(1)
	if err := m.Crash(1, "test"); err != nil {
		t.Fatal(err)
	}
	// The other vnodes serve throughout.
	if got := ask(t, m, 0, &kv.GetRequest{V: 1, Key: []byte("k")}).(*kv.GetReply); got.Err != "" || got.Object != nil {
		t.Fatalf("partition 0: %+v", got)
	}
	// The crashed one comes back under the same PID with its data and its actor id.
	got := ask(t, m, 1, &kv.GetRequest{V: 1, Key: []byte("k")}).(*kv.GetReply)
	if got.Object == nil || string(got.Object.Siblings[0].Value) != "v" {
		t.Fatalf("after restart: %+v", got)
	}
	if m.PID(1) != pid || m.Metrics().Restarts() != 1 {
		t.Fatalf("pid changed or restarts=%d", m.Metrics().Restarts())
	}
	rep = ask(t, m, 1, &kv.PutRequest{V: 1, Key: []byte("k2"), Coordinate: true, Blind: true, Value: []byte("v")}).(*kv.PutReply)
	if a := rep.Object.Siblings[0].Dot.Actor; a != actor1 {
		t.Fatalf("actor id changed across restart: %s -> %s", actor1, a)
	}
	if err := m.Crash(9, "nope"); !errors.Is(err, vnode.ErrUnknownPartition) {
		t.Fatalf("crash of unknown partition: %v", err)
	}
}

// failingInit always fails to start, as a vnode whose storage is broken would.
type failingInit struct{ kv.Vnode }

func (f *failingInit) Init(vnode.Env) error { return errors.New("disk unreadable") }

func TestVnodePastRestartLimitEscalates(t *testing.T) {
	var escalated atomic.Value
	behaviour := kv.NewVnode(kv.DefaultConfig())
	var n atomic.Int64
	m := startManager(t, storage.NewMemory(), vnode.ManagerConfig{
		Partitions: []int{0, 1},
		Factory: func() vnode.Behaviour {
			// Partition 1's vnode fails after its first start.
			if n.Add(1) > 2 {
				return &failingInit{}
			}
			return behaviour()
		},
		MaxRestarts: 3, RestartWindow: time.Minute,
		OnEscalate: func(err error) { escalated.Store(err) },
	})
	if err := m.Crash(1, "first"); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 5*time.Second, "the manager escalates the vnode that keeps failing", func() bool { return escalated.Load() != nil })
	if err := escalated.Load().(error); !strings.Contains(err.Error(), "restart limit") {
		t.Fatalf("escalation: %v", err)
	}
}

// TestVnodeStoppedUnexplainedStartsAgain: a vnode stopped by someone other than its manager or its
// supervisor (a stray Stop) is started again with its data, and the node is not told to shut down.
func TestVnodeStoppedUnexplainedStartsAgain(t *testing.T) {
	db, err := storage.OpenLevelDB(storage.DefaultLevelDBConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var escalated atomic.Value
	m := startManager(t, db, vnode.ManagerConfig{Partitions: []int{0, 1}, MaxRestarts: 3, RestartWindow: time.Minute,
		OnEscalate: func(err error) { escalated.Store(err) }})
	if rep := ask(t, m, 1, &kv.PutRequest{V: 1, Key: []byte("k"), Coordinate: true, Blind: true, Value: []byte("v")}).(*kv.PutReply); rep.Err != "" {
		t.Fatal(rep.Err)
	}
	for i := range 5 { // more stops than the restart limit: they are not crashes
		if err := m.System().Root.StopFuture(m.PID(1)).Wait(); err != nil {
			t.Fatal(err)
		}
		eventually.NoError(t, 5*time.Second, fmt.Sprintf("stop %d: the vnode comes back with its data", i), func() error {
			res, err := actors.Request(context.Background(), m.System(), m.PID(1), &kv.GetRequest{V: 1, Key: []byte("k")}, time.Second)
			if err != nil {
				return err
			}
			if got, ok := res.(*kv.GetReply); ok && got.Object != nil && string(got.Object.Siblings[0].Value) == "v" {
				return nil
			}
			return fmt.Errorf("got %+v", res)
		})
	}
	if err := escalated.Load(); err != nil {
		t.Fatalf("a stray stop escalated: %v", err)
	}
	if got := m.Metrics().Restarts(); got != 5 {
		t.Fatalf("restarts = %d, want 5", got)
	}
}

func TestRetireDropsThePartitionAndStopsOnlyThatVnode(t *testing.T) {
	db := storage.NewMemory()
	m := startManager(t, db, vnode.ManagerConfig{Partitions: []int{0, 1}})
	if rep := ask(t, m, 0, &kv.PutRequest{V: 1, Key: []byte("k"), Coordinate: true, Blind: true, Value: []byte("v")}).(*kv.PutReply); rep.Err != "" {
		t.Fatal(rep.Err)
	}
	var escalated atomic.Bool
	m.SetOnEscalate(func(error) { escalated.Store(true) })
	// A vnode with data refuses: nothing is deleted and it keeps serving.
	if err := m.Retire(context.Background(), 0); !errors.Is(err, vnode.ErrNotEmpty) {
		t.Fatalf("retire of a vnode with data: %v, want ErrNotEmpty", err)
	}
	if got := ask(t, m, 0, &kv.GetRequest{V: 1, Key: []byte("k")}).(*kv.GetReply); got.Object == nil {
		t.Fatal("partition 0 lost its data")
	}
	// An empty one goes, with its metadata.
	if err := m.Retire(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if m.PID(1) != nil || m.PID(0) == nil {
		t.Fatal("wrong vnodes listed after the retire")
	}
	if empty, err := db.IsEmpty(1); err != nil || !empty {
		t.Fatalf("partition 1 not dropped: empty=%v err=%v", empty, err)
	}
	if escalated.Load() {
		t.Fatal("a retired vnode must not count as a crash")
	}
	if err := m.Start(context.Background(), []int{1}); err != nil {
		t.Fatalf("restart a retired partition: %v", err)
	}
}

// TestRetireNeverDropsOrStrandsAWrite: a write queued behind a retire is refused (the coordinator sees a
// dead letter), not applied to a partition about to be left behind; a write queued before it makes the
// retire refuse.
func TestRetireNeverDropsOrStrandsAWrite(t *testing.T) {
	db := storage.NewMemory()
	m := startManager(t, db, vnode.ManagerConfig{Partitions: []int{1, 2}})
	put := &kv.PutRequest{V: 1, Key: []byte("late"), Coordinate: true, Blind: true, Value: []byte("v")}

	// Behind: the retire is in the mailbox first.
	pid := m.PID(1)
	if _, err := actors.Request(context.Background(), m.System(), m.SupervisorPID(), vnode.RetireVnodeNotice(pid), time.Second); err != nil {
		t.Fatal(err)
	}
	rf := m.System().Root.RequestFuture(pid, vnode.RetireCommand(), 5*time.Second)
	pf := m.System().Root.RequestFuture(pid, put, 5*time.Second)
	if res, err := rf.Result(); err != nil || res != (struct{}{}) {
		t.Fatalf("retire: %v %v", res, err)
	}
	res, err := pf.Result()
	if _, dead := res.(*actor.DeadLetterResponse); !(dead || errors.Is(err, actor.ErrDeadLetter)) {
		t.Fatalf("a write queued behind a retire was answered %#v (%v), want a dead letter", res, err)
	}
	if empty, err := db.IsEmpty(1); err != nil || !empty {
		t.Fatalf("a write behind a retire reached storage: empty=%v err=%v", empty, err)
	}

	// Before: the write is applied, and the retire that follows refuses.
	pid = m.PID(2)
	pf = m.System().Root.RequestFuture(pid, put, 5*time.Second)
	if err := m.Retire(context.Background(), 2); !errors.Is(err, vnode.ErrNotEmpty) {
		t.Fatalf("retire after a write: %v, want ErrNotEmpty", err)
	}
	if res, err := pf.Result(); err != nil || res.(*kv.PutReply).Err != "" {
		t.Fatalf("the write before the retire: %v %v", res, err)
	}
	if got := ask(t, m, 2, &kv.GetRequest{V: 1, Key: []byte("late")}).(*kv.GetReply); got.Object == nil {
		t.Fatal("the write before the retire is gone")
	}
}
