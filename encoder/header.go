package encoder

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"slices"

	"github.com/tailor-metrics/tailor/columnar"
)

// Layout constants. See docs/format/series.md for the diagrams.
const (
	// Magic opens and closes every series file ("Tailor Series File").
	Magic = "TLSF"

	// Version1 is the first format: delta-of-delta timestamps and Gorilla XOR values only.
	Version1 uint16 = 1
	// Version2 chooses per block and column among several encodings, adds the zstd stage
	// and keeps v1's layout.
	Version2 uint16 = 2
	// Version3 adds the dict and alp-rd value encodings, lets series that share their
	// timestamps share one block (one timestamp column, a value column each), and moves
	// keys and tags into a compressed index.
	Version3 uint16 = 3
	// CurrentVersion is what NewWriter writes unless told otherwise.
	CurrentVersion = Version3

	fileHeaderSize = 8  // magic[4] version u16 flags u16
	trailerSize    = 28 // indexOff u64 indexLen u64 indexCRC u32 version u16 flags u16 magic[4]
	seriesKeySize  = 20 // org u32 metric u64 context u64

	// MaxBlockPoints is the largest point count a block may hold. It bounds what a reader
	// allocates for one block (1 MiB of timestamps and values) whatever the input says.
	MaxBlockPoints = 1 << 16
)

// castagnoli is the crc32c table used for every checksum in the format.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// supportedVersion reports whether this package can read version v.
func supportedVersion(v uint16) bool { return v >= Version1 && v <= CurrentVersion }

// appendFileHeader appends the 8-byte file header.
func appendFileHeader(dst []byte, version uint16) []byte {
	dst = append(dst, Magic...)
	dst = binary.LittleEndian.AppendUint16(dst, version)
	return binary.LittleEndian.AppendUint16(dst, 0) // flags: none defined, must be 0
}

// parseFileHeader checks the 8-byte file header and returns its version.
func parseFileHeader(src []byte) (uint16, error) {
	if len(src) < fileHeaderSize {
		return 0, corrupt(0, "file header", ErrTruncated, "%d bytes, need %d", len(src), fileHeaderSize)
	}
	if string(src[:4]) != Magic {
		return 0, corrupt(0, "file header", ErrBadMagic, "got %q", src[:4])
	}
	v := binary.LittleEndian.Uint16(src[4:])
	if !supportedVersion(v) {
		return v, corrupt(4, "file header", ErrUnsupportedVersion, "version %d, this reader supports %d..%d", v, Version1, CurrentVersion)
	}
	if f := binary.LittleEndian.Uint16(src[6:]); f != 0 {
		return v, corrupt(6, "file header", ErrOutOfRange, "flags %#x, none are defined", f)
	}
	return v, nil
}

// trailer is the fixed-size end of a file: where the index is, its checksum, the version
// (repeated from the header so a reader needs only the file's tail) and the magic.
type trailer struct {
	indexOff int64
	indexLen int64
	indexCRC uint32
	version  uint16
}

func (t *trailer) Marshal(dst []byte) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, uint64(t.indexOff))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(t.indexLen))
	dst = binary.LittleEndian.AppendUint32(dst, t.indexCRC)
	dst = binary.LittleEndian.AppendUint16(dst, t.version)
	dst = binary.LittleEndian.AppendUint16(dst, 0)
	return append(dst, Magic...)
}

// Unmarshal parses the trailer at the end of a file of the given size. src holds
// exactly the trailer bytes.
func (t *trailer) Unmarshal(src []byte, size int64) error {
	off := size - trailerSize
	if len(src) != trailerSize {
		return corrupt(off, "trailer", ErrTruncated, "%d bytes, need %d", len(src), trailerSize)
	}
	if string(src[24:28]) != Magic {
		return corrupt(off+24, "trailer", ErrBadMagic, "got %q", src[24:28])
	}
	t.version = binary.LittleEndian.Uint16(src[20:])
	if !supportedVersion(t.version) {
		return corrupt(off+20, "trailer", ErrUnsupportedVersion, "version %d, this reader supports %d..%d", t.version, Version1, CurrentVersion)
	}
	if f := binary.LittleEndian.Uint16(src[22:]); f != 0 {
		return corrupt(off+22, "trailer", ErrOutOfRange, "flags %#x, none are defined", f)
	}
	io := binary.LittleEndian.Uint64(src[0:])
	il := binary.LittleEndian.Uint64(src[8:])
	t.indexCRC = binary.LittleEndian.Uint32(src[16:])
	// The index sits between the file header and the trailer.
	limit := uint64(off)
	minIndex := uint64(indexHeaderSize)
	if t.version >= Version3 {
		minIndex = minIndex3Size
	}
	if io < fileHeaderSize || io > limit || il > limit-io || il < minIndex {
		return corrupt(off, "trailer", ErrOutOfRange, "index at %d length %d outside [%d, %d)", io, il, fileHeaderSize, off)
	}
	t.indexOff, t.indexLen = int64(io), int64(il)
	return nil
}

// appendKey appends the 20-byte fixed encoding of a series key.
func appendKey(dst []byte, k columnar.SeriesKey) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, k.Org)
	dst = binary.LittleEndian.AppendUint64(dst, k.Metric)
	return binary.LittleEndian.AppendUint64(dst, k.Context)
}

// parseKey reads a key from at least seriesKeySize bytes.
func parseKey(src []byte) columnar.SeriesKey {
	return columnar.SeriesKey{
		Org:     binary.LittleEndian.Uint32(src),
		Metric:  binary.LittleEndian.Uint64(src[4:]),
		Context: binary.LittleEndian.Uint64(src[12:]),
	}
}

// appendSeriesHeader appends a series record's header: key, tags and a crc32c of both.
func appendSeriesHeader(dst []byte, k columnar.SeriesKey, tags []string) []byte {
	start := len(dst)
	dst = appendKey(dst, k)
	dst = binary.AppendUvarint(dst, uint64(len(tags)))
	for _, t := range tags {
		dst = binary.AppendUvarint(dst, uint64(len(t)))
		dst = append(dst, t...)
	}
	return binary.LittleEndian.AppendUint32(dst, checksum(dst[start:]))
}

// parseSeriesHeader parses a series header at absolute offset off, appending the tags to
// tags, and returns the bytes after it.
func parseSeriesHeader(src []byte, off int64, tags []string) (columnar.SeriesKey, []string, []byte, error) {
	const what = "series header"
	d := newDecbuf(src)
	kb := d.Bytes(seriesKeySize)
	n := d.Uvarint()
	// Each tag takes at least its one-byte length, so a count above the remaining bytes
	// is corrupt; checking it first keeps a hostile count from sizing an allocation.
	if d.Err == nil && n > uint64(len(d.B)) {
		return columnar.SeriesKey{}, tags, nil, corrupt(off, what, ErrOutOfRange, "%d tags in %d bytes", n, len(d.B))
	}
	for i := uint64(0); i < n && d.Err == nil; i++ {
		l := d.Uvarint()
		tags = append(tags, string(d.Bytes64(l)))
	}
	body := len(src) - len(d.B)
	sum := d.U32()
	if d.Err != nil {
		return columnar.SeriesKey{}, tags, nil, corrupt(off, what, ErrTruncated, "%v", d.Err)
	}
	if got := checksum(src[:body]); got != sum {
		return columnar.SeriesKey{}, tags, nil, corrupt(off, what, ErrChecksum, "crc32c %#08x, stored %#08x", got, sum)
	}
	return parseKey(kb), tags, d.B, nil
}

// blockHeader describes one block: its points, time range, encodings and payload sizes.
// The time range lets a reader skip blocks outside a query range without decoding them;
// minTs is also the first timestamp, which the timestamp payload therefore omits.
type blockHeader struct {
	version uint16
	count   int
	minTs   int64 // first timestamp
	maxTs   int64 // last timestamp
	tsEnc   TsEncoding
	valEnc  ValueEncoding // v1, v2: the block's one value column
	tsLen   int
	valLen  int
	cols    []column // v3: the value columns, one per series sharing the block
}

// column is one value column of a v3 block: its encoding and where its payload lies,
// counted from the end of the timestamp payload.
type column struct {
	enc      ValueEncoding
	off, len int
}

func (h *blockHeader) Marshal(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(h.count))
	dst = binary.AppendVarint(dst, h.minTs)
	dst = binary.AppendUvarint(dst, uint64(h.maxTs-h.minTs)) // wraps for huge spans; the reader mirrors it
	dst = append(dst, byte(h.tsEnc), byte(h.valEnc))
	dst = binary.AppendUvarint(dst, uint64(h.tsLen))
	return binary.AppendUvarint(dst, uint64(h.valLen))
}

// Unmarshal parses a block header written by format version v. It checks every field
// against the format's limits and against the bytes left in src (payloads and crc
// included), so the caller can slice the payloads without further checks.
func (h *blockHeader) Unmarshal(src []byte, v uint16) ([]byte, error) {
	d := newDecbuf(src)
	count, span := h.readHead(&d)
	h.valEnc = ValueEncoding(d.U8())
	tl := d.Uvarint()
	vl := d.Uvarint()
	if d.Err != nil {
		return nil, d.Err
	}
	if err := h.checkHead(count, span, v); err != nil {
		return nil, err
	}
	if !IsValidValueEncoding(v, h.valEnc) {
		return nil, fmt.Errorf("value encoding %s in a version %d file: %w", h.valEnc, v, ErrOutOfRange)
	}
	rest := uint64(len(d.B))
	if tl > rest || vl > rest-tl || rest-tl-vl < 4 {
		return nil, fmt.Errorf("payloads of %d+%d bytes and a checksum in %d bytes: %w", tl, vl, rest, ErrTruncated)
	}
	h.version = v
	h.count = int(count)
	h.maxTs = h.minTs + int64(span)
	h.tsLen, h.valLen = int(tl), int(vl)
	return d.B, nil
}

// readHead reads what every block header starts with: the point count, the first
// timestamp, the span and the timestamp encoding.
func (h *blockHeader) readHead(d *decbuf) (count, span uint64) {
	count = d.Uvarint()
	h.minTs = d.Varint()
	span = d.Uvarint()
	h.tsEnc = TsEncoding(d.U8())
	return count, span
}

// checkHead checks what readHead read against the limits of format version v.
func (h *blockHeader) checkHead(count, span uint64, v uint16) error {
	if err := checkCountSpan(count, h.minTs, span); err != nil {
		return err
	}
	if !IsValidTsEncoding(v, h.tsEnc) {
		return fmt.Errorf("timestamp encoding %s in a version %d file: %w", h.tsEnc, v, ErrOutOfRange)
	}
	return nil
}

// checkCountSpan checks a block's point count and time span (every version's rule).
func checkCountSpan(count uint64, minTs int64, span uint64) error {
	if count == 0 || count > MaxBlockPoints {
		return fmt.Errorf("block of %d points, allowed 1..%d: %w", count, MaxBlockPoints, ErrOutOfRange)
	}
	if (count == 1 && span != 0) || span < count-1 || span > uint64(math.MaxInt64)-uint64(minTs) {
		// Timestamps strictly increase, so n points span at least n-1 ms, and the last
		// one is at most MaxInt64. The subtraction wraps to the true distance.
		return fmt.Errorf("block of %d points spans %d ms: %w", count, span, ErrOutOfRange)
	}
	return nil
}

// MaxBlockColumns is the most value columns (series) a v3 block may hold.
const MaxBlockColumns = 1 << 16

// marshal3 appends a v3 block header: count, time range, the timestamp encoding and
// length, then the column count and each column's encoding and length.
func (h *blockHeader) marshal3(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(h.count))
	dst = binary.AppendVarint(dst, h.minTs)
	dst = binary.AppendUvarint(dst, uint64(h.maxTs-h.minTs))
	dst = append(dst, byte(h.tsEnc))
	dst = binary.AppendUvarint(dst, uint64(h.tsLen))
	dst = binary.AppendUvarint(dst, uint64(len(h.cols)))
	for _, c := range h.cols {
		dst = append(dst, byte(c.enc))
		dst = binary.AppendUvarint(dst, uint64(c.len))
	}
	return dst
}

// unmarshal3 parses the header of a v3 block whose bytes, checksum included, are
// exactly src, and returns the payloads (timestamps, then the value columns). It checks
// every field against the format's limits and the payload lengths against the bytes,
// before it allocates the column table.
func (h *blockHeader) unmarshal3(src []byte, v uint16) ([]byte, error) {
	d := newDecbuf(src)
	count, span := h.readHead(&d)
	tl := d.Uvarint()
	k := d.Uvarint()
	if d.Err != nil {
		return nil, d.Err
	}
	if err := h.checkHead(count, span, v); err != nil {
		return nil, err
	}
	// Each column takes at least two header bytes (its encoding and length).
	if k == 0 || k > MaxBlockColumns || k > uint64(len(d.B))/2 {
		return nil, fmt.Errorf("%d value columns in a block of %d bytes, allowed 1..%d: %w", k, len(src), MaxBlockColumns, ErrOutOfRange)
	}
	h.cols = slices.Grow(h.cols[:0], int(k))[:k]
	var total uint64
	for i := range h.cols {
		c := &h.cols[i]
		c.enc = ValueEncoding(d.U8())
		l := d.Uvarint()
		if d.Err != nil {
			return nil, d.Err
		}
		if !IsValidValueEncoding(v, c.enc) {
			return nil, fmt.Errorf("column %d: value encoding %s in a version %d file: %w", i, c.enc, v, ErrOutOfRange)
		}
		if l > uint64(len(src)) {
			return nil, fmt.Errorf("column %d of %d bytes in a block of %d: %w", i, l, len(src), ErrTruncated)
		}
		c.off, c.len = int(total), int(l)
		total += l
	}
	rest := uint64(len(d.B))
	if tl > rest || total > rest-tl || rest-tl-total != 4 {
		return nil, fmt.Errorf("payloads of %d+%d bytes and a checksum in %d bytes: %w", tl, total, rest, ErrTruncated)
	}
	h.version = v
	h.count = int(count)
	h.maxTs = h.minTs + int64(span)
	h.tsLen = int(tl)
	return d.B[:rest-4], nil
}

// decbuf is the sticky-error decoder of series files; its errors wrap ErrTruncated and
// ErrOutOfRange.
type decbuf = columnar.Decbuf

func newDecbuf(b []byte) decbuf { return decbuf{B: b, Short: ErrTruncated, Bad: ErrOutOfRange} }
