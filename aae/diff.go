package aae

import (
	"bytes"
	"slices"
)

// DiffBranches returns, ascending, the branches whose hashes differ between a and b (each Branches long;
// a missing or short side counts as empty).
func DiffBranches(a, b []uint64) []int {
	var out []int
	for i := range Branches {
		if at(a, i) != at(b, i) {
			out = append(out, i)
		}
	}
	return out
}

// DiffSegments compares the segment hashes of branches bs as SegmentsOf returned them for each side and
// returns the differing segments, ascending (bs ascending).
func DiffSegments(bs []int, a, b []uint64) []int {
	var out []int
	for i, br := range bs {
		for j := range SegmentsPerBranch {
			k := i*SegmentsPerBranch + j
			if at(a, k) != at(b, k) {
				out = append(out, br*SegmentsPerBranch+j)
			}
		}
	}
	return out
}

func at(x []uint64, i int) uint64 {
	if i < len(x) {
		return x[i]
	}
	return 0
}

// Intersect returns the elements of sorted a also in sorted b.
func Intersect(a, b []int) []int {
	var out []int
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i, j = i+1, j+1
		}
	}
	return out
}

// KeyVersion is one item of a segment fold: the key the ring routes by and the item's version hash.
type KeyVersion struct {
	Key     []byte `msgpack:"k"`
	Version uint64 `msgpack:"v"`
}

// SortKeys sorts items by key (DiffKeys wants them sorted).
func SortKeys(items []KeyVersion) {
	slices.SortFunc(items, func(x, y KeyVersion) int { return bytes.Compare(x.Key, y.Key) })
}

// DiffKeys returns, ascending, the keys whose versions differ between a and b (each sorted by key, no key
// twice): a key on one side only differs, as does a key with two versions.
func DiffKeys(a, b []KeyVersion) [][]byte {
	var out [][]byte
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && bytes.Compare(a[i].Key, b[j].Key) < 0):
			out = append(out, a[i].Key)
			i++
		case i == len(a) || bytes.Compare(a[i].Key, b[j].Key) > 0:
			out = append(out, b[j].Key)
			j++
		default:
			if a[i].Version != b[j].Version {
				out = append(out, a[i].Key)
			}
			i, j = i+1, j+1
		}
	}
	return out
}
