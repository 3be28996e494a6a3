package actors

import (
	"context"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// PingName is the well-known name of every node's ping actor (see StartRemote).
const PingName = "ping"

// Wire codes of the actors package's own messages (block 32..39).
const (
	WirePing WireType = 32
	WirePong WireType = 33
)

// Ping asks a node's ping actor for a Pong: proof that the transport carries messages both ways and that the
// node's actor system runs (failure detection probes a suspected node with it).
type Ping struct {
	V   uint8  `msgpack:"v"`
	Seq uint64 `msgpack:"s"`
}

// Pong answers Ping with its Seq.
type Pong struct {
	V   uint8  `msgpack:"v"`
	Seq uint64 `msgpack:"s"`
}

func init() {
	RegisterWire(WirePing, func() any { return &Ping{} })
	RegisterWire(WirePong, func() any { return &Pong{} })
}

// pingActor answers every Ping. It keeps no state and never blocks.
type pingActor struct{}

func (pingActor) Receive(ctx actor.Context) {
	if p, ok := ctx.Message().(*Ping); ok && ctx.Sender() != nil {
		ctx.Respond(&Pong{V: 1, Seq: p.Seq})
	}
}

// spawnPing starts the system's ping actor. REQUIRES: the remote has started (the actor's PID must carry
// the node's address).
func spawnPing(system *actor.ActorSystem) error {
	props := WireProps(actor.PropsFromProducer(func() actor.Actor { return pingActor{} }))
	if _, err := system.Root.SpawnNamed(props, PingName); err != nil {
		return fmt.Errorf("actors: spawn %s: %w", PingName, err)
	}
	return nil
}

// Ping asks the ping actor of the node at address (a transport host:port) for a Pong within timeout.
func (r *Remote) Ping(ctx context.Context, address string, timeout time.Duration) error {
	seq := r.pings.Add(1)
	res, err := Request(ctx, r.system, actor.NewPID(address, PingName), &Ping{V: 1, Seq: seq}, timeout)
	if err != nil {
		return err
	}
	if p, ok := res.(*Pong); !ok || p.Seq != seq {
		return fmt.Errorf("actors: ping %s: unexpected reply %T", address, res)
	}
	return nil
}
