package actors

import (
	"context"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/eventually"
)

// TestPing: a node's ping actor answers over the transport; a killed node's does not, within the timeout.
func TestPing(t *testing.T) {
	localNode(t)
	r := local.remote
	n := startNode(t)
	ctx := context.Background()
	// NB: the first message to a node that just started may find no connection yet (a dead letter under a
	// loaded -race run): the first answer is waited for, then every ping must be answered.
	eventually.NoError(t, 10*time.Second, "the first ping of a live node", func() error { return r.Ping(ctx, n.addr, 5*time.Second) })
	for i := range 3 {
		if err := r.Ping(ctx, n.addr, 10*time.Second); err != nil {
			t.Fatalf("ping %d of a live node: %v", i, err)
		}
	}
	if err := r.Ping(ctx, r.Address(), time.Second); err != nil {
		t.Fatalf("ping of the node itself: %v", err)
	}
	if err := n.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-n.done
	if err := r.Ping(ctx, n.addr, 500*time.Millisecond); err == nil {
		t.Fatal("a killed node answered a ping")
	}
}
