// Package coordinator owns gokai's request coordinators, for every service on the vnode runtime: every
// client request is a process. A request spawns one actor under the coordinator supervisor; the actor wraps
// a pure FSM (GetFSM, PutFSM), sends what the FSM asks to the vnodes of the key's preference list, feeds it
// their replies and its timers, answers the caller once, and stays alive after the answer for the late
// replies:
//
//	client ──► Read ──spawn──► request actor ──Op.Command──► N vnodes
//	   ▲                             │  ◄──── replies (R of them) ────┘
//	   └──── answer (R replies) ─────┤
//	                                 │  ◄──── late replies (until all in or Linger)
//	                                 └──Op.Replicate(merged)──► every replica that answered less (read repair)
//
// # For services
//
// A service (KV is one: package kv) sends commands to a key's replicas and collects N/R/W replies through
// two functions, generic over the service's value type V:
//
//   - Read(ctx, svc, proto, key, ReadOptions, op): the op's command to every replica of the key's
//     preference list (primaries, and fallbacks for primaries that are down); the answer is the Merge of R
//     replies (PR of them from primaries for a strict quorum), or a *QuorumError as soon as R is out of
//     reach or at the deadline; then read repair of every replica that answered with less, late replies
//     included, until all are in or Linger passed.
//   - Write(ctx, svc, proto, key, WriteOptions, op): the op's command to one coordinating replica (the
//     first on this node, else the first reachable), which applies it and answers with the value written; that value is replicated to
//     the others, and the answer comes after W acknowledgements (PW from primaries). A replica that fails or
//     stays silent through the linger is replaced by a fallback (sloppy quorum: counts toward W, never PW).
//     With WriteOptions.ReapAfter, a follow-up command (Op.Reap) goes to every replica once all stored it.
//
// The service gives them a Protocol[V], once: Missing (a replica's "not found"), Equal, Merge (commutative,
// associative, idempotent) and Decode (its replies: tag, value, error, write or read). And one Op per
// request, passed by value: Command (the read, or the coordinating write), Replicate (make a replica hold a
// value: replication, fallbacks, read repair) and Reap. The request actor keeps the op inside its own
// allocation, so an op can hold the request's messages there (KV's read fan-out allocates nothing). Every
// command is tagged with the replica's index in the request's targets, and the replica's reply carries the
// tag back. The service's vnode behaviour (package vnode) answers the commands.
//
// # Inside
//
// The FSMs are pure (no actors, no clock, no I/O): inputs are Start, Reply and Fire(timer); outputs are
// Effects the shell carries out in order. Quorums count successes toward R/W and, for strict quorums, PR/PW
// among primaries; the request fails as soon as the quorum is unreachable, or at its deadline. With
// NotFoundOK off (riak's notfound_ok=false, the default), R replies that all say "not found" do not answer
// while other replicas may still hold the key.
//
// Failure reports: every replica that answers with an error, that the transport refuses (a dead letter
// naming it), or that is still silent at the request's deadline or at the end of the linger (the FSMs' Silent
// effect) is reported to Router.ReportFailure, so the node routes around it (sloppy quorum) from the next
// request on. A report never changes the outcome of the request that made it.
//
// Supervision and scheduling: the coordinator supervisor is a protoactor guardian strategy (a crashed
// coordinator is stopped and its caller gets ErrCoordinatorCrashed); the caller's goroutine spawns the
// request actor and, with Config.Dispatcher set, runs its first mailbox run inline (actors.InlineFirst), so a
// request whose vnodes answer inline is answered before Spawn returns. Later runs go to the dispatcher, but
// for a request with a replica on another node, a run for a reply from that node stays on the transport's
// goroutine that delivered it (actors.Mailbox.RunPeerMessagesInline). The request actor's mailbox
// (actors.Mailbox) is a field of the actor itself, so a spawn allocates no mailbox.
// Timers the first run asks for are armed only if the request outlives it.
//
// Overload: Config.MaxInFlight bounds the live coordinators of one Service (a node runs one per service);
// past it requests fail at once with ErrOverload instead of piling up. Drain stops admission and waits for the live ones. Stop also
// stops them: a request joins the list Stop walks at admission, before its actor exists, under the lock Stop
// takes to close admission, so every request is either refused (ErrShuttingDown) or stopped
// (ErrCoordinatorCrashed, or ErrShuttingDown if its actor had not started), whatever the interleaving.
//
// It does not own: where replicas are (Router, given by the node), what a service's values and commands
// mean, nor how a vnode stores or merges them (the service: package kv for KV). It imports no service.
//
// Concurrency: Service methods, Read and Write are safe for concurrent use and block the caller until the
// answer or ctx. FSM values are used by one request actor only. A Protocol is shared by every request of its
// service; an Op belongs to its request actor.
package coordinator
