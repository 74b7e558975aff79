package legacy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/format"
)

// pointColumns are the columns read, in this order.
var pointColumns = [5]string{"org_id", "metric_id", "context_key", "ts", "value"}

// ParquetOptions configure OpenParquet.
type ParquetOptions struct {
	// Columns maps a point column to the file's column where the names differ.
	Columns map[string]string
	// Filter selects the scope's points.
	Filter Filter
	// MaxRows bounds the rows the merge may hold at once (0: 32 million, about 1 GiB).
	MaxRows int64
}

// column is how one point column is stored.
type column struct {
	index    int
	kind     parquet.Kind
	unsigned bool
	optional bool
}

type parquetFile struct {
	path string
	f    *os.File
	pf   *parquet.File
	cols [5]column
}

// OpenParquet reads the Parquet files (one, or those of a glob) as one Source. It
// returns an error wrapping ErrUnsupported when a column's type is one it does not
// read (the diff's SQL casts more), when a point column may hold NULLs, or when the
// files' row groups overlap so much that merging them would hold more than MaxRows.
func OpenParquet(paths []string, opt ParquetOptions) (_ *Source, err error) {
	if opt.MaxRows <= 0 {
		opt.MaxRows = 32 << 20
	}
	var files []*parquetFile
	closeAll := func() error {
		var errs []error
		for _, f := range files {
			errs = append(errs, f.f.Close())
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, closeAll())
		}
	}()
	var runs []*lazyRun
	var skipped int
	for _, path := range paths {
		pf, err := openParquet(path, opt.Columns)
		if err != nil {
			return nil, err
		}
		files = append(files, pf)
		for rg := range pf.pf.RowGroups() {
			r, err := pf.rowGroupRun(rg, &opt.Filter)
			if err != nil {
				return nil, err
			}
			if r == nil {
				skipped++
				continue
			}
			runs = append(runs, r)
		}
	}
	slices.SortStableFunc(runs, func(a, b *lazyRun) int { return a.lb.compare(b.lb) })
	if peak := peakRows(runs); peak > opt.MaxRows {
		return nil, fmt.Errorf("legacy Parquet: merging its row groups in order would hold %d rows at once, more than %d: %w", peak, opt.MaxRows, ErrUnsupported)
	}
	s := newSource(runs, closeAll)
	s.stats.Files, s.stats.RowGroups, s.stats.RowGroupsSkipped = len(files), len(runs), skipped
	for _, f := range files {
		s.stats.Bytes += f.pf.Size()
	}
	return s, nil
}

func openParquet(path string, mapping map[string]string) (*parquetFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("legacy Parquet: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("legacy Parquet: %w", err), f.Close())
	}
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("legacy Parquet %s: %w", path, err), f.Close())
	}
	p := &parquetFile{path: path, f: f, pf: pf}
	for i, name := range pointColumns {
		col := name
		if m, ok := mapping[name]; ok {
			col = m
		}
		leaf, ok := pf.Schema().Lookup(col)
		if !ok {
			return nil, errors.Join(fmt.Errorf("legacy Parquet %s: no column %q: %w", path, col, ErrUnsupported), f.Close())
		}
		c := column{index: leaf.ColumnIndex, optional: leaf.MaxDefinitionLevel > 0}
		if leaf.MaxRepetitionLevel > 0 || leaf.Node == nil || !leaf.Node.Leaf() {
			return nil, errors.Join(fmt.Errorf("legacy Parquet %s: column %q is nested: %w", path, col, ErrUnsupported), f.Close())
		}
		t := leaf.Node.Type()
		c.kind = t.Kind()
		ok = false
		switch {
		case i == 4:
			ok = c.kind == parquet.Double || c.kind == parquet.Float
		case c.kind == parquet.Int32 || c.kind == parquet.Int64:
			c.unsigned, ok = integerSign(t)
		}
		if !ok {
			return nil, errors.Join(fmt.Errorf("legacy Parquet %s: column %q has type %s: %w", path, col, t, ErrUnsupported), f.Close())
		}
		p.cols[i] = c
	}
	return p, nil
}

// integerSign tells whether an INT32 or INT64 column holds unsigned integers, and
// whether it holds plain integers at all (not a timestamp, decimal or date).
func integerSign(t parquet.Type) (unsigned, ok bool) {
	if lt := t.LogicalType(); lt != nil && lt.Value != nil {
		it, isInt := lt.Value.(*format.IntType)
		if !isInt {
			return false, false
		}
		return !it.IsSigned, true
	}
	if ct := t.ConvertedType(); ct != nil {
		switch *ct {
		case deprecated.Uint8, deprecated.Uint16, deprecated.Uint32, deprecated.Uint64:
			return true, true
		case deprecated.Int8, deprecated.Int16, deprecated.Int32, deprecated.Int64:
			return false, true
		}
		return false, false
	}
	return false, true
}

// bounds returns column c's minimum and maximum in row group rg as int64 bits (ok
// false when the statistics do not say), and its null count.
func (p *parquetFile) bounds(rg int, c column) (lo, hi uint64, nulls int64, known, ok bool) {
	md := p.pf.Metadata().RowGroups[rg].Columns[c.index].MetaData
	st := md.Statistics
	mn, mx := st.MinValue, st.MaxValue
	if mn == nil || mx == nil {
		return 0, 0, 0, false, true
	}
	switch c.kind {
	case parquet.Int32:
		if len(mn) != 4 || len(mx) != 4 {
			return 0, 0, 0, false, true
		}
		a, b := binary.LittleEndian.Uint32(mn), binary.LittleEndian.Uint32(mx)
		if c.unsigned {
			return uint64(a), uint64(b), st.NullCount, true, true
		}
		return uint64(int64(int32(a))), uint64(int64(int32(b))), st.NullCount, true, true
	case parquet.Int64:
		if len(mn) != 8 || len(mx) != 8 {
			return 0, 0, 0, false, true
		}
		return binary.LittleEndian.Uint64(mn), binary.LittleEndian.Uint64(mx), st.NullCount, true, true
	}
	return 0, 0, st.NullCount, false, true
}

// rowGroupRun describes row group rg as a run, or nil when the filter skips it whole.
func (p *parquetFile) rowGroupRun(rg int, f *Filter) (*lazyRun, error) {
	g := p.pf.Metadata().RowGroups[rg]
	r := &lazyRun{lb: pkey{}, ub: maxKey, rows: g.NumRows}
	for i, c := range p.cols {
		lo, hi, nulls, known, _ := p.bounds(rg, c)
		if c.optional && nulls > 0 {
			// The SQL diff defines what NULLs mean. (A writer that leaves the count out
			// and writes NULLs anyway fails the decoding, naming the column.)
			return nil, fmt.Errorf("legacy Parquet %s: row group %d: column %q may hold NULLs: %w", p.path, rg, pointColumns[i], ErrUnsupported)
		}
		if !known {
			continue
		}
		switch i {
		case 0:
			r.lb.org, r.ub.org = clampOrg(lo, c), clampOrg(hi, c)
		case 1:
			r.lb.metric, r.ub.metric = clampID(lo, c), clampID(hi, c)
		case 2:
			r.lb.ctx, r.ub.ctx = clampID(lo, c), clampID(hi, c)
		case 3:
			r.lb.ts, r.ub.ts = clampTs(lo, c), clampTs(hi, c)
		}
	}
	if r.ub.ts < f.MinTs || r.lb.ts > f.MaxTs || f.Orgs != nil && !f.Orgs(r.lb.org, r.ub.org) || g.NumRows == 0 {
		return nil, nil
	}
	r.load = func() (*points, error) { return p.decode(rg, f) }
	return r, nil
}

// The bounds of a column clamped to the point column's type: a value outside it fails
// the decoding (as DuckDB's cast fails the SQL), the bounds only order the runs.
func clampOrg(v uint64, c column) uint32 {
	switch {
	case !c.unsigned && int64(v) < 0:
		return 0
	case v > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(v)
}

func clampID(v uint64, c column) uint64 {
	if !c.unsigned && int64(v) < 0 {
		return 0
	}
	return v
}

func clampTs(v uint64, c column) int64 {
	if c.unsigned && v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// decode reads row group rg, keeps the filter's points and sorts them if they are not
// in order yet.
func (p *parquetFile) decode(rg int, f *Filter) (*points, error) {
	g := p.pf.RowGroups()[rg]
	chunks := g.ColumnChunks()
	n := int(g.NumRows())
	var raw [4][]uint64
	for i := range 4 {
		v, err := p.readInts(chunks[p.cols[i].index], p.cols[i], n, rg, i)
		if err != nil {
			return nil, err
		}
		raw[i] = v
	}
	vals, err := p.readFloats(chunks[p.cols[4].index], p.cols[4], n, rg)
	if err != nil {
		return nil, err
	}
	out := &points{
		org: make([]uint32, 0, n), metric: make([]uint64, 0, n), ctx: make([]uint64, 0, n),
		ts: make([]int64, 0, n), vals: make([]float64, 0, n),
	}
	for r := range n {
		org, err := p.toOrg(raw[0][r], rg, r)
		if err != nil {
			return nil, err
		}
		met, err := p.toID(raw[1][r], p.cols[1], rg, r, 1)
		if err != nil {
			return nil, err
		}
		cx, err := p.toID(raw[2][r], p.cols[2], rg, r, 2)
		if err != nil {
			return nil, err
		}
		ts, err := p.toTs(raw[3][r], rg, r)
		if err != nil {
			return nil, err
		}
		if f.keep(org, met, ts) {
			out.append(org, met, cx, ts, vals[r])
		}
	}
	if !out.sorted() {
		out.sort()
	}
	return out, nil
}

func (p *parquetFile) rowErr(rg, r, col int, what string) error {
	return fmt.Errorf("legacy Parquet %s: row group %d row %d: column %q %s", p.path, rg, r, pointColumns[col], what)
}

func (p *parquetFile) toOrg(v uint64, rg, r int) (uint32, error) {
	c := p.cols[0]
	if !c.unsigned && int64(v) < 0 || v > math.MaxUint32 {
		return 0, p.rowErr(rg, r, 0, fmt.Sprintf("value %d does not fit UINTEGER", int64(v)))
	}
	return uint32(v), nil
}

func (p *parquetFile) toID(v uint64, c column, rg, r, col int) (uint64, error) {
	if !c.unsigned && int64(v) < 0 {
		return 0, p.rowErr(rg, r, col, fmt.Sprintf("value %d does not fit UBIGINT", int64(v)))
	}
	return v, nil
}

func (p *parquetFile) toTs(v uint64, rg, r int) (int64, error) {
	if p.cols[3].unsigned && v > math.MaxInt64 {
		return 0, p.rowErr(rg, r, 3, fmt.Sprintf("value %d does not fit BIGINT", v))
	}
	return int64(v), nil
}

// readInts reads an INT32 or INT64 column chunk as 64-bit patterns: INT32 sign- or
// zero-extended by its sign.
func (p *parquetFile) readInts(cc parquet.ColumnChunk, c column, n, rg, col int) ([]uint64, error) {
	out := make([]uint64, 0, n)
	err := p.pages(cc, rg, col, func(pg parquet.Page, dict *dictCache) error {
		d := pg.Data()
		switch c.kind {
		case parquet.Int32:
			var vs []int32
			if dict != nil {
				dv := dict.int32s()
				for _, ix := range d.Int32() {
					if int(ix) >= len(dv) || ix < 0 {
						return fmt.Errorf("dictionary index %d of %d", ix, len(dv))
					}
					vs = append(vs, dv[ix])
				}
			} else {
				vs = d.Int32()
			}
			for _, v := range vs {
				if c.unsigned {
					out = append(out, uint64(uint32(v)))
				} else {
					out = append(out, uint64(int64(v)))
				}
			}
		default:
			if dict != nil {
				dv := dict.int64s()
				for _, ix := range d.Int32() {
					if int(ix) >= len(dv) || ix < 0 {
						return fmt.Errorf("dictionary index %d of %d", ix, len(dv))
					}
					out = append(out, uint64(dv[ix]))
				}
			} else {
				for _, v := range d.Int64() {
					out = append(out, uint64(v))
				}
			}
		}
		return nil
	})
	if err == nil && len(out) != n {
		err = fmt.Errorf("legacy Parquet %s: row group %d: column %q holds %d values for %d rows", p.path, rg, pointColumns[col], len(out), n)
	}
	return out, err
}

func (p *parquetFile) readFloats(cc parquet.ColumnChunk, c column, n, rg int) ([]float64, error) {
	out := make([]float64, 0, n)
	err := p.pages(cc, rg, 4, func(pg parquet.Page, dict *dictCache) error {
		d := pg.Data()
		if c.kind == parquet.Float {
			var vs []float32
			if dict != nil {
				dv := dict.float32s()
				for _, ix := range d.Int32() {
					if int(ix) >= len(dv) || ix < 0 {
						return fmt.Errorf("dictionary index %d of %d", ix, len(dv))
					}
					vs = append(vs, dv[ix])
				}
			} else {
				vs = d.Float()
			}
			for _, v := range vs {
				out = append(out, float64(v))
			}
			return nil
		}
		if dict != nil {
			dv := dict.float64s()
			for _, ix := range d.Int32() {
				if int(ix) >= len(dv) || ix < 0 {
					return fmt.Errorf("dictionary index %d of %d", ix, len(dv))
				}
				out = append(out, dv[ix])
			}
			return nil
		}
		out = append(out, d.Double()...)
		return nil
	})
	if err == nil && len(out) != n {
		err = fmt.Errorf("legacy Parquet %s: row group %d: column \"value\" holds %d values for %d rows", p.path, rg, len(out), n)
	}
	return out, err
}

// dictCache decodes a column chunk's dictionary once.
type dictCache struct {
	d   parquet.Dictionary
	i32 []int32
	i64 []int64
	f32 []float32
	f64 []float64
	got bool
}

func (c *dictCache) values() *dictCache {
	if !c.got {
		d := c.d.Page().Data()
		switch c.d.Type().Kind() {
		case parquet.Int32:
			c.i32 = slices.Clone(d.Int32())
		case parquet.Int64:
			c.i64 = slices.Clone(d.Int64())
		case parquet.Float:
			c.f32 = slices.Clone(d.Float())
		case parquet.Double:
			c.f64 = slices.Clone(d.Double())
		}
		c.got = true
	}
	return c
}

func (c *dictCache) int32s() []int32     { return c.values().i32 }
func (c *dictCache) int64s() []int64     { return c.values().i64 }
func (c *dictCache) float32s() []float32 { return c.values().f32 }
func (c *dictCache) float64s() []float64 { return c.values().f64 }

// pages calls fn with every page of a column chunk, and its dictionary when the page
// holds dictionary indexes.
func (p *parquetFile) pages(cc parquet.ColumnChunk, rg, col int, fn func(parquet.Page, *dictCache) error) error {
	pages := cc.Pages()
	defer pages.Close()
	var dc *dictCache
	for {
		pg, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("legacy Parquet %s: row group %d: column %q: %w", p.path, rg, pointColumns[col], err)
		}
		if pg.NumNulls() > 0 {
			parquet.Release(pg)
			return fmt.Errorf("legacy Parquet %s: row group %d: column %q holds NULLs its statistics do not count", p.path, rg, pointColumns[col])
		}
		var dict *dictCache
		if d := pg.Dictionary(); d != nil {
			if dc == nil { // a column chunk has one dictionary, shared by its pages
				dc = &dictCache{d: d}
			}
			dict = dc
		}
		err = fn(pg, dict)
		parquet.Release(pg)
		if err != nil {
			return fmt.Errorf("legacy Parquet %s: row group %d: column %q: %w", p.path, rg, pointColumns[col], err)
		}
	}
}
