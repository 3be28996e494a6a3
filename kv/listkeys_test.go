package kv

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/coverage"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// listWorld is a 4-node ring whose vnodes all run in one local manager (VnodePID ignores the node): every
// key is written to the vnodes of its N primaries, as replication leaves it.
type listWorld struct {
	sys  *actor.ActorSystem
	r    *ring.Ring
	m    *vnode.Manager
	mu   sync.Mutex
	down map[ring.NodeID]bool
	// failNext makes the next VnodePID answer with a stopped actor (the vnode's node just died); failed
	// lists the nodes that happened to. ReportFailure marks a node down, as the node's suspicion does.
	failNext bool
	failed   []ring.NodeID
	dead     *actor.PID
}

func (w *listWorld) Ring() *ring.Ring { return w.r }
func (w *listWorld) Up(x ring.NodeID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.down[x]
}
func (w *listWorld) VnodePID(x ring.NodeID, p int) *actor.PID {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failNext {
		w.failNext = false
		w.failed = append(w.failed, x)
		return w.dead
	}
	return w.m.PID(p)
}
func (w *listWorld) ReportFailure(x ring.NodeID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.down[x] = true
}

func (w *listWorld) setDown(x ring.NodeID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.down = map[ring.NodeID]bool{x: true}
}

func newListWorld(t *testing.T, q int) (*listWorld, *Lister) {
	t.Helper()
	w := &listWorld{sys: actors.NewSystem(slog.New(slog.DiscardHandler)), down: map[ring.NodeID]bool{}}
	t.Cleanup(w.sys.Shutdown)
	var err error
	if w.r, err = ring.New(q, 3, []ring.NodeID{"a", "b", "c", "d"}); err != nil && !errors.Is(err, ring.ErrTargetN) {
		t.Fatal(err)
	}
	parts := make([]int, q)
	for p := range parts {
		parts[p] = p
	}
	w.m, err = vnode.StartManager(w.sys, vnode.ManagerConfig{Node: "a", Partitions: parts, Factory: NewVnode(DefaultConfig()),
		Store: storage.NewMemory(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.m.Stop(context.Background()) })
	w.dead = w.sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	if err := w.sys.Root.StopFuture(w.dead).Wait(); err != nil {
		t.Fatal(err)
	}
	cov, err := coverage.NewService(w.sys, w, coverage.Config{N: 3, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return w, &Lister{Coverage: cov, Q: q}
}

// put writes key to each of its N primaries; deleted leaves only a tombstone.
func (w *listWorld) put(t *testing.T, key string, deleted bool) {
	t.Helper()
	for _, e := range w.r.Preflist([]byte(key), 3, nil) {
		req := &PutRequest{V: 1, Key: []byte(key), Coordinate: true, Blind: true, Value: []byte("v"), Meta: Meta{Deleted: deleted}}
		res, err := actors.Request(context.Background(), w.sys, w.m.PID(e.Partition), req, 5*time.Second)
		if err != nil || res.(*PutReply).Err != "" {
			t.Fatalf("put %s: %v %v", key, res, err)
		}
	}
}

// listAll pages through a listing; between pages it calls between(page number).
func listAll(t *testing.T, l *Lister, o ListOptions, between func(int)) (keys []string, pages int) {
	t.Helper()
	lastDone := 0
	for {
		p, err := l.Page(context.Background(), o)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		pages++
		if limit := cmp.Or(o.MaxKeys, DefaultListPageKeys); len(p.Keys) > limit {
			t.Fatalf("page of %d keys, max %d", len(p.Keys), limit)
		}
		if p.PartitionsDone < lastDone || p.Partitions != l.Q {
			t.Fatalf("progress %d of %d after %d", p.PartitionsDone, p.Partitions, lastDone)
		}
		lastDone = p.PartitionsDone
		for _, k := range p.Keys {
			keys = append(keys, string(k))
		}
		if p.Continuation == nil {
			if p.PartitionsDone != l.Q {
				t.Fatalf("listing ended with %d of %d partitions done", p.PartitionsDone, l.Q)
			}
			return keys, pages
		}
		if pages > 100000 {
			t.Fatal("listing does not end")
		}
		o.Continue = p.Continuation
		if between != nil {
			between(pages)
		}
	}
}

// TestListKeysEveryKeyOnce: a paged listing returns every live key exactly once though 3 vnodes hold each,
// deleted keys never, for every page size, with a prefix, and when a node goes down between pages (the
// ranges in progress resume on other replicas after their last key). count agrees.
func TestListKeysEveryKeyOnce(t *testing.T) {
	w, l := newListWorld(t, 16)
	var live, users []string
	for i := range 600 {
		key := fmt.Sprintf("user:%04d", i)
		if i%3 == 0 {
			key = fmt.Sprintf("item:%04d", i)
		}
		deleted := i%7 == 0
		w.put(t, key, deleted)
		if !deleted {
			live = append(live, key)
			if strings.HasPrefix(key, "user:") {
				users = append(users, key)
			}
		}
	}
	slices.Sort(live)
	check := func(what string, got, want []string) {
		t.Helper()
		slices.Sort(got)
		if !slices.Equal(got, want) {
			seen := map[string]int{}
			for _, k := range got {
				seen[k]++
			}
			var dups []string
			for k, n := range seen {
				if n > 1 {
					dups = append(dups, k)
				}
			}
			t.Fatalf("%s: %d keys, want %d; listed twice: %v", what, len(got), len(want), dups)
		}
	}
	for _, max := range []int{1, 7, 50, 1000} {
		got, pages := listAll(t, l, ListOptions{MaxKeys: max}, nil)
		check(fmt.Sprintf("max_keys %d", max), got, live)
		t.Logf("max_keys %d: %d pages", max, pages)
	}
	got, _ := listAll(t, l, ListOptions{MaxKeys: 33, Prefix: []byte("user:")}, nil)
	check("prefix user:", got, users)
	for _, down := range []ring.NodeID{"a", "b", "c", "d"} {
		got, _ := listAll(t, l, ListOptions{MaxKeys: 20}, func(page int) {
			if page == 5 {
				w.setDown(down)
			}
		})
		w.setDown("")
		check(fmt.Sprintf("%s down after page 5", down), got, live)
	}
	// A vnode that fails as a page asks it: the page asks its ranges again on a plan around its node (now
	// down), resuming after the last key taken from it; count asks again for the failed vnode's ranges.
	for page := 1; page <= 6; page++ {
		w.setDown("")
		w.mu.Lock()
		w.failed = nil
		w.mu.Unlock()
		failures := l.Coverage.Stats().Failures
		got, _ := listAll(t, l, ListOptions{MaxKeys: 40}, func(p int) {
			if p == page {
				w.mu.Lock()
				w.failNext = true
				w.mu.Unlock()
			}
		})
		check(fmt.Sprintf("a vnode failing after page %d", page), got, live)
		w.mu.Lock()
		failed := len(w.failed)
		w.mu.Unlock()
		if failed != 1 || l.Coverage.Stats().Failures != failures+1 {
			t.Fatalf("after page %d: %d vnodes failed, %d requests failed; want 1", page, failed, l.Coverage.Stats().Failures-failures)
		}
	}
	w.setDown("")
	w.mu.Lock()
	w.failNext = true
	w.mu.Unlock()
	if n, err := l.Count(context.Background(), nil, 0); err != nil || n != uint64(len(live)) || l.Coverage.Stats().Failures == 0 {
		t.Fatalf("count with a vnode failing: %d %v, want %d", n, err, len(live))
	}
	w.setDown("")
	for _, tc := range []struct {
		prefix string
		want   int
	}{{"", len(live)}, {"user:", len(users)}, {"nothing", 0}} {
		n, err := l.Count(context.Background(), []byte(tc.prefix), 0)
		if err != nil || n != uint64(tc.want) {
			t.Fatalf("count %q: %d %v, want %d", tc.prefix, n, err, tc.want)
		}
	}
}

// TestListKeysBadContinuation: a continuation from another ring size, truncated, with trailing bytes, or
// naming a partition twice, and a prefix that differs from the continuation's, are bad requests; none
// panics.
func TestListKeysBadContinuation(t *testing.T) {
	w, l := newListWorld(t, 16)
	for i := range 100 {
		w.put(t, fmt.Sprintf("k%03d", i), false)
	}
	p, err := l.Page(context.Background(), ListOptions{MaxKeys: 10, Prefix: []byte("k")})
	if err != nil || p.Continuation == nil {
		t.Fatalf("first page: %+v %v", p, err)
	}
	c := p.Continuation
	other := newListCursor(32, nil).encode()
	twice := &listCursor{Q: 16, Done: make([]bool, 16), Partial: []partialRange{{Covers: []int{1}, After: []byte("a")}, {Covers: []int{1, 2}, After: []byte("b")}}}
	doneAndPartial := &listCursor{Q: 16, Done: make([]bool, 16), Partial: []partialRange{{Covers: []int{3}, After: []byte("a")}}}
	doneAndPartial.Done[3] = true
	for name, bad := range map[string][]byte{
		"other ring":       other,
		"truncated":        c[:len(c)-1],
		"trailing":         append(slices.Clone(c), 0),
		"version":          append([]byte{9}, c[1:]...),
		"empty":            {},
		"twice":            twice.encode(),
		"done and partial": doneAndPartial.encode(),
	} {
		if _, err := l.Page(context.Background(), ListOptions{Continue: bad}); !errors.Is(err, ErrListBadRequest) {
			t.Errorf("%s: %v, want a bad request", name, err)
		}
	}
	if _, err := l.Page(context.Background(), ListOptions{Continue: c, Prefix: []byte("x")}); !errors.Is(err, ErrListBadRequest) {
		t.Errorf("another prefix: %v", err)
	}
	// Every truncation of a valid continuation is refused or read, never a panic.
	for i := range len(c) {
		_, _ = decodeListCursor(c[:i], 16)
	}
	got, err := decodeListCursor(c, 16)
	if err != nil || !bytes.Equal(got.encode(), c) {
		t.Fatalf("round trip: %v", err)
	}
}

// FuzzListCursor: any bytes decode to an error or to a cursor that encodes back to the same bytes.
func FuzzListCursor(f *testing.F) {
	f.Add(newListCursor(16, []byte("p")).encode())
	c := newListCursor(8, nil)
	c.Done[2] = true
	c.Partial = []partialRange{{Covers: []int{0, 5}, After: []byte("key")}}
	f.Add(c.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, q := range []int{8, 16} {
			c, err := decodeListCursor(b, q)
			if err != nil {
				continue
			}
			if !bytes.Equal(c.encode(), b) {
				// NB: bits past Q in a bitmap's last byte are ignored, so only Q % 8 == 0 round-trips exactly.
				t.Fatalf("q %d: %x decodes to a cursor that encodes to %x", q, b, c.encode())
			}
		}
	})
}
