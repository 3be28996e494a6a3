package actors

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// TestNewSystemShrinksTheRegistry: the registry of a system made by NewSystem has registryBuckets buckets,
// keeps every process protoactor registered at creation, and serves spawns, lookups, stops and requests.
func TestNewSystemShrinksTheRegistry(t *testing.T) {
	count := func(s *actor.ActorSystem) (n int, ids []string) {
		for _, m := range s.ProcessRegistry.LocalPIDs.LocalPIDs {
			n += m.Count()
			ids = append(ids, m.Keys()...)
		}
		return n, ids
	}
	plain := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	defer plain.Shutdown()
	wantN, wantIDs := count(plain)
	if wantN == 0 {
		t.Fatal("a new system registers nothing: the check below would prove nothing")
	}
	sys := NewSystem(slog.New(slog.DiscardHandler))
	defer sys.Shutdown()
	if got := len(sys.ProcessRegistry.LocalPIDs.LocalPIDs); got != registryBuckets {
		t.Fatalf("%d buckets, want %d", got, registryBuckets)
	}
	if n, _ := count(sys); n != wantN {
		t.Fatalf("%d processes registered after the shrink, want the %d of a new system", n, wantN)
	}
	for _, id := range wantIDs {
		p, ok := sys.ProcessRegistry.GetLocal(id)
		if !ok || (id != "deadletter" && p == sys.DeadLetter) {
			t.Fatalf("%s not found after the shrink", id)
		}
	}
	echo := actor.PropsFromFunc(func(c actor.Context) {
		if s, ok := c.Message().(string); ok {
			c.Respond("re:" + s)
		}
	})
	var pids []*actor.PID
	for i := range 200 {
		pid, err := sys.Root.SpawnNamed(echo, fmt.Sprintf("echo%d", i))
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	for i, pid := range pids {
		res, err := Request(context.Background(), sys, pid, fmt.Sprint(i), time.Second)
		if err != nil || res != fmt.Sprintf("re:%d", i) {
			t.Fatalf("echo%d: %v %v", i, res, err)
		}
	}
	for _, pid := range pids {
		if err := sys.Root.StopFuture(pid).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := count(sys); n != wantN {
		t.Fatalf("%d processes registered after stopping every spawned actor, want %d", n, wantN)
	}
}
