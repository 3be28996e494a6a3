package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/membership"
)

// TestVnodesRetireOnlyOffTheCluster: a hint scan's plan to retire a node's empty vnodes (a node that is no
// member of the state the plan was made from) is carried out only while the node still is no member and
// is not joining a cluster. A joining node adopts the seed's state, where it is no member yet, before its
// join is staged and committed: its vnodes retired one by one while the committed ring already named them,
// and writes right after the cluster formed went to dead letters and timed out (seen in CI).
func TestVnodesRetireOnlyOffTheCluster(t *testing.T) {
	n := startTestNode(t, nil)
	ctx := context.Background()
	rt := n.svcByName["kv"]
	var all []slot
	for p := range n.cfg.Q {
		all = append(all, slot{Service: "kv", Partition: p})
	}
	running := func() int { return len(rt.vnodes.Partitions()) }
	if got := running(); got != n.cfg.Q {
		t.Fatalf("%d vnodes running, want %d", got, n.cfg.Q)
	}

	// A plan made from an earlier state, carried out while the node's state names it a member: nothing
	// retires.
	n.retireVnodes(ctx, all)
	if got := running(); got != n.cfg.Q {
		t.Fatalf("a member retired its vnodes: %d of %d running", got, n.cfg.Q)
	}

	// A join in progress: the node holds a state of the cluster in which it is no member (yet).
	cur := n.state()
	// NB: only membership of the cluster being joined ends a join, so the states this test installs (of
	// the node's own cluster id) cannot end it early.
	n.cl.joining.Store(&joinAttempt{at: n.now(), cluster: "being-joined"})
	x := membership.Member{Name: "x@127.0.0.1", RPCAddr: "127.0.0.1:1", MemcacheAddr: "127.0.0.1:2", TransportAddr: "127.0.0.1:3"}
	other, err := membership.NewClusterState(cur.Cluster, x, cur.Ring.Q(), cur.N)
	for port := 4; err == nil && other.Version <= cur.Version; port++ {
		x.RPCAddr = fmt.Sprintf("127.0.0.1:%d", port) // each update is a new version
		other, err = other.UpdateMember(x)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !n.cl.gossip.Propose(other) {
		t.Fatal("the state without this node was not installed")
	}
	if _, member := n.state().Member(n.self()); member {
		t.Fatal("still a member")
	}
	n.retireVnodes(ctx, all)
	if got := running(); got != n.cfg.Q {
		t.Fatalf("a joining node retired its vnodes: %d of %d running", got, n.cfg.Q)
	}

	// No join any more (it failed, or was cleared): a node off the cluster retires its empty vnodes.
	n.cl.joining.Store(nil)
	n.retireVnodes(ctx, all)
	eventually.True(t, 10*time.Second, "every vnode retired", func() bool { return running() == 0 })
}
