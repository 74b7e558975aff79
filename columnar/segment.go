package columnar

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
	"time"

	"github.com/tailor-metrics/tailor/storage"
)

// Segment layout (docs/format/segment.md):
//
//	header | frame | frame | … | footer | trailer
//
// Frames are grouped by shard; the footer indexes shard → frame byte ranges, and the
// fixed-size trailer at the very end gives the footer's length, so a reader finds
// everything with one small read of the file's tail.
const (
	SegmentMagic = "TSEG"
	TrailerMagic = "TSEGFTR1"
	// SegmentVersion is the version writers write. Readers read every version from 1 to
	// it: version 2 changed only how a frame's values are stored (docs/format/segment.md).
	SegmentVersion = 2

	// TrailerSize is footer length (4) + footer crc32c (4) + magic (8).
	TrailerSize = 16
	// FrameHeaderSize is the compressed length (4) + crc32c of the compressed bytes (4).
	FrameHeaderSize = 8
	// MaxFrameBytes bounds one frame's compressed and raw size, so a corrupt length can
	// never make a reader allocate more than this.
	MaxFrameBytes = 256 << 20
	// MaxFooterBytes bounds the footer a reader will load.
	MaxFooterBytes = 512 << 20

	frameIndexEntrySize = 8 + 4 + 4 + 4 + 4 + 4 + 8*6
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// Header is a segment's fixed identity: where its records came from.
type Header struct {
	Version         uint16
	ShardMapVersion uint32
	Topic           string
	Partition       int32
	// StartOffset is the Kafka offset of the first record the segment covers.
	StartOffset int64
	// StartTimestamp is the Kafka record timestamp (Unix ms) of the record at StartOffset;
	// it names the segment's hour in its key.
	StartTimestamp int64
}

// Marshal appends the header's bytes to dst.
func (h *Header) Marshal(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, SegmentMagic...)
	dst = binary.LittleEndian.AppendUint16(dst, h.Version)
	dst = binary.LittleEndian.AppendUint16(dst, 0) // flags, reserved
	dst = binary.LittleEndian.AppendUint32(dst, h.ShardMapVersion)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(h.Partition))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(h.StartOffset))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(h.StartTimestamp))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(h.Topic)))
	dst = append(dst, h.Topic...)
	return binary.LittleEndian.AppendUint32(dst, crc(dst[start:]))
}

const headerFixedSize = 4 + 2 + 2 + 4 + 4 + 8 + 8 + 2

// Unmarshal parses a header from the start of src and returns the rest.
func (h *Header) Unmarshal(src []byte) ([]byte, error) {
	if len(src) < headerFixedSize+4 {
		return src, fmt.Errorf("header: %d bytes, need at least %d", len(src), headerFixedSize+4)
	}
	if string(src[:4]) != SegmentMagic {
		return src, fmt.Errorf("header: bad magic %q, want %q", src[:4], SegmentMagic)
	}
	h.Version = binary.LittleEndian.Uint16(src[4:])
	if h.Version < 1 || h.Version > SegmentVersion {
		return src, fmt.Errorf("header: unsupported version %d (this reader knows 1 to %d)", h.Version, SegmentVersion)
	}
	h.ShardMapVersion = binary.LittleEndian.Uint32(src[8:])
	h.Partition = int32(binary.LittleEndian.Uint32(src[12:]))
	h.StartOffset = int64(binary.LittleEndian.Uint64(src[16:]))
	h.StartTimestamp = int64(binary.LittleEndian.Uint64(src[24:]))
	n := int(binary.LittleEndian.Uint16(src[32:]))
	if len(src) < headerFixedSize+n+4 {
		return src, fmt.Errorf("header: topic length %d past end of %d bytes", n, len(src))
	}
	h.Topic = string(src[headerFixedSize : headerFixedSize+n])
	end := headerFixedSize + n
	if got, want := crc(src[:end]), binary.LittleEndian.Uint32(src[end:]); got != want {
		return src, fmt.Errorf("header: crc32c %08x, want %08x", got, want)
	}
	if flags := binary.LittleEndian.Uint16(src[6:]); flags != 0 {
		return src, fmt.Errorf("header: unknown flags %#04x (version %d defines none)", flags, h.Version)
	}
	return src[end+4:], nil
}

// headerSize returns the marshalled size of h.
func (h *Header) headerSize() int { return headerFixedSize + len(h.Topic) + 4 }

// FrameInfo is one frame's footer entry.
type FrameInfo struct {
	// Offset is the frame's byte offset in the segment (its frame header).
	Offset uint64
	// Length is the frame's total size: frame header plus compressed bytes.
	Length uint32
	// RawLength is the size of the decompressed frame payload.
	RawLength uint32
	// Shard indexes Footer.Shards.
	Shard  uint32
	Rows   uint32
	Groups uint32
	// MinTs and MaxTs bound the points' ts; MinOffset and MaxOffset the Kafka offsets;
	// MinRecordTs and MaxRecordTs the Kafka record timestamps.
	MinTs, MaxTs             int64
	MinOffset, MaxOffset     int64
	MinRecordTs, MaxRecordTs int64
}

// Footer indexes a segment's frames.
type Footer struct {
	// EndOffset is one past the last Kafka offset the segment covers: the segment holds
	// exactly the records [Header.StartOffset, EndOffset) of its partition, minus the
	// ones that were rejected (counted in Rejected) or carried no points.
	EndOffset int64
	Records   uint64
	Rejected  uint64
	// Collapsed counts points dropped inside single payloads: a payload that repeats a ts
	// keeps only its last point for that ts (the later one in the record wins).
	Collapsed uint64
	Rows      uint64
	Shards    []string
	Frames    []FrameInfo
}

// Marshal appends the footer's bytes to dst.
func (f *Footer) Marshal(dst []byte) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, uint64(f.EndOffset))
	dst = binary.LittleEndian.AppendUint64(dst, f.Records)
	dst = binary.LittleEndian.AppendUint64(dst, f.Rejected)
	dst = binary.LittleEndian.AppendUint64(dst, f.Collapsed)
	dst = binary.LittleEndian.AppendUint64(dst, f.Rows)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(f.Shards)))
	for _, s := range f.Shards {
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(s)))
		dst = append(dst, s...)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(f.Frames)))
	for i := range f.Frames {
		fr := &f.Frames[i]
		dst = binary.LittleEndian.AppendUint64(dst, fr.Offset)
		dst = binary.LittleEndian.AppendUint32(dst, fr.Length)
		dst = binary.LittleEndian.AppendUint32(dst, fr.RawLength)
		dst = binary.LittleEndian.AppendUint32(dst, fr.Shard)
		dst = binary.LittleEndian.AppendUint32(dst, fr.Rows)
		dst = binary.LittleEndian.AppendUint32(dst, fr.Groups)
		for _, v := range [...]int64{fr.MinTs, fr.MaxTs, fr.MinOffset, fr.MaxOffset, fr.MinRecordTs, fr.MaxRecordTs} {
			dst = binary.LittleEndian.AppendUint64(dst, uint64(v))
		}
	}
	return dst
}

// Unmarshal parses a footer. dataEnd is the offset where the footer starts: every frame
// must lie inside [headerEnd, dataEnd).
func (f *Footer) Unmarshal(src []byte, headerEnd, dataEnd uint64) error {
	d := Decbuf{B: src}
	f.EndOffset = int64(d.u64())
	f.Records = d.u64()
	f.Rejected = d.u64()
	f.Collapsed = d.u64()
	f.Rows = d.u64()
	ns := d.U32()
	if d.Err == nil && uint64(ns)*2 > uint64(len(d.B)) {
		return fmt.Errorf("footer: %d shards cannot fit in %d bytes", ns, len(d.B))
	}
	f.Shards = make([]string, 0, ns)
	for i := uint32(0); i < ns && d.Err == nil; i++ {
		f.Shards = append(f.Shards, string(d.Bytes(int(d.U16()))))
	}
	nf := d.U32()
	if d.Err == nil && uint64(nf)*frameIndexEntrySize != uint64(len(d.B)) {
		return fmt.Errorf("footer: %d frames need %d bytes, have %d", nf, uint64(nf)*frameIndexEntrySize, len(d.B))
	}
	if d.Err != nil {
		return fmt.Errorf("footer: %w", d.Err)
	}
	f.Frames = make([]FrameInfo, nf)
	next := headerEnd
	var rows uint64
	for i := range f.Frames {
		fr := &f.Frames[i]
		fr.Offset = d.u64()
		fr.Length = d.U32()
		fr.RawLength = d.U32()
		fr.Shard = d.U32()
		fr.Rows = d.U32()
		fr.Groups = d.U32()
		fr.MinTs, fr.MaxTs = int64(d.u64()), int64(d.u64())
		fr.MinOffset, fr.MaxOffset = int64(d.u64()), int64(d.u64())
		fr.MinRecordTs, fr.MaxRecordTs = int64(d.u64()), int64(d.u64())
		switch {
		case fr.Offset != next:
			return fmt.Errorf("footer: frame %d at offset %d, want %d (frames must be contiguous)", i, fr.Offset, next)
		case fr.Length <= FrameHeaderSize || fr.Length > MaxFrameBytes || fr.RawLength > MaxFrameBytes:
			return fmt.Errorf("footer: frame %d at offset %d: length %d / raw length %d out of range", i, fr.Offset, fr.Length, fr.RawLength)
		case fr.Offset+uint64(fr.Length) > dataEnd:
			return fmt.Errorf("footer: frame %d at offset %d: length %d runs past the footer at %d", i, fr.Offset, fr.Length, dataEnd)
		case int(fr.Shard) >= len(f.Shards):
			return fmt.Errorf("footer: frame %d at offset %d: shard index %d, have %d shards", i, fr.Offset, fr.Shard, len(f.Shards))
		}
		// Readers size batches and buffers by these counts before they read any frame,
		// so each must be what the frame's bytes can hold.
		if err := fr.checkCounts(); err != nil {
			return fmt.Errorf("footer: frame %d at offset %d: %w", i, fr.Offset, err)
		}
		next = fr.Offset + uint64(fr.Length)
		rows += uint64(fr.Rows)
	}
	if next != dataEnd {
		return fmt.Errorf("footer: frames end at %d, footer starts at %d", next, dataEnd)
	}
	if rows != f.Rows {
		return fmt.Errorf("footer: frames hold %d rows, footer says %d", rows, f.Rows)
	}
	return nil
}

// checkCounts checks a frame entry's counts against its lengths: at least one group, at
// least one row per group and at most MaxFrameRows, 40 raw bytes per group and 16 per
// row, and no more raw bytes than zstd can expand the compressed bytes to.
func (fr *FrameInfo) checkCounts() error {
	if fr.Length <= FrameHeaderSize {
		return fmt.Errorf("length %d holds no more than the frame header", fr.Length)
	}
	g, r, raw := uint64(fr.Groups), uint64(fr.Rows), uint64(fr.RawLength)
	comp := uint64(fr.Length) - FrameHeaderSize
	switch {
	case g == 0 || r < g:
		return fmt.Errorf("%d rows in %d groups (each group has at least one row)", r, g)
	case r > MaxFrameRows:
		return fmt.Errorf("%d rows, more than max allowed %d", r, MaxFrameRows)
	case frameRawHeader+groupRawBytes*g+rowRawBytes*r > raw:
		return fmt.Errorf("%d rows in %d groups need at least %d raw bytes, raw length %d", r, g, frameRawHeader+groupRawBytes*g+rowRawBytes*r, raw)
	case raw > maxZstdExpansion*comp:
		return fmt.Errorf("raw length %d is more than %d compressed bytes can hold (zstd expands at most %d times)", raw, comp, maxZstdExpansion)
	}
	return nil
}

// marshalTrailer appends the trailer for a footer of footerLen bytes with checksum sum.
func marshalTrailer(dst []byte, footerLen, sum uint32) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, footerLen)
	dst = binary.LittleEndian.AppendUint32(dst, sum)
	return append(dst, TrailerMagic...)
}

func unmarshalTrailer(b []byte) (footerLen, sum uint32, err error) {
	if len(b) != TrailerSize {
		return 0, 0, fmt.Errorf("trailer: %d bytes, want %d", len(b), TrailerSize)
	}
	if string(b[8:]) != TrailerMagic {
		return 0, 0, fmt.Errorf("trailer: bad magic %q, want %q (truncated or not a segment)", b[8:], TrailerMagic)
	}
	return binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]), nil
}

// SegmentKey is the object key of the segment of (topic, partition) that starts at start:
//
//	segments/<h>/<hour>/<topic>-<partition>-<start:020d>.tseg
//
// h is two hex chars of a hash of (topic, partition, start): a randomized but
// deterministic prefix that spreads writers over storage partitions. hour is the UTC hour
// of the Kafka timestamp of the record at start. No random or wall-clock part.
func SegmentKey(topic string, partition int32, start, startTimestamp int64) string {
	h := storage.SpreadPrefix(storage.SegmentSpreadID(nil, topic, partition, start))
	hour := time.UnixMilli(startTimestamp).UTC().Format("2006010215")
	return fmt.Sprintf("segments/%s/%s/%s-%d-%020d.tseg", h, hour, topic, partition, start)
}

// ParseSegmentKey returns the topic, partition and start offset named by a segment key.
func ParseSegmentKey(key string) (topic string, partition int32, start int64, err error) {
	base := key
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '/' {
			base = key[i+1:]
			break
		}
	}
	const ext = ".tseg"
	if len(base) < len(ext)+22 || base[len(base)-len(ext):] != ext {
		return "", 0, 0, fmt.Errorf("segment key %q: want <topic>-<partition>-<start:020d>.tseg", key)
	}
	base = base[:len(base)-len(ext)]
	s, err := strconv.ParseInt(base[len(base)-20:], 10, 64)
	if err != nil || base[len(base)-21] != '-' {
		return "", 0, 0, fmt.Errorf("segment key %q: bad start offset", key)
	}
	rest := base[:len(base)-21]
	j := len(rest) - 1
	for j >= 0 && rest[j] != '-' {
		j--
	}
	if j <= 0 {
		return "", 0, 0, fmt.Errorf("segment key %q: missing partition", key)
	}
	p, err := strconv.ParseInt(rest[j+1:], 10, 32)
	if err != nil {
		return "", 0, 0, fmt.Errorf("segment key %q: bad partition: %w", key, err)
	}
	return rest[:j], int32(p), s, nil
}
