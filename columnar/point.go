// Package columnar holds Tailor's point schema and the segment format: the Arrow point
// batches that the sink writes and that the compute side reads back by byte range.
//
// See docs/format/segment.md for the byte layout.
package columnar

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// SeriesKey identifies a series. Series sort by (Org, Metric, Context).
type SeriesKey struct {
	Org     uint32
	Metric  uint64
	Context uint64
}

// Less reports whether k sorts before o.
func (k SeriesKey) Less(o SeriesKey) bool {
	if k.Org != o.Org {
		return k.Org < o.Org
	}
	if k.Metric != o.Metric {
		return k.Metric < o.Metric
	}
	return k.Context < o.Context
}

// Compare returns -1, 0 or +1 as k sorts before, with or after o.
func (k SeriesKey) Compare(o SeriesKey) int {
	switch {
	case k.Less(o):
		return -1
	case o.Less(k):
		return 1
	}
	return 0
}

// Payload is one Kafka record's worth of points: one series, its tags, and its points.
// Timestamps are Unix milliseconds; Timestamps and Values have the same length.
type Payload struct {
	SeriesKey
	Tags       []string
	Timestamps []int64
	Values     []float64
}

// Reset empties p, keeping capacity.
func (p *Payload) Reset() {
	p.SeriesKey = SeriesKey{}
	p.Tags = p.Tags[:0]
	p.Timestamps = p.Timestamps[:0]
	p.Values = p.Values[:0]
}

// Source is the provenance of a payload: the Kafka record it came in.
//
// The latest arrival of a (series, ts) is the one with the highest Timestamp (the Kafka
// record timestamp, Unix ms); ties are broken by Topic, then Partition, then Offset, all
// ascending, so the greatest tuple wins. Offsets of different partitions are not
// comparable, which is why the record timestamp comes first. See docs/dedup.md.
type Source struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp int64
}

// Column names of the point schema. "offset" is a DuckDB reserved word: quote it in SQL.
const (
	ColOrg       = "org_id"
	ColMetric    = "metric_id"
	ColContext   = "context_key"
	ColTs        = "ts"
	ColValue     = "value"
	ColRecordTs  = "record_ts"
	ColTopic     = "topic_id"
	ColPartition = "partition"
	ColOffset    = "offset"
)

// PointSchema is the Arrow schema of decoded points, provenance included.
//
// topic_id is the rank of the record's topic among the sorted topic names of the
// segments being read together (see Topics), so ordering by topic_id orders by topic
// name within one read. It keeps the sort key numeric and narrow.
var PointSchema = arrow.NewSchema([]arrow.Field{
	{Name: ColOrg, Type: arrow.PrimitiveTypes.Uint32},
	{Name: ColMetric, Type: arrow.PrimitiveTypes.Uint64},
	{Name: ColContext, Type: arrow.PrimitiveTypes.Uint64},
	{Name: ColTs, Type: arrow.PrimitiveTypes.Int64},
	{Name: ColValue, Type: arrow.PrimitiveTypes.Float64},
	{Name: ColRecordTs, Type: arrow.PrimitiveTypes.Int64},
	{Name: ColTopic, Type: arrow.PrimitiveTypes.Uint16},
	{Name: ColPartition, Type: arrow.PrimitiveTypes.Int32},
	{Name: ColOffset, Type: arrow.PrimitiveTypes.Int64},
}, nil)

// SortedSchema is the Arrow schema of points after the group-sort: the series key, the
// time and the value, in (org_id, metric_id, context_key, ts) order.
var SortedSchema = arrow.NewSchema([]arrow.Field{
	{Name: ColOrg, Type: arrow.PrimitiveTypes.Uint32},
	{Name: ColMetric, Type: arrow.PrimitiveTypes.Uint64},
	{Name: ColContext, Type: arrow.PrimitiveTypes.Uint64},
	{Name: ColTs, Type: arrow.PrimitiveTypes.Int64},
	{Name: ColValue, Type: arrow.PrimitiveTypes.Float64},
}, nil)

// Timestamps must lie in years 1 to 9999 UTC, so that every point has a window with a
// printable name; a payload outside is rejected with its field named.
const (
	MinTs int64 = -62135596800000 // 0001-01-01T00:00:00Z
	MaxTs int64 = 253402300799999 // 9999-12-31T23:59:59.999Z
)

// CheckPayload validates a decoded payload before it is stored: as many values as
// timestamps, each timestamp in years 1-9999, and tags inside the format's limits
// (CheckTags; a *LimitError).
func CheckPayload(p *Payload) error {
	if len(p.Timestamps) != len(p.Values) {
		return fmt.Errorf("payload: %d timestamps but %d values", len(p.Timestamps), len(p.Values))
	}
	if err := checkTags(p.Tags); err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	for i, ts := range p.Timestamps {
		if ts < MinTs || ts > MaxTs {
			return fmt.Errorf("payload: timestamps[%d] = %d is outside years 1-9999 (Unix ms expected)", i, ts)
		}
	}
	return nil
}
