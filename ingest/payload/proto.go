package payload

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/tailor-metrics/tailor/columnar"
)

// Field numbers of tailor.v1.Payload (tailor.proto). Frozen: never renumber or reuse.
const (
	fieldOrg        = 1
	fieldMetric     = 2
	fieldContext    = 3
	fieldTags       = 4
	fieldTimestamps = 5
	fieldValues     = 6
	fieldMetadata   = 7
)

var idFieldNames = [...]string{fieldOrg: "org_id", fieldMetric: "metric_id", fieldContext: "context_key"}

// Protobuf wire types.
const (
	wireVarint     = 0
	wireFixed64    = 1
	wireBytes      = 2
	wireStartGroup = 3
	wireEndGroup   = 4
	wireFixed32    = 5
)

// maxFieldNumber is the largest field number protobuf allows (2^29 - 1).
const maxFieldNumber = 1<<29 - 1

var wireNames = [8]string{"varint", "fixed64", "length-delimited", "start-group", "end-group", "fixed32", "invalid (6)", "invalid (7)"}

// Sentinel "next index" values returned by uvarint for malformed varints.
const (
	errVarintTruncated = -1
	errVarintOverflow  = -2
)

// uvarint decodes the base-128 varint at b[i:] and returns it with the index just past
// it, or a negative index (errVarintTruncated, errVarintOverflow). Like protobuf-go it
// accepts non-minimal encodings and rejects a tenth byte above 1.
func uvarint(b []byte, i int) (uint64, int) {
	// Fast path: one byte (field tags, small lengths, small ids).
	if i < len(b) && b[i] < 0x80 {
		return uint64(b[i]), i + 1
	}
	// Fast path: ten bytes left, so the first eight are read as one word and decoded
	// without a loop. Timestamps (6 bytes) and hashes (9-10 bytes) take this path.
	if len(b)-i >= 10 {
		w := binary.LittleEndian.Uint64(b[i:])
		// The high bits of the bytes that end a varint; the lowest one ends this one, and
		// ends^(ends-1) masks the bytes up to it.
		if ends := ^w & 0x8080808080808080; ends != 0 {
			return pack7(w & 0x7f7f7f7f7f7f7f7f & (ends ^ (ends - 1))), i + bits.TrailingZeros64(ends)/8 + 1
		}
		v := pack7(w & 0x7f7f7f7f7f7f7f7f)
		if c := b[i+8]; c < 0x80 {
			return v | uint64(c)<<56, i + 9
		}
		if c := b[i+9]; c > 1 {
			return 0, errVarintOverflow
		}
		return v | uint64(b[i+8]&0x7f)<<56 | uint64(b[i+9])<<63, i + 10
	}
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if i >= len(b) {
			return 0, errVarintTruncated
		}
		c := b[i]
		i++
		if shift == 63 && c > 1 {
			return 0, errVarintOverflow
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, i
		}
	}
	return 0, errVarintOverflow
}

// pack7 packs the low 7 bits of each byte of x into the low 56 bits, the first byte
// lowest: the value of a varint of up to 8 bytes, with its continuation bits cleared.
func pack7(x uint64) uint64 {
	x = x&0x007f007f007f007f | (x&0x7f007f007f007f00)>>1
	x = x&0x00003fff00003fff | (x&0x3fff00003fff0000)>>2
	return x&0x000000000fffffff | (x&0x0fffffff00000000)>>4
}

func varintReason(n int) string {
	if n == errVarintOverflow {
		return "varint overflows 64 bits"
	}
	return "truncated varint"
}

// protoTag reads a field tag at b[i:]. On failure it returns a reason.
func protoTag(b []byte, i int) (num uint64, wt uint8, next int, reason string) {
	v, n := uvarint(b, i)
	if n < 0 {
		return 0, 0, 0, varintReason(n) + " in field tag"
	}
	num, wt = v>>3, uint8(v&7)
	if num == 0 || num > maxFieldNumber {
		return 0, 0, 0, "invalid field number " + strconv.FormatUint(num, 10)
	}
	return num, wt, n, ""
}

// protoBytes reads the length prefix of a length-delimited field at b[i:] and returns
// the bounds of its body.
func protoBytes(b []byte, i int) (start, end int, reason string) {
	l, n := uvarint(b, i)
	if n < 0 {
		return 0, 0, varintReason(n) + " in length"
	}
	if l > uint64(len(b)-n) {
		return 0, 0, "length " + strconv.FormatUint(l, 10) + " past the end (" + strconv.Itoa(len(b)-n) + " bytes left)"
	}
	return n, n + int(l), ""
}

// protoSkip skips the body of a field of wire type wt at b[i:].
func protoSkip(b []byte, i int, wt uint8) (next int, reason string) {
	switch wt {
	case wireVarint:
		_, n := uvarint(b, i)
		if n < 0 {
			return 0, varintReason(n)
		}
		return n, ""
	case wireFixed64:
		if len(b)-i < 8 {
			return 0, "truncated fixed64"
		}
		return i + 8, ""
	case wireFixed32:
		if len(b)-i < 4 {
			return 0, "truncated fixed32"
		}
		return i + 4, ""
	case wireBytes:
		_, end, r := protoBytes(b, i)
		return end, r
	case wireStartGroup, wireEndGroup:
		return 0, "groups (wire type " + strconv.Itoa(int(wt)) + ") are not supported"
	default:
		return 0, "invalid wire type " + strconv.Itoa(int(wt))
	}
}

func wrongWire(got uint8, want ...uint8) string {
	r := "wrong wire type " + strconv.Itoa(int(got)) + " (" + wireNames[got&7] + "), want "
	for k, w := range want {
		if k > 0 {
			r += " or "
		}
		r += strconv.Itoa(int(w)) + " (" + wireNames[w] + ")"
	}
	return r
}

// appendPackedVarints appends the packed int64 varints of b to dst. On failure it
// returns the offset in b of the bad element and a reason.
func appendPackedVarints(dst []int64, b []byte) ([]int64, int, string) {
	// Every varint ends with exactly one byte below 0x80, so counting them sizes dst
	// once; the count is bounded by len(b).
	dst = slices.Grow(dst, varintEnds(b))
	for i := 0; i < len(b); {
		v, j := uvarint(b, i)
		if j < 0 {
			return dst, i, varintReason(j)
		}
		dst = append(dst, int64(v))
		i = j
	}
	return dst, 0, ""
}

// varintEnds counts the bytes of b below 0x80, a word at a time.
func varintEnds(b []byte) int {
	n, k := 0, 0
	for ; k+8 <= len(b); k += 8 {
		n += bits.OnesCount64(^binary.LittleEndian.Uint64(b[k:]) & 0x8080808080808080)
	}
	for _, c := range b[k:] {
		if c < 0x80 {
			n++
		}
	}
	return n
}

// appendPackedDoubles appends the packed little-endian doubles of b to dst.
func appendPackedDoubles(dst []float64, b []byte) []float64 {
	dst = slices.Grow(dst, len(b)/8)
	for i := 0; i+8 <= len(b); i += 8 {
		dst = append(dst, math.Float64frombits(binary.LittleEndian.Uint64(b[i:])))
	}
	return dst
}

func protoErr(field string, off int, reason string) error {
	return &DecodeError{Format: Proto, Field: field, Offset: off, Reason: reason}
}

// decodeProto decodes one tailor.v1.Payload message into p (already reset).
//
// Protobuf semantics: a scalar field seen twice keeps the last value; repeated fields
// accumulate, and timestamps and values accept the packed encoding, the unpacked one,
// or a mix, as parsers must. Unknown fields are skipped. Stricter than protobuf: a
// known field with the wrong wire type, an org_id above 2^32-1 (protobuf would
// truncate it) and invalid UTF-8 in a tag are errors, because silently dropping or
// truncating them would file points under the wrong series.
func (d *Decoder) decodeProto(b []byte, p *columnar.Payload) error {
	lastPoints := 0
	for i := 0; i < len(b); {
		start := i
		num, wt, j, reason := protoTag(b, i)
		if reason != "" {
			return protoErr("", start, reason)
		}
		i = j
		switch num {
		case fieldOrg, fieldMetric, fieldContext:
			name := idFieldNames[num]
			if wt != wireVarint {
				return protoErr(name, start, wrongWire(wt, wireVarint))
			}
			v, j := uvarint(b, i)
			if j < 0 {
				return protoErr(name, i, varintReason(j))
			}
			switch num {
			case fieldOrg:
				if v > math.MaxUint32 {
					return protoErr(name, i, "value "+strconv.FormatUint(v, 10)+" overflows uint32")
				}
				p.Org = uint32(v)
			case fieldMetric:
				p.Metric = v
			default:
				p.Context = v
			}
			i = j
		case fieldTags:
			if wt != wireBytes {
				return protoErr(elemField("tags", len(p.Tags)), start, wrongWire(wt, wireBytes))
			}
			s, e, reason := protoBytes(b, i)
			if reason != "" {
				return protoErr(elemField("tags", len(p.Tags)), i, reason)
			}
			if !utf8.Valid(b[s:e]) {
				return protoErr(elemField("tags", len(p.Tags)), s, "invalid UTF-8")
			}
			p.Tags = append(p.Tags, d.internTag(b[s:e]))
			i = e
		case fieldTimestamps:
			lastPoints = start
			switch wt {
			case wireBytes:
				s, e, reason := protoBytes(b, i)
				if reason != "" {
					return protoErr("timestamps", i, reason)
				}
				var bad int
				p.Timestamps, bad, reason = appendPackedVarints(p.Timestamps, b[s:e])
				if reason != "" {
					return protoErr(elemField("timestamps", len(p.Timestamps)), s+bad, reason)
				}
				i = e
			case wireVarint:
				v, j := uvarint(b, i)
				if j < 0 {
					return protoErr(elemField("timestamps", len(p.Timestamps)), i, varintReason(j))
				}
				p.Timestamps = append(p.Timestamps, int64(v))
				i = j
			default:
				return protoErr("timestamps", start, wrongWire(wt, wireBytes, wireVarint))
			}
		case fieldValues:
			lastPoints = start
			switch wt {
			case wireBytes:
				s, e, reason := protoBytes(b, i)
				if reason != "" {
					return protoErr("values", i, reason)
				}
				if (e-s)%8 != 0 {
					return protoErr("values", i, "packed doubles length "+strconv.Itoa(e-s)+" is not a multiple of 8")
				}
				p.Values = appendPackedDoubles(p.Values, b[s:e])
				i = e
			case wireFixed64:
				if len(b)-i < 8 {
					return protoErr(elemField("values", len(p.Values)), i, "truncated fixed64")
				}
				p.Values = append(p.Values, math.Float64frombits(binary.LittleEndian.Uint64(b[i:])))
				i += 8
			default:
				return protoErr("values", start, wrongWire(wt, wireBytes, wireFixed64))
			}
		case fieldMetadata:
			if wt != wireBytes {
				return protoErr("metadata", start, wrongWire(wt, wireBytes))
			}
			s, e, reason := protoBytes(b, i)
			if reason != "" {
				return protoErr("metadata", i, reason)
			}
			if off, reason := checkStringMapEntry(b[s:e]); reason != "" {
				return protoErr("metadata", s+off, reason)
			}
			i = e
		default:
			j, reason := protoSkip(b, i, wt)
			if reason != "" {
				return protoErr("", start, "unknown field "+strconv.FormatUint(num, 10)+": "+reason)
			}
			i = j
		}
	}
	if len(p.Timestamps) != len(p.Values) {
		return protoErr("values", lastPoints, strconv.Itoa(len(p.Timestamps))+" timestamps but "+strconv.Itoa(len(p.Values))+" values")
	}
	return nil
}

// checkStringMapEntry validates one entry of a map<string, string> (key = 1,
// value = 2). Tailor does not keep payload metadata yet (columnar.Payload has no field
// for it), but a malformed entry still makes the record malformed.
func checkStringMapEntry(b []byte) (off int, reason string) {
	for i := 0; i < len(b); {
		start := i
		num, wt, j, reason := protoTag(b, i)
		if reason != "" {
			return start, reason
		}
		i = j
		if num == 1 || num == 2 {
			if wt != wireBytes {
				return start, wrongWire(wt, wireBytes)
			}
			s, e, reason := protoBytes(b, i)
			if reason != "" {
				return i, reason
			}
			if !utf8.Valid(b[s:e]) {
				return s, "invalid UTF-8"
			}
			i = e
			continue
		}
		if i, reason = protoSkip(b, i, wt); reason != "" {
			return start, reason
		}
	}
	return 0, ""
}

// AppendProto appends p encoded as a tailor.v1.Payload message to dst and returns the
// extended slice. Timestamps and values are packed, tags are written in order, and
// org_id is always written (even 0) so that the encoding of a payload is never empty.
// metric_id and context_key are omitted when 0, as proto3 encoders do. Values keep
// their exact bits, NaN payloads included.
func AppendProto(dst []byte, p *columnar.Payload) []byte {
	dst = appendTag(dst, fieldOrg, wireVarint)
	dst = binary.AppendUvarint(dst, uint64(p.Org))
	if p.Metric != 0 {
		dst = appendTag(dst, fieldMetric, wireVarint)
		dst = binary.AppendUvarint(dst, p.Metric)
	}
	if p.Context != 0 {
		dst = appendTag(dst, fieldContext, wireVarint)
		dst = binary.AppendUvarint(dst, p.Context)
	}
	for _, t := range p.Tags {
		dst = appendTag(dst, fieldTags, wireBytes)
		dst = binary.AppendUvarint(dst, uint64(len(t)))
		dst = append(dst, t...)
	}
	if len(p.Timestamps) > 0 {
		n := 0
		for _, t := range p.Timestamps {
			n += varintLen(uint64(t))
		}
		dst = appendTag(dst, fieldTimestamps, wireBytes)
		dst = binary.AppendUvarint(dst, uint64(n))
		dst = slices.Grow(dst, n)
		for _, t := range p.Timestamps {
			dst = binary.AppendUvarint(dst, uint64(t))
		}
	}
	if len(p.Values) > 0 {
		dst = appendTag(dst, fieldValues, wireBytes)
		dst = binary.AppendUvarint(dst, uint64(8*len(p.Values)))
		dst = slices.Grow(dst, 8*len(p.Values))
		for _, v := range p.Values {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
		}
	}
	return dst
}

func appendTag(dst []byte, num uint64, wt uint8) []byte {
	return binary.AppendUvarint(dst, num<<3|uint64(wt))
}

// varintLen returns the encoded size of v as a varint.
func varintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
