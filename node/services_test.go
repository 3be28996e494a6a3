package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/client"
	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/kv"
	"github.com/gokai-kv/gokai/service"
	"github.com/gokai-kv/gokai/storage"
)

func startKVAndReg(t *testing.T, mod func(*Config)) *Node {
	t.Helper()
	return startTestNodeWith(t, mod, nil, WithService(kv.Service(kv.DefaultOptions())), WithService(regService()))
}

// TestTwoServicesOnANode runs KV and a second service on one node: each serves its own methods (KV's also
// without its name space), the same key in both holds each service's own data in its own key space, each
// has its own vnode supervisor, and a crashing vnode of one restarts alone, its data kept, while the other
// service's vnode of the same partition never notices.
func TestTwoServicesOnANode(t *testing.T) {
	n := startKVAndReg(t, nil)
	c := rpcTestClient(t, n)
	ctx := context.Background()
	key := []byte("shared")
	if err := c.Call(ctx, "put", []any{key, []byte("kv value"), nil, map[string]any{}}, nil, false); err != nil {
		t.Fatal(err)
	}
	if err := c.Call(ctx, "reg.put", []any{key, 42}, nil, false); err != nil {
		t.Fatal(err)
	}
	if got := rpcValues(t, c, "shared"); !slices.Equal(got, []string{"kv value"}) {
		t.Fatalf("KV's get: %q", got)
	}
	var viaNS struct {
		Values [][]byte `msgpack:"values"`
	}
	if err := c.Call(ctx, "kv.get", []any{key, map[string]any{}}, &viaNS, true); err != nil || len(viaNS.Values) != 1 {
		t.Fatalf("kv.get: %v %q", err, viaNS.Values)
	}
	var v uint64
	if err := c.Call(ctx, "reg.get", []any{key}, &v, true); err != nil || v != 42 {
		t.Fatalf("reg.get: %d %v", v, err)
	}
	if err := c.Call(ctx, "reg.nope", nil, nil, true); err == nil {
		t.Fatal("an unknown method of the service answered")
	}
	if err := c.Call(ctx, "reg.get", []any{[]byte("kv only")}, nil, true); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("reg.get of a key only KV holds: %v", err)
	}

	// Storage: the key's partitions (its N replicas, on one node N vnodes) hold KV's object in key space 0
	// and reg's value in key space 7.
	p := n.Ring().PartitionForKey(key)
	var replicas []uint32
	for _, e := range n.Ring().Preflist(key, 3, nil) {
		replicas = append(replicas, uint32(e.Partition))
	}
	slices.Sort(replicas)
	kvSpace, regSpace := storage.KeySpace{Backend: n.Backend(), Space: 0}, storage.KeySpace{Backend: n.Backend(), Space: 7}
	if _, err := kvSpace.Get(uint32(p), append([]byte{'k'}, key...)); err != nil {
		t.Fatalf("KV's object in key space 0: %v", err)
	}
	if _, err := kvSpace.Get(uint32(p), key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("reg's value leaked into key space 0: %v", err)
	}
	if raw, err := regSpace.Get(uint32(p), key); err != nil || len(raw) != 8 || raw[7] != 42 {
		t.Fatalf("reg's value in key space 7: %x %v", raw, err)
	}
	// NB: the put was answered after W=2 replicas; the third may still be writing.
	eventually.NoError(t, 10*time.Second, "reg's value on its three replicas", func() error {
		regParts, err := regSpace.Partitions()
		if err != nil || !slices.Equal(regParts, replicas) {
			return fmt.Errorf("reg's partitions with data: %v %v, want %v", regParts, err, replicas)
		}
		return nil
	})

	// Supervision: one subtree per service; a crash of reg's vnode touches nothing of KV's.
	if id := n.Vnodes("reg").PID(p).Id; id != "vnode-sup-reg/vnode-"+strconv.Itoa(p) {
		t.Fatalf("reg's vnode is %s", id)
	}
	if id := n.Vnodes("kv").PID(p).Id; id != "vnode-sup/vnode-"+strconv.Itoa(p) {
		t.Fatalf("KV's vnode is %s", id)
	}
	if err := n.Vnodes("reg").Crash(p, "test: crash reg's vnode"); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 10*time.Second, "reg's vnode restarted", func() bool { return n.Vnodes("reg").Metrics().Restarts() == 1 })
	if err := c.Call(ctx, "reg.get", []any{key}, &v, true); err != nil || v != 42 {
		t.Fatalf("reg.get after its vnode's crash: %d %v", v, err)
	}
	if got := n.Vnodes("kv").Metrics().Restarts(); got != 0 {
		t.Fatalf("KV's vnodes restarted %d times for reg's crash", got)
	}
	if got := rpcValues(t, c, "shared"); !slices.Equal(got, []string{"kv value"}) {
		t.Fatalf("KV's get after reg's crash: %q", got)
	}
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if vn, _ := st.Int("gokai_vnodes"); vn != 2*16 {
		t.Fatalf("gokai_vnodes = %d, want both services' 16", vn)
	}
}

// TestKVDataDirFromBeforeServicesReadsUnchanged starts a node on a data dir written by gokai before
// services existed (testdata/kv-data-before-services: one node, q=16, keys written over msgpack-RPC with
// the gokai binary of then): KV, in key space 0, reads every key as it was written, siblings, flags and
// tombstone included, and writes over their contexts; a second service started on it sees none of it.
func TestKVDataDirFromBeforeServicesReadsUnchanged(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/kv-data-before-services")); err != nil {
		t.Fatal(err)
	}
	n := startKVAndReg(t, func(c *Config) { c.DataDir, c.Name = dir, "fixture@127.0.0.1" })
	kc := kvCoord(t, n)
	ctx := context.Background()
	values := func(key string) []string {
		t.Helper()
		o, err := kc.Get(ctx, []byte(key), coordinator.ReadOptions{})
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		return liveValues(o)
	}
	for i := range 10 {
		k, want := "before-"+strconv.Itoa(i), "value-"+strconv.Itoa(i)
		if got := values(k); !slices.Equal(got, []string{want}) {
			t.Fatalf("%s = %q, want %q", k, got, want)
		}
	}
	o, err := kc.Get(ctx, []byte("flagged"), coordinator.ReadOptions{})
	if err != nil || o == nil || len(o.Siblings) != 1 || o.Siblings[0].Meta.Flags != 5 {
		t.Fatalf("flagged: %+v %v", o, err)
	}
	if got := values("gone"); len(got) != 0 {
		t.Fatalf("the deleted key reads %q", got)
	}
	sib, err := kc.Get(ctx, []byte("siblings"), coordinator.ReadOptions{})
	if err != nil || !slices.Equal(liveValues(sib), []string{"one", "two"}) {
		t.Fatalf("siblings: %v %v", liveValues(sib), err)
	}
	// A write with the read's context supersedes exactly those siblings: the stored clocks read back.
	if _, err := kc.Put(ctx, []byte("siblings"), []byte("merged"), kv.Meta{}, sib.Clock, false, coordinator.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := values("siblings"); !slices.Equal(got, []string{"merged"}) {
		t.Fatalf("after a write over the siblings' context: %q", got)
	}
	regParts, err := storage.KeySpace{Backend: n.Backend(), Space: 7}.Partitions()
	if err != nil || len(regParts) != 0 {
		t.Fatalf("the second service sees data in the old dir: %v %v", regParts, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "leveldb", "CURRENT")); err != nil {
		t.Fatal(err)
	}
}

// liveValues lists the live sibling values of o, sorted.
func liveValues(o *kv.Object) []string {
	var out []string
	if o != nil {
		for _, s := range o.Live(time.Now().Unix()) {
			out = append(out, string(s.Value))
		}
	}
	slices.Sort(out)
	return out
}

// TestNewChecksServices: a node needs a service, services whose wire codes collide are refused when the
// node is built, and a service's methods may not shadow the node's own or each other.
func TestNewChecksServices(t *testing.T) {
	cfg := Default()
	cfg.DataDir = t.TempDir()
	if _, err := New(cfg, nil, nil); err == nil || !strings.Contains(err.Error(), "at least one service") {
		t.Fatalf("New without a service: %v", err)
	}
	clash := regService()
	clash.Name, clash.ID = "clash", 8
	clash.Wire = []service.Wire{{Code: 65200, New: func() any { return &regWrite{} }}} // reg's read has 65200
	if _, err := New(cfg, nil, nil, WithService(regService()), WithService(clash)); err == nil || !strings.Contains(err.Error(), "65200") {
		t.Fatalf("colliding wire codes: %v", err)
	}

	noop := service.Method{Call: func(context.Context, []any) (any, error) { return nil, nil }}
	inst := func(names ...string) *service.Instance {
		m := map[string]service.Method{}
		for _, n := range names {
			m[n] = noop
		}
		return &service.Instance{Methods: m}
	}
	methods := map[string]service.Method{}
	if err := addMethods(methods, service.Service{Name: "kv", Default: true}, inst("get", "put")); err != nil {
		t.Fatal(err)
	}
	if err := addMethods(methods, service.Service{Name: "reg"}, inst("get")); err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range methods {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"get", "kv.get", "kv.put", "put", "reg.get"}; !slices.Equal(names, want) {
		t.Fatalf("methods %v, want %v", names, want)
	}
	for _, tc := range []struct {
		svc  service.Service
		inst *service.Instance
		want string
	}{
		{service.Service{Name: "x", Default: true}, inst("stats"), "one of the node's"},
		{service.Service{Name: "y", Default: true}, inst("get"), "twice"},
		{service.Service{Name: "z"}, inst("Bad.Name"), "valid name"},
	} {
		if err := addMethods(map[string]service.Method{"get": noop}, tc.svc, tc.inst); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.svc.Name, err, tc.want)
		}
	}
}
