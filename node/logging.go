package node

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The node's log handler wraps the one it is given (New's logger) with two things every line gets:
//
//   - peer: a line that names another member by its transport address ("address", as protoactor's
//     transport logs it, or "addr") also gets "peer" with that member's name, once the cluster is up;
//   - rate limits: a warning or error repeated (same level, message, service, partition and peer) within
//     logEvery is dropped, and the next one that goes through carries "suppressed", n (internal/ratelog's
//     rule, applied to every warning, so a flood of one kind — a dead peer's transport, a refused request,
//     a crashing vnode — cannot drown the rest or fill the disk).
//
// Every line already carries "node" (New's logger.With) and, from a vnode or a transfer, "partition".

// logEvery is the interval of the warning rate limit.
const logEvery = time.Second

// logKeysMax bounds the rate limiter's table; past it, entries older than logEvery are forgotten.
const logKeysMax = 4096

// logState is shared by a handler and every handler derived from it (WithAttrs, WithGroup).
type logState struct {
	mu   sync.Mutex
	last map[string]*logSeen // REQUIRES: mu held

	// peerOf names the member at a transport address ("" if none, or this node); nil before the cluster
	// started.
	peerOf atomic.Pointer[func(addr string) string]
}

type logSeen struct {
	at         time.Time
	suppressed int
}

type logHandler struct {
	inner slog.Handler
	st    *logState
	// key holds the attributes added by WithAttrs that make a line's kind (service, partition, peer).
	key   string
	group bool // a group was opened: later attributes are not top-level
}

// newLogHandler wraps h.
func newLogHandler(h slog.Handler) *logHandler {
	return &logHandler{inner: h, st: &logState{last: map[string]*logSeen{}}}
}

func (h *logHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.inner = h.inner.WithAttrs(as)
	if !h.group {
		for _, a := range as {
			if kindKey(a.Key) {
				c.key += a.Key + "=" + a.Value.String() + " "
			}
		}
	}
	return &c
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.inner = h.inner.WithGroup(name)
	c.group = c.group || name != ""
	return &c
}

// kindKey reports whether attribute k distinguishes kinds of lines for the rate limit.
func kindKey(k string) bool { return k == "service" || k == "partition" || k == "peer" }

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	key := h.key
	var addr, peer string
	if !h.group {
		r.Attrs(func(a slog.Attr) bool {
			switch {
			case kindKey(a.Key):
				key += a.Key + "=" + a.Value.String() + " "
				if a.Key == "peer" {
					peer = a.Value.String()
				}
			case (a.Key == "address" || a.Key == "addr") && a.Value.Kind() == slog.KindString:
				addr = a.Value.String()
			}
			return true
		})
	}
	if addr != "" && peer == "" && !strings.Contains(h.key, "peer=") {
		if f := h.st.peerOf.Load(); f != nil {
			if name := (*f)(addr); name != "" {
				r.AddAttrs(slog.String("peer", name))
				key += "peer=" + name + " "
			}
		}
	}
	if r.Level >= slog.LevelWarn {
		ok, n := h.st.allow(r.Level.String()+" "+r.Message+" "+key, r.Time)
		if !ok {
			return nil
		}
		if n > 0 {
			r.AddAttrs(slog.Int("suppressed", n))
		}
	}
	return h.inner.Handle(ctx, r)
}

// allow is the rate limit: one line of a kind per logEvery, with the count of those dropped since.
func (s *logState) allow(key string, now time.Time) (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.last[key]
	if e == nil {
		if len(s.last) >= logKeysMax {
			for k, old := range s.last {
				if now.Sub(old.at) >= logEvery {
					delete(s.last, k)
				}
			}
			if len(s.last) >= logKeysMax {
				return true, 0 // NB: thousands of kinds within a second: let them through rather than grow
			}
		}
		s.last[key] = &logSeen{at: now}
		return true, 0
	}
	if now.Sub(e.at) < logEvery {
		e.suppressed++
		return false, 0
	}
	n := e.suppressed
	e.at, e.suppressed = now, 0
	return true, n
}
