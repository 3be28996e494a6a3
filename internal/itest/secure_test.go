package itest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/client"
	"github.com/gokai-kv/gokai/internal/pki"
	"github.com/gokai-kv/gokai/kv"
	"github.com/gokai-kv/gokai/membership"
	"github.com/gokai-kv/gokai/ring"
)

// TestSecureClusterPassesClusterAndFailureTests runs cluster, failure and flush tests with every node on
// certificates (mutual TLS transport, encrypted gossip, signed states, TLS client port with an operator
// certificate); ListKeys checks that coverage streams cross the mutual-TLS transport.
func TestSecureClusterPassesClusterAndFailureTests(t *testing.T) {
	useSecure(t)
	t.Run("ThreeNodes", TestClusterThreeNodes)
	t.Run("JoinLeaveUnderLoad", TestClusterJoinLeaveUnderLoad)
	t.Run("KillFallback", TestFailureKillFallback)
	t.Run("Counter", TestCounterCluster)
	t.Run("ListKeys", TestClusterListKeys)
	t.Run("FlushAll", TestClusterFlushAll)
}

// rawTransport dials a node's transport as a hostile peer would: with tlsCfg (nil: plaintext), and opens
// protoactor's message stream, returning the first error.
func rawTransport(ctx context.Context, addr string, creds credentials.TransportCredentials) (remote.Remoting_ReceiveClient, error) {
	conn, err := grpc.DialContext(ctx, addr, grpc.WithTransportCredentials(creds), grpc.WithBlock())
	if err != nil {
		return nil, err
	}
	s, err := remote.NewRemotingClient(conn).Receive(ctx)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if err := s.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{ConnectRequest: &remote.ConnectRequest{
		ConnectionType: &remote.ConnectRequest_ServerConnection{ServerConnection: &remote.ServerConnection{SystemId: "x", Address: "127.0.0.1:1"}}}}}); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := s.Recv(); err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

// putEnvelope is a batch carrying a vnode write to partition p's vnode at addr, as a coordinator sends it.
func putEnvelope(t *testing.T, addr string, p int, key string) *remote.MessageBatch {
	t.Helper()
	bv, err := actors.EncodeWire(&kv.PutRequest{V: 1, Key: []byte(key), Coordinate: true, Blind: true, Value: []byte("stranger")})
	if err != nil {
		t.Fatal(err)
	}
	data, err := proto.Marshal(bv)
	if err != nil {
		t.Fatal(err)
	}
	return &remote.MessageBatch{TypeNames: []string{"google.protobuf.BytesValue"},
		Targets:   []*actor.PID{actor.NewPID(addr, actors.VnodeSupervisorName+"/"+actors.VnodeName(p))},
		Envelopes: []*remote.MessageEnvelope{{MessageData: data}}}
}

// TestSecureStrangersAreRefused: against a cluster on certificates, a stranger (no certificate, or one of
// another CA) cannot join, cannot gossip a state into it, cannot open the transport to send a vnode a
// single message, and a client without an operator certificate cannot change the cluster.
func TestSecureStrangersAreRefused(t *testing.T) {
	env := useSecure(t)
	cl := formFailureCluster(t, fn1, fn2, fn3)
	n1 := cl.nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	before, err := callStatus(ctx, cl.cls[n1.name])
	if err != nil {
		t.Fatal(err)
	}

	// 1. Join: a node without certificates, and a node of another CA, ask n1's transport to let them in.
	secureMode = nil
	plain := startCNode(t, "stranger@127.0.0.1", "")
	other := newSecureEnv(t)
	secureMode = other
	foreign := startCNode(t, "foreign@127.0.0.1", "")
	secureMode = env
	joins := make(chan error, 2)
	for _, s := range []struct {
		n   *cnode
		env *secureEnv
	}{{plain, nil}, {foreign, other}} {
		c := rpcClientWith(t, s.n.rpcAddr, s.env)
		go func() {
			err := c.Call(ctx, "cluster_join", []any{n1.transportAddr}, nil, false)
			if err == nil {
				joins <- fmt.Errorf("%s joined the cluster", s.n.name)
				return
			}
			t.Logf("%s: cluster_join refused: %v", s.n.name, err)
			joins <- nil
		}()
	}
	for range 2 {
		if err := <-joins; err != nil {
			t.Fatal(err)
		}
	}

	// 2. Gossip: a memberlist of the cluster's id, without the key, pushing a newer state naming itself.
	forged, err := membership.NewClusterState(before.Cluster, membership.Member{Name: "evil", RPCAddr: "127.0.0.1:1",
		TransportAddr: "127.0.0.1:1", MemcacheAddr: "127.0.0.1:1"}, before.Q, 3)
	if err != nil && !errors.Is(err, ring.ErrTargetN) {
		t.Fatal(err)
	}
	for forged.Version <= before.Version+5 {
		if forged, err = forged.StageJoin(membership.Member{Name: ring.NodeID(fmt.Sprintf("x%d", forged.Version)),
			RPCAddr: "127.0.0.1:1", TransportAddr: "127.0.0.1:1", MemcacheAddr: "127.0.0.1:1"}); err != nil {
			t.Fatal(err)
		}
	}
	g, err := membership.StartGossip(membership.GossipConfig{Self: membership.Member{Name: "evil", RPCAddr: "127.0.0.1:1",
		TransportAddr: "127.0.0.1:1", MemcacheAddr: "127.0.0.1:1"}, State: forged, TCPTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Shutdown()
	jctx, jcancel := context.WithTimeout(ctx, 5*time.Second)
	if err := g.Join(jctx, []string{n1.gossipAddr}, false); err == nil {
		t.Error("a gossip node without the key joined n1's memberlist")
	}
	jcancel()

	// 3. Transport: without a certificate, or with another CA's, no stream opens, so no vnode message can
	// be sent; with the cluster's own CA it would (the control for the test).
	strangerCreds := []struct {
		what  string
		creds credentials.TransportCredentials
	}{
		{"plaintext", insecure.NewCredentials()},
		{"TLS without a certificate", credentials.NewTLS(pki.ClientConfig(mustLoadNode(t, env.nodeDir(t, fn1)).Pool, nil))},
		{"another CA's node certificate", credentials.NewTLS(mustLoadNode(t, other.nodeDir(t, "n9@127.0.0.1")).PeerConfig(""))},
	}
	for _, sc := range strangerCreds {
		dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
		s, err := rawTransport(dctx, n1.transportAddr, sc.creds)
		if err == nil {
			// Whatever got through the handshake must not reach a vnode.
			_ = s.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: putEnvelope(t, n1.transportAddr, 0, "stranger-key")}})
			_, err = s.Recv()
		}
		dcancel()
		if err == nil {
			t.Fatalf("transport with %s: the stream stayed open", sc.what)
		}
		t.Logf("transport with %s: %v", sc.what, err)
	}
	if o, err := cl.cls[n1.name].Get(ctx, []byte("stranger-key"), nil); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("a stranger's vnode write took effect: %v %v", o, err)
	}

	// 4. A TLS client without an operator certificate reads but cannot change the cluster.
	anon := rpcClientWith(t, n1.rpcAddr, nil, pki.ClientConfig(mustLoadNode(t, env.nodeDir(t, fn1)).Pool, nil))
	if _, err := callStatus(ctx, anon); err != nil {
		t.Fatalf("status without an operator certificate: %v", err)
	}
	for _, m := range []struct {
		method string
		params []any
	}{{"cluster_leave", []any{fn2}}, {"cluster_commit", nil}, {"cluster_clear", nil}, {"cluster_plan", nil},
		{"cluster_keys", []any{"list"}}, {"cluster_join", []any{n1.transportAddr}}, {"vnode_get", []any{"k", 0}}} {
		if err := anon.Call(ctx, m.method, m.params, nil, false); !errors.Is(err, client.ErrForbidden) {
			t.Fatalf("%s without an operator certificate: %v, want forbidden", m.method, err)
		}
	}
	// The node-to-node calls are not on the client port at all.
	for _, m := range []string{"cluster_stage_join", "cluster_transfer_done"} {
		if err := cl.cls[n1.name].Call(ctx, m, []any{"x", "y", "z", "w"}, nil, false); !errors.Is(err, client.ErrUnknownMethod) {
			t.Fatalf("%s on the client port: %v, want unknown_method", m, err)
		}
	}

	// Nothing changed.
	after, err := callStatus(ctx, cl.cls[n1.name])
	if err != nil {
		t.Fatal(err)
	}
	if after.shape() != before.shape() {
		t.Fatalf("the cluster changed: %s -> %s", before.shape(), after.shape())
	}
}

func mustLoadNode(t *testing.T, dir string) *pki.Bundle {
	t.Helper()
	b, err := pki.LoadNode(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rpcClientWith is rpcClient with an operator certificate of env (nil: plaintext), or an explicit config.
func rpcClientWith(t *testing.T, addr string, env *secureEnv, explicit ...*tls.Config) *client.Client {
	t.Helper()
	var cfg *tls.Config
	switch {
	case len(explicit) > 0:
		cfg = explicit[0]
	case env != nil:
		cfg = operatorTLS(t, env.ca, "admin")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.Config{Seeds: []string{addr}, PoolSize: 1, DisableRouting: true, RequestTimeout: 15 * time.Second, TLS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSecureKeyRotationUnderLoad rotates the gossip key of a 3-node cluster (install, use, remove on every
// member, through the CLI) under a write load: no node is ever seen down, writes keep being acknowledged,
// and every acknowledged write is readable afterwards.
func TestSecureKeyRotationUnderLoad(t *testing.T) {
	env := useSecure(t)
	cl := formFailureCluster(t, fn1, fn2, fn3)
	n1 := cl.nodes[0]
	w := startRecWriter(n1.mcAddr, "rot-", 100000, 90*time.Second)
	defer w.stop()
	w.waitAcked(t, time.Time{}, 300, 30*time.Second)

	// Watch every node's view of every other while the rotation runs.
	stop := make(chan struct{})
	downSeen := make(chan string, 16)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond): // sampling interval
			}
			for _, n := range cl.nodes {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				st, err := callStatus(ctx, cl.cls[n.name])
				cancel()
				if err != nil {
					continue
				}
				for _, m := range st.Members {
					if !m.Alive {
						select {
						case downSeen <- n.name + " saw " + m.Name + " down":
						default:
						}
					}
				}
			}
		}
	}()
	oldKey := strings.TrimSpace(string(mustRead(t, env.ca+"/gossip.key")))
	newKey := strings.TrimSpace(gokaiCLI(t, n1.rpcAddr, "", "certs", "gossip-key").ok(t, "gossip-key").stdout)
	for _, step := range [][]string{{"install", newKey}, {"use", newKey}, {"remove", oldKey}} {
		cl.cli(cl.nodes[1], append([]string{"cluster", "keys"}, step...)...)
		w.waitAcked(t, time.Now(), 200, 30*time.Second) // writes go on, through several gossip rounds
	}
	out := cl.cli(n1, "cluster", "keys", "list")
	close(stop)
	select {
	case s := <-downSeen:
		t.Fatalf("during the rotation %s", s)
	default:
	}
	if strings.Count(out, pki.KeyID(mustKey(t, newKey))) != 2*len(cl.nodes) || strings.Contains(out, pki.KeyID(mustKey(t, oldKey))) {
		t.Fatalf("keys after the rotation:\n%s", out)
	}
	w.stop()
	want := expectedValues(w.snapshot())
	t.Logf("%d keys acknowledged around the rotation", len(want))
	readBackVia(t, cl.nodes[2].mcAddr, want)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustKey(t *testing.T, s string) []byte {
	t.Helper()
	k, err := pki.ParseGossipKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestHostileTransportFramesLeaveTheNodeServing sends a node's transport what used to kill it or stop its
// vnodes: raw unary gRPC calls, batches with out-of-range type, target and sender indexes, an unknown type
// name, a Stop and a PoisonPill to a vnode. The node answers the unary calls Unimplemented, drops the
// rest, and keeps serving every partition.
func TestHostileTransportFramesLeaveTheNodeServing(t *testing.T) {
	n := startCNode(t, "h1@127.0.0.1", "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(ctx, n.transportAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc := remote.NewRemotingClient(conn)
	if _, err := rc.ListProcesses(ctx, &remote.ListProcessesRequest{}); err == nil || !strings.Contains(err.Error(), "Unimplemented") {
		t.Fatalf("ListProcesses: %v", err)
	}
	if _, err := rc.GetProcessDiagnostics(ctx, &remote.GetProcessDiagnosticsRequest{}); err == nil || !strings.Contains(err.Error(), "Unimplemented") {
		t.Fatalf("GetProcessDiagnostics: %v", err)
	}
	s, err := rawTransport(ctx, n.transportAddr, insecure.NewCredentials())
	if err != nil {
		t.Fatal(err)
	}
	vn := actor.NewPID(n.transportAddr, actors.VnodeSupervisorName+"/"+actors.VnodeName(10))
	stop, _ := proto.Marshal(&actor.Stop{})
	poison, _ := proto.Marshal(&actor.PoisonPill{})
	bv := "google.protobuf.BytesValue"
	for _, b := range []*remote.MessageBatch{
		{TypeNames: []string{bv}, Targets: []*actor.PID{vn}, Envelopes: []*remote.MessageEnvelope{{TypeId: 7}}},
		{TypeNames: []string{bv}, Targets: []*actor.PID{vn}, Envelopes: []*remote.MessageEnvelope{{Target: 3}}},
		{TypeNames: []string{bv}, Targets: []*actor.PID{vn}, Envelopes: []*remote.MessageEnvelope{{Sender: 9}}},
		{TypeNames: []string{"no.such.Type"}, Targets: []*actor.PID{vn}, Envelopes: []*remote.MessageEnvelope{{}}},
		{TypeNames: []string{"actor.Stop"}, Targets: []*actor.PID{vn}, Envelopes: []*remote.MessageEnvelope{{MessageData: stop}}},
		{TypeNames: []string{"actor.PoisonPill"}, Targets: []*actor.PID{vn}, Envelopes: []*remote.MessageEnvelope{{MessageData: poison}}},
		{TypeNames: []string{"actor.Stop"}, Targets: []*actor.PID{actor.NewPID(n.transportAddr, actors.VnodeSupervisorName)},
			Envelopes: []*remote.MessageEnvelope{{MessageData: stop}}},
	} {
		if err := s.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: b}}); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	// Every partition still serves: write and read a key in each (keys chosen by search).
	c := rpcClient(t, n.rpcAddr)
	rg, err := c.Ring(ctx)
	if err != nil {
		t.Fatal(err)
	}
	covered := map[int]bool{}
	r := membershipRing(t, rg)
	for i := 0; len(covered) < len(rg.Owners) && i < 100000; i++ {
		k := fmt.Sprintf("hostile-%d", i)
		p := r.PartitionForKey([]byte(k))
		if covered[p] {
			continue
		}
		covered[p] = true
		if _, err := c.Put(ctx, []byte(k), []byte("v"), nil, nil); err != nil {
			t.Fatalf("put %s (partition %d) after hostile frames: %v\n%s", k, p, err, n.logText())
		}
	}
	if len(covered) != len(rg.Owners) {
		t.Fatalf("keys cover %d of %d partitions", len(covered), len(rg.Owners))
	}
	var stats map[string]any
	if err := c.Call(ctx, "stats", nil, &stats, true); err != nil {
		t.Fatal(err)
	}
	if r := stats["gokai_vnode_restarts"]; fmt.Sprint(r) != "0" {
		t.Fatalf("vnodes restarted: %v", r)
	}
	if strings.Contains(n.logText(), "panic") {
		t.Fatalf("the node logged a panic:\n%s", n.logText())
	}
}
