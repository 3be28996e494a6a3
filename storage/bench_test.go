package storage

import (
	"encoding/binary"
	"sync/atomic"
	"testing"

	"github.com/gokai-kv/gokai/internal/cputime"
)

// Benchmarks of single Puts and Gets of 100-byte values with 16-byte keys.
//
//	go test -run '^$' -bench . -benchtime 200000x ./storage/

func benchBackends(b *testing.B) []struct {
	name string
	open func(b *testing.B) Backend
} {
	return []struct {
		name string
		open func(b *testing.B) Backend
	}{
		{"leveldb", func(b *testing.B) Backend {
			l, err := OpenLevelDB(DefaultLevelDBConfig(b.TempDir())) // Sync false
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = l.Close() })
			return l
		}},
		{"memory", func(b *testing.B) Backend {
			m := NewMemory()
			b.Cleanup(func() { _ = m.Close() })
			return m
		}},
	}
}

func benchKey(buf []byte, i uint64) []byte {
	buf = append(buf[:0], "key-"...)
	buf = binary.BigEndian.AppendUint64(buf, i)
	return append(buf, "-kv"...)
}

func BenchmarkPut(b *testing.B) {
	value := make([]byte, 100)
	for _, bb := range benchBackends(b) {
		b.Run(bb.name, func(b *testing.B) {
			s := bb.open(b)
			var key []byte
			b.ReportAllocs()
			b.SetBytes(int64(len(value)))
			var i uint64
			for b.Loop() {
				key = benchKey(key, i)
				i++
				if err := s.Put(uint32(i%64), key, value); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGet(b *testing.B) {
	const n = 20_000 // keys preloaded (2 MB of values: all in the memtable or cache)
	value := make([]byte, 100)
	for _, bb := range benchBackends(b) {
		b.Run(bb.name, func(b *testing.B) {
			s := bb.open(b)
			var key []byte
			for i := range uint64(n) {
				key = benchKey(key, i)
				if err := s.Put(uint32(i%64), key, value); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(value)))
			var i uint64
			for b.Loop() {
				k := i % n
				key = benchKey(key, k)
				i++
				if v, err := s.Get(uint32(k%64), key); err != nil || len(v) != len(value) {
					b.Fatalf("get: %d bytes, %v", len(v), err)
				}
			}
		})
	}
}

// BenchmarkPutParallel is BenchmarkPut from 50 goroutines at once (the memcache face's connections), with
// the process's CPU time per put (cpu-ns/op), which the machine's other load moves less than ns/op: the
// group commit (commit.go) merges their writes into shared goleveldb batches.
func BenchmarkPutParallel(b *testing.B) {
	value := make([]byte, 100)
	for _, bb := range benchBackends(b) {
		b.Run(bb.name, func(b *testing.B) {
			s := bb.open(b)
			var next atomic.Uint64
			b.ReportAllocs()
			b.SetBytes(int64(len(value)))
			b.SetParallelism(25) // NB: times GOMAXPROCS (2 here): 50 writers
			cpu0 := cputime.Process()
			b.RunParallel(func(pb *testing.PB) {
				var key []byte
				for pb.Next() {
					i := next.Add(1)
					key = benchKey(key, i)
					if err := s.Put(uint32(i%64), key, value); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
