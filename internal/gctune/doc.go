// Package gctune decides and applies the Go collector's settings of a gokai process: the GC percent (the
// runtime's GOGC) and the soft memory limit (GOMEMLIMIT), from `gokai start`'s flags -gc-percent and
// -memory-limit.
//
// Why a node sets them: a node allocates a few KB per request and keeps a live heap of tens of MB (the
// object cache, goleveldb's buffers, the process registry). With the runtime's default of 100 the collector
// runs every time the heap has grown by its live size, several times a second under load, and each cycle
// takes a quarter of the cores for its marking, which is where a node's slowest requests wait. A higher
// percent runs it less often; the soft memory limit keeps that from growing the heap past what the machine
// can give (the collector works harder as the heap nears the limit, whatever the percent).
//
// The environment wins: when GOGC or GOMEMLIMIT is set, the runtime has applied it already and the flag of
// the same setting is left alone (Decide says so, and the node logs it).
//
// Decide is pure (the environment and the machine's memory are parameters); Plan.Apply changes the process's
// runtime and is called once, by the process shell, before the node starts. A node embedded in another
// program leaves the runtime to that program. This package owns no goroutines and keeps no state.
package gctune
