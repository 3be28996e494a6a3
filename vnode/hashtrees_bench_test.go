package vnode_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/aae"
	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/kv"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

func benchManager(b *testing.B, name string, db storage.Backend, aaeCfg vnode.AAEConfig) *vnode.Manager {
	b.Helper()
	sys := actors.NewSystem(slog.New(slog.DiscardHandler))
	b.Cleanup(sys.Shutdown)
	m, err := vnode.StartManager(sys, vnode.ManagerConfig{Name: name, Node: name, Partitions: []int{0},
		Factory: kv.NewVnode(kv.DefaultConfig()), Store: db, Logger: slog.New(slog.DiscardHandler), AAE: aaeCfg})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = m.Stop(ctx)
	})
	return m
}

func openBenchDB(b *testing.B) *storage.LevelDB {
	b.Helper()
	db, err := storage.OpenLevelDB(storage.DefaultLevelDBConfig(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return db
}

func benchAsk(b *testing.B, m *vnode.Manager, msg any) any {
	b.Helper()
	res, err := actors.Request(context.Background(), m.System(), m.PID(0), msg, 30*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	return res
}

// exchange runs one exchange of source src between the vnodes of partition 0 of ma and mb, as the exchange
// actor does (both asked the same query; aae.Exchange decides).
func exchange(b *testing.B, ma, mb *vnode.Manager, src int) aae.Outcome {
	b.Helper()
	e := aae.NewExchange(aae.Segments)
	q := e.Start()
	for {
		var ans [2]aae.Answer
		for i, m := range []*vnode.Manager{ma, mb} {
			a := benchAsk(b, m, &vnode.AAEQuery{V: 1, Source: src, Kind: q.Kind, Branches: q.Branches, Segments: q.Segments}).(*vnode.AAEAnswer)
			if a.Err != "" {
				b.Fatal(a.Err)
			}
			ans[i] = aae.Answer{Root: a.Root, Branches: a.Branches, Segments: a.Segments, Keys: a.Keys}
		}
		next, done := e.Answer(ans[0], ans[1])
		if done {
			return e.Outcome()
		}
		q = next
	}
}

// BenchmarkExchange: one source of 100,000 keys (one hash partition's share of a vnode at Q=1, so the
// figures are those of one whole tree) on two replicas on goleveldb, differing in 0, 10 and 10,000 keys;
// it reports the time and the bytes of one exchange, repairs not included.
func BenchmarkExchange(b *testing.B) {
	const keys = 100_000
	ma := benchManager(b, "a", openBenchDB(b), vnode.AAEConfig{Q: 1})
	mb := benchManager(b, "b", openBenchDB(b), vnode.AAEConfig{Q: 1})
	for _, m := range []*vnode.Manager{ma, mb} {
		eventually.True(b, 10*time.Second, "trees built", func() bool { st, ok := m.AAEStatus(0); return ok && st.State == vnode.AAEBuilt })
	}
	val := make([]byte, 100)
	for i := range keys {
		o := benchAsk(b, ma, &kv.PutRequest{V: 1, Key: fmt.Appendf(nil, "key-%d", i), Coordinate: true, Blind: true, Value: val}).(*kv.PutReply).Object
		benchAsk(b, mb, &kv.PutRequest{V: 1, Key: fmt.Appendf(nil, "key-%d", i), Object: o})
	}
	differ := 0
	for _, d := range []int{0, 10, 10_000} {
		for ; differ < d; differ++ {
			benchAsk(b, mb, &kv.PutRequest{V: 1, Key: fmt.Appendf(nil, "key-%d", differ*7), Coordinate: true, Blind: true, Value: val})
		}
		b.Run(fmt.Sprintf("differ=%d", d), func(b *testing.B) {
			var out aae.Outcome
			for range b.N {
				out = exchange(b, ma, mb, 0)
			}
			if len(out.Keys) != d {
				b.Fatalf("exchange found %d keys, %d differ", len(out.Keys), d)
			}
			b.ReportMetric(float64(out.Bytes), "bytes/exchange")
		})
	}
}

// BenchmarkRebuild1M: a vnode whose partition holds 1,000,000 KV objects (100-byte values, written below
// the vnode) and no trees starts, and rebuilds its trees from storage, unthrottled and at the default
// throttle; it reports the time. (The first run also writes the 1M index entries; later ones find them.)
func BenchmarkRebuild1M(b *testing.B) {
	const keys = 1_000_000
	db := openBenchDB(b)
	o, err := kv.Update(nil, "a/0/x", nil, true, make([]byte, 100), kv.Meta{}, 1, kv.UpdateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := o.MarshalBinary()
	var ops []storage.Op
	for i := range keys {
		ops = append(ops, storage.Op{Key: fmt.Appendf(nil, "kkey-%d", i), Value: raw})
		if len(ops) == 10_000 {
			if err := db.Write(0, ops); err != nil {
				b.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	for _, tc := range []struct {
		name string
		cfg  vnode.AAEConfig
	}{
		{"unthrottled", vnode.AAEConfig{Q: 64, RebuildChunk: 1 << 16, RebuildPause: -1}},
		{"default-throttle", vnode.AAEConfig{Q: 64}}, // chunks of 256, 5 ms apart
	} {
		b.Run(tc.name, func(b *testing.B) {
			for i := range b.N {
				// NB: no trees and no clean-stop marker: the vnode must rebuild (a previous run's clean stop
				// left its trees: drop them).
				_ = db.Delete(0, []byte{0xff, 'A', 'c'})
				t0 := time.Now()
				m := benchManager(b, fmt.Sprintf("r-%s-%d", tc.name, i), db, tc.cfg)
				eventually.True(b, 10*time.Minute, "rebuilt", func() bool {
					st, ok := m.AAEStatus(0)
					return ok && st.State == vnode.AAEBuilt && st.Rebuilds > 0
				})
				b.ReportMetric(time.Since(t0).Seconds(), "s/1M-keys")
				if st, _ := m.AAEStatus(0); st.Items != keys {
					b.Fatalf("%d items rebuilt, want %d", st.Items, keys)
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				_ = m.Stop(ctx)
				cancel()
			}
		})
	}
}
