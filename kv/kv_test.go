package kv

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

func TestKVHandoffRoundTripMergesWithoutLosingNewerVersions(t *testing.T) {
	src, dst := storage.NewMemory(), storage.NewMemory()
	now := func() time.Time { return time.Unix(1700000000, 0) }
	a := NewVnode(DefaultConfig())().(*Vnode)
	b := NewVnode(DefaultConfig())().(*Vnode)
	if err := a.Init(vnode.Env{Node: "a", Partition: 3, Store: storage.Partition{Backend: src, ID: 3}, Logger: slog.Default(), Now: now}); err != nil {
		t.Fatal(err)
	}
	if err := b.Init(vnode.Env{Node: "b", Partition: 3, Store: storage.Partition{Backend: dst, ID: 3}, Logger: slog.Default(), Now: now}); err != nil {
		t.Fatal(err)
	}
	put := func(kv *Vnode, key, val string, ctx VClock) *Object {
		rep := kv.HandleCommand(&PutRequest{V: 1, Key: []byte(key), Coordinate: true, Context: ctx, Blind: ctx == nil, Value: []byte(val)}, vnode.Sender{}).Reply().(*PutReply)
		if rep.Err != "" {
			t.Fatal(rep.Err)
		}
		return rep.Object
	}
	old := put(a, "x", "old", nil)
	put(a, "y", "only-at-source", nil)
	// The destination already has a newer version of x (it saw old and wrote over it).
	b.HandleCommand(&PutRequest{V: 1, Key: []byte("x"), Object: old}, vnode.Sender{})
	newer := put(b, "x", "newer", old.Clock)
	if empty, _ := a.IsEmpty(); empty {
		t.Fatal("source must not be empty")
	}
	err := a.HandoffFold(func(k, v []byte) error {
		item, err := a.EncodeHandoffItem(k, v)
		if err != nil {
			return err
		}
		return b.HandleHandoffData(item)
	})
	if err != nil {
		t.Fatal(err)
	}
	x := b.HandleCommand(&GetRequest{V: 1, Key: []byte("x")}, vnode.Sender{}).Reply().(*GetReply).Object
	if !x.Equal(newer) {
		t.Fatalf("handoff overwrote a newer version: %+v", x)
	}
	y := b.HandleCommand(&GetRequest{V: 1, Key: []byte("y")}, vnode.Sender{}).Reply().(*GetReply).Object
	if y == nil || string(y.Siblings[0].Value) != "only-at-source" {
		t.Fatalf("y not handed off: %+v", y)
	}
	if err := a.Delete(); err != nil {
		t.Fatal(err)
	}
	if empty, _ := a.IsEmpty(); !empty {
		t.Fatal("source not empty after Delete")
	}
	for _, bad := range [][]byte{nil, {0x92}, {0x92, 0xc4, 0xff}, {0x92, 0xc6, 0xff, 0xff, 0xff, 0xff}, {0x91, 0xc4, 0}} {
		if err := b.HandleHandoffData(bad); err == nil {
			t.Fatalf("bad handoff item %x accepted", bad)
		}
	}
}

func TestReapedKeyNeverReusesADot(t *testing.T) {
	db := storage.NewMemory()
	now := func() time.Time { return time.Unix(1700000000, 0) }
	env := vnode.Env{Node: "a", Partition: 1, Store: storage.Partition{Backend: db, ID: 1}, Logger: slog.Default(), Now: now}
	kv := NewVnode(DefaultConfig())().(*Vnode)
	if err := kv.Init(env); err != nil {
		t.Fatal(err)
	}
	put := func(kv *Vnode, val string, ctx VClock, del bool) *Object {
		rep := kv.HandleCommand(&PutRequest{V: 1, Key: []byte("k"), Coordinate: true, Context: ctx, Blind: ctx == nil,
			Value: []byte(val), Meta: Meta{Deleted: del}}, vnode.Sender{}).Reply().(*PutReply)
		if rep.Err != "" {
			t.Fatal(rep.Err)
		}
		return rep.Object
	}
	first := put(kv, "v1", nil, false)
	tomb := put(kv, "", first.Clock, true)
	// A replica elsewhere still holds the tombstone's clock (it missed the reap).
	stale := tomb
	kv.HandleCommand(&ReapRequest{V: 1, Key: []byte("k"), Clock: tomb.Clock}, vnode.Sender{})
	if o := kv.HandleCommand(&GetRequest{V: 1, Key: []byte("k")}, vnode.Sender{}).Reply().(*GetReply).Object; o != nil {
		t.Fatalf("not reaped: %v", o)
	}
	// The vnode restarts (fresh behaviour value, same storage) and takes a new blind write for the key.
	kv2 := NewVnode(DefaultConfig())().(*Vnode)
	if err := kv2.Init(env); err != nil {
		t.Fatal(err)
	}
	fresh := put(kv2, "v2", nil, false)
	if stale.Clock.Covers(fresh.Siblings[0].Dot) {
		t.Fatalf("new write's dot %v is covered by the old clock %v: it would be lost", fresh.Siblings[0].Dot, stale.Clock)
	}
	merged := Sync(stale, fresh, false)
	if live := merged.Live(now().Unix()); len(live) != 1 || string(live[0].Value) != "v2" {
		t.Fatalf("merge with the stale replica lost the new write: %v", live)
	}
}

// TestStoredObjectsSurviveTheReusedEncodingBuffer: a vnode encodes every object it stores into one buffer
// (Vnode.enc) that storage copies; objects stored one after the other, of sizes growing and shrinking,
// must each read back from storage (past the cache) as stored, on both backends.
func TestStoredObjectsSurviveTheReusedEncodingBuffer(t *testing.T) {
	ldb, err := storage.OpenLevelDB(storage.DefaultLevelDBConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ldb.Close() })
	for _, be := range []struct {
		name string
		b    storage.Backend
	}{{"memory", storage.NewMemory()}, {"leveldb", ldb}} {
		t.Run(be.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.CacheBytes = 0 // every read decodes what storage holds
			vn := NewVnode(cfg)().(*Vnode)
			env := vnode.Env{Node: "a", Partition: 5, Store: storage.Partition{Backend: be.b, ID: 5}, Logger: slog.Default(),
				Now: func() time.Time { return time.Unix(1700000000, 0) }}
			if err := vn.Init(env); err != nil {
				t.Fatal(err)
			}
			sizes := []int{300, 10, 5000, 1, 70 << 10, 20, 2000}
			want := map[string]*Object{}
			for i, n := range sizes {
				key := []byte{'k', byte('0' + i)}
				val := make([]byte, n)
				for j := range val {
					val[j] = byte(i*31 + j)
				}
				rep := vn.HandleCommand(&PutRequest{V: 1, Key: key, Coordinate: true, Blind: true, Value: val}, vnode.Sender{}).Reply().(*PutReply)
				if rep.Err != "" {
					t.Fatal(rep.Err)
				}
				want[string(key)] = rep.Object
			}
			for key, o := range want {
				got := vn.HandleCommand(&GetRequest{V: 1, Key: []byte(key)}, vnode.Sender{}).Reply().(*GetReply)
				if got.Err != "" || !got.Object.Equal(o) || !bytes.Equal(got.Object.Siblings[0].Value, o.Siblings[0].Value) {
					t.Fatalf("%s: read back %+v (%s), stored %+v", key, got.Object, got.Err, o)
				}
			}
		})
	}
}
