// Package actors is gokai's runtime layer over protoactor-go: it makes a node's actor system (with the
// node's slog logger injected, no global logger, no metrics listener), names the well-known actors, offers
// request helpers that always carry a deadline, and carries messages between nodes. It holds no domain logic.
//
// # Transport
//
// Nodes talk through protoactor-go remote (gRPC). Remote only carries protobuf messages (and a protobuf type
// the receiver does not know crashes it), so every gokai message crosses as one well-known type,
// wrapperspb.BytesValue, holding a msgpack envelope [WireVersion, type code, payload] (wire.go). The package
// that owns a message registers it with RegisterWire from init(); codes are append-only (see WireType).
//
//   - StartRemote binds the node's transport; Remote.Address is what other nodes put in PIDs.
//   - WireProps gives an actor a sender middleware that wraps registered messages addressed to another node
//     (Send, Request, Forward and Respond all pass through it) and a receiver middleware that unwraps them.
//     The Root context of a system made by NewSystem wraps the same way, so Root.Send reaches other nodes.
//   - WireSenderProps is the sender half alone, for an actor spawned per request whose Receive unwraps with
//     DecodeReceived: without a receiver middleware protoactor hands the actor its lifecycle messages
//     without an envelope each (three allocations of every coordinator; a canary test pins it).
//   - Tell is ctx.Send without the envelope protoactor makes for the sender middleware when the target is on
//     this node (a vnode's reply to a coordinator); to another node it is ctx.Send. Ask is ctx.Request the
//     same way (a coordinator's fan-out): an actor that sends only to this node's actors never makes the
//     context extras protoactor allocates for a sender middleware. Canary tests pin both savings.
//   - Every unwrap first runs mpscan.Scan with the transport's limits: hostile bytes never reach the msgpack
//     decoder unbounded. A message that does not decode is logged and dropped.
//   - A future's result bypasses middleware: a reply from another node arrives as the raw BytesValue.
//     Request decodes it; inside an actor (ctx.RequestFuture + ReenterAfter) call DecodeReply.
//   - Each peer's queue is bounded by RemoteConfig.QueueSize (protoactor's own queue grows without bound): a
//     send beyond it is dropped at once and a request fails with actor.ErrDeadLetter instead of timing out.
//     A dead peer holds its queue for ~10 s (protoactor retries the connection 5 times, 2 s apart) and
//     requests to it time out: route around nodes that membership considers down.
//   - Every envelope a stream delivers carries the same read-only header, made once per stream (RemoteHeader,
//     and PeerHeader with TLS; see Peer): nothing may write to a received message's header.
//
// Start the transport before spawning actors that talk to other nodes: an actor spawned earlier has the
// placeholder address "nonhost" in its PID, so its Self() cannot travel inside a message (the transport does
// fix the sender of its requests).
//
// # Scheduling
//
// Dispatcher runs mailboxes on long-lived workers; InlineFirst runs an actor's first mailbox run on the
// spawning goroutine. Mailbox is a mailbox an actor spawned per request embeds in its own struct: protoactor's
// default costs each spawn nine allocations (actor.Unbounded's queues, their nodes, a closure per scheduled
// run) where it costs none; it keeps the default's contract (system messages first, suspension around a
// failure, a recovered panic escalated), and canary tests pin what it assumes of protoactor's supervision.
//
// Concurrency: everything here is safe for concurrent use; Request blocks its caller (never call it from
// inside an actor's Receive: use ctx.Request and a reply message there). RegisterWire belongs in init().
package actors
