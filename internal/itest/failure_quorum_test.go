package itest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/client"
	"github.com/gokai-kv/gokai/internal/eventually"
)

// TestFailureStrictQuorum kills two nodes of 3: a put that asks for two primary acknowledgements (pw=2)
// fails with quorum_failed, while the same put without pw succeeds on the surviving node, whose fallback
// vnodes take the dead primaries' replicas (sloppy quorum).
func TestFailureStrictQuorum(t *testing.T) {
	cl := formFailureCluster(t, fn1, fn2, fn3)
	n1, n2, n3 := cl.nodes[0], cl.nodes[1], cl.nodes[2]
	c1 := cl.cls[n1.name]

	// A key whose three primaries are the three nodes (where the ring repeats a node in a window, n1
	// could count twice toward pw).
	var key string
	var primaries []preflistEntry
	for i := 0; key == ""; i++ {
		if i == 100 {
			t.Fatal("no key with three distinct primaries in 100 tries")
		}
		k := fmt.Sprintf("strict-%d", i)
		ctx, cancel := shortCtx()
		var pl []preflistEntry
		err := c1.Call(ctx, "preflist", []any{[]byte(k)}, &pl, true)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		var nodes []string
		for _, e := range pl {
			if e.Primary {
				nodes = append(nodes, e.Node)
			}
		}
		slices.Sort(nodes)
		if slices.Equal(nodes, []string{fn1, fn2, fn3}) {
			key, primaries = k, pl
		}
	}

	n2.kill9(t)
	n3.kill9(t)
	waitSeenAlive(t, c1, n2.name, false, 20*time.Second)
	waitSeenAlive(t, c1, n3.name, false, 20*time.Second)

	// NB: the coordinators act on a liveness view refreshed a few times a second, a moment behind
	// cluster_status: until it caught up a put waits for the dead primaries until its deadline. Short
	// deadlines, retried while they run out.
	var ce *client.Error
	var err error
	tries := 0
	eventually.Within(10*time.Second, func() bool {
		tries++
		ctx, cancel := shortCtx()
		err = c1.Call(ctx, "put", []any{[]byte(key), []byte("strict"), nil, map[string]any{"pw": 2, "timeout_ms": 500}}, nil, false)
		cancel()
		ce = asClientError(err)
		return ce == nil || ce.Code != "timeout"
	})
	timeouts := tries - 1
	switch {
	case ce == nil:
		t.Fatalf("put pw=2 with two primaries down: %v, want a quorum_failed error", err)
	case ce.Code != "quorum_failed" || ce.Need != 2 || ce.Got >= 2 || !ce.Primary:
		t.Fatalf("put pw=2 with two primaries down: code %q need %d got %d primary %v (%s), "+
			"want quorum_failed need 2 got < 2 primary", ce.Code, ce.Need, ce.Got, ce.Primary, ce.Message)
	}
	t.Logf("put pw=2: %s (need %d, got %d, primary %v) after %d timed-out tries", ce.Code, ce.Need, ce.Got, ce.Primary, timeouts)

	ctx, cancel := shortCtx()
	defer cancel()

	// NB: the refused strict put may still be stored where it reached (Dynamo does not undo a write that
	// missed its quorum); the sloppy put is blind, so it supersedes that value on its coordinating replica
	// instead of becoming its sibling.
	if err := c1.Call(ctx, "put", []any{[]byte(key), []byte("sloppy"), nil, map[string]any{"blind": true}}, nil, false); err != nil {
		t.Fatalf("put without pw with two primaries down: %v", err)
	}
	// Every replica went to n1: its own partition and, as fallbacks, the dead primaries' partitions.
	for _, e := range primaries {
		o, err := readReplica(ctx, c1, e.Partition, key)
		if err != nil || !replicaHolds(o, []string{"sloppy"}) {
			t.Errorf("%s's vnode of partition %d (primary %s): %+v %v, want the value", n1.name, e.Partition, e.Node, o, err)
		}
	}
	var got struct {
		Values [][]byte `msgpack:"values"`
	}
	err = c1.Call(ctx, "get", []any{[]byte(key), map[string]any{}}, &got, true)
	if err != nil || len(got.Values) != 1 || string(got.Values[0]) != "sloppy" {
		t.Fatalf("get after the sloppy put: %q %v", got.Values, err)
	}
}
