package kv

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// TestCoverKeys runs the KV coverage commands on a real vnode: the keys listed are exactly the live keys of
// the filter's hash partitions (no tombstone, nothing expired), in byte order, with or without a prefix, and
// the count agrees.
func TestCoverKeys(t *testing.T) {
	sys := actors.NewSystem(slog.New(slog.DiscardHandler))
	defer sys.Shutdown()
	var clock atomic.Int64
	clock.Store(1_700_000_000)
	now := func() time.Time { return time.Unix(clock.Load(), 0) }
	m, err := vnode.StartManager(sys, vnode.ManagerConfig{Node: "n", Partitions: []int{3}, Factory: NewVnode(DefaultConfig()),
		Store: storage.NewMemory(), Now: now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(context.Background()) }()
	pid := m.PID(3)
	put := func(req *PutRequest) *Object {
		t.Helper()
		res, err := actors.Request(context.Background(), sys, pid, req, 5*time.Second)
		if err != nil || res.(*PutReply).Err != "" {
			t.Fatalf("put %s: %v %v", req.Key, res, err)
		}
		return res.(*PutReply).Object
	}
	var live []string
	for i := range 500 {
		key := fmt.Sprintf("user:%03d", i)
		if i%5 == 4 {
			key = fmt.Sprintf("item:%03d", i)
		}
		o := put(&PutRequest{V: 1, Key: []byte(key), Coordinate: true, Blind: true, Value: []byte("v")})
		switch {
		case i%10 == 1: // deleted: only a tombstone is left
			put(&PutRequest{V: 1, Key: []byte(key), Coordinate: true, Context: o.Clock, Meta: Meta{Deleted: true}})
		case i%10 == 2: // expires before the listing
			put(&PutRequest{V: 1, Key: []byte(key), Coordinate: true, Context: o.Clock, Value: []byte("e"), Meta: Meta{Expiry: clock.Load() + 100}})
		case i%10 == 3: // a sibling that expires beside one that does not: still live
			put(&PutRequest{V: 1, Key: []byte(key), Coordinate: true, Value: []byte("e"), Meta: Meta{Expiry: clock.Load() + 100}})
			live = append(live, key)
		default:
			live = append(live, key)
		}
	}
	clock.Add(200)
	slices.Sort(live)

	r, err := ring.NewFromOwners(slices.Repeat([]ring.NodeID{"n"}, 8), 1)
	if err != nil {
		t.Fatal(err)
	}
	filter, err := vnode.NewFilter(8, 2, 5)
	if err != nil {
		t.Fatal(err)
	}
	want := func(prefix string, f vnode.Filter) []string {
		var out []string
		for _, k := range live {
			if p := r.PartitionForKey([]byte(k)); strings.HasPrefix(k, prefix) && (f.All() || slices.Contains(f.Partitions, p)) {
				out = append(out, k)
			}
		}
		return out
	}
	list := func(prefix string, f vnode.Filter, after []byte) []string {
		t.Helper()
		var got []string
		rep, err := vnode.RequestCoverage(context.Background(), sys, pid,
			&vnode.CoverageRequest{Filter: f, Cmd: &CoverKeysRequest{V: 1, Prefix: []byte(prefix), After: after}, MaxItems: 16, Window: 2}, 10*time.Second,
			func(items [][]byte) error {
				for _, it := range items {
					got = append(got, string(it))
				}
				return nil
			})
		if err != nil || rep != nil {
			t.Fatalf("list %q: %v %v", prefix, rep, err)
		}
		return got
	}
	for _, tc := range []struct {
		prefix string
		f      vnode.Filter
	}{{"", filter}, {"user:", filter}, {"item:", filter}, {"", vnode.Filter{}}, {"user:1", vnode.Filter{}}, {"nothing", filter}} {
		w, got := want(tc.prefix, tc.f), list(tc.prefix, tc.f, nil)
		if !slices.Equal(got, w) {
			t.Fatalf("prefix %q filter %v: listed %d keys, want %d\n got %v\nwant %v", tc.prefix, tc.f, len(got), len(w), got, w)
		}
		// Resumed after a key: exactly the keys after it (after one listed, one between listed keys, one
		// before the prefix, one past everything).
		for _, after := range []string{"", "item:", "user:", "user:2", "user:250", "user:250\x00", "zzz", "a"} {
			var rest []string
			for _, k := range w {
				if k > after {
					rest = append(rest, k)
				}
			}
			if got := list(tc.prefix, tc.f, []byte(after)); !slices.Equal(got, rest) {
				t.Fatalf("prefix %q filter %v after %q: listed %v, want %v", tc.prefix, tc.f, after, got, rest)
			}
		}
		rep, err := vnode.RequestCoverage(context.Background(), sys, pid,
			&vnode.CoverageRequest{Filter: tc.f, Cmd: &CountKeysRequest{V: 1, Prefix: []byte(tc.prefix)}}, 10*time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c := rep.(*CountKeysReply); c.Err != "" || c.Count != uint64(len(w)) || c.Partition != 3 {
			t.Fatalf("prefix %q filter %v: count %+v, want %d", tc.prefix, tc.f, c, len(w))
		}
	}
	if n := len(want("", filter)); n < 50 || n == len(live) {
		t.Fatalf("the filter keeps %d of %d live keys: the test would not tell filtering from listing all", n, len(live))
	}
	_, err = vnode.RequestCoverage(context.Background(), sys, pid, &vnode.CoverageRequest{Cmd: &GetRequest{V: 1}}, 10*time.Second,
		func([][]byte) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "unknown coverage command") {
		t.Fatalf("an unknown coverage command: %v", err)
	}
}

// BenchmarkCoverKeys lists 100,000 keys of a KV vnode on goleveldb through a coverage stream (default chunks
// and window), with a filter keeping half the ring: keys listed per second, and what one listing allocates.
func BenchmarkCoverKeys(b *testing.B) {
	sys := actors.NewSystem(slog.New(slog.DiscardHandler))
	defer sys.Shutdown()
	db, err := storage.OpenLevelDB(storage.DefaultLevelDBConfig(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	m, err := vnode.StartManager(sys, vnode.ManagerConfig{Node: "n", Partitions: []int{0}, Factory: NewVnode(DefaultConfig()),
		Store: db, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = m.Stop(context.Background()) }()
	pid := m.PID(0)
	const keys = 100_000
	for i := range keys {
		res, err := actors.Request(context.Background(), sys, pid, &PutRequest{V: 1, Key: fmt.Appendf(nil, "key:%07d", i),
			Coordinate: true, Blind: true, Value: []byte("0123456789abcdef0123456789abcdef")}, 5*time.Second)
		if err != nil || res.(*PutReply).Err != "" {
			b.Fatal(res, err)
		}
	}
	f, err := vnode.NewFilter(64, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 62)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	listed := 0
	for range b.N {
		_, err := vnode.RequestCoverage(context.Background(), sys, pid, &vnode.CoverageRequest{Filter: f, Cmd: &CoverKeysRequest{V: 1}},
			time.Minute, func(items [][]byte) error { listed += len(items); return nil })
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(listed)/b.Elapsed().Seconds(), "keys/s")
	b.ReportMetric(float64(keys*b.N)/b.Elapsed().Seconds(), "scanned/s")
}
