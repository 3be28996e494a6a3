// Package aae is the pure core of gokai's active anti-entropy: Tictac hash trees (segment hashes combined by
// XOR, so a write updates its segment in O(1) with hash(key, old version) XOR hash(key, new version), no
// rescan) and the comparisons an exchange makes between two replicas' trees: root, then branches, then
// segments, then the keys and versions of the differing segments only.
//
// A Tree covers the items of one hash-partition source (the keys ring.PartitionForKey puts in one
// partition) inside one vnode: a vnode holds the keys of every source whose preference list names it, so it
// keeps one tree per source, and an exchange between two replicas compares the trees of a source both hold
// (like with like). The shape is fixed: Segments segments of 8 bytes under Branches branches and a root;
// an item's segment is the low SegmentBits bits of its ring key hash (ring.KeyHash), which the partition
// bits (the top ones) leave free.
//
// It does not own where trees live, how they are persisted or rebuilt, nor who exchanges with whom: the
// vnode framework keeps a vnode's trees (package vnode, hashtrees.go) and the node's anti-entropy manager
// runs the exchanges (package node, aae.go). Nothing here does I/O, reads a clock or draws randomness.
//
// Concurrency: a Tree is not safe for concurrent use; its owner (a vnode actor) serialises access. The
// functions are pure.
package aae
