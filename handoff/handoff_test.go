package handoff

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/kv"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) { w.t.Log(strings.TrimSpace(string(p))); return len(p), nil }

// twoNodes runs the vnodes of two nodes, a and b, in one actor system (supervisors with different names).
type twoNodes struct {
	sys         *actor.ActorSystem
	a, b        *vnode.Manager
	bReachable  atomic.Bool
	mu          sync.Mutex
	reported    []Move
	failReports atomic.Int64
}

func (n *twoNodes) LocalVnode(_ string, p int) *actor.PID { return n.a.PID(p) }
func (n *twoNodes) VnodePID(_ string, node ring.NodeID, p int) *actor.PID {
	if node == "b" && n.bReachable.Load() {
		return n.b.PID(p)
	}
	return nil
}

func (n *twoNodes) report(_ context.Context, m Move) error {
	if n.failReports.Add(-1) >= 0 {
		return fmt.Errorf("claimant unreachable")
	}
	n.mu.Lock()
	n.reported = append(n.reported, m)
	n.mu.Unlock()
	return nil
}

func setup(t *testing.T, partitions []int, keys int) (*twoNodes, *Manager) {
	n, logger := setupNodes(t, partitions, keys)
	m, err := New(Config{Self: "a", Concurrency: 1, BatchItems: 100, RetryAfter: 10 * time.Millisecond,
		Services: []string{"kv"}, Resolver: n, System: n.sys, Report: n.report, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return n, m
}

// setupNodes starts the vnodes of nodes a and b for partitions, with keys keys in each of a's.
func setupNodes(t *testing.T, partitions []int, keys int) (*twoNodes, *slog.Logger) {
	logger := slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sys := actors.NewSystem(logger)
	t.Cleanup(sys.Shutdown)
	return setupNodesIn(t, sys, logger, "", partitions, keys), logger
}

// setupNodesIn is setupNodes in sys, with supervisors named after svc (one service's vnodes).
func setupNodesIn(t *testing.T, sys *actor.ActorSystem, logger *slog.Logger, svc string, partitions []int, keys int) *twoNodes {
	n := &twoNodes{sys: sys}
	mk := func(name, node string) *vnode.Manager {
		m, err := vnode.StartManager(n.sys, vnode.ManagerConfig{Name: name + svc, Node: node, Partitions: partitions,
			Factory: kv.NewVnode(kv.DefaultConfig()), Store: storage.NewMemory(), Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Stop(context.Background()) })
		return m
	}
	n.a, n.b = mk("sup-a", "a"), mk("sup-b", "b")
	n.bReachable.Store(true)
	for _, p := range partitions {
		for i := 0; i < keys; i++ {
			_, err := actors.Request(context.Background(), n.sys, n.a.PID(p), &kv.PutRequest{V: 1, Key: []byte(fmt.Sprintf("k%d", i)),
				Coordinate: true, Blind: true, Value: []byte("value")}, time.Second)
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return n
}

// waitDone waits until exactly want transfers are done and returns the progress that showed it.
func waitDone(t *testing.T, m *Manager, want int) []Progress {
	t.Helper()
	var ps []Progress
	eventually.NoError(t, 10*time.Second, fmt.Sprintf("%d transfers done", want), func() error {
		ps = m.Progress()
		done := 0
		for _, p := range ps {
			if p.State == StateDone {
				done++
			}
		}
		if done != want {
			return fmt.Errorf("%d done: %#v", done, ps)
		}
		return nil
	})
	return ps
}

func TestTransfersMoveEveryKeyAndReport(t *testing.T) {
	n, m := setup(t, []int{1, 2, 3}, 1000)
	m.Sync([]Move{{Service: "kv", Partition: 1, From: "a", To: "b"}, {Service: "kv", Partition: 2, From: "a", To: "b"}, {Service: "kv", Partition: 3, From: "a", To: "b"}, {Service: "kv", Partition: 4, From: "c", To: "a"}}) // the last is not ours to send
	ps := waitDone(t, m, 3)
	if len(ps) != 3 {
		t.Fatalf("transfers %d, want 3", len(ps))
	}
	for _, p := range ps {
		if p.Keys != 1000 || p.TotalKeys != 1000 || p.Bytes == 0 || p.Attempts != 1 {
			t.Fatalf("progress %+v", p)
		}
	}
	if got := n.b.Metrics().HandoffItemsReceived(); got != 3000 {
		t.Fatalf("received %d items, want 3000", got)
	}
	var bytes int64
	for _, p := range ps {
		bytes += p.Bytes
	}
	if ok, ob, hk, hb := m.Sent(); ok != 3000 || ob != bytes || hk != 0 || hb != 0 {
		t.Fatalf("sent: ownership %d keys %d bytes, hinted %d keys %d bytes; want 3000 keys %d bytes, no hints", ok, ob, hk, hb, bytes)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.reported) != 3 {
		t.Fatalf("reported %v", n.reported)
	}
}

func TestFailedTransferIsRetried(t *testing.T) {
	n, m := setup(t, []int{7}, 200)
	n.bReachable.Store(false) // the new owner is down at first
	n.failReports.Store(1)    // and the first report does not get through
	m.Sync([]Move{{Service: "kv", Partition: 7, From: "a", To: "b"}})
	eventually.NoError(t, 5*time.Second, "the failed transfer is retried twice", func() error {
		if ps := m.Progress(); len(ps) != 1 || ps[0].Attempts < 3 {
			return fmt.Errorf("progress %+v", ps)
		}
		return nil
	})
	if p := m.Progress()[0]; !strings.Contains(p.LastError, "unreachable") {
		t.Fatalf("last error %q", p.LastError)
	}
	n.bReachable.Store(true)
	ps := waitDone(t, m, 1)
	if ps[0].Keys != 200 {
		t.Fatalf("progress %+v", ps[0])
	}
}

func TestCancelledMoveStops(t *testing.T) {
	n, m := setup(t, []int{9}, 10)
	n.bReachable.Store(false)
	m.Sync([]Move{{Service: "kv", Partition: 9, From: "a", To: "b"}})
	m.Sync(nil) // no longer pending
	if ps := m.Progress(); len(ps) != 0 {
		t.Fatalf("progress after cancel: %+v", ps)
	}
	if m.Cancel(9) {
		t.Fatal("cancel of a move that is gone")
	}
}

func TestHintedHandoffDeliversThenDropsAndRunsAgainForNewHints(t *testing.T) {
	n, m := setup(t, []int{4}, 300)
	m.SetRing(9)
	m.SetRing(5) // never goes back
	mv := Move{Service: "kv", Partition: 4, From: "a", To: "b", Hinted: true}
	m.SyncHinted([]Move{mv})
	waitDone(t, m, 1)
	if got := n.b.Metrics().HandoffItemsReceived(); got != 300 {
		t.Fatalf("owner received %d, want 300", got)
	}
	// The receiver learns the state version the data was sent under (its node's hint scan waits for it).
	res, err := actors.Request(context.Background(), n.sys, n.b.PID(4), &vnode.IsEmptyRequest{}, time.Second)
	if err != nil || res.(*vnode.IsEmptyReply).Ring != 9 {
		t.Fatalf("receiver's ring version: %+v %v, want 9", res, err)
	}
	isEmpty := func() bool {
		res, err := actors.Request(context.Background(), n.sys, n.a.PID(4), &vnode.IsEmptyRequest{}, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return res.(*vnode.IsEmptyReply).Empty
	}
	if !isEmpty() {
		t.Fatal("hints not dropped after delivery")
	}
	n.mu.Lock()
	if len(n.reported) != 0 {
		t.Fatalf("a hinted handoff must not report to the claimant: %v", n.reported)
	}
	n.mu.Unlock()
	// More hints arrive; the same move runs again.
	for i := 0; i < 10; i++ {
		if _, err := actors.Request(context.Background(), n.sys, n.a.PID(4), &kv.PutRequest{V: 1, Key: []byte(fmt.Sprintf("late%d", i)),
			Coordinate: true, Blind: true, Value: []byte("v")}, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	m.SyncHinted([]Move{mv})
	eventually.NoError(t, 5*time.Second, "the second hinted handoff delivers the 10 new hints and drops them", func() error {
		got, empty := n.b.Metrics().HandoffItemsReceived(), isEmpty()
		if got != 310 || !empty {
			return fmt.Errorf("owner received %d of 310; hints dropped: %v", got, empty)
		}
		return nil
	})
	if m.HintedKeys() != 310 || m.HintedRounds() != 2 {
		t.Fatalf("hinted keys %d rounds %d, want 310 and 2", m.HintedKeys(), m.HintedRounds())
	}
	if ok, _, hk, hb := m.Sent(); ok != 0 || hk != 310 || hb == 0 {
		t.Fatalf("sent: ownership %d keys, hinted %d keys %d bytes; want 310 hinted keys only", ok, hk, hb)
	}
}

// TestHintedMoveRunsAgainOnlyWhenAScanFindsData: once a hinted handoff dropped its hints, neither the
// reconciles between hint scans (Sync, every 250 ms in a node) nor a scan whose finding raced with the
// drop start another round: no vnode enters handoff mode for an empty hint set.
func TestHintedMoveRunsAgainOnlyWhenAScanFindsData(t *testing.T) {
	n, m := setup(t, []int{4}, 50)
	mv := Move{Service: "kv", Partition: 4, From: "a", To: "b", Hinted: true}
	m.SyncHinted([]Move{mv})
	waitDone(t, m, 1)
	if m.Attempts() != 1 || m.HintedRounds() != 1 {
		t.Fatalf("attempts %d rounds %d after the first handoff, want 1 and 1", m.Attempts(), m.HintedRounds())
	}
	for range 20 {
		m.Sync(nil) // reconciles between scans: no ownership moves
	}
	m.SyncHinted([]Move{mv}) // a scan that saw the hints just before the drop
	waitDone(t, m, 1)
	if m.Attempts() != 1 || m.HintedRounds() != 1 || n.b.Metrics().HandoffItemsReceived() != 50 {
		t.Fatalf("attempts %d rounds %d items %d: a handoff ran for an empty hint set", m.Attempts(), m.HintedRounds(),
			n.b.Metrics().HandoffItemsReceived())
	}
	// A scan no longer listing the move forgets it.
	m.SyncHinted(nil)
	if ps := m.Progress(); len(ps) != 0 {
		t.Fatalf("progress after the scan dropped the move: %+v", ps)
	}
}

// TestOwnershipMoveCancelsAHintedHandoffOfThePartition: the two would take turns superseding each other's
// handoff session in the vnode.
func TestOwnershipMoveCancelsAHintedHandoffOfThePartition(t *testing.T) {
	n, m := setup(t, []int{6}, 10)
	n.bReachable.Store(false) // the hinted move keeps retrying
	m.SyncHinted([]Move{{Service: "kv", Partition: 6, From: "a", To: "b", Hinted: true}})
	own := Move{Service: "kv", Partition: 6, From: "a", To: "b"}
	n.bReachable.Store(true)
	m.Sync([]Move{own})
	for _, p := range m.Progress() {
		if p.Hinted {
			t.Fatalf("hinted handoff still there beside the ownership move: %+v", m.Progress())
		}
	}
	// And a scan does not bring it back while the ownership move is pending.
	m.SyncHinted([]Move{{Service: "kv", Partition: 6, From: "a", To: "b", Hinted: true}})
	ps := waitDone(t, m, 1)
	if len(ps) != 1 || ps[0].Move != own {
		t.Fatalf("transfers %+v, want only the ownership move", ps)
	}
}

// forwardEater stands in for the new owner's vnode: it passes batches on to the real one but swallows
// HandoffForwards (their acks are lost) while eat is set. On the first batch of each attempt it makes a
// write reach the old owner, so the old owner has a forward outstanding when the flush comes.
type forwardEater struct {
	real, src *actor.PID
	eat       *atomic.Bool
	wrote     *atomic.Int64
}

func (f *forwardEater) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *vnode.HandoffForward:
		if !f.eat.Load() {
			ctx.Forward(f.real)
		}
	case *vnode.HandoffBatch:
		if m.Seq == 1 {
			i := f.wrote.Add(1)
			ctx.Send(f.src, &kv.PutRequest{V: 1, Key: []byte(fmt.Sprintf("during%d", i)), Coordinate: true, Blind: true, Value: []byte("v")})
		}
		ctx.Forward(f.real)
	}
}

type eaterResolver struct {
	*twoNodes
	eater *actor.PID
}

func (r eaterResolver) VnodePID(string, ring.NodeID, int) *actor.PID { return r.eater }

// TestLostForwardAckFailsTheAttemptAndTheRetryCompletes: a forward whose acknowledgement never comes fails
// the flush cleanly (not a step timeout), and the retry, in a new session, completes the move with the write
// that was forwarded in vain.
func TestLostForwardAckFailsTheAttemptAndTheRetryCompletes(t *testing.T) {
	n, logger := setupNodes(t, []int{3}, 20)
	var eat atomic.Bool
	var wrote atomic.Int64
	eat.Store(true)
	eater := n.sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &forwardEater{real: n.b.PID(3), src: n.a.PID(3), eat: &eat, wrote: &wrote}
	}))
	m, err := New(Config{Self: "a", Concurrency: 1, Timeout: 2 * time.Second, RetryAfter: 10 * time.Millisecond,
		Services: []string{"kv"}, Resolver: eaterResolver{n, eater}, System: n.sys, Report: n.report, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	m.Sync([]Move{{Service: "kv", Partition: 3, From: "a", To: "b"}})
	eventually.NoError(t, 10*time.Second, "a flush failure for the lost ack", func() error {
		if ps := m.Progress(); len(ps) != 1 || !strings.Contains(ps[0].LastError, "not acknowledged within 1s") {
			return fmt.Errorf("progress %+v", ps)
		}
		return nil
	})
	eat.Store(false)
	ps := waitDone(t, m, 1)
	if ps[0].Attempts < 2 || ps[0].Keys < 21 {
		t.Fatalf("progress %+v: want a retry that sent the 20 keys and the write of the failed attempt", ps[0])
	}
	res, err := actors.Request(context.Background(), n.sys, n.b.PID(3), &kv.GetRequest{V: 1, Key: []byte("during1")}, time.Second)
	if err != nil || res.(*kv.GetReply).Object == nil {
		t.Fatalf("the write forwarded in vain did not reach the new owner: %v %v", res, err)
	}
}

// TestHintWindowLogsRepeatsOncePerWindow is the logging rule of repeated hinted handoffs of a partition.
func TestHintWindowLogsRepeatsOncePerWindow(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	arr := vnode.Arrivals{Requests: 3}
	var w hintWindow
	var prev hintWindow
	steps := []struct {
		at   time.Duration
		want hintNote
	}{
		{0, hintNoteDone},                   // an ordinary hinted handoff
		{time.Second, hintNoteAgain},        // again within the minute: say why
		{2 * time.Second, hintNoteDebug},    // further rounds: quiet
		{59 * time.Second, hintNoteDebug},   //
		{61 * time.Second, hintNoteSummary}, // the window is over: summarise it (4 rounds)
		{62 * time.Second, hintNoteDebug},   // the next window's repeats are covered by its summary
		{5 * time.Minute, hintNoteSummary},  // (2 rounds in that window)
		{10 * time.Minute, hintNoteDone},    // a lone round after a lone round: ordinary again
	}
	for i, s := range steps {
		if got := w.note(t0.Add(s.at), 10, arr, &prev); got != s.want {
			t.Fatalf("step %d (+%v): note %d, want %d", i, s.at, got, s.want)
		}
		if i == 4 && (prev.rounds != 4 || prev.keys != 40 || prev.arrived.Requests != 12) {
			t.Fatalf("summary of the first window: %+v", prev)
		}
	}
}

// services runs two services' vnodes on nodes a and b: each service has its own supervisors, as on a node.
type services struct {
	*twoNodes                // service "kv"
	other          *twoNodes // service "other"
	otherReachable atomic.Bool
}

func (s *services) pair(svc string) *twoNodes {
	if svc == "other" {
		return s.other
	}
	return s.twoNodes
}

func (s *services) LocalVnode(svc string, p int) *actor.PID { return s.pair(svc).a.PID(p) }
func (s *services) VnodePID(svc string, node ring.NodeID, p int) *actor.PID {
	if svc == "other" && !s.otherReachable.Load() {
		return nil
	}
	return s.pair(svc).VnodePID(svc, node, p)
}

// TestPartitionReportedOnceEveryServiceMovedIt: an ownership move of a partition is one transfer per
// service; the first service to finish stays in handoff mode (its later writes still reach the new owner)
// and the partition is reported to the claimant once, when the last service finished, even when that
// report fails at first.
func TestPartitionReportedOnceEveryServiceMovedIt(t *testing.T) {
	kvNodes, logger := setupNodes(t, []int{5}, 30)
	otherNodes := setupNodesIn(t, kvNodes.sys, logger, "-other", []int{5}, 40)
	s := &services{twoNodes: kvNodes, other: otherNodes}
	m, err := New(Config{Self: "a", Concurrency: 2, RetryAfter: 10 * time.Millisecond, Services: []string{"kv", "other"},
		Resolver: s, System: kvNodes.sys, Report: kvNodes.report, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	m.Sync([]Move{{Service: "kv", Partition: 5, From: "a", To: "b"}, {Service: "other", Partition: 5, From: "a", To: "b"}})
	eventually.NoError(t, 10*time.Second, "kv's part done, other's retrying", func() error {
		if _, ok := m.OwnershipDone("kv", 5); !ok {
			return fmt.Errorf("kv not done: %+v", m.Progress())
		}
		for _, p := range m.Progress() {
			if p.Service == "other" && p.Attempts >= 2 {
				return nil
			}
		}
		return fmt.Errorf("other not retrying: %+v", m.Progress())
	})
	kvNodes.mu.Lock()
	early := len(kvNodes.reported)
	kvNodes.mu.Unlock()
	if early != 0 {
		t.Fatalf("reported before every service moved the partition: %v", kvNodes.reported)
	}
	if _, ok := m.OwnershipDone("other", 5); ok {
		t.Fatal("other's part done although its target was unreachable")
	}
	// kv's vnode is still in handoff mode: a write now reaches the new owner.
	if _, err := actors.Request(context.Background(), kvNodes.sys, kvNodes.a.PID(5), &kv.PutRequest{V: 1, Key: []byte("late"),
		Coordinate: true, Blind: true, Value: []byte("v")}, time.Second); err != nil {
		t.Fatal(err)
	}
	eventually.NoError(t, 5*time.Second, "the late write forwarded to b", func() error {
		res, err := actors.Request(context.Background(), kvNodes.sys, kvNodes.b.PID(5), &kv.GetRequest{V: 1, Key: []byte("late")}, time.Second)
		if err != nil || res.(*kv.GetReply).Object == nil {
			return fmt.Errorf("b: %v %v", res, err)
		}
		return nil
	})

	kvNodes.failReports.Store(1) // the last service's first report does not get through
	s.otherReachable.Store(true)
	waitDone(t, m, 2)
	kvNodes.mu.Lock()
	defer kvNodes.mu.Unlock()
	if want := (Move{Partition: 5, From: "a", To: "b"}); len(kvNodes.reported) != 1 || kvNodes.reported[0] != want {
		t.Fatalf("reported %v, want [%v] once", kvNodes.reported, want)
	}
	if got := otherNodes.b.Metrics().HandoffItemsReceived(); got < 40 {
		t.Fatalf("other's new owner took %d items, want its 40 keys", got)
	}
	for _, svc := range []string{"kv", "other"} {
		if _, ok := m.OwnershipDone(svc, 5); !ok {
			t.Fatalf("%s's part not done after the report", svc)
		}
	}
}

// forwarder passes every message on to to, keeping its sender (a vnode that starts late, by name).
type forwarder struct{ to *actor.PID }

func (f *forwarder) Receive(ctx actor.Context) {
	if _, sys := ctx.Message().(actor.SystemMessage); !sys {
		if _, auto := ctx.Message().(actor.AutoReceiveMessage); !auto {
			ctx.Forward(f.to)
		}
	}
}

// TestTransferWaitsForATargetVnodeThatStartsLate: right after a commit the new owner may not run the vnode
// yet (its requests are dead letters); the transfer waits for it within its first attempt instead of failing
// and backing off.
func TestTransferWaitsForATargetVnodeThatStartsLate(t *testing.T) {
	n, logger := setupNodes(t, []int{3}, 50)
	late := actor.NewPID(n.sys.Address(), "late-target")
	var dead atomic.Int64
	sub := n.sys.EventStream.Subscribe(func(ev any) {
		if d, ok := ev.(*actor.DeadLetterEvent); ok && d.PID != nil && d.PID.Id == late.Id {
			dead.Add(1)
		}
	})
	t.Cleanup(func() { n.sys.EventStream.Unsubscribe(sub) })
	m, err := New(Config{Self: "a", Concurrency: 1, Timeout: 10 * time.Second, RetryAfter: 10 * time.Millisecond,
		Services: []string{"kv"}, Resolver: eaterResolver{n, late}, System: n.sys, Report: n.report, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	m.Sync([]Move{{Service: "kv", Partition: 3, From: "a", To: "b"}})
	eventually.True(t, 10*time.Second, "requests to the missing target", func() bool { return dead.Load() >= 2 })
	pid, err := n.sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &forwarder{to: n.b.PID(3)} }), late.Id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.sys.Root.Stop(pid) })
	ps := waitDone(t, m, 1)
	if ps[0].Attempts != 1 || ps[0].Keys != 50 || ps[0].LastError != "" {
		t.Fatalf("progress %+v: want the 50 keys in the first attempt, no error", ps[0])
	}
}

// vanishingTarget answers the transfer's first question (is the target running?) and then stops, as a
// joining node's vnode does when the node replaces it.
type vanishingTarget struct{}

func (vanishingTarget) Receive(ctx actor.Context) {
	if m, ok := ctx.Message().(*vnode.HandoffBatch); ok && m.Seq == 0 {
		ctx.Respond(&vnode.HandoffAck{V: 1})
		ctx.Stop(ctx.Self())
	}
}

// TestTransferRetriesAtOnceWhenTheTargetVnodeIsReplaced: the target vnode answers, then goes away before the
// first batch (a dead letter): the next attempt starts without the backoff (an hour here) and waits for the
// vnode that replaces it.
func TestTransferRetriesAtOnceWhenTheTargetVnodeIsReplaced(t *testing.T) {
	n, logger := setupNodes(t, []int{3}, 50)
	name := "replaced-target"
	var dead atomic.Int64
	sub := n.sys.EventStream.Subscribe(func(ev any) {
		if d, ok := ev.(*actor.DeadLetterEvent); ok && d.PID != nil && d.PID.Id == name {
			dead.Add(1)
		}
	})
	t.Cleanup(func() { n.sys.EventStream.Unsubscribe(sub) })
	if _, err := n.sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return vanishingTarget{} }), name); err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{Self: "a", Concurrency: 1, Timeout: 10 * time.Second, RetryAfter: time.Hour,
		Services: []string{"kv"}, Resolver: eaterResolver{n, actor.NewPID(n.sys.Address(), name)}, System: n.sys, Report: n.report, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	m.Sync([]Move{{Service: "kv", Partition: 3, From: "a", To: "b"}})
	eventually.True(t, 10*time.Second, "the batch to the vanished target", func() bool { return dead.Load() >= 1 })
	// The replacement (a forwarder to b's vnode), once the old one is gone (its name free again).
	eventually.NoError(t, 10*time.Second, "the replacement spawned", func() error {
		pid, err := n.sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &forwarder{to: n.b.PID(3)} }), name)
		if err == nil {
			t.Cleanup(func() { n.sys.Root.Stop(pid) })
		}
		return err
	})
	ps := waitDone(t, m, 1)
	if ps[0].Attempts != 2 || ps[0].Keys != 50 || !strings.Contains(ps[0].LastError, "dead letter") {
		t.Fatalf("progress %+v: want the 50 keys in the second attempt, after the first's dead letter", ps[0])
	}
}
