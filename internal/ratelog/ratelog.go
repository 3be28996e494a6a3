package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// DefaultEvery is the interval of a Limiter whose Every is zero.
const DefaultEvery = time.Second

// Limiter lets one line of its kind through per interval. The zero value is ready (one line a second, the
// real clock).
type Limiter struct {
	// Every is the interval; zero means DefaultEvery.
	Every time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu         sync.Mutex
	last       time.Time // when the last line went through; zero: none yet
	suppressed int       // lines refused since then. REQUIRES: mu held.
}

// Allow reports whether a line may be written at now and, if so, how many lines were suppressed since the
// last one that was. It is the whole decision; Log is Allow plus the write.
func (l *Limiter) Allow(now time.Time) (ok bool, suppressed int) {
	every := l.Every
	if every <= 0 {
		every = DefaultEvery
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}

// Log writes msg at level through log unless a line of this kind went through less than an interval ago;
// a line that goes through carries "suppressed", n when n lines were dropped before it. It reports whether
// the line was written (true also when log is nil or the level is disabled: the line was allowed).
func (l *Limiter) Log(log *slog.Logger, level slog.Level, msg string, args ...any) bool {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	ok, n := l.Allow(now())
	if !ok {
		return false
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	if log != nil {
		log.Log(context.Background(), level, msg, args...)
	}
	return true
}

// Warn is Log at slog.LevelWarn.
func (l *Limiter) Warn(log *slog.Logger, msg string, args ...any) bool {
	return l.Log(log, slog.LevelWarn, msg, args...)
}

// Debug is Log at slog.LevelDebug.
func (l *Limiter) Debug(log *slog.Logger, msg string, args ...any) bool {
	return l.Log(log, slog.LevelDebug, msg, args...)
}

// Kinds is a set of Limiters keyed by kind, for a call site whose lines come in a few kinds that must not
// hide each other (one per error code, say). Keys must come from a small fixed set, never from a client:
// each key holds a Limiter for the life of the Kinds. The zero value is ready.
type Kinds struct {
	// Every and Now configure every Limiter of the set (see Limiter).
	Every time.Duration
	Now   func() time.Time

	mu sync.Mutex
	m  map[string]*Limiter // REQUIRES: mu held
}

// Of returns the Limiter of kind, creating it on first use.
func (k *Kinds) Of(kind string) *Limiter {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.m[kind]
	if l == nil {
		if k.m == nil {
			k.m = make(map[string]*Limiter)
		}
		l = &Limiter{Every: k.Every, Now: k.Now}
		k.m[kind] = l
	}
	return l
}
