package membership

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/gokai-kv/gokai/ring"
)

// MemberStatus is a member's place in the join/leave lifecycle. The values
// travel in the cluster state: append-only.
type MemberStatus string

// Member statuses.
const (
	// StatusJoining: a join is staged; the member owns no partition yet.
	StatusJoining MemberStatus = "joining"
	// StatusValid: a full member; owns partitions (or will, after transfers).
	StatusValid MemberStatus = "valid"
	// StatusLeaving: a leave is staged; the member still owns its partitions.
	StatusLeaving MemberStatus = "leaving"
	// StatusExiting: the leave was committed; the member hands its
	// partitions off and is removed once every pending transfer is done.
	StatusExiting MemberStatus = "exiting"
)

// ChangeKind is the kind of a staged change. Append-only.
type ChangeKind string

// Change kinds.
const (
	ChangeJoin  ChangeKind = "join"
	ChangeLeave ChangeKind = "leave"
)

// TransferState is the state of a pending ownership transfer. Append-only.
type TransferState string

// Transfer states.
const (
	TransferWaiting TransferState = "waiting"
	TransferDone    TransferState = "done"
)

// Limits on a ClusterState; Validate and UnmarshalClusterState enforce them.
const (
	// MaxMembers bounds the member table.
	MaxMembers = 1024
	// MaxNameBytes bounds a node id and a cluster id, in bytes.
	MaxNameBytes = 64
	// MaxAddrBytes bounds each advertised address of a member, in bytes.
	MaxAddrBytes = 96
	// MaxReplicas bounds ClusterState.N.
	MaxReplicas = 64
)

// Errors of the cluster state. Returned errors wrap them with the offending
// value; match with errors.Is.
var (
	// ErrInvalidState: a ClusterState that breaks an invariant (Validate).
	ErrInvalidState = errors.New("membership: invalid cluster state")
	// ErrMalformedState: cluster state bytes that do not decode or validate.
	ErrMalformedState = errors.New("membership: malformed cluster state")
	// ErrInvalidMember: a member with an empty or too long name or address,
	// or a status the operation does not accept.
	ErrInvalidMember = errors.New("membership: invalid member")
	// ErrAlreadyMember: StageJoin of a node that is already a member.
	ErrAlreadyMember = errors.New("membership: already a member")
	// ErrNotMember: the node is not a member.
	ErrNotMember = errors.New("membership: not a member")
	// ErrMemberStatus: the member's status does not allow the operation.
	ErrMemberStatus = errors.New("membership: wrong member status")
	// ErrNoNodesLeft: the change would leave no node to own the ring.
	ErrNoNodesLeft = errors.New("membership: change would leave no nodes")
	// ErrNoStagedChanges: Plan, Commit or ClearStaged with nothing staged.
	ErrNoStagedChanges = errors.New("membership: no staged changes")
	// ErrTransfersPending: Plan or Commit while transfers of the previous
	// commit are still waiting.
	ErrTransfersPending = errors.New("membership: transfers still pending")
	// ErrNoSuchTransfer: CompleteTransfer of a transfer that is not pending.
	ErrNoSuchTransfer = errors.New("membership: no such pending transfer")
	// ErrTransferDone: CompleteTransfer of a transfer already marked done.
	ErrTransferDone = errors.New("membership: transfer already done")
)

// Member is one node of the cluster with its lifecycle status and the
// addresses it serves on.
type Member struct {
	Name          ring.NodeID
	Status        MemberStatus
	RPCAddr       string // msgpack-RPC host:port
	TransportAddr string // actor transport host:port
	MemcacheAddr  string // memcache host:port
}

// Change is one staged join or leave.
type Change struct {
	Kind ChangeKind
	Node ring.NodeID
}

// PendingTransfer is one ownership move decided by a commit. While it is
// waiting, Ring still names From as the owner of Partition; once done, To.
type PendingTransfer struct {
	Partition int
	From, To  ring.NodeID
	State     TransferState
}

// ClusterState is the versioned cluster document that gossip spreads: the
// members, the ring, the claimant, the staged changes, the transfers
// of the last commit and the services' flush epochs.
//
// A ClusterState is a value: treat it as immutable once built. The
// transitions (StageJoin, Commit, ...) return a new state with Version+1 and
// never modify the receiver, so a state may be shared between goroutines.
//
// Invariants (Validate): Ring.Version() == Version; Members sorted by name,
// unique; every partition owned by a valid, leaving or exiting member
// (joining members own nothing); the claimant is valid or leaving; every
// joining member has a staged join and every leaving member a staged leave,
// and nothing else is staged; exiting members exist only while transfers
// are pending; a waiting transfer's partition is owned by From, a done one
// by To; Transfers, when not empty, holds at least one waiting transfer;
// Flushes holds at most MaxFlushes valid epochs (Flush.Valid).
type ClusterState struct {
	Version   uint64
	Cluster   string      // cluster id
	Claimant  ring.NodeID // the node that applies changes
	N         int         // replica count the ring is claimed for
	Members   []Member
	Ring      *ring.Ring
	Staged    []Change
	Transfers []PendingTransfer
	// Flushes are the services' flush epochs (flush.go), by service name; nil when none was ever set.
	Flushes map[string]Flush
}

// NewClusterState returns the version-1 state of a new cluster whose only
// member is self (valid, claimant, owner of all q partitions). cluster is
// the cluster id (the caller picks it at random); self.Status is ignored.
func NewClusterState(cluster string, self Member, q, n int) (*ClusterState, error) {
	self.Status = StatusValid
	if err := checkMember(self); err != nil {
		return nil, err
	}
	if err := checkCluster(cluster); err != nil {
		return nil, err
	}
	if n < 1 || n > MaxReplicas {
		return nil, fmt.Errorf("%w: n=%d (want 1..%d)", ring.ErrInvalidN, n, MaxReplicas)
	}
	r, err := ring.New(q, n, []ring.NodeID{self.Name})
	if err != nil { // one node never misses the spread (n is capped)
		return nil, err
	}
	return &ClusterState{
		Version:  1,
		Cluster:  cluster,
		Claimant: self.Name,
		N:        n,
		Members:  []Member{self},
		Ring:     r,
	}, nil
}

// checkCluster validates a cluster id.
func checkCluster(c string) error {
	if c == "" || len(c) > MaxNameBytes {
		return fmt.Errorf("%w: cluster id %q (want 1..%d bytes)", ErrInvalidState, c, MaxNameBytes)
	}
	return nil
}

// checkMember validates a member's name, status and addresses.
func checkMember(m Member) error {
	if m.Name == "" || len(m.Name) > MaxNameBytes {
		return fmt.Errorf("%w: name %q (want 1..%d bytes)", ErrInvalidMember, m.Name, MaxNameBytes)
	}
	switch m.Status {
	case StatusJoining, StatusValid, StatusLeaving, StatusExiting:
	default:
		return fmt.Errorf("%w: %s: status %q", ErrInvalidMember, m.Name, m.Status)
	}
	for _, a := range []string{m.RPCAddr, m.TransportAddr, m.MemcacheAddr} {
		if len(a) > MaxAddrBytes {
			return fmt.Errorf("%w: %s: address of %d bytes (max %d)", ErrInvalidMember, m.Name, len(a), MaxAddrBytes)
		}
	}
	return nil
}

// Member returns the member named n.
func (s *ClusterState) Member(n ring.NodeID) (Member, bool) {
	if i, ok := s.memberIndex(n); ok {
		return s.Members[i], true
	}
	return Member{}, false
}

// memberIndex returns the index of n in Members (sorted by name).
func (s *ClusterState) memberIndex(n ring.NodeID) (int, bool) {
	return slices.BinarySearchFunc(s.Members, n, func(m Member, n ring.NodeID) int { return cmp.Compare(m.Name, n) })
}

// PartitionsAfter returns the number of partitions n owns once every
// pending transfer is done.
func (s *ClusterState) PartitionsAfter(n ring.NodeID) int {
	count := len(s.Ring.PartitionsOf(n))
	for _, t := range s.Transfers {
		if t.State != TransferWaiting {
			continue
		}
		if t.From == n {
			count--
		}
		if t.To == n {
			count++
		}
	}
	return count
}

// String returns a one-line summary for logs.
func (s *ClusterState) String() string {
	return fmt.Sprintf("cluster %s v%d claimant=%s members=%d staged=%d transfers=%d",
		s.Cluster, s.Version, s.Claimant, len(s.Members), len(s.Staged), len(s.Transfers))
}

// Validate reports the first broken invariant (see ClusterState), wrapping
// ErrInvalidState or ErrInvalidMember.
func (s *ClusterState) Validate() error {
	if s == nil {
		return fmt.Errorf("%w: nil", ErrInvalidState)
	}
	if s.Version == 0 {
		return fmt.Errorf("%w: version 0", ErrInvalidState)
	}
	if err := checkCluster(s.Cluster); err != nil {
		return err
	}
	if s.N < 1 || s.N > MaxReplicas {
		return fmt.Errorf("%w: n=%d (want 1..%d)", ErrInvalidState, s.N, MaxReplicas)
	}
	if s.Ring == nil {
		return fmt.Errorf("%w: no ring", ErrInvalidState)
	}
	if s.Ring.Version() != s.Version {
		return fmt.Errorf("%w: ring version %d, state version %d", ErrInvalidState, s.Ring.Version(), s.Version)
	}
	if len(s.Members) == 0 || len(s.Members) > MaxMembers {
		return fmt.Errorf("%w: %d members (want 1..%d)", ErrInvalidState, len(s.Members), MaxMembers)
	}
	exiting := 0
	for i, m := range s.Members {
		if err := checkMember(m); err != nil {
			return err
		}
		if i > 0 && s.Members[i-1].Name >= m.Name {
			return fmt.Errorf("%w: members not sorted and unique at %q", ErrInvalidState, m.Name)
		}
		if m.Status == StatusExiting {
			exiting++
		}
	}
	if c, ok := s.Member(s.Claimant); !ok || (c.Status != StatusValid && c.Status != StatusLeaving) {
		return fmt.Errorf("%w: claimant %q is not a valid or leaving member", ErrInvalidState, s.Claimant)
	}
	for _, o := range s.Ring.Nodes() {
		m, ok := s.Member(o)
		if !ok || m.Status == StatusJoining {
			return fmt.Errorf("%w: owner %q is not a valid, leaving or exiting member", ErrInvalidState, o)
		}
	}
	if err := s.validateStaged(); err != nil {
		return err
	}
	if err := s.validateTransfers(); err != nil {
		return err
	}
	if exiting > 0 && len(s.Transfers) == 0 {
		return fmt.Errorf("%w: %d exiting members and no pending transfers", ErrInvalidState, exiting)
	}
	return s.validateFlushes()
}

// validateStaged checks that staged changes and joining/leaving statuses
// match one to one.
func (s *ClusterState) validateStaged() error {
	seen := make(map[ring.NodeID]bool, len(s.Staged))
	for _, c := range s.Staged {
		if seen[c.Node] {
			return fmt.Errorf("%w: two staged changes for %q", ErrInvalidState, c.Node)
		}
		seen[c.Node] = true
		m, ok := s.Member(c.Node)
		want := map[ChangeKind]MemberStatus{ChangeJoin: StatusJoining, ChangeLeave: StatusLeaving}[c.Kind]
		if want == "" {
			return fmt.Errorf("%w: staged change kind %q", ErrInvalidState, c.Kind)
		}
		if !ok || m.Status != want {
			return fmt.Errorf("%w: staged %s of %q, which is not a %s member", ErrInvalidState, c.Kind, c.Node, want)
		}
	}
	for _, m := range s.Members {
		if (m.Status == StatusJoining || m.Status == StatusLeaving) && !seen[m.Name] {
			return fmt.Errorf("%w: %s member %q has no staged change", ErrInvalidState, m.Status, m.Name)
		}
	}
	return nil
}

// validateTransfers checks the pending transfers against the ring.
func (s *ClusterState) validateTransfers() error {
	q := s.Ring.Q()
	if len(s.Transfers) > q {
		return fmt.Errorf("%w: %d transfers for %d partitions", ErrInvalidState, len(s.Transfers), q)
	}
	seen := make(map[int]bool, len(s.Transfers))
	waiting := 0
	for _, t := range s.Transfers {
		if t.Partition < 0 || t.Partition >= q || seen[t.Partition] {
			return fmt.Errorf("%w: transfer of partition %d (q=%d, or listed twice)", ErrInvalidState, t.Partition, q)
		}
		seen[t.Partition] = true
		if t.From == t.To {
			return fmt.Errorf("%w: transfer of partition %d from %q to itself", ErrInvalidState, t.Partition, t.From)
		}
		if _, ok := s.Member(t.From); !ok {
			return fmt.Errorf("%w: transfer of partition %d from non-member %q", ErrInvalidState, t.Partition, t.From)
		}
		if to, ok := s.Member(t.To); !ok || (to.Status != StatusValid && to.Status != StatusLeaving) {
			return fmt.Errorf("%w: transfer of partition %d to %q, not a valid or leaving member", ErrInvalidState, t.Partition, t.To)
		}
		var owner ring.NodeID
		switch t.State {
		case TransferWaiting:
			owner = t.From
			waiting++
		case TransferDone:
			owner = t.To
		default:
			return fmt.Errorf("%w: transfer of partition %d in state %q", ErrInvalidState, t.Partition, t.State)
		}
		if got := s.Ring.Owner(t.Partition); got != owner {
			return fmt.Errorf("%w: partition %d owned by %q, %s transfer says %q", ErrInvalidState, t.Partition, got, t.State, owner)
		}
	}
	if len(s.Transfers) > 0 && waiting == 0 {
		return fmt.Errorf("%w: every transfer is done but the list was not cleared", ErrInvalidState)
	}
	return nil
}

// successor returns a copy of s with Version+1; owners (nil: keep the ring's)
// become the ring, with the new version, when seal is called.
func (s *ClusterState) successor() *ClusterState {
	return &ClusterState{
		Version:   s.Version + 1,
		Cluster:   s.Cluster,
		Claimant:  s.Claimant,
		N:         s.N,
		Members:   slices.Clone(s.Members),
		Ring:      s.Ring, // replaced by seal
		Staged:    nilIfEmpty(slices.Clone(s.Staged)),
		Transfers: nilIfEmpty(slices.Clone(s.Transfers)),
		Flushes:   s.Flushes, // NB: shared, never modified; SetFlush replaces it
	}
}

// seal installs owners as the ring at t's version, then panics if t broke
// an invariant: transitions only build valid states.
func (t *ClusterState) seal(owners []ring.NodeID) *ClusterState {
	r, err := ring.NewFromOwners(owners, t.Version)
	if err != nil {
		panic(fmt.Sprintf("membership: transition built an invalid ring: %v", err))
	}
	t.Ring = r
	t.Staged = nilIfEmpty(t.Staged)
	t.Transfers = nilIfEmpty(t.Transfers)
	// INVARIANT: transitions keep every invariant Validate checks.
	if err := t.Validate(); err != nil {
		panic(fmt.Sprintf("membership: transition built an invalid state: %v", err))
	}
	return t
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// StageJoin stages the join of m: it becomes a joining member (owning
// nothing) with a staged join change. m.Status must be empty or joining.
func (s *ClusterState) StageJoin(m Member) (*ClusterState, error) {
	if m.Status != "" && m.Status != StatusJoining {
		return nil, fmt.Errorf("%w: %s: status %q (want joining)", ErrInvalidMember, m.Name, m.Status)
	}
	m.Status = StatusJoining
	if err := checkMember(m); err != nil {
		return nil, err
	}
	i, ok := s.memberIndex(m.Name)
	if ok {
		return nil, fmt.Errorf("%w: %s is %s", ErrAlreadyMember, m.Name, s.Members[i].Status)
	}
	if len(s.Members) >= MaxMembers {
		return nil, fmt.Errorf("%w: already %d members (max %d)", ErrInvalidState, len(s.Members), MaxMembers)
	}
	t := s.successor()
	t.Members = slices.Insert(t.Members, i, m)
	t.Staged = append(t.Staged, Change{Kind: ChangeJoin, Node: m.Name})
	return t.seal(s.Ring.Owners()), nil
}

// StageLeave stages the leave of the valid member n: it becomes leaving
// (still owning its partitions) with a staged leave change. It fails when
// no valid or joining member would remain.
func (s *ClusterState) StageLeave(n ring.NodeID) (*ClusterState, error) {
	i, ok := s.memberIndex(n)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotMember, n)
	}
	if st := s.Members[i].Status; st != StatusValid {
		return nil, fmt.Errorf("%w: %s is %s (only a valid member can leave)", ErrMemberStatus, n, st)
	}
	if len(s.planNodes()) <= 1 {
		return nil, fmt.Errorf("%w: %s is the last valid member", ErrNoNodesLeft, n)
	}
	t := s.successor()
	t.Members[i].Status = StatusLeaving
	t.Staged = append(t.Staged, Change{Kind: ChangeLeave, Node: n})
	return t.seal(s.Ring.Owners()), nil
}

// ClearStaged drops every staged change: joining members are removed,
// leaving members are valid again.
func (s *ClusterState) ClearStaged() (*ClusterState, error) {
	if len(s.Staged) == 0 {
		return nil, ErrNoStagedChanges
	}
	t := s.successor()
	t.Staged = nil
	t.Members = slices.DeleteFunc(t.Members, func(m Member) bool { return m.Status == StatusJoining })
	for i := range t.Members {
		if t.Members[i].Status == StatusLeaving {
			t.Members[i].Status = StatusValid
		}
	}
	return t.seal(s.Ring.Owners()), nil
}

// planNodes returns the nodes the next ring is claimed over: valid and
// joining members (leaving and exiting ones excluded), ascending.
func (s *ClusterState) planNodes() []ring.NodeID {
	var nodes []ring.NodeID
	for _, m := range s.Members {
		if m.Status == StatusValid || m.Status == StatusJoining {
			nodes = append(nodes, m.Name)
		}
	}
	return nodes
}

// Plan is what a commit would do.
type Plan struct {
	// Changes are the staged changes the plan applies.
	Changes []Change
	// Next is the ring once every transfer is done (version = the
	// committed state's).
	Next *ring.Ring
	// Transfers are the partitions that change owner, all waiting.
	Transfers []PendingTransfer
	// TargetNWarning is set when the nodes cannot hold every N consecutive
	// partitions on distinct nodes (ErrTargetN): Next is still balanced, and
	// the preference lists there skip to N distinct nodes.
	TargetNWarning string
}

// Plan computes the next ring over the valid and joining members (leaving
// ones excluded) starting from the current owners, so that few partitions
// move, and lists the transfers. It fails with ErrNoStagedChanges when
// nothing is staged and ErrTransfersPending while the previous commit's
// transfers are not all done.
func (s *ClusterState) Plan() (*Plan, error) {
	if w := s.waiting(); w > 0 {
		return nil, fmt.Errorf("%w: %d of %d", ErrTransfersPending, w, len(s.Transfers))
	}
	if len(s.Staged) == 0 {
		return nil, ErrNoStagedChanges
	}
	next, err := s.Ring.Rebalance(s.N, s.planNodes())
	if next == nil {
		return nil, err
	}
	p := &Plan{Changes: slices.Clone(s.Staged), Next: next}
	if err != nil { // ErrTargetN: Next is usable
		p.TargetNWarning = err.Error()
	}
	moves, err := ring.Transfers(s.Ring, next)
	if err != nil {
		panic(fmt.Sprintf("membership: rebalance changed the ring size: %v", err))
	}
	for _, m := range moves {
		p.Transfers = append(p.Transfers, PendingTransfer{Partition: m.Partition, From: m.From, To: m.To, State: TransferWaiting})
	}
	return p, nil
}

// waiting counts the waiting transfers.
func (s *ClusterState) waiting() int {
	n := 0
	for _, t := range s.Transfers {
		if t.State == TransferWaiting {
			n++
		}
	}
	return n
}

// Commit applies the Plan: joining members become valid, leaving members
// exiting, the staged changes are dropped and the plan's transfers become
// pending. The ring's owners do not change: each partition moves when
// CompleteTransfer reports it. When the claimant is exiting, the lowest
// named valid member becomes claimant. With nothing to move, exiting
// members are removed at once.
func (s *ClusterState) Commit() (*ClusterState, error) {
	p, err := s.Plan()
	if err != nil {
		return nil, err
	}
	t := s.successor()
	t.Staged = nil
	for i := range t.Members {
		switch t.Members[i].Status {
		case StatusJoining:
			t.Members[i].Status = StatusValid
		case StatusLeaving:
			t.Members[i].Status = StatusExiting
		}
	}
	if c, _ := t.Member(t.Claimant); c.Status != StatusValid {
		for _, m := range t.Members {
			if m.Status == StatusValid {
				t.Claimant = m.Name
				break
			}
		}
	}
	t.Transfers = p.Transfers
	t.finishTransfers()
	return t.seal(s.Ring.Owners()), nil
}

// finishTransfers clears the transfer list and removes exiting members once
// no transfer is waiting.
func (t *ClusterState) finishTransfers() {
	if t.waiting() > 0 {
		return
	}
	t.Transfers = nil
	t.Members = slices.DeleteFunc(t.Members, func(m Member) bool { return m.Status == StatusExiting })
}

// CompleteTransfer records that partition p moved from -> to: the transfer
// is done and the ring names to as p's owner. When it was the last waiting
// transfer, the list is cleared and exiting members are removed.
//
// A repeated report fails with ErrTransferDone while the list lasts and
// with ErrNoSuchTransfer after; a caller that retries can treat
// s.Ring.Owner(p) == to as success.
func (s *ClusterState) CompleteTransfer(p int, from, to ring.NodeID) (*ClusterState, error) {
	i := slices.IndexFunc(s.Transfers, func(t PendingTransfer) bool {
		return t.Partition == p && t.From == from && t.To == to
	})
	if i < 0 {
		return nil, fmt.Errorf("%w: partition %d %s -> %s", ErrNoSuchTransfer, p, from, to)
	}
	if s.Transfers[i].State == TransferDone {
		return nil, fmt.Errorf("%w: partition %d %s -> %s", ErrTransferDone, p, from, to)
	}
	t := s.successor()
	t.Transfers[i].State = TransferDone
	owners := s.Ring.Owners()
	owners[p] = to
	t.finishTransfers()
	return t.seal(owners), nil
}

// UpdateMember replaces the addresses of member m.Name (a node restarted
// on new ports); m.Status is ignored. When nothing differs it returns s
// itself (same version) and no error.
func (s *ClusterState) UpdateMember(m Member) (*ClusterState, error) {
	i, ok := s.memberIndex(m.Name)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotMember, m.Name)
	}
	m.Status = s.Members[i].Status
	if err := checkMember(m); err != nil {
		return nil, err
	}
	if s.Members[i] == m {
		return s, nil
	}
	t := s.successor()
	t.Members[i] = m
	return t.seal(s.Ring.Owners()), nil
}

// TakeClaim makes the valid member n the claimant (the node layer calls it
// when the claimant is down). Two nodes that take the claim concurrently
// produce states of the same version; Newer picks one winner everywhere.
// When n already is the claimant it returns s itself and no error.
func (s *ClusterState) TakeClaim(n ring.NodeID) (*ClusterState, error) {
	m, ok := s.Member(n)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotMember, n)
	}
	if m.Status != StatusValid {
		return nil, fmt.Errorf("%w: %s is %s (the claimant must be valid)", ErrMemberStatus, n, m.Status)
	}
	if s.Claimant == n {
		return s, nil
	}
	t := s.successor()
	t.Claimant = n
	return t.seal(s.Ring.Owners()), nil
}

// Newer reports whether a should replace b: both of the same cluster, and a
// has the higher version, or the same version and the higher Hash (two
// claimants changed the same version concurrently: every node picks the
// same winner). It is a strict total order on the states of one cluster
// (up to equal content). A nil b is older than any a; a nil a is never
// newer.
func Newer(a, b *ClusterState) bool {
	if a == nil {
		return false
	}
	if b == nil {
		return true
	}
	if a.Cluster != b.Cluster {
		return false
	}
	if a.Version != b.Version {
		return a.Version > b.Version
	}
	return a.Hash() > b.Hash()
}

// newerVersion orders (version, hash) pairs as Newer does.
func newerVersion(av, ah, bv, bh uint64) bool {
	return av > bv || av == bv && ah > bh
}
