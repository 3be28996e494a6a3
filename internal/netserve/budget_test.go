package netserve

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBudgetReserveRelease(t *testing.T) {
	b := NewBudget(1 << 20) // headroom 128 KiB
	if !b.Reserve(800 << 10) {
		t.Fatal("800 KiB of 1 MiB refused")
	}
	if b.Reserve(200 << 10) {
		t.Fatal("a large reservation took the headroom kept for small ones")
	}
	if !b.Reserve(SmallReservation) || !b.Reserve(SmallReservation) || !b.Reserve(SmallReservation) {
		t.Fatal("small reservations refused while the headroom is free")
	}
	if b.Reserve(SmallReservation) {
		t.Fatal("the budget was overrun")
	}
	if got := b.Refused(); got != 2 {
		t.Fatalf("Refused = %d, want 2", got)
	}
	b.Release(800 << 10)
	b.Release(3 * SmallReservation)
	if b.Used() != 0 {
		t.Fatalf("Used = %d after releasing everything", b.Used())
	}
	var nilBudget *Budget
	if !nilBudget.Reserve(1<<40) || nilBudget.Used() != 0 {
		t.Fatal("a nil budget must admit everything")
	}
	nilBudget.Release(1 << 40)
}

func TestBudgetOverReleasePanics(t *testing.T) {
	b := NewBudget(100)
	b.Reserve(10)
	defer func() {
		if recover() == nil {
			t.Fatal("releasing more than reserved did not panic")
		}
	}()
	b.Release(11)
}

func TestAccountCapsOneConnection(t *testing.T) {
	b := NewBudget(10 << 20)
	a := NewAccount(b, 1<<20)
	if !a.Reserve(1 << 20) {
		t.Fatal("the account's whole cap refused")
	}
	if a.Reserve(1) {
		t.Fatal("the account went over its cap")
	}
	other := NewAccount(b, 1<<20)
	if !other.Reserve(512 << 10) {
		t.Fatal("another connection was refused while the budget has room")
	}
	a.Force(100) // an error response: over the cap, still taken
	if a.Held() != 1<<20+100 || b.Used() != 1<<20+100+512<<10 {
		t.Fatalf("held %d, used %d", a.Held(), b.Used())
	}
	a.Release(1<<20 + 100)
	other.Release(512 << 10)
	if a.Held() != 0 || b.Used() != 0 {
		t.Fatalf("after release: held %d, used %d", a.Held(), b.Used())
	}
	// A refusal by the budget leaves the account as it was.
	small := NewBudget(1000)
	c := NewAccount(small, 0)
	if c.Reserve(1001) || c.Held() != 0 || small.Used() != 0 {
		t.Fatalf("refused reservation left held %d, used %d", c.Held(), small.Used())
	}
}

// TestBudgetRandomizedNeverLeaksOrOverruns: goroutines reserve and release random amounts on accounts of
// one budget; usage never exceeds the limit (except by forced bytes), and everything comes back.
func TestBudgetRandomizedNeverLeaksOrOverruns(t *testing.T) {
	const limit = 4 << 20
	b := NewBudget(limit)
	var forced atomic.Int64
	var over atomic.Bool
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 7))
			a := NewAccount(b, 2<<20)
			var held []int
			for i := 0; i < 20000; i++ {
				switch {
				case r.IntN(3) == 0 && len(held) > 0:
					j := r.IntN(len(held))
					n := held[j]
					held[j] = held[len(held)-1]
					held = held[:len(held)-1]
					if n < 0 {
						forced.Add(int64(n))
						n = -n
					}
					a.Release(n)
				case r.IntN(50) == 0:
					n := 1 + r.IntN(512)
					a.Force(n)
					forced.Add(int64(n))
					held = append(held, -n)
				default:
					n := 1 + r.IntN(256<<10)
					if a.Reserve(n) {
						held = append(held, n)
					}
				}
				if b.Used()-forced.Load() > limit {
					over.Store(true)
				}
			}
			for _, n := range held {
				if n < 0 {
					forced.Add(int64(n))
					n = -n
				}
				a.Release(n)
			}
			if a.Held() != 0 {
				t.Errorf("account holds %d after releasing everything", a.Held())
			}
		}(uint64(g))
	}
	wg.Wait()
	if over.Load() {
		t.Error("usage went over the limit")
	}
	if b.Used() != 0 {
		t.Fatalf("budget leaked %d bytes", b.Used())
	}
	if b.Refused() == 0 {
		t.Fatal("no reservation was ever refused: the test did not load the budget")
	}
}

func TestBudgetOnLowAfterAHighWaterMark(t *testing.T) {
	b := NewBudget(1 << 20)
	now := time.Unix(1000, 0)
	b.now = func() time.Time { return now }
	calls := make(chan struct{}, 4)
	b.OnLow = func() { calls <- struct{}{} }
	b.Reserve(100 << 10) // below an eighth: releasing it is not a trim
	b.Release(100 << 10)
	b.Reserve(600 << 10)
	b.Release(500 << 10) // 100 KiB left: above a sixteenth
	select {
	case <-calls:
		t.Fatal("OnLow before usage fell to a sixteenth")
	default:
	}
	b.Release(100 << 10)
	select {
	case <-calls:
	case <-time.After(10 * time.Second):
		t.Fatal("OnLow not called after usage fell from 600 KiB to 0")
	}
	b.Reserve(600 << 10)
	b.Release(600 << 10) // within TrimEvery of the last call
	now = now.Add(TrimEvery)
	b.Reserve(600 << 10)
	b.Release(600 << 10)
	select {
	case <-calls:
	case <-time.After(10 * time.Second):
		t.Fatal("OnLow not called again after TrimEvery")
	}
	if len(calls) != 0 {
		t.Fatal("OnLow called more than once within TrimEvery")
	}
}
