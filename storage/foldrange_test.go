package storage

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestFoldRangeMatchesFilteredFold: on every backend, and through a key space, Partition.FoldRange visits
// exactly the keys of [start, end) a full fold would, in order, and stops early on ErrStopFold.
func TestFoldRangeMatchesFilteredFold(t *testing.T) {
	for _, f := range factories() {
		t.Run(f.name, func(t *testing.T) {
			b := f.open(t)
			rng := rand.New(rand.NewPCG(5, 6))
			for p := uint32(0); p < 3; p++ {
				for range 300 {
					mustPut(t, b, p, fmt.Sprintf("%c%03d", 'a'+rng.IntN(4), rng.IntN(1000)), "v")
				}
			}
			views := map[string]Partition{
				"backend": {Backend: b, ID: 1}, "keyspace": {Backend: KeySpace{Backend: b, Space: 0}, ID: 1},
			}
			all := foldAll(t, b, 1)
			for range 100 {
				start := fmt.Sprintf("%c%03d", 'a'+rng.IntN(5), rng.IntN(1000))
				var end []byte
				if rng.IntN(4) != 0 {
					end = fmt.Appendf(nil, "%c%03d", 'a'+rng.IntN(5), rng.IntN(1000))
				}
				var want []kv
				for _, e := range all {
					if e.k >= start && (end == nil || e.k < string(end)) {
						want = append(want, e)
					}
				}
				for name, v := range views {
					var got []kv
					if err := v.FoldRange([]byte(start), end, func(k, val []byte) error {
						got = append(got, kv{string(k), string(val)})
						return nil
					}); err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if !slices.Equal(got, want) {
						t.Fatalf("%s: [%s, %s): %d entries, want %d", name, start, end, len(got), len(want))
					}
				}
			}
			n := 0
			err := Partition{Backend: b, ID: 2}.FoldRange([]byte("b"), nil, func(k, _ []byte) error {
				if k[0] < 'b' {
					t.Fatalf("key %q before the range", k)
				}
				n++
				if n == 3 {
					return ErrStopFold
				}
				return nil
			})
			if err != nil || n != 3 {
				t.Fatalf("stop: err %v after %d entries", err, n)
			}
		})
	}
}
