package ring

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
)

func TestNewRingErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		q, n  int
		nodes []NodeID
		want  error
	}{
		{"q zero", 0, 3, names(3), ErrInvalidQ},
		{"q not power of two", 96, 3, names(3), ErrInvalidQ},
		{"q too large", MaxPartitions * 2, 3, names(3), ErrInvalidQ},
		{"n zero", 64, 0, names(3), ErrInvalidN},
		{"no nodes", 64, 3, nil, ErrInvalidNodes},
		{"empty id", 64, 3, []NodeID{""}, ErrInvalidNodes},
		{"duplicate", 64, 3, []NodeID{"a", "a"}, ErrInvalidNodes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(tc.q, tc.n, tc.nodes)
			if r != nil || !errors.Is(err, tc.want) {
				t.Fatalf("New = %v, %v; want nil, %v", r, err, tc.want)
			}
		})
	}
}

func TestNewRing(t *testing.T) {
	r, err := New(64, 3, []NodeID{"c", "a", "d", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Q() != 64 || r.Version() != 1 {
		t.Fatalf("Q=%d Version=%d, want 64, 1", r.Q(), r.Version())
	}
	if got := r.Nodes(); !slices.Equal(got, []NodeID{"a", "b", "c", "d"}) {
		t.Fatalf("Nodes = %v", got)
	}
	total := 0
	for _, n := range r.Nodes() {
		ps := r.PartitionsOf(n)
		if len(ps) != 16 || !slices.IsSorted(ps) {
			t.Fatalf("PartitionsOf(%s) = %v", n, ps)
		}
		for _, p := range ps {
			if r.Owner(p) != n {
				t.Fatalf("Owner(%d) = %s, PartitionsOf says %s", p, r.Owner(p), n)
			}
		}
		total += len(ps)
	}
	if total != 64 || len(r.Violations(3)) != 0 {
		t.Fatalf("total %d, violations %v", total, r.Violations(3))
	}
	if r.PartitionsOf("nobody") != nil {
		t.Fatal("PartitionsOf an unknown node is not nil")
	}
	// Returned slices are copies.
	r.Owners()[0] = "zzz"
	r.Nodes()[0] = "zzz"
	r.PartitionsOf("a")[0] = 999
	if r.Owner(0) == "zzz" || r.Nodes()[0] != "a" || r.PartitionsOf("a")[0] == 999 {
		t.Fatal("caller changed the ring through a returned slice")
	}
}

func TestNewFromOwners(t *testing.T) {
	for _, tc := range []struct {
		name   string
		owners []NodeID
		ok     bool
	}{
		{"one", []NodeID{"a"}, true},
		{"two", []NodeID{"b", "a"}, true},
		{"empty list", nil, false},
		{"three", []NodeID{"a", "b", "c"}, false},
		{"empty id", []NodeID{"a", ""}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewFromOwners(tc.owners, 7)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok {
				if !errors.Is(err, ErrInvalidOwners) {
					t.Fatalf("err = %v, want ErrInvalidOwners", err)
				}
				return
			}
			if r.Version() != 7 || !slices.Equal(r.Owners(), tc.owners) {
				t.Fatalf("ring %v owners %v", r, r.Owners())
			}
		})
	}
	owners := []NodeID{"a", "b"}
	r := mustRing(t, owners, 1)
	owners[0] = "changed"
	if r.Owner(0) != "a" {
		t.Fatal("NewFromOwners kept the caller's slice")
	}
}

func TestKeyHash(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want uint64
	}{
		{"", 0xda39a3ee5e6b4b0d},    // SHA-1("") = da39a3ee5e6b4b0d...
		{"abc", 0xa9993e364706816a}, // SHA-1("abc") = a9993e364706816a...
	} {
		if got := KeyHash([]byte(tc.key)); got != tc.want {
			t.Errorf("KeyHash(%q) = %#x, want %#x", tc.key, got, tc.want)
		}
	}
}

func TestPartitionForKey(t *testing.T) {
	ring := func(q int) *Ring {
		owners := make([]NodeID, q)
		for i := range owners {
			owners[i] = "a"
		}
		return mustRing(t, owners, 1)
	}
	for _, tc := range []struct {
		q    int
		key  string
		want int
	}{
		{1, "abc", 0},
		{2, "abc", 1},         // 0xa9... top bit
		{64, "abc", 42},       // 0xa9 = 101010|01
		{64, "", 54},          // 0xda = 110110|10
		{65536, "abc", 43417}, // 0xa999
	} {
		if got := ring(tc.q).PartitionForKey([]byte(tc.key)); got != tc.want {
			t.Errorf("q=%d PartitionForKey(%q) = %d, want %d", tc.q, tc.key, got, tc.want)
		}
	}
}

// TestPartitionForKeyUniform hashes 100k keys and bounds the chi-square
// statistic of the partition counts at its mean + 6 standard deviations.
func TestPartitionForKeyUniform(t *testing.T) {
	const keys = 100_000
	for _, q := range []int{16, 64, 1024} {
		r, _ := New(q, 3, names(4))
		counts := make([]int, q)
		for i := range keys {
			counts[r.PartitionForKey(fmt.Appendf(nil, "key-%d", i))]++
		}
		exp := float64(keys) / float64(q)
		chi2 := 0.0
		for _, c := range counts {
			chi2 += (float64(c) - exp) * (float64(c) - exp) / exp
		}
		df := float64(q - 1)
		if limit := df + 6*math.Sqrt(2*df); chi2 > limit {
			t.Errorf("q=%d: chi-square %.1f > %.1f", q, chi2, limit)
		}
		t.Logf("q=%d: chi-square %.1f (df %d)", q, chi2, q-1)
	}
}

func TestViolations(t *testing.T) {
	r := mustRing(t, []NodeID{"a", "b", "c", "a", "b", "c", "a", "b"}, 1)
	for _, tc := range []struct {
		n    int
		want []int
	}{
		{1, nil},
		{2, nil},
		{3, []int{6, 7}}, // 6: a b | a; 7: b | a b (wrapping)
		{4, []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{20, []int{0, 1, 2, 3, 4, 5, 6, 7}}, // n capped at Q
	} {
		if got := r.Violations(tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("Violations(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}

func TestTransfersAndRebalance(t *testing.T) {
	r, err := New(64, 3, names(4))
	if err != nil {
		t.Fatal(err)
	}
	next, err := r.Rebalance(3, names(5))
	if err != nil {
		t.Fatal(err)
	}
	if next.Version() != r.Version()+1 {
		t.Fatalf("version %d after %d", next.Version(), r.Version())
	}
	tr, err := Transfers(r, next)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr) != 64/5 {
		t.Fatalf("%d transfers, want %d", len(tr), 64/5)
	}
	for i, x := range tr {
		if x.To != "n04" || x.From != r.Owner(x.Partition) || next.Owner(x.Partition) != x.To ||
			i > 0 && tr[i-1].Partition >= x.Partition {
			t.Fatalf("bad transfer %d %+v in %v", i, x, tr)
		}
	}
	if tr, _ := Transfers(r, r); len(tr) != 0 {
		t.Fatalf("transfers from a ring to itself: %v", tr)
	}
	small := mustRing(t, []NodeID{"a"}, 1)
	if _, err := Transfers(r, small); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Transfers across sizes: %v", err)
	}
	if _, err := r.Rebalance(3, nil); !errors.Is(err, ErrInvalidNodes) {
		t.Fatalf("Rebalance with no nodes: %v", err)
	}
	// Down to 3 nodes with n=3: usable ring, and ErrTargetN.
	three, err := next.Rebalance(3, names(3))
	if !errors.Is(err, ErrTargetN) || three == nil || three.Version() != 3 {
		t.Fatalf("Rebalance to 3 nodes = %v, %v", three, err)
	}
	if r.Equal(next) || !r.Equal(mustRing(t, r.Owners(), r.Version())) {
		t.Fatal("Equal")
	}
}

// TestRingConcurrentReaders reads one ring from many goroutines (run with
// -race).
func TestRingConcurrentReaders(t *testing.T) {
	r, err := New(256, 3, names(5))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 100 {
				key := fmt.Appendf(nil, "%d-%d", g, i)
				_ = r.Preflist(key, 3, func(n NodeID) bool { return n != "n01" })
				_ = r.PartitionsOf(r.Owner(r.PartitionForKey(key)))
				_ = r.Owners()
				_ = r.Nodes()
				if _, err := r.MarshalBinary(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
