package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"
)

func TestDropRanges(t *testing.T) {
	pfx := partitionPrefix
	tests := []struct {
		name string
		ps   []uint32
		max  int
		want []util.Range
	}{
		{"none", nil, 4, nil},
		{"one", []uint32{7}, 4, []util.Range{{Start: pfx(7), Limit: pfx(8)}}},
		{"adjacent merge", []uint32{3, 4, 5, 9}, 4, []util.Range{{Start: pfx(3), Limit: pfx(6)}, {Start: pfx(9), Limit: pfx(10)}}},
		{"last partition has no limit", []uint32{1, ^uint32(0) - 1, ^uint32(0)}, 4,
			[]util.Range{{Start: pfx(1), Limit: pfx(2)}, {Start: pfx(^uint32(0) - 1)}}},
		{"at the bound", []uint32{0, 2, 4, 6}, 4, []util.Range{
			{Start: pfx(0), Limit: pfx(1)}, {Start: pfx(2), Limit: pfx(3)}, {Start: pfx(4), Limit: pfx(5)}, {Start: pfx(6), Limit: pfx(7)}}},
		{"past the bound: one span", []uint32{0, 2, 4, 6, 8}, 4, []util.Range{{Start: pfx(0), Limit: pfx(9)}}},
		{"span to the end", []uint32{1, 3, ^uint32(0)}, 2, []util.Range{{Start: pfx(1)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := dropRanges(tc.ps, tc.max)
			if !slices.EqualFunc(got, tc.want, func(a, b util.Range) bool {
				return bytes.Equal(a.Start, b.Start) && bytes.Equal(a.Limit, b.Limit)
			}) {
				t.Fatalf("dropRanges(%v, %d) = %v, want %v", tc.ps, tc.max, got, tc.want)
			}
		})
	}
}

// TestDropRangesCover checks with random partition sets that the ranges cover every dropped partition's
// keys, and only those when there are no more runs than the bound.
func TestDropRangesCover(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 500; i++ {
		set := map[uint32]bool{}
		for n := rng.IntN(12) + 1; n > 0; n-- {
			set[uint32(rng.IntN(24))] = true
		}
		var ps []uint32
		for p := range set {
			ps = append(ps, p)
		}
		slices.Sort(ps)
		rs := dropRanges(ps, maxDropRanges)
		in := func(p uint32) bool {
			k := appendKey(nil, p, []byte("k"))
			for _, r := range rs {
				if bytes.Compare(k, r.Start) >= 0 && (r.Limit == nil || bytes.Compare(k, r.Limit) < 0) {
					return true
				}
			}
			return false
		}
		for p := uint32(0); p < 26; p++ {
			switch {
			case set[p] && !in(p):
				t.Fatalf("dropRanges(%v) = %v misses partition %d", ps, rs, p)
			case !set[p] && in(p) && len(rs) > 1:
				t.Fatalf("dropRanges(%v) = %v covers partition %d, which was not dropped", ps, rs, p)
			case !set[p] && in(p) && (p < ps[0] || p > ps[len(ps)-1]):
				t.Fatalf("dropRanges(%v) = %v covers partition %d outside the span", ps, rs, p)
			}
		}
	}
}

func TestDropSchedule(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	s := dropSchedule{quiet: 5 * time.Second, maxDelay: 20 * time.Second}
	if _, ok := s.due(); ok {
		t.Fatal("due with nothing pending")
	}
	s.add(9, t0)
	if at, _ := s.due(); !at.Equal(t0.Add(5 * time.Second)) {
		t.Fatalf("one drop: due %v, want quiet after it", at.Sub(t0))
	}
	// Drops every 4 s keep pushing the compaction back, up to maxDelay after the first one.
	for i := 1; i <= 6; i++ {
		s.add(uint32(9-i), t0.Add(time.Duration(i)*4*time.Second))
		at, _ := s.due()
		want := t0.Add(time.Duration(i)*4*time.Second + 5*time.Second)
		if limit := t0.Add(20 * time.Second); want.After(limit) {
			want = limit
		}
		if !at.Equal(want) {
			t.Fatalf("after drop %d: due %v, want %v", i, at.Sub(t0), want.Sub(t0))
		}
	}
	s.add(9, t0.Add(25*time.Second)) // a partition dropped again counts once
	if got := s.take(); !slices.Equal(got, []uint32{3, 4, 5, 6, 7, 8, 9}) {
		t.Fatalf("take = %v", got)
	}
	if _, ok := s.due(); ok {
		t.Fatal("due after take")
	}
	// The next drop starts a new window: its maxDelay counts from it.
	s.add(1, t0.Add(time.Minute))
	if at, _ := s.due(); !at.Equal(t0.Add(time.Minute + 5*time.Second)) {
		t.Fatalf("new window: due %v", at.Sub(t0))
	}
}

// fillPartitions writes n keys of size bytes (incompressible) to each partition and returns nothing; the
// small write buffer of the tests' DBs makes them tables.
func fillPartitions(t *testing.T, l *LevelDB, parts []uint32, n, size int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	v := make([]byte, size)
	for i := 0; i < n; i++ {
		for _, p := range parts {
			for j := range v {
				v[j] = byte(rng.Uint32())
			}
			if err := l.Put(p, fmt.Appendf(nil, "key-%06d", i), v); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// flushAll moves everything into tables, so that table sizes count all the data.
func flushAll(t *testing.T, l *LevelDB) {
	t.Helper()
	if err := l.db.CompactRange(util.Range{}); err != nil {
		t.Fatal(err)
	}
}

// dbBytes returns the size of the DB's tables, all levels.
func dbBytes(t *testing.T, l *LevelDB) int64 {
	t.Helper()
	var st leveldb.DBStats
	if err := l.Stats(&st); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, s := range st.LevelSizes {
		n += s
	}
	return n
}

func foldKeys(t *testing.T, l *LevelDB, p uint32) []string {
	t.Helper()
	var ks []string
	if err := l.Fold(p, func(k, _ []byte) error { ks = append(ks, string(k)); return nil }); err != nil {
		t.Fatal(err)
	}
	return ks
}

// TestDropPartitionDefersCompaction: a drop deletes at once but leaves the compaction for later, so a
// node dropping many partitions does not compact each on its own (before the compactor, each drop
// compacted its range inline and the tables shrank at once).
func TestDropPartitionDefersCompaction(t *testing.T) {
	cfg := DefaultLevelDBConfig(t.TempDir())
	cfg.WriteBufferMiB, cfg.DropCompactQuiet = 1, time.Hour
	l := openLevelDB(t, cfg)
	fillPartitions(t, l, []uint32{1, 2, 3}, 2000, 1000)
	flushAll(t, l)
	before := dbBytes(t, l)
	if err := l.DropPartition(2); err != nil {
		t.Fatal(err)
	}
	if ks := foldKeys(t, l, 2); len(ks) != 0 {
		t.Fatalf("dropped partition folds %d keys", len(ks))
	}
	if empty, err := l.IsEmpty(2); err != nil || !empty {
		t.Fatalf("IsEmpty(dropped) = %v, %v", empty, err)
	}
	if after := dbBytes(t, l); after < before*9/10 {
		t.Fatalf("tables shrank from %d to %d bytes at the drop: it compacted inline", before, after)
	}
	if done, pending := l.DropCompactions(); done != 0 || pending != 1 {
		t.Fatalf("DropCompactions() = %d done, %d pending; want 0, 1", done, pending)
	}
	// Close with the compaction pending: clean, and the compactor's goroutine has returned (Close waits).
	if err := l.Close(); err != nil {
		t.Fatalf("Close with a compaction pending: %v", err)
	}
	if err := l.DropPartition(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("DropPartition after Close = %v, want ErrClosed", err)
	}
	if _, pending := l.DropCompactions(); pending != 1 {
		t.Fatalf("a drop after Close was recorded: %d pending", pending)
	}
}

// TestDropCompactionReclaimsSpace: the deferred compaction takes the dropped partitions' space back, in
// one pass for drops that came together, and a partition written again after its drop (handed back)
// keeps exactly its new keys through the compaction.
func TestDropCompactionReclaimsSpace(t *testing.T) {
	cfg := DefaultLevelDBConfig(t.TempDir())
	cfg.WriteBufferMiB, cfg.DropCompactQuiet, cfg.DropCompactMaxDelay = 1, 100*time.Millisecond, time.Minute
	l := openLevelDB(t, cfg)
	fillPartitions(t, l, []uint32{1, 2, 3, 4}, 1500, 1000)
	flushAll(t, l)
	before := dbBytes(t, l)
	for _, p := range []uint32{1, 2, 4} {
		if err := l.DropPartition(p); err != nil {
			t.Fatal(err)
		}
	}
	// Partition 1 comes back before the compaction: its new keys must survive it.
	if err := l.Put(1, []byte("back"), []byte("again")); err != nil {
		t.Fatal(err)
	}
	waitDropCompactions(t, l, 1)
	after := dbBytes(t, l)
	if after > before/2 {
		t.Fatalf("tables %d bytes after the deferred compaction of 3 of 4 partitions, %d before", after, before)
	}
	if ks := foldKeys(t, l, 1); !slices.Equal(ks, []string{"back"}) {
		t.Fatalf("partition written again after its drop folds %v", ks)
	}
	for _, p := range []uint32{2, 4} {
		if ks := foldKeys(t, l, p); len(ks) != 0 {
			t.Fatalf("dropped partition %d folds %d keys", p, len(ks))
		}
	}
	if ks := foldKeys(t, l, 3); len(ks) != 1500 {
		t.Fatalf("kept partition folds %d keys, want 1500", len(ks))
	}
	if ps, err := l.Partitions(); err != nil || !slices.Equal(ps, []uint32{1, 3}) {
		t.Fatalf("Partitions() = %v, %v", ps, err)
	}
	if done, _ := l.DropCompactions(); done != 1 {
		t.Fatalf("%d compactions for drops that came together, want 1", done)
	}
}

func waitDropCompactions(t *testing.T, l *LevelDB, want uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		done, pending := l.DropCompactions()
		if done >= want && pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("deferred compactions: %d done, %d pending; want %d done", done, pending, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCloseDuringDropCompaction closes the DB while the deferred compaction runs (or is about to): Close
// is clean, and the data reopened is what was written and dropped.
func TestCloseDuringDropCompaction(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultLevelDBConfig(dir)
	cfg.WriteBufferMiB, cfg.DropCompactQuiet, cfg.DropCompactMaxDelay = 1, time.Millisecond, time.Millisecond
	l, err := OpenLevelDB(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fillPartitions(t, l, []uint32{5, 6}, 3000, 1000)
	if err := l.DropPartition(5); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close during the compaction: %v", err)
	}
	l = openLevelDB(t, cfg)
	if ks := foldKeys(t, l, 5); len(ks) != 0 {
		t.Fatalf("dropped partition folds %d keys after a reopen", len(ks))
	}
	if ks := foldKeys(t, l, 6); len(ks) != 3000 {
		t.Fatalf("kept partition folds %d keys after a reopen, want 3000", len(ks))
	}
}

// TestDropCompactionRetriesAfterFullDisk: a deferred compaction that fails because the disk is full keeps
// its partitions pending and compacts them once the DB is back (here reopened by hand, as Heal does).
func TestDropCompactionRetriesAfterFullDisk(t *testing.T) {
	var full atomic.Bool
	l := openFaulty(t, t.TempDir(), &full)
	l.dropc.sched.quiet, l.dropc.sched.maxDelay = time.Hour, time.Hour // NB: before the first drop starts the compactor
	fillPartitions(t, l, []uint32{1, 2}, 1500, 1000)
	if err := l.DropPartition(1); err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	c := &l.dropc
	c.mu.Lock()
	c.sched.quiet, c.sched.maxDelay = 50*time.Millisecond, 50*time.Millisecond
	c.mu.Unlock()
	c.kick <- struct{}{}
	// NB: the failed compaction marks the DB full before it puts its partition back: wait for both.
	waitUntil(t, "the compaction to find the disk full and keep its partition", func() bool {
		_, pending := l.DropCompactions()
		return l.DiskFull() && pending == 1
	})
	if done, _ := l.DropCompactions(); done != 0 {
		t.Fatalf("on a full disk: %d compactions done", done)
	}
	full.Store(false)
	if err := l.reopen(); err != nil {
		t.Fatal(err)
	}
	waitDropCompactions(t, l, 1)
	if ks := foldKeys(t, l, 1); len(ks) != 0 {
		t.Fatalf("dropped partition folds %d keys", len(ks))
	}
	if ks := foldKeys(t, l, 2); len(ks) != 1500 {
		t.Fatalf("kept partition folds %d keys, want 1500", len(ks))
	}
}
