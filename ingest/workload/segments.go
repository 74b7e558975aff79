package workload

import (
	"context"
	"fmt"
	"os"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// WriteSegments stores the records as the sink would: one segment writer a partition,
// offsets from 0 in each, records in production order, a segment cut every flushPayloads
// records of its partition, and the rest flushed at the end. seen, when not nil, gets
// each record's source before it is added.
func (g *Gen) WriteSegments(ctx context.Context, st storage.Store, flushPayloads int, seen func(src columnar.Source)) error {
	parts := g.spec.Partitions
	sm := columnar.DefaultShardMap()
	ws := make([]*columnar.SegmentWriter, parts)
	next := make([]int64, parts)
	n := make([]int, parts)
	flush := func(p int) error {
		w := ws[p]
		if w == nil {
			return nil
		}
		ws[p] = nil
		return StoreSegment(ctx, st, w)
	}
	err := g.Records(func(rec *Record) error {
		p := int(rec.Partition)
		if ws[p] == nil {
			ws[p] = columnar.NewSegmentWriter(columnar.Header{Topic: "metrics", Partition: rec.Partition, StartOffset: next[p], StartTimestamp: rec.Timestamp}, sm, 0)
			n[p] = 0
		}
		src := columnar.Source{Topic: "metrics", Partition: rec.Partition, Offset: next[p], Timestamp: rec.Timestamp}
		if seen != nil {
			seen(src)
		}
		next[p]++
		if err := ws[p].Add(src, []columnar.Payload{rec.Payload}); err != nil {
			return fmt.Errorf("write workload segment: %w", err)
		}
		if n[p]++; n[p] >= flushPayloads {
			return flush(p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for p := range ws {
		if err := flush(p); err != nil {
			return err
		}
	}
	return nil
}

// StoreSegment writes w's segment to st under its key through a temporary file, so that
// a generator of 200M points holds no more than the segment writers' memory.
func StoreSegment(ctx context.Context, st storage.Store, w *columnar.SegmentWriter) error {
	f, err := os.CreateTemp("", "tailor-workload-segment")
	if err != nil {
		return fmt.Errorf("write workload segment: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := w.WriteTo(f); err != nil {
		return fmt.Errorf("write workload segment %s: %w", w.Key(), err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		return fmt.Errorf("write workload segment %s: %w", w.Key(), err)
	}
	if err := st.Create(ctx, w.Key(), f); err != nil {
		return fmt.Errorf("store workload segment %s: %w", w.Key(), err)
	}
	return nil
}
