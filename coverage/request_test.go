package coverage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// Commands of the test behaviour.
type (
	listCmd  struct{}
	countCmd struct{}
	crashCmd struct{}
)

type countReply struct{ N int }

// world is a cluster in one process: a ring of q partitions on 4 nodes, whose vnodes all run in one local
// manager (VnodePID ignores the node), each holding, as a primary, keysPer synthetic keys of every hash
// partition its ring.Sources list names. It counts what each vnode's folds emit and what the caller
// acknowledged, to check flow control.
type world struct {
	sys      *actor.ActorSystem
	r        *ring.Ring
	n        int
	held     map[int][][]byte // hash partition -> its keys
	sources  [][]int
	m        *vnode.Manager
	mu       sync.Mutex
	down     map[ring.NodeID]bool
	silent   map[ring.NodeID]*actor.PID // nodes whose "vnodes" are a black hole
	reported []ring.NodeID
	emitted  []atomic.Int64 // per vnode partition
	acked    []atomic.Int64 // chunks the caller acknowledged, per vnode partition
	over     atomic.Value   // a string: a fold emitted past what its window allows
	folding  atomic.Int64   // folds running
}

func (w *world) Ring() *ring.Ring { return w.r }
func (w *world) Up(x ring.NodeID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.down[x]
}
func (w *world) VnodePID(x ring.NodeID, p int) *actor.PID {
	w.mu.Lock()
	defer w.mu.Unlock()
	if pid := w.silent[x]; pid != nil {
		return pid
	}
	return w.m.PID(p)
}
func (w *world) ReportFailure(x ring.NodeID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reported = append(w.reported, x)
}

const (
	testQ   = 16
	keysPer = 40
)

func newWorld(t *testing.T, window, maxItems int) *world {
	t.Helper()
	w := &world{sys: actors.NewSystem(slog.New(slog.DiscardHandler)), n: 3, held: map[int][][]byte{},
		down: map[ring.NodeID]bool{}, silent: map[ring.NodeID]*actor.PID{}}
	t.Cleanup(w.sys.Shutdown)
	var err error
	if w.r, err = ring.New(testQ, 3, []ring.NodeID{"a", "b", "c", "d"}); err != nil && !errors.Is(err, ring.ErrTargetN) {
		t.Fatal(err)
	}
	w.sources = w.r.Sources(w.n)
	// NB: keys chosen by search, so that every hash partition holds exactly keysPer.
	for i := 0; len(w.held) < testQ || slices.ContainsFunc(w.allHeld(), func(ks [][]byte) bool { return len(ks) < keysPer }); i++ {
		k := []byte(fmt.Sprintf("key-%05d", i))
		if h := w.r.PartitionForKey(k); len(w.held[h]) < keysPer {
			w.held[h] = append(w.held[h], k)
		}
	}
	w.emitted = make([]atomic.Int64, testQ)
	w.acked = make([]atomic.Int64, testQ)
	w.over.Store("")
	parts := make([]int, testQ)
	for p := range parts {
		parts[p] = p
	}
	w.m, err = vnode.StartManager(w.sys, vnode.ManagerConfig{Node: "a", Partitions: parts, Store: storage.NewMemory(),
		Factory: func() vnode.Behaviour { return &testVnode{w: w, window: window, maxItems: maxItems} },
		Workers: testQ, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.m.Stop(context.Background()) })
	return w
}

func (w *world) allHeld() [][][]byte {
	out := make([][][]byte, 0, testQ)
	for h := range testQ {
		out = append(out, w.held[h])
	}
	return out
}

// allKeys lists every key, ascending.
func (w *world) allKeys() []string {
	var out []string
	for _, ks := range w.held {
		for _, k := range ks {
			out = append(out, string(k))
		}
	}
	slices.Sort(out)
	return out
}

// testVnode holds, for its partition, the keys of the hash partitions it is a primary of.
type testVnode struct {
	w                *world
	p                int
	window, maxItems int
}

func (v *testVnode) Init(env vnode.Env) error                        { v.p = env.Partition; return nil }
func (v *testVnode) HandoffFold(func(key, value []byte) error) error { return nil }
func (v *testVnode) EncodeHandoffItem(key, _ []byte) ([]byte, error) { return key, nil }
func (v *testVnode) HandleHandoffData([]byte) error                  { return nil }
func (v *testVnode) IsEmpty() (bool, error)                          { return true, nil }
func (v *testVnode) Delete() error                                   { return nil }
func (v *testVnode) Terminate(any)                                   {}
func (v *testVnode) HandleCommand(cmd any, _ vnode.Sender) vnode.Result {
	if _, ok := cmd.(*crashCmd); ok {
		panic("crash requested")
	}
	return vnode.NoReply()
}

func (v *testVnode) keys(f vnode.Filter) [][]byte {
	var out [][]byte
	for _, h := range v.w.sources[v.p] {
		for _, k := range v.w.held[h] {
			if f.Match(k) {
				out = append(out, k)
			}
		}
	}
	return out
}

func (v *testVnode) HandleCoverage(cmd any, f vnode.Filter, _ vnode.Sender) vnode.Result {
	w, p := v.w, v.p
	keys := v.keys(f)
	switch cmd.(type) {
	case *listCmd:
		return vnode.Stream(func(ctx context.Context, emit func([]byte) error) error {
			w.folding.Add(1)
			defer w.folding.Add(-1)
			for _, k := range keys {
				n := w.emitted[p].Add(1)
				// INVARIANT: a fold runs at most Window chunks ahead of the caller's acknowledgements, plus
				// the chunk it is filling.
				if limit := (w.acked[p].Load() + int64(v.window) + 1) * int64(v.maxItems); n > limit {
					w.over.Store(fmt.Sprintf("vnode %d emitted %d items, acked %d chunks", p, n, w.acked[p].Load()))
				}
				if err := emit(k); err != nil {
					return err
				}
			}
			return nil
		})
	case *countCmd:
		return vnode.Async(func(context.Context) any { return &countReply{N: len(keys)} })
	}
	return vnode.Reply(fmt.Errorf("unknown %T", cmd))
}

func (w *world) service(t *testing.T) *Service {
	s, err := NewService(w.sys, w, Config{N: w.n, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// drain reads st to its end, acknowledging each result, and returns the items.
func (w *world) drain(t *testing.T, st *Stream) ([]string, error) {
	t.Helper()
	var got []string
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		res, err := st.Next(ctx)
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		for _, it := range res.Items {
			got = append(got, string(it))
		}
		w.acked[res.Vnode.Partition].Add(1)
		st.Ack(res)
	}
}

// TestStreamEveryKeyOnce: a coverage request over every vnode of a plan returns each key exactly once (N
// replicas hold it), all up and with any one node down (re-planned around it).
func TestStreamEveryKeyOnce(t *testing.T) {
	w := newWorld(t, 2, 7)
	s := w.service(t)
	for _, down := range []ring.NodeID{"", "a", "b", "c", "d"} {
		w.mu.Lock()
		w.down = map[ring.NodeID]bool{down: true}
		w.mu.Unlock()
		st, err := s.Start(Request{Cmd: func(Vnode) any { return &listCmd{} }, MaxItems: 7, Window: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range st.Plan.Vnodes {
			if v.Node == down {
				t.Fatalf("down %q: vnode %d planned on it", down, v.Partition)
			}
		}
		got, err := w.drain(t, st)
		st.Close()
		if err != nil {
			t.Fatalf("down %q: %v", down, err)
		}
		slices.Sort(got)
		if want := w.allKeys(); !slices.Equal(got, want) {
			t.Fatalf("down %q: %d keys, want %d once each", down, len(got), len(want))
		}
		if o := w.over.Load().(string); o != "" {
			t.Fatal(o)
		}
	}
	eventually.True(t, 5*time.Second, "requests stopped", func() bool { return s.Active() == 0 })
}

// TestStreamSingleReplies: a command answered with one reply per vnode (Async) comes back once per planned
// vnode, Done, and the counts add up to every key once.
func TestStreamSingleReplies(t *testing.T) {
	w := newWorld(t, 2, 7)
	s := w.service(t)
	st, err := s.Start(Request{Cmd: func(Vnode) any { return &countCmd{} }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	total, replies := 0, 0
	ctx := context.Background()
	for {
		res, err := st.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		c, ok := res.Reply.(*countReply)
		if !ok || !res.Done {
			t.Fatalf("result %+v", res)
		}
		total += c.N
		replies++
	}
	if replies != len(st.Plan.Vnodes) || total != testQ*keysPer {
		t.Fatalf("%d replies for %d vnodes, count %d, want %d", replies, len(st.Plan.Vnodes), total, testQ*keysPer)
	}
}

// TestStreamBackpressure: a caller that stops reading stops the folds at their windows (each vnode's fold
// stands still at (Window+1)*MaxItems items: Window chunks sent, one being filled), and the request holds at
// most (Window+1) chunks per vnode; reading on completes the listing.
func TestStreamBackpressure(t *testing.T) {
	const window, maxItems = 2, 3
	w := newWorld(t, window, maxItems)
	s := w.service(t)
	st, err := s.Start(Request{Cmd: func(Vnode) any { return &listCmd{} }, MaxItems: maxItems, Window: window})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Each planned vnode holds more than (window+1)*maxItems keys of what it covers.
	stall := int64((window + 1) * maxItems)
	eventually.True(t, 10*time.Second, "every fold stands at its window", func() bool {
		for _, v := range st.Plan.Vnodes {
			if w.emitted[v.Partition].Load() != stall {
				return false
			}
		}
		return true
	})
	if n, c := len(st.events), cap(st.events); n > len(st.Plan.Vnodes)*window || c != len(st.Plan.Vnodes)*(window+1)+1 {
		t.Fatalf("the request holds %d chunks (room for %d), want at most %d", n, c, len(st.Plan.Vnodes)*window)
	}
	got, err := w.drain(t, st)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != testQ*keysPer {
		t.Fatalf("%d keys after the stall, want %d", len(got), testQ*keysPer)
	}
	if o := w.over.Load().(string); o != "" {
		t.Fatal(o)
	}
}

// TestStreamVnodeCrash: a vnode that restarts mid-stream fails the request with a *VnodeError naming it,
// the other vnodes' folds are cancelled, and its node is not reported (it answered: it is alive).
func TestStreamVnodeCrash(t *testing.T) {
	w := newWorld(t, 1, 2)
	s := w.service(t)
	st, err := s.Start(Request{Cmd: func(Vnode) any { return &listCmd{} }, MaxItems: 2, Window: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	victim := st.Plan.Vnodes[1]
	eventually.True(t, 10*time.Second, "the victim's fold waits for an ack", func() bool {
		return w.emitted[victim.Partition].Load() == 4
	})
	w.sys.Root.Send(w.m.PID(victim.Partition), &crashCmd{})
	var ve *VnodeError
	for {
		res, err := st.Next(context.Background())
		if err != nil {
			if !errors.As(err, &ve) || ve.Vnode.Partition != victim.Partition {
				t.Fatalf("error %v, want a *VnodeError of partition %d", err, victim.Partition)
			}
			break
		}
		_ = res // NB: not acknowledged: the other folds stay at their windows until cancelled
	}
	w.mu.Lock()
	reported := slices.Clone(w.reported)
	w.mu.Unlock()
	if len(reported) != 0 {
		t.Fatalf("reported %v after a vnode restart, want none", reported)
	}
	eventually.True(t, 10*time.Second, "the other folds cancelled", func() bool { return w.folding.Load() == 0 })
	eventually.True(t, 5*time.Second, "request stopped", func() bool { return s.Active() == 0 })
}

// TestStreamSilentVnode: a vnode whose node went silent (nothing answers) fails the request after Idle.
func TestStreamSilentVnode(t *testing.T) {
	w := newWorld(t, 2, 7)
	hole := w.sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	for _, x := range []ring.NodeID{"a", "b", "c", "d"} {
		w.silent[x] = hole
	}
	s := w.service(t)
	st, err := s.Start(Request{Cmd: func(Vnode) any { return &listCmd{} }, Idle: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = w.drain(t, st)
	var ve *VnodeError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v, want a *VnodeError", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !slices.Equal(w.reported, []ring.NodeID{ve.Vnode.Node}) {
		t.Fatalf("reported %v, want [%s]", w.reported, ve.Vnode.Node)
	}
}

// TestStreamUncovered: with two of four nodes down some ranges have no primary up: no request is made.
func TestStreamUncovered(t *testing.T) {
	w := newWorld(t, 2, 7)
	w.down = map[ring.NodeID]bool{"a": true, "b": true, "c": true}
	s := w.service(t)
	if _, err := s.Start(Request{Cmd: func(Vnode) any { return &listCmd{} }}); !errors.Is(err, ErrUncovered) {
		t.Fatalf("error %v, want ErrUncovered", err)
	}
	if s.Active() != 0 {
		t.Fatalf("%d requests active", s.Active())
	}
}

// TestStreamCloseCancels: closing a stream the caller stopped reading cancels the vnodes' folds.
func TestStreamCloseCancels(t *testing.T) {
	w := newWorld(t, 1, 1)
	s := w.service(t)
	st, err := s.Start(Request{Cmd: func(Vnode) any { return &listCmd{} }, MaxItems: 1, Window: 1, MaxVnodes: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Plan.Vnodes) != 2 {
		t.Fatalf("MaxVnodes 2: plan of %d vnodes", len(st.Plan.Vnodes))
	}
	eventually.True(t, 10*time.Second, "two folds wait", func() bool { return w.folding.Load() == 2 })
	st.Close()
	eventually.True(t, 10*time.Second, "folds cancelled", func() bool { return w.folding.Load() == 0 })
	eventually.True(t, 5*time.Second, "request stopped", func() bool { return s.Active() == 0 })
	if _, err := st.Next(context.Background()); err == nil {
		t.Fatal("Next after Close: no error")
	}
}
