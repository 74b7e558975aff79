//go:build duckdb_arrow

package query

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tailor-metrics/tailor/blocks"
	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	tsql "github.com/tailor-metrics/tailor/sql"
	"github.com/tailor-metrics/tailor/storage"
)

// PointsView is the view "points" over the raw segments of st: every point as the sink
// stored it, duplicates included, with its provenance columns. Without a shard in
// scope, every shard the segments hold is read, unless the statement names few enough
// orgs to look their shards up in the shard map; only the frames whose ts range meets
// the statement's are read (each segment's footer says).
func PointsView(st storage.Store, scope Scope, opt columnar.ReadOptions) View {
	return View{Name: "points", Scan: func(ctx context.Context, r Restriction) (array.RecordReader, error) {
		segs, err := columnar.ListSegmentsWith(ctx, st, columnar.ListOptions{SkipCorrupt: opt.SkipCorrupt, OnCorrupt: opt.OnCorrupt})
		if err != nil {
			return nil, fmt.Errorf("list segments: %w", err)
		}
		shards := []string{scope.Shard}
		if scope.Shard == "" {
			shards = segmentShards(segs)
			if named, ok := r.Shards(scope.shardMap()); ok {
				shards = slices.DeleteFunc(shards, func(s string) bool { return !named[s] })
			}
		}
		win := scope.TsRange()
		if lo, hi := r.TsBounds(); r.Ts != nil {
			win.From = max(win.From, lo)
			if hi < math.MaxInt64 {
				win.To = min(win.To, hi+1)
			}
		}
		var splits []columnar.Split
		if win.From < win.To && !r.Empty() {
			for _, sh := range shards {
				splits = append(splits, columnar.PlanSplits(segs, sh, win, 1<<30)...)
			}
		}
		reads := segmentReads(segs, splits)
		opt.Window = win
		pr := columnar.NewPointReader(ctx, st, splits, columnar.Topics(segs), opt)
		var rdr array.RecordReader = pr
		if opt.OnCorrupt != nil {
			rdr = &skipReporter{PointReader: pr, report: opt.OnCorrupt}
		}
		return &readsReader{RecordReader: rdr, reads: reads}, nil
	}}
}

// segmentReads counts the segments the splits read and the bytes of their frames.
func segmentReads(segs []*columnar.Segment, splits []columnar.Split) ReadStats {
	var s ReadStats
	read := map[*columnar.Segment]int64{}
	for _, sp := range splits {
		for _, f := range sp.Frames {
			read[sp.Seg] += int64(f.Length)
		}
	}
	for _, seg := range segs {
		if n, ok := read[seg]; ok {
			s.FilesRead++
			s.BytesRead += n
			s.BytesSkipped += seg.Size - n
		} else {
			s.FilesSkipped++
			s.BytesSkipped += seg.Size
		}
	}
	return s
}

// readsReader is a reader that reports the reads planned for it.
type readsReader struct {
	array.RecordReader
	reads ReadStats
}

func (r *readsReader) Reads() ReadStats { return r.reads }

func (r *readsReader) Err() error {
	if ep, ok := r.RecordReader.(interface{ Err() error }); ok {
		return ep.Err()
	}
	return nil
}

// skipReporter tells report of each corrupt frame its reader skipped, once the reader
// is drained.
type skipReporter struct {
	*columnar.PointReader
	report func(error)
	done   bool
}

func (r *skipReporter) Next() bool {
	if r.PointReader.Next() {
		return true
	}
	if !r.done {
		r.done = true
		for _, f := range r.ReadStats().Skipped {
			r.report(fmt.Errorf("skipped the corrupt frame at byte %d of segment %s, as asked", f.Offset, f.Key))
		}
	}
	return false
}

func segmentShards(segs []*columnar.Segment) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range segs {
		for _, sh := range s.Footer.Shards {
			if !seen[sh] {
				seen[sh] = true
				out = append(out, sh)
			}
		}
	}
	sort.Strings(out)
	return out
}

// LatestView is the view "latest": points de-duplicated by the run's rule (sql/latest.sql).
func LatestView() View {
	return View{Name: "latest", From: "(" + tsql.Latest + ")", Deps: []string{"points"}, Unscoped: true}
}

// GlobPrefix marks a legacy source as a pattern of Parquet files, e.g.
// "glob:legacy/2025-11-*.parquet". Without it a path is one file, read literally.
const GlobPrefix = "glob:"

// LegacyOptions describes the legacy data.
type LegacyOptions struct {
	// Source is a .parquet or .csv file, a .tsf series file, or a store URL (or
	// directory) holding published series files of another root. A path names exactly
	// that file, whatever characters it holds; GlobPrefix and a pattern (DuckDB's glob:
	// *, ?, [...], **) read every Parquet file the pattern matches, and at least one
	// must.
	Source string
	// Columns maps the point columns (org_id, metric_id, context_key, ts, value) to the
	// Parquet file's column names where they differ.
	Columns map[string]string
	// Blocks reads a Source that holds Prometheus TSDB blocks (docs/prometheus.md).
	Blocks blocks.ReadOptions
}

// PointColumnNames are the point columns in schema order.
var PointColumnNames = []string{"org_id", "metric_id", "context_key", "ts", "value"}

// LegacyView returns a view of the legacy file under name. Parquet is read by DuckDB
// after its schema was checked; CSV (the same header as `cat`) and series files are
// decoded in Go, bit for bit. Any other source is ErrNotLegacyFile.
func LegacyView(ctx context.Context, e *Engine, name string, opt LegacyOptions, scope Scope) (View, error) {
	src := opt.Source
	lower := strings.ToLower(src)
	for k := range opt.Columns {
		if !isPointColumn(k) {
			return View{}, fmt.Errorf("legacy column mapping %q: want one of %s", k, strings.Join(PointColumnNames, ", "))
		}
	}
	if pattern, ok := strings.CutPrefix(src, GlobPrefix); ok {
		files, err := e.glob(ctx, pattern)
		if err != nil {
			return View{}, fmt.Errorf("legacy %s: %w", src, err)
		}
		if len(files) == 0 {
			return View{}, fmt.Errorf("legacy %s: the pattern matches no file", src)
		}
		cols, err := checkParquet(ctx, e, src, pattern, opt.Columns)
		if err != nil {
			return View{}, err
		}
		return View{Name: name, From: "read_parquet(" + quoteString(pattern) + ")", Columns: cols}, nil
	}
	switch {
	case strings.HasSuffix(lower, ".parquet"):
		if _, err := os.Stat(src); err != nil {
			return View{}, fmt.Errorf("legacy Parquet: %w", err)
		}
		lit, err := literalPath(ctx, e, src)
		if err != nil {
			return View{}, fmt.Errorf("legacy Parquet %s: %w", src, err)
		}
		cols, err := checkParquet(ctx, e, src, lit, opt.Columns)
		if err != nil {
			return View{}, err
		}
		return View{Name: name, From: "read_parquet(" + quoteString(lit) + ")", Columns: cols}, nil
	case strings.HasSuffix(lower, ".csv"):
		if len(opt.Columns) > 0 {
			return View{}, errors.New("legacy CSV: column mapping applies to Parquet only; CSV must have the header " + columnar.CSVHeader)
		}
		if _, err := os.Stat(src); err != nil {
			return View{}, fmt.Errorf("legacy CSV: %w", err)
		}
		return View{Name: name, Arrow: func(ctx context.Context) (array.RecordReader, error) {
			return newCSVReader(src)
		}}, nil
	case strings.HasSuffix(lower, ".tsf"):
		b, err := os.ReadFile(src)
		if err != nil {
			return View{}, fmt.Errorf("legacy series file: %w", err)
		}
		return View{Name: name, Arrow: func(ctx context.Context) (array.RecordReader, error) {
			r, err := encoder.Open(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				return nil, fmt.Errorf("open %s: %w", src, err)
			}
			return r.RecordReader(0), nil
		}}, nil
	}
	return View{}, fmt.Errorf("legacy %s: %w", storage.Redact(src), ErrNotLegacyFile)
}

// LegacyParquetFiles returns the files a Parquet legacy source reads, as DuckDB lists
// them (the file itself, or every file a glob: source matches), and false for a source
// that is not Parquet. Call it after LegacyView, which checks the source.
func (e *Engine) LegacyParquetFiles(ctx context.Context, src string) ([]string, bool, error) {
	if pattern, ok := strings.CutPrefix(src, GlobPrefix); ok {
		files, err := e.glob(ctx, pattern)
		return files, true, err
	}
	if !strings.HasSuffix(strings.ToLower(src), ".parquet") {
		return nil, false, nil
	}
	abs, err := filepath.Abs(src)
	return []string{abs}, true, err
}

// ErrNotLegacyFile is LegacyView's answer for a source that is not a legacy file: the
// caller may read it as a store of series files (run.LegacyView does).
var ErrNotLegacyFile = errors.New("not a .parquet, .csv or .tsf file")

func isPointColumn(s string) bool {
	for _, c := range PointColumnNames {
		if c == s {
			return true
		}
	}
	return false
}

// literalPath returns a form of path that DuckDB reads as exactly that one file.
// DuckDB reads any path with *, ? or [ as a glob, so le[g]acy.parquet read
// legacy.parquet, and all*.parquet read allx.parquet as well. It has no escape
// character, but a bracket class of one character matches just that character: [*],
// [?], [[]. A backslash has meanings of its own in DuckDB's globbing (before a glob
// character it keeps the path from being globbed at all), so it becomes ?, which
// matches it and any other character. DuckDB's own glob() then has to list exactly
// this file under the escaped pattern, or the path is refused: nothing is read that
// the user did not name.
func literalPath(ctx context.Context, e *Engine, path string) (string, error) {
	abs, err := filepath.Abs(path) // also keeps DuckDB from expanding a leading ~
	if err != nil {
		return "", err
	}
	if !strings.ContainsAny(abs, "*?[") {
		return abs, nil
	}
	var b strings.Builder
	for _, r := range abs {
		switch r {
		case '*', '?', '[':
			b.WriteString("[" + string(r) + "]")
		case '\\':
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	lit := b.String()
	files, err := e.glob(ctx, lit)
	if err != nil {
		return "", err
	}
	if len(files) != 1 || files[0] != abs {
		return "", fmt.Errorf("DuckDB cannot read this path literally (its pattern %s lists %q); rename the file, or use %s for a glob", lit, files, GlobPrefix)
	}
	return lit, nil
}

// glob lists the files DuckDB's glob matches to pattern.
func (e *Engine) glob(ctx context.Context, pattern string) (_ []string, err error) {
	res, err := e.Query(ctx, "SELECT file FROM glob("+quoteString(pattern)+") ORDER BY file", nil)
	if err != nil {
		return nil, err
	}
	defer res.Release()
	var files []string
	for res.Next() {
		rec := res.RecordBatch()
		col, ok := rec.Column(0).(*array.String)
		if !ok {
			return nil, fmt.Errorf("BUG: glob() returned %s", rec.Schema())
		}
		for i := 0; i < col.Len(); i++ {
			files = append(files, strings.Clone(col.Value(i)))
		}
	}
	return files, res.Err()
}

// checkParquet checks that the Parquet data of the legacy source src, read by DuckDB as
// read_parquet(path), has each point column with a type that converts without loss,
// and returns the projection that renames and casts them.
func checkParquet(ctx context.Context, e *Engine, src, path string, mapping map[string]string) (string, error) {
	res, err := e.Query(ctx, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet("+quoteString(path)+"))", nil)
	if err != nil {
		return "", fmt.Errorf("legacy Parquet %s: %w", src, err)
	}
	defer res.Release()
	types := map[string]string{}
	for res.Next() {
		rec := res.RecordBatch()
		n, t := rec.Column(0).(*array.String), rec.Column(1).(*array.String)
		for i := 0; i < int(rec.NumRows()); i++ {
			types[strings.Clone(n.Value(i))] = strings.Clone(t.Value(i))
		}
	}
	if err := res.Err(); err != nil {
		return "", fmt.Errorf("legacy Parquet %s: %w", src, err)
	}
	want := map[string][]string{
		"org_id":      {"UINTEGER", "USMALLINT", "UTINYINT", "INTEGER", "BIGINT", "UBIGINT", "SMALLINT", "TINYINT"},
		"metric_id":   {"UBIGINT", "BIGINT", "UINTEGER", "INTEGER"},
		"context_key": {"UBIGINT", "BIGINT", "UINTEGER", "INTEGER"},
		"ts":          {"BIGINT", "INTEGER", "UINTEGER"},
		"value":       {"DOUBLE", "FLOAT"},
	}
	wantName := map[string]string{"org_id": "UINTEGER (uint32)", "metric_id": "UBIGINT (uint64)", "context_key": "UBIGINT (uint64)", "ts": "BIGINT (int64 Unix ms)", "value": "DOUBLE (float64)"}
	names := make([]string, len(PointColumnNames))
	for i, c := range PointColumnNames {
		col := c
		if m, ok := mapping[c]; ok {
			col = m
		}
		names[i] = col
		t, ok := types[col]
		if !ok {
			return "", &MissingColumnError{Source: src, Column: col, For: c, Type: wantName[c]}
		}
		okType := false
		for _, w := range want[c] {
			okType = okType || t == w
		}
		if !okType {
			return "", fmt.Errorf("legacy Parquet %s: column %q has type %s, want %s", src, col, t, wantName[c])
		}
	}
	return pointColumns(names[0], names[1], names[2], names[3], names[4]), nil
}

// csvReader decodes a point CSV file into record batches of the point columns.
type csvReader struct {
	refs atomic.Int64
	f    *os.File
	sc   *bufio.Scanner
	path string
	line int
	b    *array.RecordBuilder
	cur  arrow.RecordBatch
	err  error
	done bool
}

func newCSVReader(path string) (*csvReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("legacy CSV: %w", err)
	}
	r := &csvReader{f: f, sc: bufio.NewScanner(f), path: path, b: array.NewRecordBuilder(memory.DefaultAllocator, columnar.SortedSchema)}
	r.sc.Buffer(make([]byte, 64<<10), 1<<20)
	r.refs.Store(1)
	if !r.sc.Scan() {
		err := r.sc.Err()
		if err == nil {
			err = errors.New("empty file")
		}
		r.Release()
		return nil, fmt.Errorf("legacy CSV %s: %w", path, err)
	}
	r.line = 1
	if h := strings.TrimSpace(strings.TrimPrefix(r.sc.Text(), "\ufeff")); h != columnar.CSVHeader {
		r.Release()
		return nil, fmt.Errorf("legacy CSV %s line 1: header %q, want %q", path, h, columnar.CSVHeader)
	}
	return r, nil
}

func (r *csvReader) Retain() { r.refs.Add(1) }
func (r *csvReader) Release() {
	if r.refs.Add(-1) == 0 {
		if r.cur != nil {
			r.cur.Release()
			r.cur = nil
		}
		r.b.Release()
		r.f.Close()
	}
}
func (r *csvReader) Schema() *arrow.Schema          { return columnar.SortedSchema }
func (r *csvReader) Err() error                     { return r.err }
func (r *csvReader) RecordBatch() arrow.RecordBatch { return r.cur }
func (r *csvReader) Record() arrow.RecordBatch      { return r.cur }

func (r *csvReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.done {
		return false
	}
	org := r.b.Field(0).(*array.Uint32Builder)
	met := r.b.Field(1).(*array.Uint64Builder)
	cx := r.b.Field(2).(*array.Uint64Builder)
	ts := r.b.Field(3).(*array.Int64Builder)
	val := r.b.Field(4).(*array.Float64Builder)
	rows := 0
	for rows < encoder.DefaultBatchRows && r.sc.Scan() {
		r.line++
		line := r.sc.Bytes()
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if len(line) == 0 {
			continue
		}
		k, t, v, err := columnar.ParseCSVPoint(line)
		if err != nil {
			r.err = fmt.Errorf("legacy CSV %s line %d: %w", r.path, r.line, err)
			r.done = true
			return false
		}
		org.Append(k.Org)
		met.Append(k.Metric)
		cx.Append(k.Context)
		ts.Append(t)
		val.Append(v)
		rows++
	}
	if err := r.sc.Err(); err != nil {
		r.err = fmt.Errorf("legacy CSV %s line %d: %w", r.path, r.line+1, err)
		r.done = true
		return false
	}
	if rows == 0 {
		r.done = true
		return false
	}
	r.cur = r.b.NewRecordBatch()
	return true
}
