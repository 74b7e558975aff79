package blocks

import (
	"context"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/tailor-metrics/tailor/encoder"
	tstorage "github.com/tailor-metrics/tailor/storage"
)

// Has reports whether st holds at least one readable block.
func Has(ctx context.Context, st tstorage.Store) (bool, error) {
	bs, _, err := List(ctx, st)
	return len(bs) > 0, err
}

// RecordReader opens the blocks of st (Open) and returns their points as Arrow record
// batches in columnar.SortedSchema, for a DuckDB view. The blocks are closed when the
// reader is released for the last time.
func RecordReader(ctx context.Context, st tstorage.Store, opt ReadOptions) (*Records, error) {
	r, err := Open(ctx, st, opt)
	if err != nil {
		return nil, err
	}
	cr := &Records{RecordReader: encoder.SeriesRecordReader(r, 0), r: r}
	cr.refs.Store(1)
	return cr, nil
}

// Records is the Arrow record reader of RecordReader: it closes the blocks at its last
// release, and counts what it read.
type Records struct {
	array.RecordReader
	r    *Reader
	refs atomic.Int64
}

// Reads returns what the blocks' reader has read so far.
func (c *Records) Reads() Reads { return c.r.Reads() }

func (c *Records) Retain() { c.refs.Add(1); c.RecordReader.Retain() }

func (c *Records) Release() {
	c.RecordReader.Release()
	if c.refs.Add(-1) == 0 {
		_ = c.r.Close()
	}
}
