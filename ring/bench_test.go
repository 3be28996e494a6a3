package ring

import (
	"fmt"
	"testing"
)

func benchRing(b *testing.B) *Ring {
	r, err := New(1024, 3, names(8))
	if err != nil {
		b.Fatal(err)
	}
	return r
}

func benchKeys() [][]byte {
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "user:%08d", i)
	}
	return keys
}

func BenchmarkPartitionForKey(b *testing.B) {
	r, keys := benchRing(b), benchKeys()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = r.PartitionForKey(keys[i&1023])
		i++
	}
}

func BenchmarkPreflist(b *testing.B) {
	r, keys := benchRing(b), benchKeys()
	down := r.Nodes()[2]
	// Q=64 on 3 nodes misses target_n: the lists of a few partitions skip.
	three, _ := New(64, 3, names(3))
	skip := three.Violations(3)
	if len(skip) == 0 {
		b.Fatal("the 3-node ring meets target_n")
	}
	for _, bc := range []struct {
		name string
		up   func(NodeID) bool
	}{
		{"all_up", nil},
		{"one_node_down", func(n NodeID) bool { return n != down }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_ = r.Preflist(keys[i&1023], 3, bc.up)
				i++
			}
		})
	}
	// The partition walk alone (no key hashing), on a list that skips, all up and one node down.
	for _, bc := range []struct {
		name string
		up   func(NodeID) bool
	}{
		{"skip_all_up", nil},
		{"skip_one_node_down", func(n NodeID) bool { return n != "n01" }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_ = three.PreflistForPartition(skip[i%len(skip)], 3, bc.up)
				i++
			}
		})
	}
}

func BenchmarkClaim(b *testing.B) {
	prev, _ := Claim(1024, 3, names(8), nil)
	for _, bc := range []struct {
		name  string
		nodes []NodeID
	}{
		{"join_8_to_9", names(9)},
		{"leave_8_to_7", names(8)[1:]},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Claim(1024, 3, bc.nodes, prev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
