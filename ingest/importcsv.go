package ingest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// ImportOptions configures ImportCSV.
type ImportOptions struct {
	Store    storage.Store
	ShardMap *columnar.ShardMap
	// Topic and Partition name the pseudo-partition the rows are appended to (default
	// "import", 0). Rows get the offsets after the partition's existing segments, so a
	// later import of the same points wins over an earlier one, as in Kafka.
	Topic     string
	Partition int32
	// RecordTime is the record timestamp (Unix ms) stamped on every row (default 0):
	// rows of one import tie on it, so the row number decides the latest arrival.
	RecordTime int64
	// FlushPayloads and FlushBytes cut segments as the sink does (defaults as the sink).
	FlushPayloads int
	FlushBytes    int64
	// MaxGroupRows caps how many consecutive rows of one series form one record.
	MaxGroupRows int
}

// ImportStats summarizes an import.
type ImportStats struct {
	Rows, Records, Segments uint64
	FirstOffset, EndOffset  int64
}

// ImportCSV reads points in arrival order from r (header columnar.CSVHeader; ts in Unix ms; value
// as text, NaN, +Inf, -Inf and -0 accepted) and writes them as segments, exactly as the
// sink would: consecutive rows of one series form one record whose offset is the row
// number (counted from the partition's end), so a later row for the same series and ts
// replaces an earlier one. A malformed row stops the import, naming its line; segments
// already stored stay valid and complete.
func ImportCSV(ctx context.Context, name string, r io.Reader, opt ImportOptions) (ImportStats, error) {
	if opt.Topic == "" {
		opt.Topic = "import"
	}
	if opt.ShardMap == nil {
		opt.ShardMap = columnar.DefaultShardMap()
	}
	if opt.FlushPayloads <= 0 {
		opt.FlushPayloads = 100_000
	}
	if opt.FlushBytes <= 0 {
		opt.FlushBytes = 64 << 20
	}
	if opt.MaxGroupRows <= 0 {
		opt.MaxGroupRows = 8192
	}
	base, err := partitionEnd(ctx, opt.Store, opt.Topic, opt.Partition)
	if err != nil {
		return ImportStats{}, err
	}
	stats := ImportStats{FirstOffset: base, EndOffset: base}
	br := bufio.NewReaderSize(r, 1<<20)
	line, err := br.ReadSlice('\n')
	if err != nil && err != io.EOF {
		return stats, fmt.Errorf("import %s: %w", name, err)
	}
	if h := string(bytes.TrimRight(line, "\r\n")); h != columnar.CSVHeader {
		return stats, fmt.Errorf("import %s line 1: header %q, want %q", name, h, columnar.CSVHeader)
	}
	var (
		w       *columnar.SegmentWriter
		pl      = []columnar.Payload{{}}
		groupAt int64
		lineNo  = 1
	)
	flushGroup := func() error {
		p := &pl[0]
		if len(p.Timestamps) == 0 {
			return nil
		}
		if w == nil {
			w = columnar.NewSegmentWriter(columnar.Header{Topic: opt.Topic, Partition: opt.Partition, StartOffset: stats.EndOffset, StartTimestamp: opt.RecordTime}, opt.ShardMap, 0)
		}
		if err := w.Add(columnar.Source{Topic: opt.Topic, Partition: opt.Partition, Offset: groupAt, Timestamp: opt.RecordTime}, pl); err != nil {
			return err
		}
		stats.Records++
		p.Reset()
		if w.Records() >= uint64(opt.FlushPayloads) || w.Bytes() >= opt.FlushBytes {
			return flushSegment(ctx, opt.Store, &w, &stats)
		}
		return nil
	}
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return stats, fmt.Errorf("import %s line %d: line longer than %d bytes", name, lineNo+1, br.Size())
		}
		if len(line) > 0 {
			lineNo++
			line = bytes.TrimRight(line, "\r\n")
			if len(line) == 0 {
				continue
			}
			k, ts, v, perr := columnar.ParseCSVPoint(line)
			if perr == nil && (ts < columnar.MinTs || ts > columnar.MaxTs) {
				perr = fmt.Errorf("ts %d is outside years 1-9999 (Unix ms expected)", ts)
			}
			if perr != nil {
				return stats, fmt.Errorf("import %s line %d: %w", name, lineNo, perr)
			}
			row := base + int64(stats.Rows) + 1 // the row number, counted from the partition's end
			stats.Rows++
			p := &pl[0]
			if len(p.Timestamps) > 0 && (p.SeriesKey != k || len(p.Timestamps) >= opt.MaxGroupRows) {
				if err := flushGroup(); err != nil {
					return stats, err
				}
			}
			if len(p.Timestamps) == 0 {
				p.SeriesKey, groupAt = k, row
			}
			p.Timestamps = append(p.Timestamps, ts)
			p.Values = append(p.Values, v)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return stats, fmt.Errorf("import %s line %d: %w", name, lineNo+1, err)
		}
	}
	if err := flushGroup(); err != nil {
		return stats, err
	}
	if w != nil {
		if err := flushSegment(ctx, opt.Store, &w, &stats); err != nil {
			return stats, err
		}
	}
	return stats, nil
}

func flushSegment(ctx context.Context, st storage.Store, w **columnar.SegmentWriter, stats *ImportStats) error {
	end := (*w).EndOffset()
	_, err := createSegment(ctx, st, *w)
	if err != nil && !errors.Is(err, storage.ErrExists) {
		return fmt.Errorf("import: %w", err)
	}
	if err != nil {
		return fmt.Errorf("import: segment %s already exists (another import into the same topic and partition ran at the same time?); nothing after offset %d was stored: run the import again", (*w).Key(), stats.EndOffset)
	}
	stats.Segments++
	stats.EndOffset = end
	*w = nil
	return nil
}

// partitionEnd is the end offset of the last segment of (topic, partition) in the store.
func partitionEnd(ctx context.Context, st storage.Store, topic string, partition int32) (int64, error) {
	var end int64
	err := st.List(ctx, "segments/", func(a storage.Attrs) error {
		t, p, _, err := columnar.ParseSegmentKey(a.Key)
		if err != nil || t != topic || p != partition {
			return nil
		}
		seg, err := columnar.OpenSegment(ctx, st, a.Key, a.Size)
		if err != nil {
			return err
		}
		end = max(end, seg.Footer.EndOffset)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("find end of %s-%d: %w", topic, partition, err)
	}
	return end, nil
}
