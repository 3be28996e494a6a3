// Package coordinator owns gokai's request coordinators: every client request is a process. A request
// spawns one actor under the coordinator supervisor; the actor wraps a pure FSM (GetFSM, PutFSM; a delete is
// a put of a tombstone), sends what the FSM asks to the vnodes of the key's preference list, feeds it their
// replies and its timers, answers the caller once, and stays alive after the answer for the late replies:
//
//	client ──► Service.Get ──spawn──► request actor ──GetRequest──► N vnodes
//	   ▲                                   │  ◄──── replies (R of them) ────┘
//	   └────────── answer (R replies) ─────┤
//	                                       │  ◄──── late replies (until all in or Linger)
//	                                       └──PutRequest(merged)──► every stale or missing replica (read repair)
//
// Writes go through a coordinating vnode (the first local one in the preference list): it applies the write
// and mints the new version; the result is replicated to the other N-1 and the client is answered after W
// acknowledgements.
//
// The FSMs are pure (no actors, no clock, no I/O): inputs are Start, Reply and Fire(timer); outputs are
// Effects the shell carries out in order. Quorums count successes toward R/W and, for strict quorums, PR/PW
// among primaries; the request fails as soon as the quorum is unreachable, or at its deadline.
//
// Failure reports: every replica that answers with an error, that the transport refuses (a dead letter
// naming it), or that is still silent at the request's deadline or at the end of the linger (the FSMs' Silent
// effect) is reported to Router.ReportFailure, so the node routes around it (sloppy quorum) from the next
// request on. A report never changes the outcome of the request that made it.
//
// Supervision and scheduling: the coordinator supervisor is a protoactor guardian strategy (a crashed
// coordinator is stopped and its caller gets ErrCoordinatorCrashed); the caller's goroutine spawns the
// request actor and, with Config.Dispatcher set, runs its first mailbox run inline (actors.InlineFirst), so a
// request whose vnodes answer inline is answered before Spawn returns. Later runs go to the dispatcher.
//
// Overload: Config.MaxInFlight bounds live coordinators; past it requests fail at once with ErrOverload
// instead of piling up. Drain stops admission and waits for the live ones. Stop also stops them: a request
// joins the list Stop walks at admission, before its actor exists, under the lock Stop takes to close
// admission, so every request is either refused (ErrShuttingDown) or stopped (ErrCoordinatorCrashed, or
// ErrShuttingDown if its actor had not started), whatever the interleaving.
//
// It does not own: where replicas are (Router, given by the node), how a vnode stores or merges (vnode).
//
// Concurrency: Service methods are safe for concurrent use and block the caller until the answer or ctx.
// FSM values are used by one request actor only.
package coordinator
