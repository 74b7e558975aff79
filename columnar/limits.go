package columnar

import (
	"errors"
	"fmt"
	"math"
)

// Limits of segment format version 1 (docs/format/segment.md, "Limits"). Each follows
// from a field's width or from what a reader is prepared to hold. The sink checks every
// record against them (CheckPayload) before it enters a segment, so that a record past a
// limit goes to rejects with the reason; the writer checks again and refuses with a
// *LimitError, so nothing is ever stored truncated.
const (
	// MaxTopicLen is the longest topic name: Kafka's own limit. The header stores the
	// length as u16, but readers fetch the header with 256 bytes of topic.
	MaxTopicLen = 249
	// MaxTags is the most tags one payload carries: a frame stores the count as u16.
	MaxTags = math.MaxUint16
	// MaxTagLen is the longest tag, in bytes: a frame stores each length as u16.
	MaxTagLen = math.MaxUint16
	// MaxTagBytes bounds the tags of one payload as a frame stores them (2 bytes of
	// count, then 2 bytes of length and the bytes of each tag). 65,535 tags of 65,535
	// bytes would be 4 GiB, past what a frame may hold (MaxFrameBytes); 16 MiB is
	// thousands of times what real series carry, and lets every payload share a frame
	// with MaxFrameRows of its points.
	MaxTagBytes = 16 << 20
	// MaxFrameRows caps the rows of one frame (the writer's frameRows; 16 times
	// DefaultFrameRows). Readers size their batches by the largest frame of a read
	// before decoding any, so they refuse footers that claim more.
	MaxFrameRows = 1 << 20

	// maxFrameRaw is the raw size at which the writer seals a frame however few rows it
	// has, so that payloads with many tags never push a frame towards MaxFrameBytes. One
	// payload's group (40 bytes, 16 per row, up to MaxTagBytes of tags) always fits in an
	// empty frame, and zstd's worst case (incompressible tags) stays far below
	// MaxFrameBytes.
	maxFrameRaw = 64 << 20
	// groupRawBytes is a group's share of a raw frame besides its rows and tags:
	// metric, context, record_ts and offset (8 bytes each), org and count (4 each).
	groupRawBytes = 40
	// rowRawBytes is a row's share: ts and value, 8 bytes each.
	rowRawBytes = 16
	// maxZstdExpansion is how much a zstd stream can expand: its densest element is an
	// RLE block, 3 bytes of header and 1 byte that stand for up to 128 KiB. A frame whose
	// footer claims a raw length above 32768 times its compressed bytes is corrupt, which
	// a reader knows before it allocates anything.
	maxZstdExpansion = (128 << 10) / 4
)

// ErrLimit is wrapped by every LimitError, so callers can branch with errors.Is.
var ErrLimit = errors.New("past a segment format limit")

// LimitError reports a value past one of the segment format's limits.
type LimitError struct {
	// What names the value: "tag count", "tags[3] length", "topic length".
	What       string
	Value, Max int64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s %d is larger than max allowed %d", e.What, e.Value, e.Max)
}

// Unwrap makes errors.Is(err, ErrLimit) true.
func (e *LimitError) Unwrap() error { return ErrLimit }

// checkTags checks tags against MaxTags, MaxTagLen and MaxTagBytes.
func checkTags(tags []string) error {
	if len(tags) > MaxTags {
		return &LimitError{What: "tag count", Value: int64(len(tags)), Max: MaxTags}
	}
	n := 2
	for i, t := range tags {
		if len(t) > MaxTagLen {
			return &LimitError{What: fmt.Sprintf("tags[%d] length", i), Value: int64(len(t)), Max: MaxTagLen}
		}
		n += 2 + len(t)
	}
	if n > MaxTagBytes {
		return &LimitError{What: "encoded tags size", Value: int64(n), Max: MaxTagBytes}
	}
	return nil
}

// tagBytes is the size of tags in a raw frame; CheckTags must have accepted them.
func tagBytes(tags []string) int {
	n := 2
	for _, t := range tags {
		n += 2 + len(t)
	}
	return n
}

// CheckTopic checks a topic name as Kafka does (1 to 249 characters of a-z, A-Z, 0-9,
// '.', '_' and '-', and neither "." nor ".."): a segment's key embeds the topic, so a
// '/' would move it under another prefix, and readers refuse longer names.
func CheckTopic(topic string) error {
	switch {
	case topic == "":
		return errors.New("topic is empty")
	case len(topic) > MaxTopicLen:
		return fmt.Errorf("topic %.20q…: %w", topic, &LimitError{What: "topic length", Value: int64(len(topic)), Max: MaxTopicLen})
	case topic == "." || topic == "..":
		return fmt.Errorf("topic %q is not a valid name", topic)
	}
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic %q: character %q at %d is not allowed (Kafka topics use a-z, A-Z, 0-9, '.', '_' and '-')", topic, c, i)
		}
	}
	return nil
}
