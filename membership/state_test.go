package membership

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/gokai-kv/gokai/ring"
)

// mem returns a member with addresses derived from its name.
func mem(name string) Member {
	return Member{Name: ring.NodeID(name), RPCAddr: name + ":8087", TransportAddr: name + ":8088", MemcacheAddr: name + ":11211"}
}

// must returns a function that fails t on an error and returns the state.
func must(t testing.TB) func(*ClusterState, error) *ClusterState {
	return func(s *ClusterState, err error) *ClusterState {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if s == nil {
			t.Fatal("nil state without error")
		}
		return s
	}
}

// newState returns a one-node cluster "c1" of node a.
func newState(t testing.TB, q, n int) *ClusterState {
	t.Helper()
	return must(t)(NewClusterState("c1", mem("a"), q, n))
}

// completeAll completes every waiting transfer in list order.
func completeAll(t testing.TB, s *ClusterState) *ClusterState {
	t.Helper()
	for _, tr := range slices.Clone(s.Transfers) {
		if tr.State == TransferWaiting {
			var err error
			s, err = s.CompleteTransfer(tr.Partition, tr.From, tr.To)
			must(t)(s, err)
		}
	}
	return s
}

// statusOf returns the status of n in s ("" if not a member).
func statusOf(s *ClusterState, n ring.NodeID) MemberStatus {
	m, _ := s.Member(n)
	return m.Status
}

func TestNewClusterState(t *testing.T) {
	s := newState(t, 64, 3)
	if s.Version != 1 || s.Ring.Version() != 1 || s.Claimant != "a" || s.N != 3 || s.Ring.Q() != 64 {
		t.Fatalf("got %v", s)
	}
	if statusOf(s, "a") != StatusValid || len(s.Ring.PartitionsOf("a")) != 64 || s.PartitionsAfter("a") != 64 {
		t.Fatalf("a: %v, %d partitions", statusOf(s, "a"), len(s.Ring.PartitionsOf("a")))
	}
	long := string(bytes.Repeat([]byte("x"), MaxNameBytes+1))
	for _, tc := range []struct {
		name    string
		cluster string
		self    Member
		q, n    int
		want    error
	}{
		{"empty cluster", "", mem("a"), 64, 3, ErrInvalidState},
		{"long cluster", long, mem("a"), 64, 3, ErrInvalidState},
		{"empty name", "c", Member{}, 64, 3, ErrInvalidMember},
		{"long name", "c", mem(long), 64, 3, ErrInvalidMember},
		{"long address", "c", Member{Name: "a", RPCAddr: long + long}, 64, 3, ErrInvalidMember},
		{"q not a power of two", "c", mem("a"), 48, 3, ring.ErrInvalidQ},
		{"n zero", "c", mem("a"), 64, 0, ring.ErrInvalidN},
		{"n too large", "c", mem("a"), 64, MaxReplicas + 1, ring.ErrInvalidN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewClusterState(tc.cluster, tc.self, tc.q, tc.n)
			if s != nil || !errors.Is(err, tc.want) {
				t.Fatalf("got %v, %v; want %v", s, err, tc.want)
			}
		})
	}
}

// TestJoinPlanCommitTransfers walks riak's story: stage two joins, plan,
// commit, hand the partitions off one by one.
func TestJoinPlanCommitTransfers(t *testing.T) {
	s0 := newState(t, 64, 3)
	s1 := must(t)(s0.StageJoin(mem("b")))
	s2 := must(t)(s1.StageJoin(Member{Name: "c", Status: StatusJoining}))
	if s2.Version != 3 || s2.Ring.Version() != 3 || len(s2.Staged) != 2 || statusOf(s2, "b") != StatusJoining {
		t.Fatalf("after staging: %v %v", s2, s2.Members)
	}
	if !slices.Equal(s2.Ring.Owners(), s0.Ring.Owners()) {
		t.Fatal("staging changed the owners")
	}
	p, err := s2.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if p.TargetNWarning == "" {
		t.Fatal("3 nodes with n=3 and q=64: want a target-n warning")
	}
	if p.Next.Version() != 4 || len(p.Transfers) != 42 || !slices.Equal(p.Changes, s2.Staged) {
		t.Fatalf("plan: next v%d, %d transfers (want 42 = 64 - 22), changes %v", p.Next.Version(), len(p.Transfers), p.Changes)
	}
	s3 := must(t)(s2.Commit())
	if s3.Version != 4 || len(s3.Staged) != 0 || statusOf(s3, "b") != StatusValid || statusOf(s3, "c") != StatusValid {
		t.Fatalf("after commit: %v %v", s3, s3.Members)
	}
	if !slices.Equal(s3.Ring.Owners(), s0.Ring.Owners()) || !reflect.DeepEqual(s3.Transfers, p.Transfers) {
		t.Fatal("commit must keep the owners and list the plan's transfers")
	}
	if got := s3.PartitionsAfter("b") + s3.PartitionsAfter("c") + s3.PartitionsAfter("a"); got != 64 {
		t.Fatalf("partitions after sum to %d", got)
	}
	if _, err := s3.Plan(); !errors.Is(err, ErrTransfersPending) {
		t.Fatalf("plan with transfers pending: %v", err)
	}
	first := s3.Transfers[0]
	s4 := must(t)(s3.CompleteTransfer(first.Partition, first.From, first.To))
	if s4.Ring.Owner(first.Partition) != first.To || s4.Transfers[0].State != TransferDone || s4.Version != 5 {
		t.Fatalf("after one transfer: owner %s, %v", s4.Ring.Owner(first.Partition), s4.Transfers[0])
	}
	if _, err := s4.CompleteTransfer(first.Partition, first.From, first.To); !errors.Is(err, ErrTransferDone) {
		t.Fatalf("repeated completion: %v", err)
	}
	s5 := completeAll(t, s4)
	if len(s5.Transfers) != 0 || !slices.Equal(s5.Ring.Owners(), p.Next.Owners()) {
		t.Fatalf("after all transfers: %d transfers, owners differ from the plan", len(s5.Transfers))
	}
	checkBalanced(t, s5.Ring.Owners(), []ring.NodeID{"a", "b", "c"})
	if _, err := s5.CompleteTransfer(first.Partition, first.From, first.To); !errors.Is(err, ErrNoSuchTransfer) {
		t.Fatalf("completion after the list was cleared: %v", err)
	}
}

// TestLeaveClaimant: the claimant leaves; the claim passes at commit and the
// node is removed once its partitions moved.
func TestLeaveClaimant(t *testing.T) {
	s := newState(t, 16, 2)
	s = must(t)(s.StageJoin(mem("b")))
	s = must(t)(s.StageJoin(mem("c")))
	s = completeAll(t, must(t)(s.Commit()))
	s = must(t)(s.StageLeave("a"))
	if statusOf(s, "a") != StatusLeaving || s.Claimant != "a" {
		t.Fatalf("after staging the leave: %v, claimant %s", statusOf(s, "a"), s.Claimant)
	}
	s = must(t)(s.Commit())
	if statusOf(s, "a") != StatusExiting || s.Claimant != "b" {
		t.Fatalf("after commit: a %v, claimant %s (want exiting, b)", statusOf(s, "a"), s.Claimant)
	}
	if s.PartitionsAfter("a") != 0 || len(s.Transfers) < len(s.Ring.PartitionsOf("a")) {
		t.Fatalf("a keeps %d partitions after transfers; %d transfers", s.PartitionsAfter("a"), len(s.Transfers))
	}
	s = completeAll(t, s)
	if _, ok := s.Member("a"); ok || len(s.Transfers) != 0 {
		t.Fatalf("a still a member after its partitions moved: %v", s.Members)
	}
	checkBalanced(t, s.Ring.Owners(), []ring.NodeID{"b", "c"})
	if !distinctWindows(s.Ring.Owners(), 2) {
		t.Fatal("2 nodes, n=2: every 2 consecutive partitions should be distinct")
	}
}

// TestLeaveWithoutPartitions: a member owning nothing (q < nodes) leaves
// and is removed at commit, nothing to move.
func TestLeaveWithoutPartitions(t *testing.T) {
	s := newState(t, 2, 1)
	for _, n := range []string{"b", "c"} {
		s = must(t)(s.StageJoin(mem(n)))
	}
	s = completeAll(t, must(t)(s.Commit()))
	var idle ring.NodeID
	for _, m := range s.Members {
		if len(s.Ring.PartitionsOf(m.Name)) == 0 {
			idle = m.Name
		}
	}
	if idle == "" {
		t.Fatal("3 nodes, 2 partitions: one node must own nothing")
	}
	s = must(t)(leaveAndCommit(t, s, idle))
	if _, ok := s.Member(idle); ok || len(s.Transfers) != 0 {
		t.Fatalf("%s should be gone at once: %v %v", idle, s.Members, s.Transfers)
	}
}

// leaveAndCommit stages the leave of n and commits.
func leaveAndCommit(t testing.TB, s *ClusterState, n ring.NodeID) (*ClusterState, error) {
	t.Helper()
	s = must(t)(s.StageLeave(n))
	return s.Commit()
}

func TestClearStaged(t *testing.T) {
	s := newState(t, 8, 2)
	s = must(t)(s.StageJoin(mem("b")))
	s = completeAll(t, must(t)(s.Commit()))
	base := s
	s = must(t)(s.StageJoin(mem("c")))
	s = must(t)(s.StageLeave("b"))
	s = must(t)(s.ClearStaged())
	if len(s.Staged) != 0 || statusOf(s, "b") != StatusValid || statusOf(s, "c") != "" || s.Version != base.Version+3 {
		t.Fatalf("after clear: %v %v", s, s.Members)
	}
	if !reflect.DeepEqual(s.Members, base.Members) || !slices.Equal(s.Ring.Owners(), base.Ring.Owners()) {
		t.Fatal("clear must restore the members and keep the ring")
	}
}

func TestTransitionErrors(t *testing.T) {
	one := newState(t, 8, 2)
	two := must(t)(must(t)(one.StageJoin(mem("b"))).Commit()) // transfers pending
	settled := completeAll(t, two)                            // a, b valid
	joining := must(t)(settled.StageJoin(mem("c")))           // c joining
	leaving := must(t)(settled.StageLeave("b"))               // b leaving
	exiting := must(t)(leaving.Commit())                      // b exiting
	wt := two.Transfers[0]
	for _, tc := range []struct {
		name string
		f    func() (*ClusterState, error)
		want error
	}{
		{"join a member", func() (*ClusterState, error) { return settled.StageJoin(mem("b")) }, ErrAlreadyMember},
		{"join an exiting member", func() (*ClusterState, error) { return exiting.StageJoin(mem("b")) }, ErrAlreadyMember},
		{"join with status valid", func() (*ClusterState, error) {
			return settled.StageJoin(Member{Name: "x", Status: StatusValid})
		}, ErrInvalidMember},
		{"join without a name", func() (*ClusterState, error) { return settled.StageJoin(Member{}) }, ErrInvalidMember},
		{"leave a non-member", func() (*ClusterState, error) { return settled.StageLeave("x") }, ErrNotMember},
		{"leave the last node", func() (*ClusterState, error) { return one.StageLeave("a") }, ErrNoNodesLeft},
		{"leave the last other node", func() (*ClusterState, error) { return leaving.StageLeave("a") }, ErrNoNodesLeft},
		{"leave a joining member", func() (*ClusterState, error) { return joining.StageLeave("c") }, ErrMemberStatus},
		{"leave twice", func() (*ClusterState, error) { return must(t)(joining.StageLeave("b")).StageLeave("b") }, ErrMemberStatus},
		{"clear nothing", func() (*ClusterState, error) { return settled.ClearStaged() }, ErrNoStagedChanges},
		{"commit nothing", func() (*ClusterState, error) { return settled.Commit() }, ErrNoStagedChanges},
		{"commit with transfers pending", func() (*ClusterState, error) {
			return must(t)(two.StageJoin(mem("c"))).Commit()
		}, ErrTransfersPending},
		{"complete an unknown transfer", func() (*ClusterState, error) {
			return two.CompleteTransfer(wt.Partition, wt.To, wt.From)
		}, ErrNoSuchTransfer},
		{"update a non-member", func() (*ClusterState, error) { return settled.UpdateMember(mem("x")) }, ErrNotMember},
		{"update with a long address", func() (*ClusterState, error) {
			m := mem("a")
			m.MemcacheAddr = string(bytes.Repeat([]byte("x"), MaxAddrBytes+1))
			return settled.UpdateMember(m)
		}, ErrInvalidMember},
		{"claim by a joining member", func() (*ClusterState, error) { return joining.TakeClaim("c") }, ErrMemberStatus},
		{"claim by a non-member", func() (*ClusterState, error) { return settled.TakeClaim("x") }, ErrNotMember},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tc.f()
			if s != nil || !errors.Is(err, tc.want) {
				t.Fatalf("got %v, %v; want %v", s, err, tc.want)
			}
		})
	}
	if _, err := two.Plan(); !errors.Is(err, ErrTransfersPending) {
		t.Fatalf("plan with transfers pending: %v", err)
	}
}

func TestUpdateMemberAndTakeClaim(t *testing.T) {
	s := must(t)(newState(t, 8, 2).StageJoin(mem("b")))
	if same, err := s.UpdateMember(mem("b")); same != s || err != nil {
		t.Fatalf("unchanged update: %v, %v (want the same state)", same, err)
	}
	m := mem("b")
	m.RPCAddr, m.Status = "b:9999", StatusValid // status ignored
	u := must(t)(s.UpdateMember(m))
	if got, _ := u.Member("b"); got.RPCAddr != "b:9999" || got.Status != StatusJoining || u.Version != s.Version+1 {
		t.Fatalf("after update: %+v v%d", got, u.Version)
	}
	s = completeAll(t, must(t)(s.Commit()))
	if same, err := s.TakeClaim("a"); same != s || err != nil {
		t.Fatalf("claim by the claimant: %v, %v", same, err)
	}
	c := must(t)(s.TakeClaim("b"))
	if c.Claimant != "b" || c.Version != s.Version+1 {
		t.Fatalf("after take claim: %v", c)
	}
}

// TestTransitionsDoNotMutate: every transition leaves its receiver as it was.
func TestTransitionsDoNotMutate(t *testing.T) {
	s := must(t)(newState(t, 16, 3).StageJoin(mem("b")))
	s = must(t)(s.StageJoin(mem("c")))
	before, _ := s.MarshalBinary()
	owners := s.Ring.Owners()
	c := must(t)(s.Commit())
	cBefore, _ := c.MarshalBinary()
	tr := c.Transfers[0]
	must(t)(c.CompleteTransfer(tr.Partition, tr.From, tr.To))
	must(t)(c.UpdateMember(Member{Name: "b", RPCAddr: "elsewhere"}))
	must(t)(s.ClearStaged())
	must(t)(s.StageLeave("a"))
	must(t)(s.StageJoin(mem("d")))
	if after, _ := s.MarshalBinary(); !bytes.Equal(before, after) || !slices.Equal(owners, s.Ring.Owners()) {
		t.Fatal("a transition modified its receiver")
	}
	if after, _ := c.MarshalBinary(); !bytes.Equal(cBefore, after) {
		t.Fatal("CompleteTransfer or UpdateMember modified its receiver")
	}
}

// randomHistory applies ops random transitions to s, checking the
// invariants after each, and returns every state it saw and how many times
// all of a commit's transfers completed (and the settled ring was checked).
func randomHistory(t *testing.T, rng *rand.Rand, s *ClusterState, ops int) ([]*ClusterState, int) {
	t.Helper()
	pool := names(10)
	seen := []*ClusterState{s}
	var planNodes []ring.NodeID // nodes of the last commit's plan
	var planNext *ring.Ring
	settled := 0
	for range ops {
		var next *ClusterState
		var err error
		op := rng.IntN(8)
		if len(s.Transfers) > 0 && rng.IntN(2) == 0 {
			op = 4
		}
		switch op {
		case 0, 1: // join a node that is not a member, up to 8 members
			if len(s.Members) >= 8 {
				continue
			}
			n := pool[rng.IntN(len(pool))]
			next, err = s.StageJoin(mem(string(n)))
			if _, ok := s.Member(n); ok != errors.Is(err, ErrAlreadyMember) {
				t.Fatalf("StageJoin(%s) of a member=%v: %v", n, ok, err)
			}
		case 2: // leave a random member (errors are expected for some)
			n := s.Members[rng.IntN(len(s.Members))].Name
			next, err = s.StageLeave(n)
			if err == nil && statusOf(s, n) != StatusValid {
				t.Fatalf("StageLeave(%s) of a %s member succeeded", n, statusOf(s, n))
			}
		case 3:
			var p *Plan
			p, err = s.Plan()
			if err == nil {
				planNext = p.Next
			}
			next, err = s.Commit()
			if err == nil {
				planNodes = s.planNodes()
				if len(next.Transfers) != len(p.Transfers) && len(next.Transfers) != 0 {
					t.Fatalf("commit lists %d transfers, plan %d", len(next.Transfers), len(p.Transfers))
				}
			}
		case 4, 5: // complete a waiting transfer
			if len(s.Transfers) == 0 {
				continue
			}
			tr := s.Transfers[rng.IntN(len(s.Transfers))]
			if rng.IntN(4) > 0 { // mostly a waiting one
				for _, w := range s.Transfers {
					if w.State == TransferWaiting {
						tr = w
						break
					}
				}
			}
			next, err = s.CompleteTransfer(tr.Partition, tr.From, tr.To)
			if (tr.State == TransferDone) != errors.Is(err, ErrTransferDone) {
				t.Fatalf("complete %+v: %v", tr, err)
			}
		case 6:
			if rng.IntN(3) == 0 {
				next, err = s.ClearStaged()
			} else {
				n := s.Members[rng.IntN(len(s.Members))].Name
				next, err = s.TakeClaim(n)
			}
		case 7:
			m := s.Members[rng.IntN(len(s.Members))]
			m.RPCAddr = fmt.Sprintf("%s:%d", m.Name, rng.IntN(3))
			next, err = s.UpdateMember(m)
		}
		if err != nil {
			if next != nil {
				t.Fatalf("op %d: state %v with error %v", op, next, err)
			}
			continue
		}
		if next == s { // a no-op update or claim
			continue
		}
		if next.Version != s.Version+1 {
			t.Fatalf("op %d: version %d after %d", op, next.Version, s.Version)
		}
		checkState(t, next)
		hadTransfers := len(s.Transfers) > 0 || op == 3
		s = next
		seen = append(seen, s)
		if hadTransfers && len(s.Transfers) == 0 && planNodes != nil {
			// Every transfer of the last commit is done: the plan's ring.
			if !slices.Equal(s.Ring.Owners(), planNext.Owners()) {
				t.Fatalf("owners after all transfers differ from the plan's")
			}
			checkSettled(t, s, planNodes)
			settled++
		}
	}
	return seen, settled
}

// checkState checks the invariants a state must keep, independently of
// Validate where that is cheap, and the encoding round trip.
func checkState(t *testing.T, s *ClusterState) {
	t.Helper()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	for p, o := range s.Ring.Owners() {
		switch statusOf(s, o) {
		case StatusValid, StatusLeaving, StatusExiting:
		default:
			t.Fatalf("partition %d owned by %q, status %q", p, o, statusOf(s, o))
		}
	}
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalClusterState(b)
	if err != nil {
		t.Fatalf("round trip: %v", err)
	}
	if !reflect.DeepEqual(got, s) || got.Hash() != s.Hash() {
		t.Fatalf("round trip changed the state:\n%+v\n%+v", s, got)
	}
}

// checkSettled checks a ring with no transfers pending, claimed over nodes:
// balanced, and spread as Claim promises.
func checkSettled(t *testing.T, s *ClusterState, nodes []ring.NodeID) {
	t.Helper()
	owners := s.Ring.Owners()
	q, m := len(owners), len(nodes)
	var owning []ring.NodeID // with q < m some nodes own nothing
	for _, n := range nodes {
		if len(s.Ring.PartitionsOf(n)) > 0 {
			owning = append(owning, n)
		}
	}
	if q >= m {
		checkBalanced(t, owners, nodes)
	} else if len(owning) != q {
		t.Fatalf("q=%d < %d nodes: %d owners", q, m, len(owning))
	}
	if !distinctWindows(owners, ring.SpreadWindow(q, s.N, m)) {
		t.Fatalf("q=%d n=%d nodes=%d: spread window %d broken", q, s.N, m, ring.SpreadWindow(q, s.N, m))
	}
	if m >= min(s.N, q) && ring.TargetNFeasible(q, s.N, m) && len(s.Ring.Violations(s.N)) > 0 {
		t.Fatalf("q=%d n=%d nodes=%d: target n feasible but violated", q, s.N, m)
	}
}

// TestClusterStateProperties runs random join/leave/plan/commit/complete
// histories over 1..8 nodes.
func TestClusterStateProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	runs := 150
	if testing.Short() {
		runs = 30
	}
	settled := 0
	for range runs {
		q := []int{4, 8, 16, 32, 64}[rng.IntN(5)]
		n := 1 + rng.IntN(4)
		s := newState(t, q, n)
		_, k := randomHistory(t, rng, s, 60)
		settled += k
	}
	if settled < runs {
		t.Fatalf("only %d settled rings checked in %d runs", settled, runs)
	}
	t.Logf("%d runs, %d settled rings checked", runs, settled)
}

// TestNewerTotalOrder: over states of one cluster (histories that fork, so
// many share a version), Newer is irreflexive, antisymmetric, total on
// distinct contents and transitive; across clusters it is false both ways.
func TestNewerTotalOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	base := newState(t, 8, 2)
	var states []*ClusterState
	for range 6 {
		h, _ := randomHistory(t, rng, base, 12)
		states = append(states, h...)
	}
	// Same content built twice: equal, neither newer.
	states = append(states, must(t)(base.StageJoin(mem("n01"))), must(t)(base.StageJoin(mem("n01"))))
	sameVersion := 0
	for i, a := range states {
		if Newer(a, a) {
			t.Fatalf("Newer(s, s) for %v", a)
		}
		for _, b := range states[i+1:] {
			ab, ba := Newer(a, b), Newer(b, a)
			if ab && ba {
				t.Fatalf("both newer: %v / %v", a, b)
			}
			if a.Hash() != b.Hash() && !ab && !ba {
				t.Fatalf("neither newer, different contents: %v / %v", a, b)
			}
			if a.Hash() == b.Hash() && (ab || ba) {
				t.Fatalf("equal contents ordered: %v / %v", a, b)
			}
			if a.Version == b.Version && a.Hash() != b.Hash() {
				sameVersion++
			}
		}
	}
	if sameVersion < 10 {
		t.Fatalf("only %d pairs of distinct states share a version: the test does not exercise the tie-break", sameVersion)
	}
	for _, a := range states {
		for _, b := range states {
			if !Newer(a, b) {
				continue
			}
			for _, c := range states {
				if Newer(b, c) && !Newer(a, c) {
					t.Fatalf("not transitive: %v > %v > %v", a, b, c)
				}
			}
		}
	}
	other, _ := NewClusterState("c2", mem("a"), 8, 2)
	other2 := must(t)(other.StageJoin(mem("b")))
	if Newer(other2, base) || Newer(base, other2) {
		t.Fatal("states of different clusters must not be ordered")
	}
	if !Newer(base, nil) || Newer(nil, base) {
		t.Fatal("nil handling")
	}
	t.Logf("%d states, %d same-version pairs", len(states), sameVersion)
}
