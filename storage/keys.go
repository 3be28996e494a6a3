package storage

import "encoding/binary"

// Key layout of the goleveldb backend (see doc.go):
//
//	+------------------------------+------------------+
//	| partition, uint32 big-endian | user key (bytes) |
//	+------------------------------+------------------+
//	  4 bytes                        0..MaxKeySize bytes
//
// Big-endian makes the DB's byte order sort by partition first, then by user
// key, so one partition is one contiguous key range (util.BytesPrefix of its
// 4-byte prefix), and the user keys within it sort in plain byte order.
const prefixLen = 4

// partitionPrefix returns the 4-byte prefix of partition.
func partitionPrefix(partition uint32) []byte {
	return binary.BigEndian.AppendUint32(make([]byte, 0, prefixLen), partition)
}

// appendKey appends the stored form of (partition, key) to dst.
func appendKey(dst []byte, partition uint32, key []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, partition)
	return append(dst, key...)
}

// encodeKey returns the stored form of (partition, key) in a new slice.
func encodeKey(partition uint32, key []byte) []byte {
	return appendKey(make([]byte, 0, prefixLen+len(key)), partition, key)
}

// decodePartition returns the partition of a stored key. ok is false for a
// key shorter than the prefix, which gokai never writes.
func decodePartition(stored []byte) (partition uint32, ok bool) {
	if len(stored) < prefixLen {
		return 0, false
	}
	return binary.BigEndian.Uint32(stored), true
}
