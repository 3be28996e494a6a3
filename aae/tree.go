package aae

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The tree's shape. Changing it changes the persisted format and the wire: both carry TreeVersion.
const (
	// SegmentBits is log2(Segments).
	SegmentBits = 14
	// Segments is the number of segments of a tree: 16384 of 8 bytes, 128 KiB. A node at Q=64 with N=3 on
	// which every vnode holds its three sources keeps at most 64*3 trees: 24.8 MiB, whatever the key count
	// (trees are made only for sources that hold items).
	Segments = 1 << SegmentBits
	// BranchBits is log2(Branches).
	BranchBits = 7
	// Branches is the number of branches; branch b is the XOR of segments b*SegmentsPerBranch up to
	// (b+1)*SegmentsPerBranch-1.
	Branches = 1 << BranchBits
	// SegmentsPerBranch is Segments / Branches.
	SegmentsPerBranch = Segments / Branches
	// TreeVersion tags an encoded tree (MarshalBinary).
	TreeVersion = 1
)

// ErrBadTree is returned for bytes that are not an encoded tree of this shape.
var ErrBadTree = errors.New("aae: bad encoded tree")

// Tree is a Tictac tree: Segments segment hashes, each the XOR of the item hashes of its items, Branches
// branch hashes over them and a root over those. The zero Tree is the empty tree.
//
// INVARIANT: branches[b] is the XOR of its segments and root the XOR of all branches (Check verifies).
type Tree struct {
	root     uint64
	branches [Branches]uint64
	segments [Segments]uint64
}

// SegmentOf is the segment of an item whose ring key hash is keyHash.
func SegmentOf(keyHash uint64) int { return int(keyHash & (Segments - 1)) }

// BranchOf is the branch of segment s.
func BranchOf(s int) int { return s / SegmentsPerBranch }

// mix64 is splitmix64's finaliser: a bijection of uint64 that spreads every input bit over the output.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// ItemHash is an item's contribution to its segment: a hash of its ring key hash and its version hash. An
// absent item (version 0) contributes 0; a present one never does (so a key's presence always shows).
func ItemHash(keyHash, version uint64) uint64 {
	if version == 0 {
		return 0
	}
	h := mix64(keyHash ^ mix64(version^0x9e3779b97f4a7c15))
	if h == 0 {
		h = 1
	}
	return h
}

// Update records that the item with ring key hash keyHash changed from version oldV to newV (0: absent):
// O(1), whatever the tree holds.
func (t *Tree) Update(keyHash, oldV, newV uint64) {
	if oldV == newV {
		return
	}
	d := ItemHash(keyHash, oldV) ^ ItemHash(keyHash, newV)
	s := SegmentOf(keyHash)
	t.segments[s] ^= d
	t.branches[BranchOf(s)] ^= d
	t.root ^= d
}

// Insert adds an item to the tree (Update from absent).
func (t *Tree) Insert(keyHash, version uint64) { t.Update(keyHash, 0, version) }

// Root is the tree's root hash: 0 for an empty tree.
func (t *Tree) Root() uint64 { return t.root }

// Branches returns a copy of the branch hashes.
func (t *Tree) Branches() []uint64 { return append([]uint64(nil), t.branches[:]...) }

// Segment is segment s's hash. REQUIRES: 0 <= s < Segments.
func (t *Tree) Segment(s int) uint64 { return t.segments[s] }

// SegmentsOf returns the hashes of the segments of branches bs, in order: SegmentsPerBranch for each.
// Branches out of range are skipped.
func (t *Tree) SegmentsOf(bs []int) []uint64 {
	out := make([]uint64, 0, len(bs)*SegmentsPerBranch)
	for _, b := range bs {
		if b < 0 || b >= Branches {
			continue
		}
		out = append(out, t.segments[b*SegmentsPerBranch:(b+1)*SegmentsPerBranch]...)
	}
	return out
}

// Empty reports whether the tree holds no item (up to a 2^-64 chance of items cancelling out).
func (t *Tree) Empty() bool { return t.root == 0 && t.branches == [Branches]uint64{} }

// Equal reports whether t and o have the same segments.
func (t *Tree) Equal(o *Tree) bool { return t.segments == o.segments }

// Check verifies the invariant (branches and root agree with the segments).
func (t *Tree) Check() error {
	var root uint64
	for b := range Branches {
		var x uint64
		for _, s := range t.segments[b*SegmentsPerBranch : (b+1)*SegmentsPerBranch] {
			x ^= s
		}
		if x != t.branches[b] {
			return fmt.Errorf("aae: branch %d is %x, its segments give %x", b, t.branches[b], x)
		}
		root ^= x
	}
	if root != t.root {
		return fmt.Errorf("aae: root is %x, the branches give %x", t.root, root)
	}
	return nil
}

// encodedSize is the size of an encoded tree: a version byte and the segments.
const encodedSize = 1 + Segments*8

// MarshalBinary encodes the tree: its version, then the segments (branches and root follow from them).
func (t *Tree) MarshalBinary() ([]byte, error) {
	out := make([]byte, encodedSize)
	out[0] = TreeVersion
	for i, s := range t.segments {
		binary.BigEndian.PutUint64(out[1+8*i:], s)
	}
	return out, nil
}

// UnmarshalBinary decodes an encoded tree into t.
func (t *Tree) UnmarshalBinary(b []byte) error {
	if len(b) != encodedSize || b[0] != TreeVersion {
		return fmt.Errorf("%w (%d bytes)", ErrBadTree, len(b))
	}
	*t = Tree{}
	for i := range t.segments {
		s := binary.BigEndian.Uint64(b[1+8*i:])
		t.segments[i] = s
		t.branches[BranchOf(i)] ^= s
		t.root ^= s
	}
	return nil
}
