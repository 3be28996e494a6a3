package vnode_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// gateCmd blocks its vnode until gate is closed, then answers "done".
type gateCmd struct{ gate chan struct{} }

// pingCmd answers "pong".
type pingCmd struct{}

// gateVnode handles gateCmd and pingCmd.
type gateVnode struct{ env vnode.Env }

func (b *gateVnode) Init(env vnode.Env) error { b.env = env; return nil }
func (b *gateVnode) HandleCommand(cmd any, _ vnode.Sender) vnode.Result {
	switch m := cmd.(type) {
	case *gateCmd:
		<-m.gate
		return vnode.Reply("done")
	case *pingCmd:
		return vnode.Reply("pong")
	}
	return vnode.NoReply()
}
func (b *gateVnode) HandoffFold(func(key, value []byte) error) error { return nil }
func (b *gateVnode) EncodeHandoffItem(key, value []byte) ([]byte, error) {
	return nil, errors.New("gate: no handoff")
}
func (b *gateVnode) HandleHandoffData([]byte) error { return errors.New("gate: no handoff") }
func (b *gateVnode) IsEmpty() (bool, error)         { return true, nil }
func (b *gateVnode) Delete() error                  { return nil }
func (b *gateVnode) Terminate(any)                  {}

// TestObserveAndMailboxDepth: ManagerConfig.Observe is told of each command with the time the vnode spent
// on it by the manager's clock, and MailboxDepth counts the commands waiting behind a busy vnode (and
// none once it drained).
func TestObserveAndMailboxDepth(t *testing.T) {
	var mu sync.Mutex
	type seen struct {
		cmd  any
		took time.Duration
	}
	var got []seen
	clock := time.Unix(0, 0)
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Millisecond)
		return clock
	}
	m := startManager(t, storage.NewMemory(), vnode.ManagerConfig{Partitions: []int{0, 1},
		Factory: func() vnode.Behaviour { return &gateVnode{} }, Now: now,
		Observe: func(cmd any, took time.Duration) {
			mu.Lock()
			got = append(got, seen{cmd, took})
			mu.Unlock()
		}})
	if total, deepest := m.MailboxDepth(); total != 0 || deepest != 0 {
		t.Fatalf("idle vnodes: mailbox depth %d, deepest %d", total, deepest)
	}
	if res := ask(t, m, 1, &pingCmd{}); res != "pong" {
		t.Fatalf("ping: %v", res)
	}
	// NB: the reply leaves inside the command, before the vnode observes it: wait for the observation.
	eventually.True(t, 5*time.Second, "the ping observed", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) > 0 })
	mu.Lock()
	if len(got) != 1 || got[0].took != time.Millisecond {
		t.Fatalf("observed %+v, want one command that took one clock step", got)
	}
	if _, ok := got[0].cmd.(*pingCmd); !ok {
		t.Fatalf("observed %T, want *pingCmd", got[0].cmd)
	}
	mu.Unlock()

	// Block partition 0 and queue five pings behind the gate.
	gate := make(chan struct{})
	sys := m.System()
	blocked := make(chan any, 1)
	go func() {
		res, _ := actors.Request(context.Background(), sys, m.PID(0), &gateCmd{gate: gate}, 10*time.Second)
		blocked <- res
	}()
	eventually.True(t, 5*time.Second, "the gate command is being handled", func() bool {
		sys.Root.Send(m.PID(0), &pingCmd{})
		total, _ := m.MailboxDepth()
		return total >= 5
	})
	total, deepest := m.MailboxDepth()
	if deepest != total {
		t.Fatalf("only partition 0 is busy: depth %d, deepest %d", total, deepest)
	}
	close(gate)
	if res := <-blocked; res != "done" {
		t.Fatalf("gate command answered %v", res)
	}
	eventually.True(t, 5*time.Second, "the queue drains", func() bool { total, _ := m.MailboxDepth(); return total == 0 })
}

// TestObserveEvery: every command is observed, one in every ObserveEvery of a vnode timed (the others
// carry -1).
func TestObserveEvery(t *testing.T) {
	var mu sync.Mutex
	var took []time.Duration
	m := startManager(t, storage.NewMemory(), vnode.ManagerConfig{Partitions: []int{0},
		Factory: func() vnode.Behaviour { return &gateVnode{} }, ObserveEvery: 3,
		Observe: func(_ any, d time.Duration) {
			mu.Lock()
			took = append(took, d)
			mu.Unlock()
		}})
	for range 7 {
		if res := ask(t, m, 0, &pingCmd{}); res != "pong" {
			t.Fatalf("ping: %v", res)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var timed []int
	for i, d := range took {
		if d >= 0 {
			timed = append(timed, i)
		} else if d != -1 {
			t.Fatalf("command %d: took %v", i, d)
		}
	}
	if len(took) != 7 || len(timed) != 2 || timed[0] != 2 || timed[1] != 5 {
		t.Fatalf("observed %v: timed %v, want 7 observed, the 3rd and 6th timed", took, timed)
	}
}
