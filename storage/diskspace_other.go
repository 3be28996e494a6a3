//go:build !(linux || darwin || freebsd)

package storage

// freeBytes cannot tell on this system: Heal then tries to reopen on every backoff step.
func freeBytes(string) (uint64, bool) { return 0, false }
