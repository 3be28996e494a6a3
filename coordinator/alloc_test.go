package coordinator

import (
	"errors"
	"fmt"
	"testing"
	"time"
	"unsafe"
)

// Allocation ceilings of TestFSMStepAllocations (targets3 and newQuorum included).
const readAllocs, writeAllocs = 5, 12

// TestFSMStepAllocations bounds the allocations of one whole read and one whole write through the pure FSMs
// (three replicas answer the same value), which run on every request's path: each step appends its effects to
// one slice instead of building and copying one per helper, and a read's steps return its FSM's own buffer
// (8 allocations before). Boxing the effects into the Effect interface and the FSM itself account for the rest.
func TestFSMStepAllocations(t *testing.T) {
	v := obj("x")
	read := func() {
		f := newGet(GetParams{R: 2, Timeout: time.Second, Linger: time.Second}, targets3())
		f.Start()
		f.Reply(0, v, nil)
		f.Reply(1, v, nil)
		f.Reply(2, v, nil)
	}
	write := func() {
		f := newPut(PutParams{W: 2, Timeout: time.Second, Linger: time.Second}, targets3(), 0)
		f.Start()
		f.Reply(0, v, nil)
		f.Reply(1, v, nil)
		f.Reply(2, v, nil)
	}
	for _, tt := range []struct {
		name string
		run  func()
		max  float64
	}{{"read", read, readAllocs}, {"write", write, writeAllocs}} {
		if n := testing.AllocsPerRun(200, tt.run); n > tt.max {
			t.Errorf("%s of three replicas: %v allocations, want at most %v", tt.name, n, tt.max)
		}
	}
}

// TestServiceCountAllocations: counting a request's outcome allocates nothing when it succeeded (every
// request is counted), and still tells timeouts from other quorum failures.
func TestServiceCountAllocations(t *testing.T) {
	s := &Service{}
	if n := testing.AllocsPerRun(100, func() { s.count(nil) }); n != 0 {
		t.Errorf("count(nil): %v allocations, want 0", n)
	}
	s.count(&QuorumError{Timeout: true})
	s.count(fmt.Errorf("wrapped: %w", &QuorumError{}))
	s.count(errors.New("other"))
	if st := s.Stats(); st.Timeouts != 1 || st.QuorumFailures != 1 {
		t.Errorf("stats %+v: want 1 timeout and 1 quorum failure", st)
	}
}

// sizeOp has the size of KV's read op (four GetRequests of 32 bytes: kv's TestGetOpSize pins it).
type sizeOp struct{ reqs [4][32]byte }

func (o *sizeOp) Command([]byte, uint32) any             { return nil }
func (o *sizeOp) Replicate([]byte, uint32, *sizeVal) any { return nil }
func (o *sizeOp) Reap([]byte, *sizeVal) any              { return nil }

type sizeVal struct{}

// TestRequestActorSize: a read's request actor (one allocation per read, with its FSM, op, props and mailbox
// inside) fits the 1280-byte size class. An object with pointers over 512 bytes carries an 8-byte header of
// the allocator, so the struct must stay within 1272 bytes; past it every read allocates 1408. (Without its
// mailbox the actor fit 1024 bytes, and protoactor's default mailbox cost nine allocations of ~400 bytes
// besides: actors.TestCanaryMailboxSpawnAllocations.)
func TestRequestActorSize(t *testing.T) {
	var a requestActor[*sizeVal, sizeOp, *sizeOp]
	if n := unsafe.Sizeof(a); n > 1272 {
		t.Fatalf("a read's request actor is %d bytes: over 1272, its allocation takes the 1408-byte size class", n)
	}
}
