package actors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const bytesValueName = "google.protobuf.BytesValue"

// validBatch is one well-formed envelope: a wire message to the echo actor with a sender.
func validBatch(t testing.TB, target *actor.PID) *remote.MessageBatch {
	t.Helper()
	bv, err := EncodeWire(&testEcho{V: 1, Seq: 7, Text: "x"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := proto.Marshal(bv)
	if err != nil {
		t.Fatal(err)
	}
	return &remote.MessageBatch{
		TypeNames: []string{bytesValueName},
		Targets:   []*actor.PID{target},
		Senders:   []*actor.PID{actor.NewPID("127.0.0.1:1", "future$1")},
		Envelopes: []*remote.MessageEnvelope{{TypeId: 0, MessageData: data, Target: 0, Sender: 1}},
	}
}

func TestCheckBatch(t *testing.T) {
	echo := actor.NewPID("127.0.0.1:1", echoName)
	stop, _ := proto.Marshal(&actor.Stop{})
	cases := []struct {
		name string
		edit func(b *remote.MessageBatch)
		why  string // "" = kept
	}{
		{"valid", func(*remote.MessageBatch) {}, ""},
		{"no sender", func(b *remote.MessageBatch) { b.Envelopes[0].Sender = 0 }, ""},
		{"type index past the table", func(b *remote.MessageBatch) { b.Envelopes[0].TypeId = 1 }, "type index"},
		{"negative type index", func(b *remote.MessageBatch) { b.Envelopes[0].TypeId = -1 }, "type index"},
		{"target index past the table", func(b *remote.MessageBatch) { b.Envelopes[0].Target = 5 }, "target index"},
		{"negative target index", func(b *remote.MessageBatch) { b.Envelopes[0].Target = -2 }, "target index"},
		{"nil target", func(b *remote.MessageBatch) { b.Targets[0] = nil }, "nil target"},
		{"sender index past the table", func(b *remote.MessageBatch) { b.Envelopes[0].Sender = 2 }, "sender index"},
		{"nil sender", func(b *remote.MessageBatch) { b.Senders[0] = nil }, "nil sender"},
		{"unknown type", func(b *remote.MessageBatch) { b.TypeNames[0] = "no.such.Type" }, "type"},
		{"system message", func(b *remote.MessageBatch) {
			b.TypeNames[0], b.Envelopes[0].MessageData = "actor.Stop", stop
		}, "type"},
		{"poison pill", func(b *remote.MessageBatch) { b.TypeNames[0] = "actor.PoisonPill" }, "type"},
		{"json serializer", func(b *remote.MessageBatch) { b.Envelopes[0].SerializerId = 1 }, "serializer"},
		{"serializer past the table", func(b *remote.MessageBatch) { b.Envelopes[0].SerializerId = 99 }, "serializer"},
		{"actor nobody may address", func(b *remote.MessageBatch) { b.Targets[0] = actor.NewPID("x", "activator") }, "target"},
		{"nil envelope", func(b *remote.MessageBatch) { b.Envelopes[0] = nil }, "nil envelope"},
	}
	for _, c := range cases {
		b := validBatch(t, echo)
		c.edit(b)
		n, why := checkBatch(b)
		switch {
		case c.why == "" && (n != 0 || len(b.Envelopes) != 1):
			t.Errorf("%s: dropped %d (%s), want kept", c.name, n, why)
		case c.why != "" && (n != 1 || len(b.Envelopes) != 0 || !strings.Contains(why, c.why)):
			t.Errorf("%s: dropped %d, why %q, kept %d; want dropped for %q", c.name, n, why, len(b.Envelopes), c.why)
		}
	}
	// Bad envelopes go, good ones in the same batch stay.
	b := validBatch(t, echo)
	b.Envelopes = append(b.Envelopes, &remote.MessageEnvelope{TypeId: 3}, b.Envelopes[0])
	if n, _ := checkBatch(b); n != 1 || len(b.Envelopes) != 2 {
		t.Fatalf("mixed batch: dropped %d, kept %d; want 1 and 2", n, len(b.Envelopes))
	}
}

// FuzzCheckBatch: whatever a peer sends, what survives the check is safe for protoactor's reader: every
// index it follows is in range, every PID it dereferences is present, every type name resolves.
func FuzzCheckBatch(f *testing.F) {
	for _, b := range []*remote.MessageBatch{validBatch(f, actor.NewPID("127.0.0.1:1", echoName)),
		{TypeNames: []string{"actor.Stop"}, Targets: []*actor.PID{nil}, Envelopes: []*remote.MessageEnvelope{{TypeId: 4, Target: 9, Sender: -1}}}} {
		raw, err := proto.Marshal(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: b}})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var m remote.RemoteMessage
		if proto.Unmarshal(raw, &m) != nil {
			return
		}
		b := m.GetMessageBatch()
		if b == nil {
			return
		}
		before := len(b.Envelopes)
		n, _ := checkBatch(b)
		if n+len(b.Envelopes) != before {
			t.Fatalf("dropped %d + kept %d != %d", n, len(b.Envelopes), before)
		}
		for _, e := range b.Envelopes {
			// What protoactor's endpoint reader does with a kept envelope, minus the delivery.
			target := b.Targets[e.Target]
			if target.Id == "" && !remoteTargetAllowed(target.Id) {
				t.Fatal("kept an envelope for an unreachable target")
			}
			if e.Sender > 0 {
				_ = b.Senders[e.Sender-1].Id
			}
			msg, err := remote.Deserialize(e.MessageData, b.TypeNames[e.TypeId], e.SerializerId)
			if err != nil {
				continue
			}
			if _, ok := msg.(actor.SystemMessage); ok {
				t.Fatalf("kept a system message %T", msg)
			}
		}
	})
}

// rawPeer is a gRPC client that speaks protoactor's remoting protocol by hand, as a hostile peer would.
type rawPeer struct {
	conn   *grpc.ClientConn
	stream remote.Remoting_ReceiveClient
}

func dialRaw(t *testing.T, addr string) *rawPeer {
	t.Helper()
	conn, err := grpc.Dial(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawPeer{conn: conn}
}

func (p *rawPeer) connect(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := remote.NewRemotingClient(p.conn).Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{ConnectRequest: &remote.ConnectRequest{
		ConnectionType: &remote.ConnectRequest_ServerConnection{ServerConnection: &remote.ServerConnection{SystemId: "hostile", Address: "127.0.0.1:1"}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatalf("connect response: %v", err)
	}
	p.stream = s
}

func (p *rawPeer) send(t *testing.T, b *remote.MessageBatch) {
	t.Helper()
	if err := p.stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: b}}); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// TestTransportSurvivesHostileFrames: what crashed a node (raw unary calls, out-of-range indexes, unknown
// types) and what stopped its actors (a remote Stop) leave it serving: the unary calls answer Unimplemented,
// the bad envelopes are dropped and counted, the echo actor still answers.
func TestTransportSurvivesHostileFrames(t *testing.T) {
	localNode(t)
	n := startNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := dialRaw(t, n.addr)

	if _, err := remote.NewRemotingClient(p.conn).ListProcesses(ctx, &remote.ListProcessesRequest{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("ListProcesses: %v, want Unimplemented", err)
	}
	if _, err := remote.NewRemotingClient(p.conn).GetProcessDiagnostics(ctx, &remote.GetProcessDiagnosticsRequest{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("GetProcessDiagnostics: %v, want Unimplemented", err)
	}

	p.connect(t)
	echo := actor.NewPID(n.addr, echoName)
	stop, _ := proto.Marshal(&actor.Stop{})
	poison, _ := proto.Marshal(&actor.PoisonPill{})
	junk, _ := proto.Marshal(&wrapperspb.BytesValue{Value: []byte{0xdd, 0xff, 0xff, 0xff, 0xff}})
	bad := []*remote.MessageBatch{
		{TypeNames: []string{bytesValueName}, Targets: []*actor.PID{echo}, Envelopes: []*remote.MessageEnvelope{{TypeId: 9}}},
		{TypeNames: []string{bytesValueName}, Targets: []*actor.PID{echo}, Envelopes: []*remote.MessageEnvelope{{Target: 9}}},
		{TypeNames: []string{bytesValueName}, Targets: []*actor.PID{echo}, Envelopes: []*remote.MessageEnvelope{{Sender: 3}}},
		{TypeNames: []string{"no.such.Type"}, Targets: []*actor.PID{echo}, Envelopes: []*remote.MessageEnvelope{{}}},
		{TypeNames: []string{"actor.Stop"}, Targets: []*actor.PID{echo}, Envelopes: []*remote.MessageEnvelope{{MessageData: stop}}},
		{TypeNames: []string{"actor.PoisonPill"}, Targets: []*actor.PID{echo}, Envelopes: []*remote.MessageEnvelope{{MessageData: poison}}},
		{TypeNames: []string{bytesValueName}, Targets: []*actor.PID{echo}, Envelopes: []*remote.MessageEnvelope{{MessageData: junk}}},
	}
	for _, b := range bad {
		p.send(t, b)
	}
	// A good envelope on the same stream still arrives (the hostile ones did not close it): it is an echo
	// request whose reply goes to a sender that does not exist, so only the stats can tell.
	p.send(t, validBatch(t, echo))

	for i := range 3 {
		res, err := Request(ctx, local.system, n.echo(), &testEcho{V: 1, Seq: i}, 10*time.Second)
		if err != nil {
			t.Fatalf("echo after hostile frames: %v\n%s", err, n.stderr.String())
		}
		if r, ok := res.(*testEchoReply); !ok || r.Seq != i {
			t.Fatalf("echo reply %#v", res)
		}
	}
	res, err := Request(ctx, local.system, n.echo(), &testStatsRequest{V: 1}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	st := res.(*testStatsReply).Stats
	if st.Rejected != 6 || st.DecodeErrors != 1 {
		t.Fatalf("stats %+v: want 6 envelopes rejected by the guard and 1 that did not decode", st)
	}
}

// fakeStream hands RecvMsg the prepared messages in order.
type fakeStream struct {
	grpc.ServerStream
	msgs []*remote.RemoteMessage
}

func (f *fakeStream) RecvMsg(m any) error {
	if len(f.msgs) == 0 {
		return io.EOF
	}
	proto.Merge(m.(*remote.RemoteMessage), f.msgs[0])
	f.msgs = f.msgs[1:]
	return nil
}

func connectMsg(addr string) *remote.RemoteMessage {
	return &remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{ConnectRequest: &remote.ConnectRequest{
		ConnectionType: &remote.ConnectRequest_ServerConnection{ServerConnection: &remote.ServerConnection{SystemId: "s", Address: addr}}}}}
}

func batchMsg(b *remote.MessageBatch) *remote.RemoteMessage {
	return &remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: b}}
}

// TestGuardBindsTLSPeers: with TLS, a peer must connect first, may claim only an address its certificate's
// node may speak for, may send only as that address, and every envelope it sends carries its verified name
// (whatever it put in the headers itself). Without TLS, envelopes are marked remote and carry no name.
func TestGuardBindsTLSPeers(t *testing.T) {
	echo := actor.NewPID("127.0.0.1:2", echoName)
	verify := func(name, claimed string) error {
		if name == "n1" && claimed == "127.0.0.1:1" {
			return nil
		}
		return errors.New("not yours")
	}
	g := &guard{log: slog.New(slog.DiscardHandler), tls: &TransportTLS{Verify: verify}}
	recv := func(s *checkedStream) (*remote.RemoteMessage, error) {
		var m remote.RemoteMessage
		err := s.RecvMsg(&m)
		return &m, err
	}

	// Messages before the connect request are refused.
	s := &checkedStream{ServerStream: &fakeStream{msgs: []*remote.RemoteMessage{batchMsg(validBatch(t, echo))}}, g: g, peer: "n1"}
	if _, err := recv(s); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("batch before connect: %v", err)
	}
	// A claim the certificate does not back is refused.
	s = &checkedStream{ServerStream: &fakeStream{msgs: []*remote.RemoteMessage{connectMsg("127.0.0.1:9")}}, g: g, peer: "n1"}
	if _, err := recv(s); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("foreign claim: %v", err)
	}
	// A good claim; then a batch from the claimed address is stamped, one from another address dropped.
	forged := validBatch(t, echo)
	forged.Envelopes[0].MessageHeader = &remote.MessageHeader{HeaderData: map[string]string{PeerHeader: "n2"}}
	other := validBatch(t, echo)
	other.Senders[0] = actor.NewPID("127.0.0.1:7", "future$1")
	forged.Senders[0] = actor.NewPID("127.0.0.1:1", "future$1")
	s = &checkedStream{ServerStream: &fakeStream{msgs: []*remote.RemoteMessage{connectMsg("127.0.0.1:1"), batchMsg(forged), batchMsg(other)}}, g: g, peer: "n1"}
	if _, err := recv(s); err != nil {
		t.Fatal(err)
	}
	m, err := recv(s)
	if err != nil {
		t.Fatal(err)
	}
	h := m.GetMessageBatch().Envelopes[0].MessageHeader.HeaderData
	if h[PeerHeader] != "n1" || h[RemoteHeader] != "1" {
		t.Fatalf("headers %v, want the verified peer n1", h)
	}
	if m, err = recv(s); err != nil || len(m.GetMessageBatch().Envelopes) != 0 {
		t.Fatalf("a batch sent as another address: %v, kept %d", err, len(m.GetMessageBatch().GetEnvelopes()))
	}
	if g.rejected.Load() != 1 || g.refused.Load() != 2 {
		t.Fatalf("rejected %d refused %d, want 1 and 2", g.rejected.Load(), g.refused.Load())
	}

	// Without TLS: marked remote, any peer name a sender wrote removed.
	plain := &guard{log: slog.New(slog.DiscardHandler)}
	s = &checkedStream{ServerStream: &fakeStream{msgs: []*remote.RemoteMessage{batchMsg(forged)}}, g: plain}
	if m, err = recv(s); err != nil {
		t.Fatal(err)
	}
	h = m.GetMessageBatch().Envelopes[0].MessageHeader.HeaderData
	if _, ok := h[PeerHeader]; ok || h[RemoteHeader] != "1" {
		t.Fatalf("plaintext headers %v", h)
	}
}

// TestStampSharesOneHeaderPerStream: every envelope a stream keeps carries the same header, the transport's
// own (the peer's name with TLS), whatever header the peer sent.
func TestStampSharesOneHeaderPerStream(t *testing.T) {
	echo := actor.NewPID("127.0.0.1:2", echoName)
	for _, peer := range []string{"", "n1"} {
		b := validBatch(t, echo)
		b.Envelopes = append(b.Envelopes, &remote.MessageEnvelope{TypeId: 0, MessageData: b.Envelopes[0].MessageData, Target: 0,
			MessageHeader: &remote.MessageHeader{HeaderData: map[string]string{PeerHeader: "n2", "other": "x"}}})
		s := &checkedStream{g: &guard{log: slog.New(slog.DiscardHandler)}, peer: peer}
		for _, e := range b.Envelopes {
			s.stamp(e)
		}
		h0, h1 := b.Envelopes[0].MessageHeader, b.Envelopes[1].MessageHeader
		if h0 != h1 {
			t.Fatalf("peer %q: two envelopes of one stream got two headers", peer)
		}
		want := map[string]string{RemoteHeader: "1"}
		if peer != "" {
			want[PeerHeader] = peer
		}
		if !maps.Equal(h0.HeaderData, want) {
			t.Fatalf("peer %q: header %v, want %v", peer, h0.HeaderData, want)
		}
	}
}

// BenchmarkStamp is the transport guard's marking of one received envelope.
func BenchmarkStamp(b *testing.B) {
	batch := validBatch(b, actor.NewPID("127.0.0.1:2", echoName))
	s := &checkedStream{g: &guard{log: slog.New(slog.DiscardHandler)}, peer: "n1"}
	e := batch.Envelopes[0]
	b.ReportAllocs()
	for b.Loop() {
		e.MessageHeader = nil
		s.stamp(e)
	}
}
