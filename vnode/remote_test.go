package vnode_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// Cross-node tests run the other node as a child process (this test binary re-executed with
// -test.run=^TestHelperVnodeNode$): two transports in one process trip the race detector (see package
// actors). The test process runs one transport of its own, shared by the tests.

// The test messages travel between the two processes; test binaries only, far from every real code.
func init() {
	actors.RegisterWire(60001, func() any { return &addElem{} })
	actors.RegisterWire(60002, func() any { return &elemAdded{} })
	actors.RegisterWire(60003, func() any { return &hasElem{} })
	actors.RegisterWire(60004, func() any { return &elemHeld{} })
	actors.RegisterWire(60005, func() any { return &listCmd{} })
	actors.RegisterWire(60006, func() any { return &countCmd{} })
	actors.RegisterWire(60007, func() any { return &countReply{} })
}

const (
	vnodeHelperEnv = "GOKAI_TEST_VNODE_NODE"
	vnodeAddrLine  = "GOKAI_ADDR="
)

// TestHelperVnodeNode is not a test: it is the body of the other node's process. It runs a probe vnode of
// partition 5 under the default supervisor name (other nodes may address it) until stdin closes.
func TestHelperVnodeNode(t *testing.T) {
	if os.Getenv(vnodeHelperEnv) == "" {
		t.Skip("helper process for the cross-node tests")
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sys := actors.NewSystem(logger)
	r, err := actors.StartRemote(sys, actors.RemoteConfig{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	j := newJournal()
	j.cover = (&numbers{}).cover
	m, err := vnode.StartManager(sys, vnode.ManagerConfig{Node: "b", Partitions: []int{5}, Factory: j.factory(),
		Store: storage.NewMemory(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%s%s\n", vnodeAddrLine, r.Address())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = m.Stop(context.Background())
	r.Stop(true)
	sys.Shutdown()
}

// startVnodeNode starts the other node and returns its vnode of partition 5.
func startVnodeNode(t *testing.T) *actor.PID {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperVnodeNode$", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), vnodeHelperEnv+"=1")
	var stderr strings.Builder
	var mu sync.Mutex
	cmd.Stderr = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return stderr.Write(p) })
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		mu.Lock()
		defer mu.Unlock()
		if strings.Contains(stderr.String(), "DATA RACE") || t.Failed() {
			t.Errorf("other node's stderr:\n%s", stderr.String())
		}
	})
	addr := make(chan string, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), vnodeAddrLine); ok {
				addr <- a
			}
		}
		_ = cmd.Wait()
	}()
	select {
	case a := <-addr:
		return actor.NewPID(a, actors.VnodeSupervisorName+"/"+actors.VnodeName(5))
	case <-done:
		t.Fatal("the other node exited before serving")
	case <-time.After(30 * time.Second):
		t.Fatal("the other node did not report its address")
	}
	return nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

var (
	remoteOnce sync.Once
	remoteSys  *actor.ActorSystem
	remoteErr  error
)

// remoteSystem is the test process's actor system with a transport (one per process).
func remoteSystem(t *testing.T) *actor.ActorSystem {
	t.Helper()
	remoteOnce.Do(func() {
		logger := slog.New(slog.DiscardHandler)
		remoteSys = actors.NewSystem(logger)
		_, remoteErr = actors.StartRemote(remoteSys, actors.RemoteConfig{Logger: logger})
	})
	if remoteErr != nil {
		t.Fatal(remoteErr)
	}
	return remoteSys
}

// TestCrossNodeForwardAndCoverage: a command forwarded by the default handoff rule reaches the new owner on
// another node, which answers the original sender there directly and acknowledges to the old owner; a
// coverage stream from another node's vnode arrives chunk by chunk, acknowledged over the wire; a single
// Async answer crosses too.
func TestCrossNodeForwardAndCoverage(t *testing.T) {
	sys := remoteSystem(t)
	pb := startVnodeNode(t)
	eventually.NoError(t, 20*time.Second, "the other node's vnode answers", func() error {
		_, err := actors.Request(context.Background(), sys, pb, &hasElem{Elem: "x"}, time.Second)
		return err
	})
	dbA := storage.NewMemory()
	// NB: under the default supervisor name: the transport lets peers address vnodes only there, and the new
	// owner's acknowledgements must reach this one.
	a, err := vnode.StartManager(sys, vnode.ManagerConfig{Node: "a", Partitions: []int{5},
		Factory: func() vnode.Behaviour { return &setVnode{} }, Store: dbA, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Stop(context.Background()) }()
	pa := a.PID(5)

	st := req(t, sys, pa, &vnode.BeginHandoff{Target: pb, Node: "b"}).(*vnode.HandoffStarted)
	for i := range 20 {
		if rep := addVia(t, sys, pa, "fwd"+strconv.Itoa(i)); rep.Err != "" || rep.Elem != "fwd"+strconv.Itoa(i) {
			t.Fatalf("forwarded write: %+v", rep)
		}
	}
	fl := req(t, sys, pa, &vnode.FinishHandoff{Session: st.Session, AckTimeout: 5 * time.Second}).(*vnode.HandoffFlushed)
	if fl.Err != "" || fl.Forwarded != 20 {
		t.Fatalf("flush: %+v", fl)
	}
	if !req(t, sys, pb, &hasElem{Elem: "fwd7"}).(*elemHeld).Held || holds(dbA, 5, "fwd7") {
		t.Fatal("the forwarded write is not (only) at the new owner")
	}

	var got []string
	_, err = vnode.RequestCoverage(context.Background(), sys, pb, &vnode.CoverageRequest{Cmd: &listCmd{N: 1000}, MaxItems: 64, Window: 2},
		10*time.Second, func(items [][]byte) error {
			for _, it := range items {
				got = append(got, string(it))
			}
			return nil
		})
	if err != nil || len(got) != 1000 || got[0] != "0" || got[999] != "999" {
		t.Fatalf("stream from the other node: %d items, %v", len(got), err)
	}
	rep, err := vnode.RequestCoverage(context.Background(), sys, pb, &vnode.CoverageRequest{Cmd: &countCmd{}}, 10*time.Second, nil)
	if err != nil || rep.(*countReply).N != 42 {
		t.Fatalf("async answer from the other node: %v %v", rep, err)
	}
}
