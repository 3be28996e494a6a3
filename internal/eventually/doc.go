// Package eventually is the one way gokai's tests wait for a condition: poll it with a deadline, never
// sleep for a guessed time. A test that waits for something names it, so a failure says what did not happen.
//
// True and NoError fail the test (through t.Fatalf) when the deadline passes; Within and WithinEvery report
// whether the condition held, for callers that report failure themselves (with the cluster's state, say) or
// that watch for something that must not happen within a window.
//
// It owns no goroutines; the functions block the calling test until the condition holds or the deadline
// passes. Conditions run on the calling goroutine, so they may call t.Fatal.
package eventually
