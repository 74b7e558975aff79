package encoder

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/tailor-metrics/tailor/columnar"
)

// StreamStats are a SortedStream's running counts.
type StreamStats struct {
	PointsIn   int64 // rows received
	Duplicates int64 // rows dropped because their (series, ts) repeated the previous row's
	PointsOut  int64 // points handed to the Writer
	Series     int64 // series handed to the Writer
}

// StreamOpt configures a SortedStream.
type StreamOpt func(*SortedStream)

// StreamTags sets the function that gives a series its tags when the stream hands it to
// the Writer, overriding the default of no tags. The returned slice is not retained.
func StreamTags(fn func(columnar.SeriesKey) []string) StreamOpt {
	return func(s *SortedStream) { s.tags = fn }
}

// StreamAfterSeries sets a function called after each series has been handed to the
// Writer, with that Writer. It returns the Writer for the next series: the same one, or a
// new one once it has closed the old, so a caller can roll output files at series
// boundaries. The default keeps one Writer.
func StreamAfterSeries(fn func(w *Writer) (*Writer, error)) StreamOpt {
	return func(s *SortedStream) { s.after = fn }
}

// SortedStream feeds a Writer from Arrow record batches in columnar.SortedSchema, sorted
// by (org_id, metric_id, context_key, ts). A (series, ts) may repeat on consecutive rows:
// the first row of each run is kept and the others are dropped and counted, because the
// group-sort query orders the latest arrival first. A series may span batches. The
// stream copies what it needs, so a batch may be released as soon as Write returns.
// Not safe for concurrent use.
type SortedStream struct {
	w     *Writer
	tags  func(columnar.SeriesKey) []string
	after func(*Writer) (*Writer, error)

	has  bool
	key  columnar.SeriesKey
	ts   []int64
	vals []float64

	stats  StreamStats
	err    error
	closed bool
}

// NewSortedStream returns a stream that appends to w.
func NewSortedStream(w *Writer, opts ...StreamOpt) *SortedStream {
	s := &SortedStream{w: w}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Stats returns the running counts.
func (s *SortedStream) Stats() StreamStats { return s.stats }

// checkSchema verifies that rec has SortedSchema's columns (names and types, in order) and
// no nulls. Both uint64 key columns have the same type, so the names are what catches a
// query that swapped them.
func checkSchema(rec arrow.RecordBatch) error {
	want := columnar.SortedSchema.Fields()
	got := rec.Schema().Fields()
	if len(got) != len(want) {
		return fmt.Errorf("record has %d columns, want %d (%s)", len(got), len(want), columnar.SortedSchema)
	}
	for i := range want {
		if got[i].Name != want[i].Name || !arrow.TypeEqual(got[i].Type, want[i].Type) {
			return fmt.Errorf("column %d is %s %s, want %s %s", i, got[i].Name, got[i].Type, want[i].Name, want[i].Type)
		}
		if n := rec.Column(i).NullN(); n > 0 {
			return fmt.Errorf("column %s has %d nulls", want[i].Name, n)
		}
	}
	return nil
}

// Write consumes one batch.
func (s *SortedStream) Write(rec arrow.RecordBatch) error {
	if s.err != nil {
		return s.err
	}
	if s.closed {
		return fmt.Errorf("sorted stream write: %w", ErrClosed)
	}
	if err := checkSchema(rec); err != nil {
		s.err = fmt.Errorf("sorted stream write: %w", err)
		return s.err
	}
	// Decide the column access once per batch: raw slices, no per-row interface calls.
	orgs := rec.Column(0).(*array.Uint32).Uint32Values()
	mets := rec.Column(1).(*array.Uint64).Uint64Values()
	ctxs := rec.Column(2).(*array.Uint64).Uint64Values()
	tss := rec.Column(3).(*array.Int64).Int64Values()
	vals := rec.Column(4).(*array.Float64).Float64Values()
	n := len(tss)
	s.stats.PointsIn += int64(n)

	for i := 0; i < n; {
		k := columnar.SeriesKey{Org: orgs[i], Metric: mets[i], Context: ctxs[i]}
		if !s.has || k != s.key {
			if s.has {
				if !s.key.Less(k) {
					s.err = fmt.Errorf("sorted stream write: row %d: series %v after %v: %w", i, k, s.key, ErrOutOfOrder)
					return s.err
				}
				if err := s.flush(); err != nil {
					return err
				}
			}
			s.key, s.has = k, true
			s.ts = append(s.ts[:0], tss[i])
			s.vals = append(s.vals[:0], vals[i])
			i++
		}
		// Find the end of this series' run in the batch, then copy its new points.
		j := i
		for j < n && orgs[j] == k.Org && mets[j] == k.Metric && ctxs[j] == k.Context {
			j++
		}
		last := s.ts[len(s.ts)-1]
		for p := i; p < j; p++ {
			t := tss[p]
			if t <= last {
				if t == last {
					s.stats.Duplicates++
					continue
				}
				s.err = fmt.Errorf("sorted stream write: row %d: series %v timestamp %d after %d: %w", p, k, t, last, ErrOutOfOrder)
				return s.err
			}
			s.ts = append(s.ts, t)
			s.vals = append(s.vals, vals[p])
			last = t
		}
		i = j
	}
	return nil
}

func (s *SortedStream) flush() error {
	if !s.has {
		return nil
	}
	var tags []string
	if s.tags != nil {
		tags = s.tags(s.key)
	}
	if err := s.w.Append(s.key, tags, s.ts, s.vals); err != nil {
		s.err = fmt.Errorf("sorted stream: %w", err)
		return s.err
	}
	s.stats.Series++
	s.stats.PointsOut += int64(len(s.ts))
	s.has = false
	s.ts, s.vals = s.ts[:0], s.vals[:0]
	if s.after != nil {
		w, err := s.after(s.w)
		if err != nil {
			s.err = fmt.Errorf("sorted stream: %w", err)
			return s.err
		}
		s.w = w
	}
	return nil
}

// Close hands the last series to the Writer and closes the Writer (index and trailer).
// It does not close the Writer's io.Writer.
func (s *SortedStream) Close() error {
	if s.closed {
		return s.err
	}
	s.closed = true
	if s.err != nil {
		return s.err
	}
	if err := s.flush(); err != nil {
		return err
	}
	if err := s.w.Close(); err != nil {
		s.err = fmt.Errorf("sorted stream close: %w", err)
	}
	return s.err
}
