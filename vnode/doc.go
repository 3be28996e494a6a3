// Package vnode is gokai's vnode framework (riak_core's vnode, vnode_master and vnode_worker_pool): the
// vnode actor that serves one ring partition, the vnode supervisor (Manager) that runs one vnode per
// partition the node holds, the Behaviour interface (riak_core's vnode callbacks in Go) that a service
// implements, the handoff protocol every behaviour gets for free (BeginHandoff ... HandoffDrop, HandoffBatch,
// HandoffForward and HandoffCommand on the wire, FoldRequest and IsEmptyRequest for the node's scans), the
// vnode side of coverage (CoverageRequest, Filter, streamed CoverageChunks), timers and async work.
//
// # Callbacks
//
// A Behaviour implements the required methods and any of the optional interfaces. Every callback runs in
// the vnode actor, one at a time, never concurrently with another callback of the same vnode, and must not
// block for long (blocking work goes to the worker pool: Async, Stream). When each runs:
//
//	callback              when                                                       interface
//	Init                  the vnode starts, restarts, or a drop emptied the partition Behaviour
//	HandleCommand         a message that is not the framework's arrives               Behaviour
//	HandleHandoffCommand  instead of HandleCommand while a handoff runs               HandoffCommander
//	HandoffFold,          a transfer (or a node's scan) reads the partition; on the    Behaviour
//	 EncodeHandoffItem     transfer's goroutine with ConcurrentFold, else in the actor
//	HandleHandoffData,    a handoff item (batch or forward) arrives                    Behaviour,
//	 MergeHandoffData                                                                  HandoffMerger
//	MergeHandoffBatch     a HandoffBatch arrives: all its items in one call            HandoffBatchMerger
//	HandoffStarting       BeginHandoff, before the session begins (false refuses)      HandoffStarter
//	HandoffCancelled      a session ends unfinished (cancel, superseded, failed drop)  HandoffCanceller
//	HandoffFinished       a drop, once everything reached the target, before Delete    HandoffFinisher
//	IsEmpty               IsEmptyRequest, a retire                                     Behaviour
//	Delete                a completed drop, a retire                                   Behaviour
//	HandleCoverage        CoverageRequest                                              CoverageHandler
//	HandleInfo            a timer (Self.After) or a message to itself (Self.Send)      InfoHandler
//	HandleExit            an actor it spawned (Self.Spawn) or watches (Self.Watch) ends ExitHandler
//	Terminate             the vnode stops or restarts, or a drop replaces the behaviour Behaviour
//	AAEItem               a hash-tree rebuild folds the partition (inside the vnode)   AAEHasher
//
// What runs outside the actor: the work of an Async result and the fold of a Stream result, on the
// manager's worker pool (ManagerConfig.Workers goroutines, WorkQueue jobs waiting), concurrently with the
// callbacks: they may read storage (a snapshot) but must not write the partition or touch the behaviour's
// fields unsynchronised. Self.Send, Self.After and Sender.Send are safe from any goroutine.
//
// # Anti-entropy
//
// A behaviour that implements AAEHasher, on a node that runs anti-entropy (ManagerConfig.AAE), gets hash
// trees (hashtrees.go): Env.AAE, through which it writes every change of an item, so the trees stay current
// in O(1) and their per-segment index is written in the same storage batch; the framework persists them at
// a clean stop, rebuilds them in throttled chunks inside the vnode when they cannot be trusted, and answers
// AAEQuery (root, branches, segments, the keys of segments) for exchanges. Keys starting with
// AAEReservedPrefix are the framework's. docs/anti-entropy.md has the design.
//
// # Handoff states
//
// Every behaviour gets these states, the callbacks in brackets:
//
//	          BeginHandoff(S) [HandoffStarting: false refuses, nothing changes]
//	normal ──────────────────────────────────────────────► handoff(session S)
//	  ▲ ▲                                                  │  commands: forwarded to the target
//	  │ │                                                  │   (HandoffCommand), or as HandoffCommander
//	  │ │                                                  │   decides; items arriving are passed on
//	  │ └─ CancelHandoff(S), a newer BeginHandoff(S'),  ◄──┤
//	  │    a failed drop [HandoffCancelled]                │  FinishHandoff(S): answered once every
//	  │                                                    │   forward is acknowledged (stays in handoff)
//	  └─ HandoffDrop(S): forwards acknowledged, no async ◄─┘
//	     work of the partition running [HandoffFinished],
//	     Delete, Terminate, a fresh behaviour's Init
//
// The default for a command during a handoff (no HandoffCommander) is riak_core's forward: the command is
// not applied here but sent to the new owner, which answers the sender. The old owner's data thus stays what
// the fold reads, and no acknowledged write is lost by the drop, whatever the commands do (handoff.go says
// why it does not apply and forward).
//
// # Incarnations, timers, messages to itself
//
// A Behaviour value is an incarnation: a restart, a stop or a drop ends it. Its Env.Self belongs to it: its
// timers are cancelled and its messages to itself dropped when it ends, the actors it spawned are stopped,
// and the ends of actors it watched are not reported to the next one.
//
// # Supervision
//
// A vnode's state lives in storage (one goleveldb per node, partition-prefixed keys), so a vnode that
// panics is restarted alone by the vnode supervisor, and its behaviour reopens its partition in Init. A
// behaviour that acknowledges a write only after storage took it loses nothing it acknowledged. Past its
// restart limit a vnode stops and the manager escalates to the node. A panic in async work is logged (no
// supervisor watches a pool goroutine); its sender gets no answer.
//
// It does not own any service: the KV behaviour, its objects and its messages are package kv, which imports
// this one (never the other way round). Nor does it own where partitions live (ring, membership), how many
// replicas answer (coordinator), which vnodes a coverage request asks (coverage plans), nor the storage
// engine (storage).
//
// Concurrency: a Behaviour is called by its vnode actor only, one message at a time. Manager methods are
// safe for concurrent use.
package vnode
