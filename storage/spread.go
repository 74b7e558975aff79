package storage

import (
	"encoding/binary"
	"hash/fnv"
)

// SpreadWidth is the number of hex characters SpreadPrefix returns: 2 gives 256
// prefixes. S3 scales request rates per key prefix (about 3,500 writes and 5,500 reads a
// second each); keys that start with a timestamp or a topic name all land on one
// partition, keys that start with a hash spread over 256. A reader that lists one hour
// lists 256 prefixes, which costs 256 LIST requests: cheap next to reading the segments.
const SpreadWidth = 2

// SpreadPrefix returns SpreadWidth lowercase hex characters of a hash of id: FNV-1a 32
// of id, its four bytes XOR-folded into one. It is deterministic across processes,
// machines and versions, because keys built with it must be found again (a replay must
// hit the same key for the conditional create to catch it): changing it is a format
// change. The design's segment key (columnar.SegmentKey) is
//
//	segments/<SpreadPrefix(SegmentSpreadID(topic, partition, start))>/<hour>/<topic>-<partition>-<start:020d>.tseg
func SpreadPrefix(id []byte) string {
	h := fnv.New32a()
	h.Write(id)
	sum := h.Sum32()
	b := byte(sum ^ sum>>8 ^ sum>>16 ^ sum>>24)
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&15]})
}

// SegmentSpreadID appends the bytes a segment's spread prefix hashes to dst: the topic,
// then the partition (uint32) and the start offset (uint64), little-endian.
func SegmentSpreadID(dst []byte, topic string, partition int32, start int64) []byte {
	dst = append(dst, topic...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(partition))
	return binary.LittleEndian.AppendUint64(dst, uint64(start))
}

// SpreadPrefixes returns every value SpreadPrefix can return, in lexical order, for
// readers that list all spread prefixes of one hour.
func SpreadPrefixes() []string {
	n := 1 << (4 * SpreadWidth)
	out := make([]string, n)
	const digits = "0123456789abcdef"
	for i := range n {
		b := make([]byte, SpreadWidth)
		for j, v := SpreadWidth-1, i; j >= 0; j, v = j-1, v>>4 {
			b[j] = digits[v&15]
		}
		out[i] = string(b)
	}
	return out
}
