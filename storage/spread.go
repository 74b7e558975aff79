package storage

import (
	"encoding/hex"
	"hash/fnv"
)

// SpreadWidth is the number of hex characters SpreadPrefix returns: 2 gives 256
// prefixes. S3 scales request rates per key prefix (about 3,500 writes and 5,500 reads a
// second each); keys that start with a timestamp or a topic name all land on one
// partition, keys that start with a hash spread over 256. A reader that lists one hour
// lists 256 prefixes, which costs 256 LIST requests: cheap next to reading the segments.
const SpreadWidth = 2

// SpreadPrefix returns SpreadWidth lowercase hex characters of a hash of parts: the first
// byte of FNV-1a 64 over each part followed by a 0 byte. It is deterministic across
// processes, machines and versions, because keys built with it must be found again:
// changing it is a format change. The design's segment key is
//
//	segments/<SpreadPrefix(topic, partition, start)>/<hour>/<topic>-<partition>-<start:020d>.tseg
//
// with partition and start in decimal.
func SpreadPrefix(parts ...string) string {
	h := fnv.New64a()
	var sep = []byte{0}
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write(sep)
	}
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:(SpreadWidth+1)/2])[:SpreadWidth]
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
