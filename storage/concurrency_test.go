package storage

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// TestConcurrentPartitions runs several writer goroutines, each the only user
// of its own partitions (as vnodes are), beside readers that list partitions
// and fold any partition. Run it under -race. Each writer checks its
// partitions against a model as it goes and at the end.
func TestConcurrentPartitions(t *testing.T) {
	const writers, steps = 6, 250
	for _, f := range factories() {
		t.Run(f.name, func(t *testing.T) {
			b := f.open(t)
			done := make(chan struct{})
			var readers sync.WaitGroup
			for r := range 2 {
				readers.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(r), 99))
					for {
						select {
						case <-done:
							return
						default:
						}
						p := uint32(rng.IntN(writers))
						if rng.IntN(2) == 0 {
							p = maxP - p
						}
						if _, err := b.Partitions(); err != nil {
							t.Error(err)
							return
						}
						if _, err := b.IsEmpty(p); err != nil {
							t.Error(err)
							return
						}
						if err := b.Fold(p, func(_, _ []byte) error { return nil }); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}

			models := make([]map[uint32]map[string]string, writers)
			var ws sync.WaitGroup
			for w := range writers {
				ws.Go(func() {
					models[w] = runWriter(t, b, w, steps)
				})
			}
			ws.Wait()
			close(done)
			readers.Wait()

			var wantParts []uint32
			for w := range writers {
				for p, m := range models[w] {
					checkModel(t, b, p, m)
					if len(m) > 0 {
						wantParts = append(wantParts, p)
					}
				}
			}
			slices.Sort(wantParts)
			wantPartitions(t, b, wantParts...)
		})
	}
}

// runWriter performs random operations on partitions w and maxP-w, mirroring
// them in a model that it returns.
func runWriter(t *testing.T, b Backend, w, steps int) map[uint32]map[string]string {
	rng := rand.New(rand.NewPCG(uint64(w), 7))
	model := map[uint32]map[string]string{uint32(w): {}, maxP - uint32(w): {}}
	key := func() string { return fmt.Sprintf("k%02d", rng.IntN(40)) }
	for step := range steps {
		p := uint32(w)
		if rng.IntN(2) == 0 {
			p = maxP - p
		}
		m := model[p]
		var err error
		switch r := rng.IntN(100); {
		case r < 50:
			k, v := key(), fmt.Sprintf("w%d-s%d", w, step)
			err = b.Put(p, []byte(k), []byte(v))
			m[k] = v
		case r < 70:
			k := key()
			err = b.Delete(p, []byte(k))
			delete(m, k)
		case r < 90:
			var ops []Op
			for i := range 1 + rng.IntN(5) {
				k, v := key(), fmt.Sprintf("w%d-s%d-%d", w, step, i)
				if rng.IntN(3) == 0 {
					ops = append(ops, Op{Key: []byte(k), Delete: true})
					delete(m, k)
				} else {
					ops = append(ops, Op{Key: []byte(k), Value: []byte(v)})
					m[k] = v
				}
			}
			err = b.Write(p, ops)
		case r < 92:
			err = b.DropPartition(p)
			clear(m)
		default:
			checkModel(t, b, p, m)
		}
		if err != nil {
			t.Errorf("writer %d step %d: %v", w, step, err)
			return model
		}
	}
	return model
}

// checkModel requires partition p to hold exactly the entries of m.
func checkModel(t *testing.T, b Backend, p uint32, m map[string]string) {
	t.Helper()
	var want []kv
	for _, k := range slices.Sorted(maps.Keys(m)) {
		want = append(want, kv{k, m[k]})
	}
	var got []kv
	if err := b.Fold(p, func(k, v []byte) error {
		got = append(got, kv{string(k), string(v)})
		return nil
	}); err != nil {
		t.Errorf("fold %#x: %v", p, err)
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("partition %#x: got %v, want %v", p, got, want)
	}
}
