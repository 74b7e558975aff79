package main

import (
	"bufio"
	"container/heap"
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/storage"
)

func newCatCmd() *cobra.Command {
	var storeURL, shard, format string
	cmd := &cobra.Command{
		Use:   "cat --store URL [--shard S] [--format csv]",
		Short: "Print the points of the published series files as CSV",
		Long: `Decodes the series files of every published run (or one shard's) and prints the
points with the header org_id,metric_id,context_key,ts,value, sorted by series and ts.
Values parse back to the same float64 bits: shortest round-trip form, NaN, +Inf, -Inf,
and -0 for negative zero.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if format != "csv" {
				return fmt.Errorf("--format %q: only csv is supported", format)
			}
			if shard != "" {
				s, err := columnar.NormalizeShard(shard)
				if err != nil {
					return fmt.Errorf("--shard: %w", err)
				}
				shard = s
			}
			st, err := openStore(ctx, storeURL)
			if err != nil {
				return err
			}
			defer st.Close()
			out := bufio.NewWriterSize(cmd.OutOrStdout(), 1<<20)
			if _, err := fmt.Fprintln(out, columnar.CSVHeader); err != nil {
				return err
			}
			err = catPoints(ctx, st, shard, func(s *encoder.Series) error {
				var line []byte
				for i, ts := range s.Ts {
					line = columnar.AppendCSVPoint(line[:0], s.Key, ts, s.Values[i])
					if _, err := out.Write(line); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			return out.Flush()
		},
	}
	storeFlag(cmd, &storeURL)
	cmd.Flags().StringVar(&shard, "shard", "", "only this shard (default: all)")
	cmd.Flags().StringVar(&format, "format", "csv", "output format: csv")
	return cmd
}

// catPoints calls fn for every series of the published runs in (series, ts) order.
// Shards hold disjoint orgs and a series' points of different windows are disjoint in
// time, so merging is a sort of whole series by key and window.
func catPoints(ctx context.Context, st storage.Store, shard string, fn func(*encoder.Series) error) error {
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
			b, err := storage.ReadAll(ctx, st, p.Key)
			if err != nil {
				return err
			}
			r, err := encoder.Open(bytesReaderAt(b), int64(len(b)))
			if err != nil {
				return fmt.Errorf("open %s: %w", p.Key, err)
			}
			readers = append(readers, r)
		}
	}
	return mergeSeries(readers, fn)
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(b)) {
		return 0, fmt.Errorf("read at %d: out of range", off)
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
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
