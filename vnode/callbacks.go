package vnode

import "github.com/asynkron/protoactor-go/actor"

// The optional callbacks of a Behaviour (riak_core_vnode's handoff_starting, handoff_cancelled,
// handoff_finished, handle_coverage, handle_info and handle_exit). A Behaviour implements those it needs;
// each is called from the vnode actor only, one call at a time, like every Behaviour method, and must not
// block for long.

// HandoffTarget names where a handoff sends the partition.
type HandoffTarget struct {
	Node   string     // the receiving node's id ("" when the requester did not say)
	PID    *actor.PID // the receiving vnode
	Hinted bool       // a hinted handoff (data this node held for the owner), not an ownership move
}

// HandoffStarter may refuse a handoff (riak_core's handoff_starting).
type HandoffStarter interface {
	// HandoffStarting is called when a handoff session is about to begin (BeginHandoff), after any
	// previous session ended. Returning false refuses it: the vnode stays in normal mode and the transfer is
	// retried later. A behaviour may refuse while it is busy with something that must not overlap a
	// transfer (a rebuild, a migration).
	HandoffStarting(target HandoffTarget) (ok bool)
}

// HandoffCanceller learns that a handoff session ended without completing (riak_core's handoff_cancelled):
// the transfer failed or was cancelled, a newer session superseded it, or its drop failed. The data stays;
// the vnode is in normal mode again.
type HandoffCanceller interface {
	HandoffCancelled()
}

// HandoffFinisher learns that a handoff completed (riak_core's handoff_finished): every item and every
// forward reached target, and the vnode is about to delete the partition's data (Delete), then restart
// the behaviour on the empty partition.
type HandoffFinisher interface {
	HandoffFinished(target HandoffTarget)
}

// InfoHandler handles the messages that are not commands (riak_core's handle_info): a timer set with
// Self.After, and whatever the behaviour sent itself with Self.Send (the outcome of its async work, say).
// They are handled inside the vnode actor, during a handoff too, and never forwarded: a behaviour that
// changes its data from HandleInfo learns of handoffs from HandoffStarter, HandoffCanceller and
// HandoffFinisher, and must not change data in between (the change would reach neither the fold nor the
// new owner).
type InfoHandler interface {
	HandleInfo(msg any)
}

// ExitHandler learns that an actor the behaviour spawned (Self.Spawn) or watches (Self.Watch) stopped
// (riak_core's handle_exit). reason is protoactor's: Stopped, AddressTerminated (its node is gone) or
// NotFound (it did not exist). A behaviour that cannot go on without the actor panics, which restarts the
// vnode.
type ExitHandler interface {
	HandleExit(pid *actor.PID, reason actor.TerminatedReason)
}

// CoverageHandler handles coverage commands (riak_core's handle_coverage): requests that read a part of
// every vnode's data (list keys, count), sent by a coverage request to a set of vnodes that together hold
// every key once. filter says which hash partitions of this vnode's data the request covers (a vnode holds
// the keys of several partitions' ranges: ring.Ring.Sources); items outside it must be left out, or the
// requester sees them twice.
//
// The result may be Reply (a small answer, computed in the actor), Async (one answer computed on the
// worker pool: a count), or Stream (items sent in chunks with acknowledgement: a key listing). NoReply
// leaves the requester waiting until its own timeout. Coverage commands are served locally during a
// handoff too, never forwarded (for a behaviour without HandoffCommander, the commands forwarded since
// the session began are at the new owner, not here).
type CoverageHandler interface {
	HandleCoverage(cmd any, filter Filter, from Sender) Result
}
