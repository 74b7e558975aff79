package pipeline

import (
	"context"
	"errors"

	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
)

// CatPoints calls fn for every series of the published runs (of one shard, unless
// shard is "") in (series, ts) order, each point once: the windows' own parts and the
// late outputs merged as run.SeriesMerger does.
func CatPoints(ctx context.Context, st storage.Store, shard string, fn func(*encoder.Series) error) (err error) {
	m, err := run.OpenSeries(ctx, st, query.Scope{Shard: shard})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, m.Close()) }()
	for m.Next() {
		if err := fn(m.At()); err != nil {
			return err
		}
	}
	return m.Err()
}
