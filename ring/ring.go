package ring

import (
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
)

// MaxPartitions is the largest ring size Q accepted.
const MaxPartitions = 1 << 16

// NodeID names a physical node of the cluster. It must not be empty.
type NodeID string

// Errors returned by this package. Callers match them with errors.Is; the
// returned errors wrap them with the offending value.
var (
	// ErrInvalidQ: the partition count is not a power of two in [1, MaxPartitions].
	ErrInvalidQ = errors.New("ring: invalid partition count")
	// ErrInvalidN: the replica count n is below 1.
	ErrInvalidN = errors.New("ring: invalid replica count")
	// ErrInvalidNodes: no nodes, an empty node id or a duplicate node id.
	ErrInvalidNodes = errors.New("ring: invalid node list")
	// ErrInvalidOwners: an owner list that does not match the ring size or
	// holds an empty node id.
	ErrInvalidOwners = errors.New("ring: invalid owner list")
	// ErrTargetN: the nodes cannot hold every n consecutive partitions on n
	// distinct nodes while staying balanced (see TargetNFeasible). Claim and
	// New still return a usable, balanced best-effort ownership with this
	// error, the way strconv.ParseInt returns a value with ErrRange. It is a
	// warning, not a loss of replicas: preference lists skip partitions of
	// nodes already listed (Ring.PreflistForPartition), so every key still
	// gets n distinct nodes; only the lists of the partitions in
	// Ring.Violations are not consecutive.
	ErrTargetN = errors.New("ring: cannot place every n consecutive partitions on distinct nodes (preference lists skip there)")
	// ErrMismatch: two rings of different sizes were compared.
	ErrMismatch = errors.New("ring: rings of different sizes")
	// ErrMalformed: a ring document that does not decode or validate.
	ErrMalformed = errors.New("ring: malformed ring document")
)

// Ring maps Q equal partitions of the 64-bit hash space to their owners.
//
// A Ring is immutable after construction and safe for concurrent readers.
type Ring struct {
	owners  []NodeID         // index = partition
	version uint64           // ring document version; higher is newer
	bits    uint             // log2(Q)
	nodes   []NodeID         // distinct owners, ascending
	parts   map[NodeID][]int // partitions of each node, ascending
	idx     []uint16         // index = partition: its owner's index in nodes
}

// New claims a ring from scratch for nodes with replica count n (see
// Claim) and returns it with version 1.
//
// q must be a power of two in [1, MaxPartitions], n >= 1, nodes non-empty
// with distinct non-empty ids (order does not matter). When the spread
// cannot be met (errors.Is(err, ErrTargetN)) the returned ring is still
// valid and balanced; any other error returns a nil ring.
func New(q, n int, nodes []NodeID) (*Ring, error) {
	owners, err := Claim(q, n, nodes, nil)
	if owners == nil {
		return nil, err
	}
	r, rerr := NewFromOwners(owners, 1)
	if rerr != nil {
		panic(fmt.Sprintf("ring: claim produced an invalid ring: %v", rerr))
	}
	return r, err
}

// NewFromOwners builds a ring from an explicit owner list (index =
// partition), for example one decided by Claim or received from a peer.
// len(owners) must be a power of two in [1, MaxPartitions] and every id
// non-empty. The slice is copied.
func NewFromOwners(owners []NodeID, version uint64) (*Ring, error) {
	if err := CheckQ(len(owners)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOwners, err)
	}
	parts := make(map[NodeID][]int)
	for p, o := range owners {
		if o == "" {
			return nil, fmt.Errorf("%w: empty node id at partition %d", ErrInvalidOwners, p)
		}
		parts[o] = append(parts[o], p)
	}
	nodes := make([]NodeID, 0, len(parts))
	for n := range parts {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	idx := make([]uint16, len(owners))
	for i, n := range nodes {
		for _, p := range parts[n] {
			idx[p] = uint16(i) // NB: len(nodes) <= len(owners) <= MaxPartitions = 1<<16
		}
	}
	return &Ring{
		owners:  slices.Clone(owners),
		version: version,
		bits:    uint(bits.TrailingZeros(uint(len(owners)))),
		nodes:   nodes,
		parts:   parts,
		idx:     idx,
	}, nil
}

// CheckQ reports whether q is a power of two in [1, MaxPartitions].
func CheckQ(q int) error {
	if q < 1 || q > MaxPartitions || q&(q-1) != 0 {
		return fmt.Errorf("%w: q=%d (want a power of two in [1, %d])", ErrInvalidQ, q, MaxPartitions)
	}
	return nil
}

// Q returns the number of partitions.
func (r *Ring) Q() int { return len(r.owners) }

// Version returns the ring document version.
func (r *Ring) Version() uint64 { return r.version }

// Owner returns the node owning partition p. REQUIRES: 0 <= p < Q.
func (r *Ring) Owner(p int) NodeID { return r.owners[p] }

// Owners returns a copy of the owner list, index = partition.
func (r *Ring) Owners() []NodeID { return slices.Clone(r.owners) }

// Nodes returns the distinct owners, ascending.
func (r *Ring) Nodes() []NodeID { return slices.Clone(r.nodes) }

// PartitionsOf returns the partitions owned by n, ascending (nil if none).
func (r *Ring) PartitionsOf(n NodeID) []int { return slices.Clone(r.parts[n]) }

// Equal reports whether both rings have the same version and owners.
func (r *Ring) Equal(o *Ring) bool {
	return r.version == o.version && slices.Equal(r.owners, o.owners)
}

// String returns a one-line summary for logs.
func (r *Ring) String() string {
	return fmt.Sprintf("ring v%d q=%d nodes=%d", r.version, len(r.owners), len(r.nodes))
}

// KeyHash returns the position of key on the ring: the first 8 bytes of
// SHA-1(key), big-endian.
func KeyHash(key []byte) uint64 {
	sum := sha1.Sum(key)
	return binary.BigEndian.Uint64(sum[:8])
}

// PartitionForKey returns the partition whose range holds KeyHash(key): the
// top log2(Q) bits of the hash.
func (r *Ring) PartitionForKey(key []byte) int {
	if r.bits == 0 {
		return 0
	}
	return int(KeyHash(key) >> (64 - r.bits))
}

// Violations returns, ascending, the partitions p whose n consecutive
// partitions p, p+1, ..., p+n-1 (mod Q) do not sit on n distinct nodes.
// n is capped at Q. A ring claimed with TargetNFeasible(Q, n, nodes) true
// has none. The preference list of a violation skips partitions (see
// PreflistForPartition): its replicas are still on distinct nodes, but
// which partitions hold them depends on the owners around p, so it may
// change when ownership changes even where p's own owners do not.
func (r *Ring) Violations(n int) []int {
	q := len(r.owners)
	n = min(n, q)
	var out []int
	for p := range q {
	window:
		for i := 1; i < n; i++ {
			for j := range i {
				if r.owners[(p+i)&(q-1)] == r.owners[(p+j)&(q-1)] {
					out = append(out, p)
					break window
				}
			}
		}
	}
	return out
}

// Transfer is one partition changing owner between two rings.
type Transfer struct {
	Partition int
	From, To  NodeID
}

// Transfers lists, by ascending partition, the partitions whose owner
// differs between from and to. Both rings must have the same Q.
func Transfers(from, to *Ring) ([]Transfer, error) {
	if from.Q() != to.Q() {
		return nil, fmt.Errorf("%w: q=%d and q=%d", ErrMismatch, from.Q(), to.Q())
	}
	var out []Transfer
	for p, o := range from.owners {
		if n := to.owners[p]; n != o {
			out = append(out, Transfer{Partition: p, From: o, To: n})
		}
	}
	return out, nil
}

// Rebalance claims a new ring for nodes starting from r's owners (see
// Claim: few partitions move) and returns it with version r.Version()+1.
// Errors as for New.
func (r *Ring) Rebalance(n int, nodes []NodeID) (*Ring, error) {
	owners, err := Claim(len(r.owners), n, nodes, r.owners)
	if owners == nil {
		return nil, err
	}
	next, rerr := NewFromOwners(owners, r.version+1)
	if rerr != nil {
		panic(fmt.Sprintf("ring: claim produced an invalid ring: %v", rerr))
	}
	return next, err
}
