package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// newTopology builds a topology for t and removes it when t ends (or the binary is interrupted). It skips
// t where this machine cannot make network namespaces, and where nft is missing (a failure under CI,
// which installs it).
func newTopology(t *testing.T) *Topology {
	t.Helper()
	if err := HaveNft(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("nft is not installed (Debian package nftables; scripts/test.sh installs it): %v", err)
		}
		t.Skipf("nft is not installed (Debian package nftables): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topo, err := NewTopology(ctx)
	if errors.Is(err, ErrUnsupported) {
		t.Skipf("this machine cannot run the fault suite: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	done := live.add(func() {
		if err := topo.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "faults: close topology %s: %v\n", topo.Prefix(), err)
		}
	})
	t.Cleanup(done)
	return topo
}

// netNSOf identifies the network namespace of a thread (or of the process with "self").
func netNSOf(t *testing.T, path string) nsIdentity {
	t.Helper()
	id, err := pathIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// echo serves one line back on every connection of ln until ln closes, and reports the peers it saw.
func echo(ln net.Listener, peers chan<- string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			select {
			case peers <- c.RemoteAddr().String():
			default:
			}
			buf := make([]byte, 64)
			n, _ := c.Read(buf)
			_, _ = c.Write(buf[:n])
		}()
	}
}

// roundTrip writes msg on c and reads it back.
func roundTrip(c net.Conn, msg string) error {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo %q, want %q", buf, msg)
	}
	return nil
}

// TestHubDialAndPartition checks the approach the suite rests on: a socket made on a thread that entered
// the hub namespace reaches a node namespace through the bridge and keeps working after the thread left;
// every thread is back in the test's own namespace afterwards; nft rules in the node namespaces cut
// node-to-node traffic but never the hub's.
func TestHubDialAndPartition(t *testing.T) {
	before := links(t)
	topo := newTopology(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 1; i <= 2; i++ {
		if _, err := topo.AddNode(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	// The topology is made of namespaces only: no link appeared in ours.
	if after := links(t); after != before {
		t.Fatalf("the test's namespace has new links:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// A server in node 2's namespace (listening on node 2's address, which exists only there).
	addr2 := net.JoinHostPort(topo.NodeIP(2).String(), "7000")
	var ln net.Listener
	if err := topo.inNode(2, func() (err error) {
		ln, err = net.Listen("tcp4", addr2)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peers := make(chan string, 100)
	go echo(ln, peers)

	// Many dials at once from the hub.
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := topo.Dial(ctx, "tcp", addr2)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if err := roundTrip(c, fmt.Sprintf("hello %d", i)); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if p := <-peers; !strings.HasPrefix(p, topo.HubIP().String()+":") {
		t.Fatalf("the node saw a connection from %s, want the hub %s", p, topo.HubIP())
	}
	// Every thread of this process is back in our own namespace.
	self := netNSOf(t, "/proc/self/ns/net")
	tasks, err := filepath.Glob("/proc/self/task/*/ns/net")
	if err != nil || len(tasks) == 0 {
		t.Fatalf("list threads: %v", err)
	}
	for _, p := range tasks {
		if id, err := pathIdentity(p); err == nil && id != self {
			t.Fatalf("thread %s is still in another network namespace", p)
		}
	}
	// The address does not exist in our namespace.
	if _, err := net.Listen("tcp4", addr2); err == nil {
		t.Fatalf("%s is listenable in the test's own namespace", addr2)
	}

	// Node 1 reaches node 2 until a partition cuts them; the hub still reaches both.
	nodeDial := func() error {
		return topo.inNode(1, func() error {
			d := net.Dialer{Timeout: 500 * time.Millisecond}
			c, err := d.DialContext(ctx, "tcp4", addr2)
			if err != nil {
				return err
			}
			defer c.Close()
			return roundTrip(c, "from n1")
		})
	}
	if err := nodeDial(); err != nil {
		t.Fatalf("n1 → n2 before the partition: %v", err)
	}
	held, err := topo.Dial(ctx, "tcp", addr2) // a connection open across the partition
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := topo.Partition(ctx, []int{1}, []int{2}); err != nil {
		t.Fatal(err)
	}
	if err := nodeDial(); err == nil {
		rules, _ := topo.Rules(ctx, 1)
		t.Fatalf("n1 → n2 connected during the partition; n1's rules:\n%s", rules)
	}
	if err := roundTrip(held, "still here"); err != nil {
		t.Fatalf("hub connection across the partition: %v", err)
	}
	c, err := topo.Dial(ctx, "tcp", addr2)
	if err != nil {
		t.Fatalf("hub → n2 during the partition: %v", err)
	}
	c.Close()
	if err := topo.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if err := nodeDial(); err != nil {
		t.Fatalf("n1 → n2 after the heal: %v", err)
	}
	if rules, err := topo.Rules(ctx, 1); err != nil || strings.Contains(rules, faultTable) {
		t.Fatalf("n1 still has the fault table after the heal (%v):\n%s", err, rules)
	}
}

// links lists the names of the links in the test's own network namespace.
func links(t *testing.T) string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	return strings.Join(names, "\n")
}

// TestTopologyClose checks that Close removes every namespace, and that Sweep leaves a live owner's alone.
func TestTopologyClose(t *testing.T) {
	topo := newTopology(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := topo.AddNode(ctx, 1); err != nil {
		t.Fatal(err)
	}
	gone, err := Sweep(ctx)
	for _, ns := range gone {
		if strings.HasPrefix(ns, topo.Prefix()) {
			t.Fatalf("Sweep removed %s (%v) while its owner runs", ns, err)
		}
	}
	if err := topo.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool("ip"), "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), topo.Prefix()) {
		t.Fatalf("namespaces left after Close:\n%s", out)
	}
}
