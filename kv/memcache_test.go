package kv

import (
	"math/rand"
	"reflect"
	"testing"

	"github.com/gokai-kv/gokai/protocol/memcache"
)

// TestToEntryContextOnlyWhenAsked: an Entry without the context (a plain get) is the Entry with it, but for
// Context; with it, Context is the object's clock as written over. Random objects: tombstones, expired and
// live siblings.
func TestToEntryContextOnlyWhenAsked(t *testing.T) {
	rng := rand.New(rand.NewSource(16))
	for i := range 500 {
		o := objRandomObject(rng)
		with, err := ToEntry(o, 1_700_000_000, memcache.Read{Context: true})
		if err != nil {
			t.Fatal(err)
		}
		without, err := ToEntry(o, 1_700_000_000, memcache.Read{})
		if err != nil {
			t.Fatal(err)
		}
		clock, _ := o.Clock.MarshalBinary()
		if string(with.Context) != string(clock) {
			t.Fatalf("object %d: context %x, want the clock %x", i, with.Context, clock)
		}
		if without.Context != nil {
			t.Fatalf("object %d: a read that asked for no context got %x", i, without.Context)
		}
		with.Context = nil
		if !reflect.DeepEqual(with, without) {
			t.Fatalf("object %d: entries differ beyond the context:\n%+v\n%+v", i, with, without)
		}
	}
}

func BenchmarkToEntry(b *testing.B) {
	o := objBenchObject()
	for _, bc := range []struct {
		name string
		want memcache.Read
	}{{"get", memcache.Read{}}, {"context", memcache.Read{Context: true}}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ToEntry(o, 1, bc.want); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
