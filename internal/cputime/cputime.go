// Package cputime reads the process's CPU time, for benchmarks that report CPU per operation
// (b.ReportMetric(..., "cpu-ns/op")): on a machine shared with other work the CPU a process spends per
// operation moves much less than the wall time per operation does.
//
// It owns no state and is safe for concurrent use.
package cputime

import "syscall"

// Process returns the process's user and system CPU time in nanoseconds, or 0 if the system does not tell.
func Process() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
