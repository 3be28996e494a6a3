package node

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// logAt writes one record at t through l's handler (the clock of the rate limit is the record's time).
func logAt(l *slog.Logger, at time.Time, level slog.Level, msg string, args ...any) {
	r := slog.NewRecord(at, level, msg, 0)
	r.Add(args...)
	_ = l.Handler().Handle(context.Background(), r)
}

// TestLogRateLimitWithCounts: a warning repeated within a second is dropped, and the next one that goes
// through says how many were; different partitions, peers and messages are different kinds; info lines
// are never limited.
func TestLogRateLimitWithCounts(t *testing.T) {
	var buf bytes.Buffer
	h := newLogHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
	l := slog.New(h).With("node", "n1")
	vl := l.With("partition", 3)
	t0 := time.Unix(1000, 0)
	for i := range 5 {
		logAt(vl, t0.Add(time.Duration(i)*100*time.Millisecond), slog.LevelWarn, "vnode busy")
	}
	logAt(l.With("partition", 4), t0.Add(200*time.Millisecond), slog.LevelWarn, "vnode busy")
	logAt(vl, t0.Add(300*time.Millisecond), slog.LevelError, "other trouble")
	for range 3 {
		logAt(vl, t0.Add(300*time.Millisecond), slog.LevelInfo, "info line")
	}
	logAt(vl, t0.Add(1200*time.Millisecond), slog.LevelWarn, "vnode busy")
	got := strings.TrimSpace(buf.String())
	want := strings.Join([]string{
		`level=WARN msg="vnode busy" node=n1 partition=3`,
		`level=WARN msg="vnode busy" node=n1 partition=4`,
		`level=ERROR msg="other trouble" node=n1 partition=3`,
		`level=INFO msg="info line" node=n1 partition=3`,
		`level=INFO msg="info line" node=n1 partition=3`,
		`level=INFO msg="info line" node=n1 partition=3`,
		`level=WARN msg="vnode busy" node=n1 partition=3 suppressed=4`,
	}, "\n")
	if got != want {
		t.Fatalf("logged:\n%s\nwant:\n%s", got, want)
	}
}

// TestLogNamesPeers: a line naming a member's transport address gets the member's name as peer.
func TestLogNamesPeers(t *testing.T) {
	var buf bytes.Buffer
	h := newLogHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	l := slog.New(h)
	l.Info("before the cluster", "address", "10.0.0.2:11013")
	peerOf := func(addr string) string {
		if addr == "10.0.0.2:11013" {
			return "n2"
		}
		return ""
	}
	h.st.peerOf.Store(&peerOf)
	l.Warn("EndpointWriter lost connection", "address", "10.0.0.2:11013")
	l.Info("unknown", "address", "10.0.0.9:11013")
	l.Info("already named", "peer", "n3", "address", "10.0.0.2:11013")
	want := strings.Join([]string{
		`level=INFO msg="before the cluster" address=10.0.0.2:11013`,
		`level=WARN msg="EndpointWriter lost connection" address=10.0.0.2:11013 peer=n2`,
		`level=INFO msg=unknown address=10.0.0.9:11013`,
		`level=INFO msg="already named" peer=n3 address=10.0.0.2:11013`,
	}, "\n")
	if got := strings.TrimSpace(buf.String()); got != want {
		t.Fatalf("logged:\n%s\nwant:\n%s", got, want)
	}
}
