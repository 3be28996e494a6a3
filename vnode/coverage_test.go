package vnode_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// listCmd asks the probe for its items: N numbers ("0", "1", ...), or numbers without end when N < 0.
type listCmd struct{ N int }

// countCmd asks the probe for one answer computed on the worker pool.
type countCmd struct{}

type countReply struct{ N int }

// numbers is a probe coverage handler: listCmd streams numbers, countCmd answers once; it counts the items
// emitted and records how the last fold ended.
type numbers struct {
	emitted atomic.Int64
	ended   atomic.Pointer[string]
	filter  atomic.Pointer[vnode.Filter]
}

func (n *numbers) cover(cmd any, f vnode.Filter, _ vnode.Sender) vnode.Result {
	n.filter.Store(&f)
	switch m := cmd.(type) {
	case *listCmd:
		return vnode.Stream(func(ctx context.Context, emit func([]byte) error) error {
			var err error
			for i := 0; m.N < 0 || i < m.N; i++ {
				if err = emit([]byte(strconv.Itoa(i))); err != nil {
					break
				}
				n.emitted.Add(1)
			}
			s := fmt.Sprint(err)
			n.ended.Store(&s)
			return err
		})
	case *countCmd:
		return vnode.Async(func(context.Context) any { return &countReply{N: 42} })
	}
	return vnode.Reply(fmt.Sprintf("unknown %T", cmd))
}

// collector is a requester actor that passes what it receives to a channel and acknowledges nothing itself.
func collector(t *testing.T, sys *actor.ActorSystem) (*actor.PID, chan any) {
	ch := make(chan any, 64)
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case actor.SystemMessage, actor.AutoReceiveMessage:
		default:
			ch <- m
		}
	}))
	t.Cleanup(func() { sys.Root.Stop(pid) })
	return pid, ch
}

func nextChunk(t *testing.T, ch chan any) *vnode.CoverageChunk {
	t.Helper()
	select {
	case m := <-ch:
		c, ok := m.(*vnode.CoverageChunk)
		if !ok {
			t.Fatalf("got %T %v, want a chunk", m, m)
		}
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no chunk")
		return nil
	}
}

func startNumbers(t *testing.T, sys *actor.ActorSystem) (*numbers, *actor.PID) {
	j := newJournal()
	n := &numbers{}
	j.cover = n.cover
	m := startProbe(t, sys, "sup", j, vnode.ManagerConfig{})
	return n, m.PID(5)
}

// TestCoverageStreamFlowControl: items come in chunks of MaxItems, in order; with Window 2 the vnode sends
// two chunks and then waits (its fold blocked in emit) until the first is acknowledged; the last chunk
// carries Done.
func TestCoverageStreamFlowControl(t *testing.T) {
	sys := newSystem(t)
	n, pid := startNumbers(t, sys)
	req, ch := collector(t, sys)
	f, err := vnode.NewFilter(8, 3, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	sys.Root.RequestWithCustomSender(pid, &vnode.CoverageRequest{V: 1, ID: 7, Filter: f, Cmd: &listCmd{N: 25}, MaxItems: 4, Window: 2}, req)
	c1, c2 := nextChunk(t, ch), nextChunk(t, ch)
	// The fold filled a third chunk and waits in emit to send it: 11 items emitted, the 12th not yet back.
	eventually.True(t, 5*time.Second, "the fold filled the third chunk", func() bool { return n.emitted.Load() >= 11 })
	if eventually.Within(100*time.Millisecond, func() bool { return len(ch) > 0 || n.emitted.Load() > 11 }) {
		t.Fatalf("the vnode went past its window: %d items emitted, %d more chunks", n.emitted.Load(), len(ch))
	}
	if got := *n.filter.Load(); got.Q != 8 || !slices.Equal(got.Partitions, []int{1, 3}) {
		t.Fatalf("the behaviour got filter %+v", got)
	}
	var items []string
	chunks := []*vnode.CoverageChunk{c1, c2}
	sys.Root.Send(pid, &vnode.CoverageAck{V: 1, ID: 7, Seq: 1})
	for next := uint64(2); ; next++ {
		c := nextChunk(t, ch)
		chunks = append(chunks, c)
		if c.Done {
			break
		}
		sys.Root.Send(pid, &vnode.CoverageAck{V: 1, ID: 7, Seq: next})
	}
	for i, c := range chunks {
		if c.ID != 7 || c.Seq != uint64(i+1) || c.Partition != 5 || c.Err != "" || c.Done != (i == len(chunks)-1) {
			t.Fatalf("chunk %d: %+v", i, c)
		}
		if !c.Done && len(c.Items) != 4 {
			t.Fatalf("chunk %d has %d items, want 4", i, len(c.Items))
		}
		for _, it := range c.Items {
			items = append(items, string(it))
		}
	}
	if len(items) != 25 || items[0] != "0" || items[24] != "24" || len(chunks) != 7 {
		t.Fatalf("%d chunks, items %v", len(chunks), items)
	}
}

// TestCoverageCancel: a CoverageCancel, or an ack with Stop, ends the stream at once: the fold's emit
// fails, and the requester gets a last chunk with Err.
func TestCoverageCancel(t *testing.T) {
	for _, how := range []string{"cancel", "stop"} {
		t.Run(how, func(t *testing.T) {
			sys := newSystem(t)
			n, pid := startNumbers(t, sys)
			req, ch := collector(t, sys)
			sys.Root.RequestWithCustomSender(pid, &vnode.CoverageRequest{V: 1, ID: 9, Cmd: &listCmd{N: -1}, MaxItems: 10, Window: 1}, req)
			c := nextChunk(t, ch)
			if how == "cancel" {
				sys.Root.Send(pid, &vnode.CoverageCancel{V: 1, ID: 9})
			} else {
				sys.Root.Send(pid, &vnode.CoverageAck{V: 1, ID: 9, Seq: c.Seq, Stop: true})
			}
			last := nextChunk(t, ch)
			if !last.Done || !strings.Contains(last.Err, "cancelled") || last.Seq != 2 {
				t.Fatalf("last chunk %+v", last)
			}
			eventually.True(t, 5*time.Second, "the fold returned", func() bool { return n.ended.Load() != nil })
			if got := *n.ended.Load(); !strings.Contains(got, "cancelled") {
				t.Fatalf("the fold ended with %q", got)
			}
		})
	}
}

// TestCoverageAckTimeout: a requester that never acknowledges ends the stream after AckTimeout; the ID is
// then free again.
func TestCoverageAckTimeout(t *testing.T) {
	sys := newSystem(t)
	_, pid := startNumbers(t, sys)
	req, ch := collector(t, sys)
	sys.Root.RequestWithCustomSender(pid, &vnode.CoverageRequest{V: 1, ID: 3, Cmd: &listCmd{N: -1}, MaxItems: 10, Window: 1, AckTimeout: 20 * time.Millisecond}, req)
	nextChunk(t, ch)
	if last := nextChunk(t, ch); !last.Done || !strings.Contains(last.Err, "not acknowledged within 20ms") {
		t.Fatalf("last chunk %+v", last)
	}
	// The stream is gone: the same ID runs again (RequestCoverage acknowledges every chunk).
	var got int
	eventually.NoError(t, 5*time.Second, "a new stream with the ID", func() error {
		got = 0
		_, err := vnode.RequestCoverage(context.Background(), sys, pid, &vnode.CoverageRequest{ID: 3, Cmd: &listCmd{N: 50}, MaxItems: 7}, 0,
			func(items [][]byte) error { got += len(items); return nil })
		return err
	})
	if got != 50 {
		t.Fatalf("%d items, want 50", got)
	}
}

// TestCoverageRefusals: the vnode answers a request it cannot run with one last chunk carrying Err.
func TestCoverageRefusals(t *testing.T) {
	sys := newSystem(t)
	_, pid := startNumbers(t, sys)
	plain := startManager(t, storage.NewMemory(), vnode.ManagerConfig{Partitions: []int{1}, Factory: func() vnode.Behaviour { return &setVnode{} }})
	for _, tc := range []struct {
		name string
		to   *actor.PID
		sys  *actor.ActorSystem
		req  *vnode.CoverageRequest
		want string
	}{
		{"no handler", plain.PID(1), plain.System(), &vnode.CoverageRequest{Cmd: &listCmd{N: 1}}, "handles no coverage"},
		{"no command", pid, sys, &vnode.CoverageRequest{}, "without a command"},
		{"bad ring size", pid, sys, &vnode.CoverageRequest{Cmd: &listCmd{N: 1}, Filter: vnode.Filter{Q: 6, Partitions: []int{1}}}, "invalid partition count"},
		{"partition out of range", pid, sys, &vnode.CoverageRequest{Cmd: &listCmd{N: 1}, Filter: vnode.Filter{Q: 8, Partitions: []int{8}}}, "out of range"},
		{"unsorted", pid, sys, &vnode.CoverageRequest{Cmd: &listCmd{N: 1}, Filter: vnode.Filter{Q: 8, Partitions: []int{2, 1}}}, "ascending"},
	} {
		_, err := vnode.RequestCoverage(context.Background(), tc.sys, tc.to, tc.req, 5*time.Second, func([][]byte) error { return nil })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	// A second stream under the ID of a running one is refused; the running one goes on.
	req, ch := collector(t, sys)
	sys.Root.RequestWithCustomSender(pid, &vnode.CoverageRequest{V: 1, ID: 5, Cmd: &listCmd{N: -1}, Window: 1}, req)
	nextChunk(t, ch)
	_, err := vnode.RequestCoverage(context.Background(), sys, pid, &vnode.CoverageRequest{ID: 5, Cmd: &listCmd{N: 1}}, 5*time.Second, func([][]byte) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "running already") {
		t.Fatalf("a duplicate ID: %v", err)
	}
	sys.Root.Send(pid, &vnode.CoverageCancel{V: 1, ID: 5})
	if last := nextChunk(t, ch); !last.Done {
		t.Fatalf("the running stream after the refusal: %+v", last)
	}
}

// TestRequestCoverage: the blocking requester returns a behaviour's single answer (Async here), and stops
// the stream when its callback fails.
func TestRequestCoverage(t *testing.T) {
	sys := newSystem(t)
	n, pid := startNumbers(t, sys)
	rep, err := vnode.RequestCoverage(context.Background(), sys, pid, &vnode.CoverageRequest{Cmd: &countCmd{}}, 5*time.Second, nil)
	if err != nil || rep.(*countReply).N != 42 {
		t.Fatalf("count: %v %v", rep, err)
	}
	enough := errors.New("enough")
	seen := 0
	_, err = vnode.RequestCoverage(context.Background(), sys, pid, &vnode.CoverageRequest{Cmd: &listCmd{N: -1}, MaxItems: 3}, 5*time.Second,
		func(items [][]byte) error {
			if seen += len(items); seen >= 9 {
				return enough
			}
			return nil
		})
	if !errors.Is(err, enough) {
		t.Fatalf("a failing callback: %v", err)
	}
	eventually.True(t, 5*time.Second, "the endless fold stopped", func() bool { return n.ended.Load() != nil })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := vnode.RequestCoverage(ctx, sys, pid, &vnode.CoverageRequest{Cmd: &listCmd{N: -1}}, 5*time.Second, func([][]byte) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled context: %v", err)
	}
}

// TestFilterMatchesTheRing: Filter.Match agrees with the ring's placement of keys, for ring sizes from 1 to
// 1024 and random partition sets.
func TestFilterMatchesTheRing(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, q := range []int{1, 2, 8, 64, 1024} {
		owners := make([]ring.NodeID, q)
		for i := range owners {
			owners[i] = "n"
		}
		r, err := ring.NewFromOwners(owners, 1)
		if err != nil {
			t.Fatal(err)
		}
		var ps []int
		for p := range q {
			if rng.IntN(3) == 0 {
				ps = append(ps, p)
			}
		}
		f, err := vnode.NewFilter(q, ps...)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2000 {
			key := []byte(fmt.Sprintf("key-%d-%d", q, i))
			if want := slices.Contains(ps, r.PartitionForKey(key)); f.Match(key) != want {
				t.Fatalf("q=%d %q: Match %v, ring says partition %d (filter %v)", q, key, !want, r.PartitionForKey(key), ps)
			}
		}
	}
	if !(vnode.Filter{}).All() || !(vnode.Filter{}).Match([]byte("x")) || (vnode.Filter{}).Validate() != nil {
		t.Fatal("the zero filter must cover everything")
	}
	if f, err := vnode.NewFilter(4, 3, 0, 3); err != nil || !slices.Equal(f.Partitions, []int{0, 3}) {
		t.Fatalf("NewFilter: %+v %v", f, err)
	}
	for _, bad := range []vnode.Filter{{Q: 3}, {Q: 4, Partitions: []int{-1}}, {Q: 4, Partitions: []int{1, 1}}, {Q: 0, Partitions: []int{0}}, {Q: 1 << 17}} {
		if bad.Validate() == nil {
			t.Errorf("filter %+v validated", bad)
		}
	}
}
