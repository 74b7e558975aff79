package pipeline

import (
	"container/heap"
	"context"

	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/storage"
)

// CatPoints calls fn for every series of the published runs in (series, ts) order.
// Shards hold disjoint orgs and a series' points of different windows are disjoint in
// time, so merging is a sort of whole series by key and window.
func CatPoints(ctx context.Context, st storage.Store, shard string, fn func(*encoder.Series) error) error {
	runs, err := query.Published(ctx, st)
	if err != nil {
		return err
	}
	var readers []*encoder.Reader
	for _, m := range runs {
		if shard != "" && m.Shard != shard {
			continue
		}
		for _, p := range m.Parts {
			r, err := query.OpenSeriesFile(ctx, st, p.Key)
			if err != nil {
				return err
			}
			readers = append(readers, r)
		}
	}
	return mergeSeries(readers, fn)
}

// mergeSeries merges the readers' series by (key, first ts).
func mergeSeries(readers []*encoder.Reader, fn func(*encoder.Series) error) error {
	h := &seriesHeap{}
	for _, r := range readers {
		it := r.Iterator(nil)
		if it.Next() {
			h.its = append(h.its, it)
		} else if err := it.Err(); err != nil {
			return err
		}
	}
	heap.Init(h)
	for h.Len() > 0 {
		it := h.its[0]
		if err := fn(it.At()); err != nil {
			return err
		}
		if it.Next() {
			heap.Fix(h, 0)
			continue
		}
		if err := it.Err(); err != nil {
			return err
		}
		heap.Pop(h)
	}
	return nil
}

type seriesHeap struct{ its []*encoder.SeriesIterator }

func (h *seriesHeap) Len() int { return len(h.its) }
func (h *seriesHeap) Less(i, j int) bool {
	a, b := h.its[i].At(), h.its[j].At()
	if a.Key != b.Key {
		return a.Key.Less(b.Key)
	}
	return a.Ts[0] < b.Ts[0]
}
func (h *seriesHeap) Swap(i, j int) { h.its[i], h.its[j] = h.its[j], h.its[i] }
func (h *seriesHeap) Push(x any)    { h.its = append(h.its, x.(*encoder.SeriesIterator)) }
func (h *seriesHeap) Pop() any {
	it := h.its[len(h.its)-1]
	h.its = h.its[:len(h.its)-1]
	return it
}
