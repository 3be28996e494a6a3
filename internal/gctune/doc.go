// Package gctune decides and applies the Go collector's settings of a gokai process: the GC percent (the
// runtime's GOGC), the soft memory limit (GOMEMLIMIT) and a heap floor, from `gokai start`'s flags
// -gc-percent, -memory-limit and -gc-min-heap.
//
// Why a node sets them: a node allocates a few KB per request and keeps a live heap of tens of MB (the
// object cache, goleveldb's buffers, the process registry). With the runtime's default of 100 the collector
// runs every time the heap has grown by its live size, several times a second under load, and each cycle
// takes a quarter of the cores for its marking, which is where a node's slowest requests wait. A higher
// percent runs it less often; the soft memory limit keeps that from growing the heap past what the machine
// can give (the collector works harder as the heap nears the limit, whatever the percent).
//
// The heap floor: a node's live heap is small (about 50 MB), so at 100 the heap target is about 100 MB and
// the collector runs every second or so under load; its marking is about half of the open-loop p99.9
// (docs/benchmarks.md). A higher percent for every node let a large live heap's garbage pile up to five
// times its size. The floor raises the percent only while the live heap is small: after each collection a
// hook reads the live heap (runtime/metrics /gc/heap/live:bytes) and the memory limit, and sets the percent
// PercentFor decides, so that the next heap target is max(live x (1 + percent/100), floor), the floor
// capped at half the soft memory limit. A live heap whose target at the percent reaches the floor (at 100:
// half the floor or more) gets the percent alone.
//
//	live heap  48 MiB, percent 100, floor 256 MiB  ->  percent 434: target 256 MiB, not 96 MiB
//	live heap 300 MiB, percent 100, floor 256 MiB  ->  percent 100: target 600 MiB, as without a floor
//
// The hook is the finalizer of a sentinel object that re-arms itself each time (the pattern of the
// gctuner libraries): the runtime runs it on its finalizer goroutine after each collection that found the
// sentinel unreachable, so it costs one finalizer call per collection and no goroutine of its own. The
// percent a collection uses is the one set after the collection before, for that one's live heap.
//
// The environment wins: when GOGC or GOMEMLIMIT is set, the runtime has applied it already and the flag of
// the same setting is left alone (Decide says so, and the node logs it); with GOGC set there is no floor,
// nor with a percent of -1.
//
// Decide and PercentFor are pure (the environment, the machine's memory, the live heap and the limit are
// parameters); Plan.Apply changes the process's runtime and is called once, by the process shell, before the
// node starts; Plan.Start starts the floor's hook (a Tuner) and Tuner.Stop stops it: once Stop returns the
// hook changes nothing and the configured percent is back in force, and the next collection drops the
// sentinel. The runtime's settings are process-wide: one Tuner per process, started by its shell. A node
// embedded in another program leaves the runtime to that program. The Tuner's state is behind its mutex;
// the package owns no goroutines.
package gctune
