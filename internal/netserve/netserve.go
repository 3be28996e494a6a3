package netserve

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"
	"time"
)

// AcceptLoop accepts connections on ln and hands each to accept until ln fails. When closing() reports
// true at that point it returns nil (the server is shutting down); a transient error (out of descriptors or
// memory, a connection reset before it was accepted, a timeout) is retried after a backoff doubling from
// 5 ms to 1 s, cut short when wake is closed; any other error is returned, prefixed with name.
func AcceptLoop(ln net.Listener, name string, log *slog.Logger, closing func() bool, wake <-chan struct{}, accept func(net.Conn)) error {
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if closing() {
				return nil
			}
			if !RetryableAccept(err) {
				return fmt.Errorf("%s: accept: %w", name, err)
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.Warn(name+": accept failed; retrying", "err", err, "backoff", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-wake:
				t.Stop()
			}
			continue
		}
		backoff = 0
		accept(nc)
	}
}

// RetryableAccept reports whether an Accept error is transient.
func RetryableAccept(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
