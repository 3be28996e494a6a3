package kv

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// TestObjectCacheAgainstModel runs random operations against the cache and a plain map: every hit must
// return what the model holds, the size accounting must match the entries, and the bound must hold.
func TestObjectCacheAgainstModel(t *testing.T) {
	for _, max := range []int{cacheEntryOverhead + 8, 2 << 10, 16 << 10} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(max), 7))
			c := newObjectCache(max)
			model := map[string]*Object{}
			hits := 0
			for i := range 20000 {
				key := []byte(fmt.Sprintf("k%d", rng.IntN(64)))
				switch op := rng.IntN(10); {
				case op < 5:
					v, ok := c.get(key)
					if !ok {
						continue
					}
					hits++
					want, inModel := model[string(key)]
					if !inModel || v != want {
						t.Fatalf("op %d: get %s = %v, model has %v (%v)", i, key, v, want, inModel)
					}
				case op < 8:
					var v *Object
					if rng.IntN(4) > 0 {
						v = &Object{Clock: VClock{{Actor: "a", Counter: 1}},
							Siblings: []Sibling{{Value: bytes.Repeat([]byte{byte(i)}, rng.IntN(300)), Dot: Dot{Actor: "a", Counter: 1}}}}
					}
					c.put(key, v)
					model[string(key)] = v
				case op < 9:
					c.drop(key)
					delete(model, string(key))
				default:
					if rng.IntN(50) == 0 {
						c.clear()
						clear(model)
					}
				}
				size := 0
				for j, e := range c.entries {
					if c.index[e.key] != int32(j) {
						t.Fatalf("op %d: index of %q is %d, entry at %d", i, e.key, c.index[e.key], j)
					}
					if e.cost != entryCost(e.key, e.value) {
						t.Fatalf("op %d: entry %q cost %d, want %d", i, e.key, e.cost, entryCost(e.key, e.value))
					}
					size += e.cost
				}
				if size != c.size || len(c.index) != len(c.entries) {
					t.Fatalf("op %d: size %d counted %d; %d indexed, %d entries", i, c.size, size, len(c.index), len(c.entries))
				}
				if c.size > c.max {
					t.Fatalf("op %d: size %d over max %d", i, c.size, c.max)
				}
			}
			if hits == 0 {
				t.Fatal("no cache hits in 20000 operations")
			}
		})
	}
}

// TestObjectCacheKeepsReferencedEntries checks the CLOCK policy: an entry read since the hand last passed
// survives an eviction that an unread one does not.
func TestObjectCacheKeepsReferencedEntries(t *testing.T) {
	v := &Object{}
	c := newObjectCache(3 * entryCost("a", v))
	c.put([]byte("a"), v)
	c.put([]byte("b"), v)
	c.put([]byte("c"), v)
	for _, k := range []string{"a", "b", "c"} {
		c.entries[c.index[k]].ref = false // as if the hand had passed them all
	}
	c.get([]byte("a"))
	c.put([]byte("d"), v)
	if _, ok := c.get([]byte("a")); !ok {
		t.Fatal("referenced entry a was evicted")
	}
	if _, ok := c.get([]byte("d")); !ok {
		t.Fatal("the entry just written was evicted")
	}
	if _, ok := c.get([]byte("b")); ok {
		t.Fatal("unreferenced entry b survived, c.max exceeded?")
	}
	if c.size > c.max {
		t.Fatalf("size %d > max %d", c.size, c.max)
	}
}

func TestObjectCacheRefusesOversizeEntries(t *testing.T) {
	c := newObjectCache(300)
	big := func(n int) *Object {
		return &Object{Clock: VClock{{Actor: "a", Counter: 1}}, Siblings: []Sibling{{Value: make([]byte, n), Dot: Dot{Actor: "a", Counter: 1}}}}
	}
	c.put([]byte("k"), big(10))
	if _, ok := c.get([]byte("k")); !ok {
		t.Fatal("small entry not cached")
	}
	c.put([]byte("k"), big(500)) // replaces: the stale small entry must go
	if _, ok := c.get([]byte("k")); ok {
		t.Fatal("oversize entry cached, or stale entry kept")
	}
	if c.size != 0 {
		t.Fatalf("size %d after refusing", c.size)
	}
	if newObjectCache(0) != nil {
		t.Fatal("a zero budget must disable the cache")
	}
	var off *objectCache // disabled: every method is a no-op
	off.put([]byte("k"), nil)
	if _, ok := off.get([]byte("k")); ok {
		t.Fatal("disabled cache hit")
	}
	off.drop([]byte("k"))
	off.clear()
}

// TestKVCacheIsTransparent is metamorphic: the same random commands against a KV vnode with a cache and
// one without, each on its own goleveldb, give the same replies, and both stores end up with the same
// objects. The cache is either tiny (constant eviction) or holds every key (stale entries would show).
func TestKVCacheIsTransparent(t *testing.T) {
	for _, size := range []int{2 << 10, 256 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) { testKVCacheIsTransparent(t, size) })
	}
}

func testKVCacheIsTransparent(t *testing.T, cacheBytes int) {
	now := time.Unix(1700000000, 0)
	clock := func() time.Time { return now }
	open := func(cache int) (*Vnode, storage.Partition) {
		db, err := storage.OpenLevelDB(storage.DefaultLevelDBConfig(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		cfg := DefaultConfig()
		cfg.CacheBytes = cache
		kv := NewVnode(cfg)().(*Vnode)
		st := storage.Partition{Backend: db, ID: 5}
		if err := kv.Init(vnode.Env{Node: "n", Partition: 5, Store: st, Logger: slog.Default(), Now: clock}); err != nil {
			t.Fatal(err)
		}
		kv.actor = "n/5/fixed" // both vnodes issue the same dots
		return kv, st
	}
	cached, cachedStore := open(cacheBytes)
	plain, plainStore := open(0)
	if cached.cache == nil || plain.cache != nil {
		t.Fatal("cache configuration not applied")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	peer := map[string]*Object{} // objects "from another replica", for replication and repair writes
	do := func(kv *Vnode, cmd any) any {
		return kv.HandleCommand(cmd, vnode.Sender{}).Reply() // nil for NoReply
	}
	for i := range 3000 {
		key := []byte(fmt.Sprintf("key-%d", rng.IntN(40)))
		var cmd func() any
		switch op := rng.IntN(10); {
		case op < 4:
			cmd = func() any { return &GetRequest{V: 1, Tag: 1, Key: key} }
		case op < 7:
			val := bytes.Repeat([]byte{byte(i)}, 1+rng.IntN(200))
			del := rng.IntN(8) == 0
			cmd = func() any {
				return &PutRequest{V: 1, Key: key, Coordinate: true, Blind: true, Value: val, Meta: Meta{Deleted: del}}
			}
		case op < 9:
			o := peer[string(key)]
			if o == nil {
				continue
			}
			cmd = func() any { return &PutRequest{V: 1, Key: key, Object: o} }
		default:
			now = now.Add(time.Hour)
			got := do(plain, &GetRequest{V: 1, Key: key}).(*GetReply).Object
			if got == nil {
				continue
			}
			cmd = func() any { return &ReapRequest{V: 1, Key: key, Clock: got.Clock} }
		}
		a, b := do(cached, cmd()), do(plain, cmd())
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("op %d: cached vnode replied %v, uncached %v", i, a, b)
		}
		if rep, ok := b.(*PutReply); ok && rep.Object != nil && rng.IntN(2) == 0 {
			peer[string(key)] = rep.Object
		}
	}
	if cached.cache.hits == 0 || cached.cache.misses == 0 {
		t.Fatalf("cache saw %d hits, %d misses: the test does not exercise it", cached.cache.hits, cached.cache.misses)
	}
	dump := func(st storage.Partition) map[string]string {
		out := map[string]string{}
		if err := st.Fold(func(k, v []byte) error {
			if k[0] == nsObject {
				out[string(k)] = string(v)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if a, b := dump(cachedStore), dump(plainStore); fmt.Sprint(a) != fmt.Sprint(b) || len(a) == 0 {
		t.Fatalf("stores differ (%d and %d objects)", len(a), len(b))
	}
	if err := cached.Delete(); err != nil {
		t.Fatal(err)
	}
	for k := range 40 {
		if o := do(cached, &GetRequest{V: 1, Key: []byte(fmt.Sprintf("key-%d", k))}).(*GetReply).Object; o != nil {
			t.Fatalf("key-%d served from the cache after Delete: %v", k, o)
		}
	}
}

// BenchmarkKVGet measures a vnode's read of a present 100-byte key over real goleveldb, from the object
// cache and (cache off) from storage plus a decode.
func BenchmarkKVGet(b *testing.B) {
	for _, tc := range []struct {
		name  string
		cache int
	}{{"cached", 1 << 20}, {"storage", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			db, err := storage.OpenLevelDB(storage.DefaultLevelDBConfig(b.TempDir()))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			cfg := DefaultConfig()
			cfg.CacheBytes = tc.cache
			kv := NewVnode(cfg)().(*Vnode)
			now := func() time.Time { return time.Unix(1700000000, 0) }
			if err := kv.Init(vnode.Env{Node: "n", Partition: 1, Store: storage.Partition{Backend: db, ID: 1}, Logger: slog.Default(), Now: now}); err != nil {
				b.Fatal(err)
			}
			keys := make([][]byte, 1000)
			for i := range keys {
				keys[i] = []byte(fmt.Sprintf("key-%d", i))
				kv.HandleCommand(&PutRequest{V: 1, Key: keys[i], Coordinate: true, Blind: true, Value: make([]byte, 100)}, vnode.Sender{})
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				rep := kv.HandleCommand(&GetRequest{V: 1, Key: keys[i%len(keys)]}, vnode.Sender{}).Reply().(*GetReply)
				if rep.Object == nil {
					b.Fatal("key not found")
				}
			}
		})
	}
}
