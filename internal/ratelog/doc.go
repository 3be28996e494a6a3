// Package ratelog rate-limits log lines that a flood of requests can repeat: at most one line per kind per
// interval (a second by default), and the line that gets through carries the number of lines suppressed
// since the previous one ("suppressed", n). A shed request, a bad frame or a refused transport message is
// then one line a second however fast the flood comes, and the count still says how big it was.
//
// It owns the decision (Allow, pure given the time) and a thin shell that writes through a *slog.Logger. It
// does not own the logger, levels or what a kind is: each call site keeps its own Limiter (or a Kinds keyed
// by a small fixed set of names, such as error codes).
//
// # Concurrency
//
// A Limiter and a Kinds may be used from any number of goroutines. Suppressed lines are only counted; a
// count is reported with the next line of its kind, so the last burst before a kind goes quiet is
// reported only if the kind logs again.
package ratelog
