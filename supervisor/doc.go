// Package supervisor owns a gokai node's supervision tree: the node's services as child specs in dependency
// order, started in that order and stopped in reverse, with explicit restart limits.
//
// The tree of one node:
//
//	node (Tree, one_for_one, restart limits per child)
//	├── storage                (the goleveldb backend; owns the data dir)
//	├── ring / membership      (the ring this node serves)
//	├── vnode supervisor       (actor; one vnode actor per partition, one_for_one)
//	├── coordinator supervisor (actor; one temporary actor per request, overload cap)
//	└── listeners              (memcache, …: restartable Run loops)
//
// Actor children (vnodes, coordinators) are supervised by protoactor-go strategies inside their own
// supervisor actors; this package supervises the services around them. A child with a Run function is
// restarted when Run fails, up to MaxRestarts within Window; past that the failure escalates: the tree
// reports it on Done and the node shuts down in order (riak's "restart intensity": a node that cannot keep a
// service up stops rather than serve half-broken).
//
// It does not own: what the children do (they are functions), nor the actor system.
//
// Concurrency: Start and Stop are called by one goroutine (the node's main). Escalate and Done are safe
// from any goroutine.
package supervisor
