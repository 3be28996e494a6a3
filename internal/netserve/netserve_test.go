package netserve

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// flakyListener fails its first accepts with a transient error, then with a permanent one.
type flakyListener struct {
	net.Listener
	transient int
	calls     atomic.Int64
	closed    atomic.Bool
}

func (l *flakyListener) Accept() (net.Conn, error) {
	n := l.calls.Add(1)
	if n <= int64(l.transient) {
		return nil, &net.OpError{Op: "accept", Err: os.NewSyscallError("accept", syscall.EMFILE)}
	}
	if l.closed.Load() {
		return nil, net.ErrClosed
	}
	return nil, errors.New("permanent failure")
}

func TestAcceptLoopRetriesTransientErrorsAndStopsOnOthers(t *testing.T) {
	l := &flakyListener{transient: 3}
	start := time.Now()
	err := AcceptLoop(l, "test", slog.New(slog.DiscardHandler), func() bool { return false }, nil, func(net.Conn) {})
	if err == nil || err.Error() != "test: accept: permanent failure" {
		t.Fatalf("err %v", err)
	}
	if l.calls.Load() != 4 {
		t.Fatalf("accept called %d times, want 4", l.calls.Load())
	}
	if d := time.Since(start); d < 5*time.Millisecond+10*time.Millisecond+20*time.Millisecond {
		t.Fatalf("no backoff between retries (%s)", d)
	}
}

func TestAcceptLoopReturnsNilWhenClosing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var closing atomic.Bool
	got := make(chan net.Conn, 1)
	done := make(chan error, 1)
	go func() {
		done <- AcceptLoop(ln, "test", slog.New(slog.DiscardHandler), closing.Load, nil, func(c net.Conn) { got <- c })
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	(<-got).Close()
	closing.Store(true)
	ln.Close()
	if err := <-done; err != nil {
		t.Fatalf("closing: %v", err)
	}
}

func TestRetryableAccept(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{os.NewSyscallError("accept", syscall.EMFILE), true},
		{os.NewSyscallError("accept", syscall.ECONNABORTED), true},
		{net.ErrClosed, false},
		{errors.New("other"), false},
	} {
		if got := RetryableAccept(tc.err); got != tc.want {
			t.Errorf("RetryableAccept(%v) = %v", tc.err, got)
		}
	}
}
