package kv

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/gokai-kv/gokai/protocol/memcache"
	rpc "github.com/gokai-kv/gokai/protocol/msgpackrpc"
	"github.com/gokai-kv/gokai/service"
)

// TestTooManySiblingsReachesClientsAsItsOwnCode: KV's own error keeps its code and message on both faces;
// every other error is the runtime's (service.Classify).
func TestTooManySiblingsReachesClientsAsItsOwnCode(t *testing.T) {
	err := fmt.Errorf("%w: vnode: 101 > 100", ErrTooManySiblings)
	var re *rpc.Error
	if !errors.As(rpcError(err), &re) || re.Code != rpc.CodeTooManySiblings || !strings.Contains(re.Message, "max-siblings") {
		t.Fatalf("rpcError = %+v", re)
	}
	if got := string(memcache.ReplyFor(memcacheError(err))); got != "SERVER_ERROR "+msgSiblings+"\r\n" {
		t.Fatalf("memcache reply %q", got)
	}
	if !errors.As(rpcError(errors.New("/secret/path: boom")), &re) || re.Code != rpc.CodeInternal || strings.Contains(re.Message, "/") {
		t.Fatalf("another error: %+v", re)
	}
	if memcacheError(nil) != nil {
		t.Fatal("nil is an error")
	}
}

func TestOptions(t *testing.T) {
	if err := DefaultOptions().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		mod  func(*Options)
		want string
	}{
		{func(o *Options) { o.DeleteMode = "shred" }, `DeleteMode "shred"`},
		{func(o *Options) { o.DeleteMode, o.ReapDelay = "reap", 0 }, "ReapDelay"},
		{func(o *Options) { o.ObjectCacheMiB = -1 }, "object-cache-mib -1"},
		{func(o *Options) { o.VclockSmall, o.VclockBig = 10, 5 }, "small=10 big=5"},
	} {
		o := DefaultOptions()
		tc.mod(&o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error naming %q, got %v", tc.want, err)
		}
		if err := service.CheckAll([]service.Service{Service(o)}); err == nil {
			t.Errorf("%q: the service's check let it through", tc.want)
		}
	}
	// Flags of the same names as before services, into the options.
	o := DefaultOptions()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	o.Bind(fs)
	if err := fs.Parse([]string{"-lww", "-max-siblings", "7", "-delete-mode", "reap", "-object-cache-mib", "64"}); err != nil {
		t.Fatal(err)
	}
	cfg := o.Config(16)
	if !cfg.LWW || cfg.MaxSiblings != 7 || cfg.DeleteMode != DeleteReap || cfg.CacheBytes != 4<<20 {
		t.Fatalf("config from flags: %+v", cfg)
	}
}

func TestServiceDescription(t *testing.T) {
	s := Service(DefaultOptions())
	if err := service.CheckAll([]service.Service{s}); err != nil {
		t.Fatal(err)
	}
	if s.ID != 0 || s.SupervisorName() != "vnode-sup" || !s.Default {
		t.Fatalf("KV keeps key space 0, vnode-sup and the unprefixed methods: %+v", s)
	}
	if n, err := s.Rehome.Dropped(&DropReply{Dropped: 3}); n != 3 || err != nil {
		t.Fatalf("Dropped = %d, %v", n, err)
	}
	if _, err := s.Rehome.Dropped(&DropReply{Err: "disk"}); err == nil {
		t.Fatal("a failed drop read as a success")
	}
	if _, err := s.Rehome.Dropped(&GetReply{}); err == nil {
		t.Fatal("another reply read as a drop's")
	}
	if d, ok := s.Rehome.Drop([][]byte{[]byte("k")}, [][]byte{[]byte("o")}).(*DropRequest); !ok || len(d.Keys) != 1 || len(d.Objects) != 1 {
		t.Fatalf("Drop = %#v", d)
	}
}
