package encoder

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/tailor-metrics/tailor/columnar"
)

// StreamStats are a KeyedStream's running counts.
type StreamStats struct {
	PointsIn   int64 // rows received
	Duplicates int64 // rows dropped because another arrival of their (series, ts) won
	PointsOut  int64 // points handed on
	Series     int64 // series handed on
}

// KeyedStream assembles whole series from keyed rows (columnar.KeyLayout's schema)
// sorted by k (and ts, for a wide layout): the rows of one series id arrive together, in
// ts order. A (series, ts) repeats once for each time it arrived; the stream keeps the
// row of the latest arrival, as later ranks the rows' groups, and counts the others as
// duplicates, so the sort need not order arrivals. Each finished series goes to emit.
// A series may span batches; the stream copies what it needs, so a batch may be released
// as soon as Write returns. Not safe for concurrent use.
type KeyedStream struct {
	layout columnar.KeyLayout
	later  func(a, b uint32) bool
	emit   func(sid uint32, ts []int64, values []float64) error

	has  bool
	sid  uint32
	gid  uint32 // the group of the last point kept
	ts   []int64
	vals []float64

	stats  StreamStats
	err    error
	closed bool
}

// NewKeyedStream returns a stream over rows in layout l. later(a, b) reports whether
// group a arrived after group b; emit receives each series (ts and values are reused
// after it returns).
func NewKeyedStream(l columnar.KeyLayout, later func(a, b uint32) bool, emit func(sid uint32, ts []int64, values []float64) error) *KeyedStream {
	return &KeyedStream{layout: l, later: later, emit: emit}
}

// Stats returns the running counts.
func (s *KeyedStream) Stats() StreamStats { return s.stats }

// checkSchema verifies that rec has exactly the columns of want (names and types, in
// order) and no nulls.
func checkSchema(rec arrow.RecordBatch, want *arrow.Schema) error {
	wf, got := want.Fields(), rec.Schema().Fields()
	if len(got) != len(wf) {
		return fmt.Errorf("record has %d columns, want %d (%s)", len(got), len(wf), want)
	}
	for i := range wf {
		if got[i].Name != wf[i].Name || !arrow.TypeEqual(got[i].Type, wf[i].Type) {
			return fmt.Errorf("column %d is %s %s, want %s %s", i, got[i].Name, got[i].Type, wf[i].Name, wf[i].Type)
		}
		if n := rec.Column(i).NullN(); n > 0 {
			return fmt.Errorf("column %s has %d nulls", wf[i].Name, n)
		}
	}
	return nil
}

// Write consumes one batch.
func (s *KeyedStream) Write(rec arrow.RecordBatch) error {
	if s.err != nil {
		return s.err
	}
	if s.closed {
		return fmt.Errorf("keyed stream write: %w", ErrClosed)
	}
	if err := checkSchema(rec, s.layout.Schema()); err != nil {
		s.err = fmt.Errorf("keyed stream write: %w", err)
		return s.err
	}
	// Decide the column access once per batch: raw slices, no per-row interface calls.
	c := 0
	keys := rec.Column(c).(*array.Uint64).Uint64Values()
	var tss []int64
	if s.layout.Wide {
		c++
		tss = rec.Column(c).(*array.Int64).Int64Values()
	}
	vals := rec.Column(c + 1).(*array.Float64).Float64Values()
	gids := rec.Column(c + 2).(*array.Uint32).Uint32Values()
	s.stats.PointsIn += int64(len(keys))

	var tcol int64
	for i, k := range keys {
		if tss != nil {
			tcol = tss[i]
		}
		sid, t := s.layout.Split(k, tcol)
		if !s.has || sid != s.sid {
			if s.has {
				if sid < s.sid {
					s.err = fmt.Errorf("keyed stream write: row %d: series id %d after %d: %w", i, sid, s.sid, ErrOutOfOrder)
					return s.err
				}
				if err := s.flush(); err != nil {
					return err
				}
			}
			s.sid, s.has = sid, true
		} else if last := s.ts[len(s.ts)-1]; t <= last {
			if t < last {
				s.err = fmt.Errorf("keyed stream write: row %d: series id %d timestamp %d after %d: %w", i, sid, t, last, ErrOutOfOrder)
				return s.err
			}
			s.stats.Duplicates++
			if s.later(gids[i], s.gid) {
				s.vals[len(s.vals)-1], s.gid = vals[i], gids[i]
			}
			continue
		}
		s.ts = append(s.ts, t)
		s.vals = append(s.vals, vals[i])
		s.gid = gids[i]
	}
	return nil
}

func (s *KeyedStream) flush() error {
	if !s.has {
		return nil
	}
	if err := s.emit(s.sid, s.ts, s.vals); err != nil {
		s.err = fmt.Errorf("keyed stream: %w", err)
		return s.err
	}
	s.stats.Series++
	s.stats.PointsOut += int64(len(s.ts))
	s.has = false
	s.ts, s.vals = s.ts[:0], s.vals[:0]
	return nil
}

// Close hands the last series on.
func (s *KeyedStream) Close() error {
	if s.closed {
		return s.err
	}
	s.closed = true
	if s.err != nil {
		return s.err
	}
	return s.flush()
}
