package validate

import (
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"

	"github.com/tailor-metrics/tailor/pointdiff"
)

// diffParquetRow is the Parquet layout of a pointdiff.Row (docs/validation.md, diff
// --out): the kind by name, and a null value on the side that lacks the point.
type diffParquetRow struct {
	Kind    string   `parquet:"kind,dict"`
	Org     uint32   `parquet:"org_id"`
	Metric  uint64   `parquet:"metric_id"`
	Context uint64   `parquet:"context_key"`
	Ts      int64    `parquet:"ts"`
	New     *float64 `parquet:"new_value,optional"`
	Legacy  *float64 `parquet:"legacy_value,optional"`
}

// DiffWriter writes differing points to a zstd Parquet file for drill-down. Not safe
// for concurrent use.
type DiffWriter struct {
	w *ParquetWriter[diffParquetRow]
}

// NewDiffWriter starts a Parquet file of diff rows on w; Close finishes it (w is not
// closed).
func NewDiffWriter(w io.Writer) *DiffWriter {
	return &DiffWriter{NewParquetWriter[diffParquetRow](w)}
}

// Write buffers one row; the writer keeps r's value pointers.
func (d *DiffWriter) Write(r pointdiff.Row) error {
	return d.w.Write(diffParquetRow{Kind: r.Kind.String(), Org: r.Org, Metric: r.Metric, Context: r.Context, Ts: r.Ts, New: r.New, Legacy: r.Legacy})
}

// Rows is the number of rows written so far.
func (d *DiffWriter) Rows() uint64 { return d.w.Rows() }

// Close writes the buffered rows and the footer.
func (d *DiffWriter) Close() error { return d.w.Close() }

// PointRow is one point in the legacy Parquet layout (columns org_id, metric_id,
// context_key, ts, value).
type PointRow struct {
	Org     uint32  `parquet:"org_id"`
	Metric  uint64  `parquet:"metric_id"`
	Context uint64  `parquet:"context_key"`
	Ts      int64   `parquet:"ts"`
	Value   float64 `parquet:"value"`
}

// ParquetWriter writes rows of T to a zstd Parquet file in batches. Not safe for
// concurrent use.
type ParquetWriter[T any] struct {
	w    *parquet.GenericWriter[T]
	buf  []T
	rows uint64
}

// NewParquetWriter starts a Parquet file on w; Close finishes it (w is not closed).
func NewParquetWriter[T any](w io.Writer) *ParquetWriter[T] {
	return &ParquetWriter[T]{w: parquet.NewGenericWriter[T](w, parquet.Compression(&parquet.Zstd))}
}

// Write buffers one row.
func (p *ParquetWriter[T]) Write(r T) error {
	p.buf = append(p.buf, r)
	if len(p.buf) >= 8192 {
		return p.flush()
	}
	return nil
}

func (p *ParquetWriter[T]) flush() error {
	if _, err := p.w.Write(p.buf); err != nil {
		return fmt.Errorf("write parquet rows: %w", err)
	}
	p.rows += uint64(len(p.buf))
	p.buf = p.buf[:0]
	return nil
}

// Rows is the number of rows written so far.
func (p *ParquetWriter[T]) Rows() uint64 { return p.rows + uint64(len(p.buf)) }

// Close writes the buffered rows and the footer.
func (p *ParquetWriter[T]) Close() error {
	if err := p.flush(); err != nil {
		return err
	}
	if err := p.w.Close(); err != nil {
		return fmt.Errorf("close parquet: %w", err)
	}
	return nil
}
