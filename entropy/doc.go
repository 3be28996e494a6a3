// Package entropy runs active anti-entropy on a node: the AAE manager (the actor aae-sup) and its exchange
// actors, one per running exchange. Each period the manager plans, for every service that opted in, the
// exchanges its node runs (aae.Plan: every pair of primaries of every preference list that includes one of
// its vnodes, so each pair is compared from both ends), spreads them over the period and starts them, at
// most Concurrency at a time. An exchange actor asks its local vnode and the peer's vnode the same
// questions about one source's tree (vnode.AAEQuery: root, branches, segments twice, keys of the segments
// that still differ; aae.Exchange decides) and repairs every key that differs through the service's repair
// path (service.Instance.Repair: KV reads every replica and writes the merged object to those that lack
// it), at most RepairRate keys a second node-wide (a token bucket).
//
//	aae-sup (manager: plan, schedule, status, counters, repair bucket)
//	  ├── x-1   exchange (service, source, local vnode, peer vnode): queries ─► both vnodes
//	  └── x-2   ...                                                  repairs ─► service.Repair (a goroutine)
//
// It does not own the trees (package vnode keeps them, package aae is their pure core), the ring or
// liveness (the node's Cluster), nor how a service repairs a key.
//
// Concurrency: Manager methods are safe for concurrent use. Each actor's state is its own; the repair
// goroutine of an exchange touches only its arguments and reports back by message.
package entropy
