package columnar

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tailor-metrics/tailor/storage"
)

// TestWriterRefusesPastLimits: a payload past a format limit fails Add with a
// *LimitError naming the limit, and leaves the writer as it was, so that the record's
// offset can still be skipped as rejected; the segment then reads back every other
// point, and the tags at exactly the limits, bit for bit.
func TestWriterRefusesPastLimits(t *testing.T) {
	many := func(n, size int) []string {
		tags := make([]string, n)
		for i := range tags {
			tags[i] = strings.Repeat(string(rune('a'+i%26)), size)
		}
		return tags
	}
	atLimits := [][]string{
		many(MaxTags, 0),                               // the most tags
		{strings.Repeat("x", MaxTagLen)},               // the longest tag
		many((MaxTagBytes-2)/(2+MaxTagLen), MaxTagLen), // close to the most tag bytes
	}
	for _, tc := range []struct {
		name string
		tags []string
		what string
	}{
		{"tag count", many(MaxTags+1, 1), "tag count 65536 is larger than max allowed 65535"},
		{"tag length", []string{"ok", strings.Repeat("v", MaxTagLen+1)}, "tags[1] length 65536 is larger than max allowed 65535"},
		{"tag bytes", many(MaxTagBytes/(2+MaxTagLen)+1, MaxTagLen), "encoded tags size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewSegmentWriter(Header{Topic: "metrics", Partition: 1, StartOffset: 10}, DefaultShardMap(), 0)
			good := func(off int64, tags []string) {
				t.Helper()
				p := Payload{SeriesKey: SeriesKey{Org: 1, Metric: uint64(off)}, Tags: tags, Timestamps: []int64{off}, Values: []float64{float64(off)}}
				if err := w.Add(Source{Topic: "metrics", Partition: 1, Offset: off}, []Payload{p}); err != nil {
					t.Fatal(err)
				}
			}
			good(10, atLimits[0])
			bad := []Payload{
				{SeriesKey: SeriesKey{Org: 1, Metric: 99}, Timestamps: []int64{1}, Values: []float64{1}},
				{SeriesKey: SeriesKey{Org: 1, Metric: 98}, Tags: tc.tags, Timestamps: []int64{2}, Values: []float64{2}},
			}
			err := w.Add(Source{Topic: "metrics", Partition: 1, Offset: 11}, bad)
			var le *LimitError
			if !errors.As(err, &le) || !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), tc.what) || !strings.Contains(err.Error(), "offset 11: payload 1") {
				t.Fatalf("err = %v, want a LimitError with %q for payload 1 at offset 11", err, tc.what)
			}
			if w.Records() != 1 || w.Rows() != 1 {
				t.Fatalf("a refused record changed the writer: %d records, %d rows", w.Records(), w.Rows())
			}
			if err := w.Skip(11, true); err != nil {
				t.Fatal(err)
			}
			good(12, atLimits[1])
			good(13, atLimits[2])
			b, seg := writtenSegment(t, w)
			if seg.Footer.Records != 4 || seg.Footer.Rejected != 1 || seg.Footer.Rows != 3 {
				t.Fatalf("footer %+v", seg.Footer)
			}
			st := storage.NewMem("limits")
			if err := st.Put(context.Background(), "s.tseg", bytes.NewReader(b)); err != nil {
				t.Fatal(err)
			}
			seg.Key = "s.tseg"
			var mu sync.Mutex
			got := map[int64][]string{}
			r := NewPointReader(context.Background(), st, PlanSplits([]*Segment{seg}, seg.Footer.Shards[0], AllTime, 0), Topics([]*Segment{seg}),
				ReadOptions{Tags: func(_ SeriesKey, p Provenance, tags []string) {
					mu.Lock()
					defer mu.Unlock()
					got[p.Offset] = slices.Clone(tags)
				}})
			defer r.Release()
			rows := 0
			for r.Next() {
				rows += int(r.RecordBatch().NumRows())
			}
			if err := r.Err(); err != nil || rows != 3 {
				t.Fatalf("read %d rows, %v", rows, err)
			}
			for i, off := range []int64{10, 12, 13} {
				if !slices.Equal(got[off], atLimits[i]) {
					t.Fatalf("offset %d: %d tags read back, want %d", off, len(got[off]), len(atLimits[i]))
				}
			}
		})
	}
}

// TestWriterRefusesBadHeader: a topic that Kafka would refuse, or a negative partition,
// fails every Add and Skip instead of writing a key that readers misparse.
func TestWriterRefusesBadHeader(t *testing.T) {
	for _, tc := range []struct {
		topic     string
		partition int32
		want      string
	}{
		{"a/b", 0, `character '/' at 1`},
		{strings.Repeat("t", 300), 0, "topic length 300 is larger than max allowed 249"},
		{"", 0, "topic is empty"},
		{"..", 0, "not a valid name"},
		{"metrics", -1, "partition -1 is negative"},
	} {
		w := NewSegmentWriter(Header{Topic: tc.topic, Partition: tc.partition}, DefaultShardMap(), 0)
		p := Payload{Timestamps: []int64{1}, Values: []float64{1}}
		for _, err := range []error{w.Add(Source{Topic: tc.topic, Offset: 0}, []Payload{p}), w.Skip(0, true)} {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("topic %.30q partition %d: err = %v, want %q", tc.topic, tc.partition, err, tc.want)
			}
		}
	}
	for _, ok := range []string{"metrics", "a.b_c-D9", strings.Repeat("t", MaxTopicLen)} {
		if err := CheckTopic(ok); err != nil {
			t.Errorf("CheckTopic(%.30q) = %v", ok, err)
		}
	}
}

// TestWriterSealsLargeFrames: payloads with many tag bytes seal frames by raw size,
// never near MaxFrameBytes, and the writer counts their tags in Bytes.
func TestWriterSealsLargeFrames(t *testing.T) {
	w := NewSegmentWriter(Header{Topic: "metrics"}, DefaultShardMap(), 0)
	tags := make([]string, 200) // about 12.5 MiB of tags each
	for i := range tags {
		tags[i] = fmt.Sprintf("%05d:%s", i, strings.Repeat("v", MaxTagLen-6))
	}
	const payloads = 12
	for i := range payloads {
		p := Payload{SeriesKey: SeriesKey{Org: 1, Metric: uint64(i)}, Tags: tags, Timestamps: []int64{int64(i)}, Values: []float64{1}}
		if err := w.Add(Source{Topic: "metrics", Offset: int64(i)}, []Payload{p}); err != nil {
			t.Fatal(err)
		}
		if i == 0 && w.Bytes() < int64(tagBytes(tags)) {
			t.Fatalf("Bytes() = %d after a payload with %d tag bytes", w.Bytes(), tagBytes(tags))
		}
	}
	_, seg := writtenSegment(t, w)
	groups := 0
	for _, f := range seg.Footer.Frames {
		if f.RawLength > maxFrameRaw {
			t.Fatalf("frame of %d raw bytes, writer seals at %d", f.RawLength, maxFrameRaw)
		}
		groups += int(f.Groups)
	}
	if len(seg.Footer.Frames) < 3 || groups != payloads {
		t.Fatalf("%d frames holding %d groups", len(seg.Footer.Frames), groups)
	}
}

// writtenSegment writes w's segment into memory and opens it.
func writtenSegment(t testing.TB, w *SegmentWriter) ([]byte, *Segment) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), parsedSegment(t, buf.Bytes())
}

// parsedSegment opens the segment b held in memory.
func parsedSegment(t testing.TB, b []byte) *Segment {
	t.Helper()
	seg, err := parseSegment("x", int64(len(b)), func(off, n int64) ([]byte, error) { return b[off : off+n], nil })
	if err != nil {
		t.Fatal(err)
	}
	return seg
}
