package kv

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/ring"
)

// ghostRouter is testRouter with one replica of every key on a node "n2" that cannot be reached: its PID
// names an actor that answers every request with the dead letter gokai's transport sends when it refuses a
// message (actors.Remote: a full peer queue), or one that never answers (a partitioned node). Failure
// reports are recorded.
type ghostRouter struct {
	testRouter
	pid      *actor.PID
	reported chan ring.NodeID
}

func (r ghostRouter) Preflist(key []byte, n int) []ring.PrefEntry {
	pl := r.testRouter.Preflist(key, n)
	pl[len(pl)-1].Node = "n2"
	return pl
}

func (r ghostRouter) VnodePID(node ring.NodeID, p int) *actor.PID {
	if node == "n2" {
		return r.pid
	}
	return r.testRouter.VnodePID(node, p)
}

func (r ghostRouter) ReportFailure(n ring.NodeID) {
	select {
	case r.reported <- n:
	default:
	}
}

func startGhostNode(t *testing.T, silent bool, mod func(*coordinator.Config)) (*testNode, chan ring.NodeID) {
	t.Helper()
	reported := make(chan ring.NodeID, 64)
	n := startNodeDispatch(t, testLogger(t), nil, mod, false, func(n *testNode) coordinator.Router {
		pid := n.system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
			if c.Sender() != nil {
				c.Respond(&actor.DeadLetterResponse{Target: c.Self()})
			}
		}))
		if silent {
			pid = n.system.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {})) // takes requests, never answers
		}
		return ghostRouter{testRouter: testRouter{n}, pid: pid, reported: reported}
	})
	return n, reported
}

// TestRefusedReplicaFailsAtOnce: a replica the transport refuses (a dead letter) is a failure now, not
// silence until the deadline: a write that needs it fails with a quorum error well before its timeout, and
// its node is reported.
func TestRefusedReplicaFailsAtOnce(t *testing.T) {
	n, reported := startGhostNode(t, false, func(c *coordinator.Config) { c.Timeout = time.Hour })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := n.kv.Put(ctx, []byte("k"), []byte("v"), Meta{}, nil, true, coordinator.WriteOptions{W: 3})
	if !errors.Is(err, coordinator.ErrQuorum) || errors.Is(err, coordinator.ErrTimeout) {
		t.Fatalf("put err = %v, want a quorum error that is not a timeout", err)
	}
	if got := <-reported; got != "n2" {
		t.Fatalf("reported %s, want n2", got)
	}
}

// TestSilentReplicaIsReported: a replica that never answers is reported when the request's deadline passes
// (a read that needed it) and when the linger ends (a read that did not).
func TestSilentReplicaIsReported(t *testing.T) {
	n, reported := startGhostNode(t, true, func(c *coordinator.Config) { c.Timeout = 300 * time.Millisecond; c.Linger = 50 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.kv.Get(ctx, []byte("k"), coordinator.ReadOptions{R: 3}); !errors.Is(err, coordinator.ErrTimeout) {
		t.Fatalf("R=3 get err = %v, want a timeout", err)
	}
	select {
	case got := <-reported:
		if got != "n2" {
			t.Fatalf("reported %s, want n2", got)
		}
	case <-ctx.Done():
		t.Fatal("the silent replica's node was not reported after the deadline")
	}
	if _, err := n.kv.Get(ctx, []byte("k"), coordinator.ReadOptions{R: 2}); err != nil {
		t.Fatalf("R=2 get: %v", err)
	}
	select {
	case got := <-reported:
		if got != "n2" {
			t.Fatalf("reported %s, want n2", got)
		}
	case <-ctx.Done():
		t.Fatal("the silent replica's node was not reported after the linger")
	}
}
