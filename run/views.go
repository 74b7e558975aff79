//go:build duckdb_arrow

package run

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/tailor-metrics/tailor/blocks"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/storage"
)

// SeriesView is a view over the published series of st that the scope selects, as
// SeriesMerger reads them (own parts and late outputs, each point once), in
// columnar.SortedSchema. Each statement's restriction prunes what it reads, and the
// columns it does not read are left as zeros. It lives here, beside the manifests it
// reads, so that query knows DuckDB and Arrow sources but not how runs are published.
func SeriesView(name string, st storage.Store, scope query.Scope) query.View {
	return query.View{Name: name, Scan: func(ctx context.Context, r query.Restriction) (array.RecordReader, error) {
		m, err := OpenSeriesWith(ctx, st, ScanOptions{Scope: scope, Restriction: r})
		if err != nil {
			return nil, err
		}
		return newSeriesBatches(m, r), nil
	}}
}

// LegacyView is query.LegacyView, and also takes a store URL (or directory) holding
// the published series files of another root as the legacy source.
func LegacyView(ctx context.Context, e *query.Engine, name string, opt query.LegacyOptions, scope query.Scope) (query.View, error) {
	v, err := query.LegacyView(ctx, e, name, opt, scope)
	if !errors.Is(err, query.ErrNotLegacyFile) {
		return v, err
	}
	src := opt.Source
	st, err := storage.Open(ctx, src)
	if err != nil {
		return query.View{}, fmt.Errorf("legacy %s: want a .parquet, .csv or .tsf file, or a store URL: %w", storage.Redact(src), err)
	}
	runs, err := Published(ctx, st)
	if err != nil {
		return query.View{}, fmt.Errorf("legacy %s: %w", st.URL(), err)
	}
	if len(runs) == 0 {
		// A Prometheus data directory or a Thanos/Mimir bucket prefix of blocks.
		if ok, err := blocks.Has(ctx, st); err != nil {
			return query.View{}, fmt.Errorf("legacy %s: %w", st.URL(), err)
		} else if ok {
			return query.View{Name: name, Arrow: func(ctx context.Context) (array.RecordReader, error) {
				rr, err := blocks.RecordReader(ctx, st, opt.Blocks)
				if err != nil {
					return nil, err
				}
				return blocksStats{rr}, nil
			}}, nil
		}
		return query.View{}, fmt.Errorf("legacy %s: no published series files and no Prometheus blocks (want a .parquet, .csv or .tsf file, a store with series/, or a directory or bucket prefix of TSDB blocks)", st.URL())
	}
	return SeriesView(name, st, scope), nil
}

// blocksStats gives a blocks view's reader the read counts that sql, diff and validate
// report (query.ViewSet.Reads).
type blocksStats struct{ *blocks.Records }

func (b blocksStats) Reads() query.ReadStats { return blockReadStats(b.Records.Reads()) }

// blockReadStats are a blocks reader's counts as the views report reads.
func blockReadStats(rd blocks.Reads) query.ReadStats {
	return query.ReadStats{FilesRead: rd.Blocks, BytesRead: rd.Bytes, SeriesRead: rd.Series}
}
