//go:build duckdb_arrow

package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/tailor-metrics/tailor/blocks"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/legacy"
	"github.com/tailor-metrics/tailor/pointdiff"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/storage"
)

// DiffOptions describe one diff of a store's series files against legacy data.
type DiffOptions struct {
	New    storage.Store
	Legacy query.LegacyOptions
	Scope  query.Scope
	// Tolerance > 0 counts values within it as equal.
	Tolerance float64
	// Bucket is the width of the summary's time buckets (default query.DefaultBucket).
	Bucket time.Duration
	// Rows, when not nil, gets every differing row in (series, ts) order.
	Rows func(pointdiff.Row) error
	// SQL runs sql/diff.sql in DuckDB even when a merge-join could.
	SQL bool
}

// DiffResult is a diff's answer and how it was reached.
type DiffResult struct {
	Groups []pointdiff.Group
	// Method is "merge-join" or "sql".
	Method string
	// Why says why the SQL ran, when it did.
	Why string
	// Reads are what each side read and skipped, by side ("new", "legacy").
	Reads map[string]query.ReadStats
}

// Diff compares the published series of opt.New with the legacy data, with the same
// kinds, counts and rows as sql/diff.sql: by a streaming merge-join in Go when the
// legacy side can be read in (series, ts) order (series files, Parquet, CSV; see
// package legacy), else by the SQL in DuckDB (docs/validation.md, "diff").
func Diff(ctx context.Context, eng *query.Engine, opt DiffOptions) (*DiffResult, error) {
	if opt.Bucket <= 0 {
		opt.Bucket = query.DefaultBucket
	}
	if opt.Bucket.Milliseconds() <= 0 {
		return nil, fmt.Errorf("bucket %s: want at least 1ms", opt.Bucket)
	}
	if opt.Tolerance < 0 || math.IsNaN(opt.Tolerance) || math.IsInf(opt.Tolerance, 0) {
		return nil, fmt.Errorf("tolerance %v: want a finite number >= 0", opt.Tolerance)
	}
	// The legacy view checks the source whichever way it is read (schema, paths).
	lv, err := LegacyView(ctx, eng, "legacy", opt.Legacy, opt.Scope)
	if err != nil {
		return nil, err
	}
	res := &DiffResult{Reads: map[string]query.ReadStats{}}
	if !opt.SQL {
		src, stats, err := openLegacySource(ctx, eng, opt)
		switch {
		case errors.Is(err, legacy.ErrUnsupported):
			res.Why = err.Error()
		case err != nil:
			return nil, err
		default:
			res.Method = "merge-join"
			res.Groups, err = mergeJoin(ctx, opt, src, res)
			if cerr := src.Close(); err == nil {
				err = cerr
			}
			if stats != nil {
				res.Reads["legacy"] = stats()
			}
			if err != nil {
				return nil, err
			}
			return res, nil
		}
	}
	res.Method = "sql"
	if opt.SQL {
		res.Why = "asked for"
	}
	res.Groups, err = eng.Diff(ctx, query.DiffOptions{
		New: SeriesView("new", opt.New, opt.Scope), Legacy: lv, Scope: opt.Scope,
		Tolerance: opt.Tolerance, Bucket: opt.Bucket, Rows: opt.Rows, Reads: res.Reads,
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// closingSource is a pointdiff.Source that holds resources.
type closingSource interface {
	pointdiff.Source
	Close() error
}

func mergeJoin(ctx context.Context, opt DiffOptions, legacySrc pointdiff.Source, res *DiffResult) ([]pointdiff.Group, error) {
	m, err := OpenSeriesWith(ctx, opt.New, ScanOptions{Scope: opt.Scope})
	if err != nil {
		return nil, err
	}
	defer func() {
		m.Close()
		res.Reads["new"] = m.Reads()
	}()
	return pointdiff.Join(&seriesRuns{m: m, keep: opt.Scope.Keep()}, legacySrc, pointdiff.JoinOptions{
		Tolerance: opt.Tolerance, BucketMs: opt.Bucket.Milliseconds(), Rows: opt.Rows,
		NewName: "new " + opt.New.URL(), LegacyName: "legacy " + opt.Legacy.Source,
	})
}

// seriesRuns is an encoder.SeriesSource as a pointdiff.Source, keeping the series keep
// accepts (the scope's shard, as its SQL filter has it).
type seriesRuns struct {
	m interface {
		Next() bool
		At() *encoder.Series
		Err() error
	}
	keep func(org uint32, metric uint64) bool
	// lo and hi, when not both zero, bound ts (for sources that do not).
	lo, hi int64
	run    pointdiff.Run
}

func (s *seriesRuns) Next() bool {
	for s.m.Next() {
		sr := s.m.At()
		if s.keep != nil && !s.keep(sr.Key.Org, sr.Key.Metric) {
			continue
		}
		ts, vs := sr.Ts, sr.Values
		if s.lo != 0 || s.hi != 0 {
			a := sort.Search(len(ts), func(i int) bool { return ts[i] >= s.lo })
			b := sort.Search(len(ts), func(i int) bool { return ts[i] > s.hi })
			ts, vs = ts[a:b], vs[a:b]
			if len(ts) == 0 {
				continue
			}
		}
		s.run = pointdiff.Run{Org: sr.Key.Org, Metric: sr.Key.Metric, Context: sr.Key.Context, Ts: ts, Values: vs}
		return true
	}
	return false
}

func (s *seriesRuns) At() *pointdiff.Run { return &s.run }
func (s *seriesRuns) Err() error         { return s.m.Err() }

// openLegacySource opens the legacy data in (series, ts) order, filtered by the scope,
// or returns an error wrapping legacy.ErrUnsupported.
func openLegacySource(ctx context.Context, eng *query.Engine, opt DiffOptions) (closingSource, func() query.ReadStats, error) {
	src := opt.Legacy.Source
	lo, hi := opt.Scope.Restriction().TsBounds()
	f := legacy.Filter{MinTs: lo, MaxTs: hi, Keep: opt.Scope.Keep()}
	if r := opt.Scope.Restriction(); r.Orgs != nil {
		f.Orgs = func(a, b uint32) bool { return r.Orgs.Overlaps(uint64(a), uint64(b)) }
	}
	files, isParquet, err := eng.LegacyParquetFiles(ctx, src)
	if err != nil {
		return nil, nil, err
	}
	fileStats := func(s *legacy.Source) func() query.ReadStats {
		return func() query.ReadStats {
			st := s.Stats()
			return query.ReadStats{FilesRead: int64(st.Files), BytesRead: st.Bytes}
		}
	}
	lower := strings.ToLower(src)
	switch {
	case isParquet:
		s, err := legacy.OpenParquet(files, legacy.ParquetOptions{Columns: opt.Legacy.Columns, Filter: f})
		if err != nil {
			return nil, nil, err
		}
		return s, fileStats(s), nil
	case strings.HasSuffix(lower, ".csv") && !strings.HasPrefix(src, query.GlobPrefix):
		s, err := legacy.OpenCSV(src, f)
		if err != nil {
			return nil, nil, err
		}
		return s, fileStats(s), nil
	case strings.HasSuffix(lower, ".tsf"):
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, nil, fmt.Errorf("legacy series file: %w", err)
		}
		r, err := encoder.Open(bytes.NewReader(b), int64(len(b)), encoder.FileName(src))
		if err != nil {
			return nil, nil, fmt.Errorf("open %s: %w", src, err)
		}
		it := r.Iterator(nil, encoder.IterTimeRange(lo, hi))
		return &nopCloser{seriesRuns{m: it, keep: f.Keep}}, func() query.ReadStats {
			return query.ReadStats{FilesRead: 1, BytesRead: int64(len(b)), SeriesRead: int64(len(r.Index()))}
		}, nil
	}
	// A store of series files, or of Prometheus blocks (run.LegacyView decided which
	// it is; series files win, as there).
	st, err := storage.Open(ctx, src)
	if err != nil {
		return nil, nil, fmt.Errorf("legacy %s: %w", storage.Redact(src), err)
	}
	if ok, err := hasSeries(ctx, st); err != nil || !ok {
		if err != nil {
			return nil, nil, errors.Join(err, st.Close())
		}
		br, err := blocks.Open(ctx, st, opt.Legacy.Blocks)
		if err != nil {
			return nil, nil, errors.Join(err, st.Close())
		}
		return &blockRuns{seriesRuns: seriesRuns{m: br, keep: f.Keep, lo: lo, hi: hi}, br: br, st: st}, func() query.ReadStats { return blockReadStats(br.Reads()) }, nil
	}
	m, err := OpenSeriesWith(ctx, st, ScanOptions{Scope: opt.Scope})
	if err != nil {
		return nil, nil, errors.Join(err, st.Close())
	}
	return &storeRuns{seriesRuns: seriesRuns{m: m, keep: f.Keep}, mg: m, st: st}, m.Reads, nil
}

// hasSeries reports whether st holds published series files.
func hasSeries(ctx context.Context, st storage.Store) (bool, error) {
	found := errors.New("found")
	err := st.List(ctx, SeriesPrefix, func(a storage.Attrs) error {
		if strings.HasSuffix(a.Key, "/"+currentName) {
			return found
		}
		return nil
	})
	if errors.Is(err, found) {
		return true, nil
	}
	return false, err
}

type blockRuns struct {
	seriesRuns
	br *blocks.Reader
	st storage.Store
}

func (s *blockRuns) Close() error { return errors.Join(s.br.Close(), s.st.Close()) }

type nopCloser struct{ seriesRuns }

func (*nopCloser) Close() error { return nil }

type storeRuns struct {
	seriesRuns
	mg *SeriesMerger
	st storage.Store
}

func (s *storeRuns) Close() error { return errors.Join(s.mg.Close(), s.st.Close()) }
