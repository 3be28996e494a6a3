package netserve

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"
)

func TestTrackerAdmitsUpToMaxAndRefusesAfterClose(t *testing.T) {
	tr := NewTracker[int](2)
	for i := range 2 {
		if tr.Full() {
			t.Fatalf("full with %d open", i)
		}
		if !tr.Add(i) {
			t.Fatalf("Add(%d) refused", i)
		}
	}
	if !tr.Full() || tr.Open().Load() != 2 {
		t.Fatalf("Full %v, Open %d; want true, 2", tr.Full(), tr.Open().Load())
	}
	tr.Done(0)
	if tr.Full() || tr.Open().Load() != 1 {
		t.Fatalf("after Done: Full %v, Open %d; want false, 1", tr.Full(), tr.Open().Load())
	}

	var stopped []int
	tr.Close(func(c int) { stopped = append(stopped, c) })
	if !tr.Closing() || len(stopped) != 1 || stopped[0] != 1 {
		t.Fatalf("Closing %v, stopped %v; want true, [1]", tr.Closing(), stopped)
	}
	select {
	case <-tr.Stopping():
	default:
		t.Fatal("Stopping not closed by Close")
	}
	if tr.Add(2) || tr.AddTask() {
		t.Fatal("Add or AddTask accepted after Close")
	}
	tr.Close(func(int) {}) // a second Close does not panic
}

func TestTrackerWaitForConnectionsAndTasks(t *testing.T) {
	tr := NewTracker[string](10)
	tr.Add("a")
	if !tr.AddTask() {
		t.Fatal("AddTask refused")
	}
	tr.Close(func(string) {})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := tr.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with open connection and task: %v", err)
	}
	var left []string
	tr.Each(func(c string) { left = append(left, c) })
	if len(left) != 1 || left[0] != "a" {
		t.Fatalf("Each saw %v, want [a]", left)
	}

	tr.Done("a")
	tr.TaskDone()
	if err := tr.Wait(context.Background()); err != nil {
		t.Fatalf("Wait after Done: %v", err)
	}
	tr.Each(func(c string) { t.Fatalf("Each saw %q after Done", c) })
}

func TestTrackerServeReturnsNilOnClose(t *testing.T) {
	tr := NewTracker[net.Conn](10)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	done := make(chan error, 1)
	go func() {
		done <- tr.Serve(ln, "test", slog.New(slog.DiscardHandler), tr.Stopping(), func(c net.Conn) { accepted <- c })
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	(<-accepted).Close() // the listener is registered once it accepts
	tr.Close(func(net.Conn) {})
	if err := <-done; err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}

	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Serve(ln2, "test", slog.New(slog.DiscardHandler), nil, func(net.Conn) {}); err != nil {
		t.Fatalf("Serve on a closed tracker: %v", err)
	}
	if _, err := ln2.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve on a closed tracker left the listener open: %v", err)
	}
}
