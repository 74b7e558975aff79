package storage_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/tailor-metrics/tailor/storage"
	"github.com/tailor-metrics/tailor/storage/storetest"
)

func TestCoalesceRanges(t *testing.T) {
	type R = storage.Range
	for _, tc := range []struct {
		name    string
		ranges  []R
		gap     int64
		max     int64
		want    []R
		members [][]int
	}{
		{"empty", nil, 10, 0, nil, nil},
		{"one", []R{{5, 10}}, 0, 0, []R{{5, 10}}, [][]int{{0}}},
		{"adjacent merge at gap 0", []R{{0, 10}, {10, 5}}, 0, 0, []R{{0, 15}}, [][]int{{0, 1}}},
		{"gap too big", []R{{0, 10}, {21, 5}}, 10, 0, []R{{0, 10}, {21, 5}}, [][]int{{0}, {1}}},
		{"gap just fits", []R{{0, 10}, {20, 5}}, 10, 0, []R{{0, 25}}, [][]int{{0, 1}}},
		{"unsorted input", []R{{100, 10}, {0, 10}, {12, 3}}, 5, 0, []R{{0, 15}, {100, 10}}, [][]int{{1, 2}, {0}}},
		{"overlap and containment", []R{{0, 100}, {10, 5}, {90, 20}}, 0, 0, []R{{0, 110}}, [][]int{{0, 1, 2}}},
		{"max request splits", []R{{0, 10}, {10, 10}, {20, 10}}, 0, 20, []R{{0, 20}, {20, 10}}, [][]int{{0, 1}, {2}}},
		{"oversized range alone", []R{{0, 50}, {50, 1}}, 0, 20, []R{{0, 50}, {50, 1}}, [][]int{{0}, {1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gs := storage.CoalesceRanges(tc.ranges, tc.gap, tc.max)
			var got []R
			var members [][]int
			for _, g := range gs {
				got = append(got, g.Range)
				members = append(members, g.Members)
			}
			if !slices.Equal(got, tc.want) || !slices.EqualFunc(members, tc.members, slices.Equal) {
				t.Fatalf("got %v %v, want %v %v", got, members, tc.want, tc.members)
			}
		})
	}
}

// countingStore counts GetRange calls.
type countingStore struct {
	storage.Store
	gets atomic.Int64
}

func (c *countingStore) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	c.gets.Add(1)
	return c.Store.GetRange(ctx, key, off, length)
}

func TestReadRangesCoalesces(t *testing.T) {
	ctx := context.Background()
	mem := storage.NewMem("t")
	obj := storetest.Bytes(1, 1<<20)
	if err := mem.Put(ctx, "k", bytesReader(obj)); err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: mem}
	// Frames of one shard: 100 frames of 1000 bytes with 24-byte gaps.
	var rs []storage.Range
	for i := range 100 {
		rs = append(rs, storage.Range{Off: int64(i) * 1024, Len: 1000})
	}
	out, err := storage.ReadRanges(ctx, cs, "k", rs, 64)
	if err != nil {
		t.Fatal(err)
	}
	if n := cs.gets.Load(); n != 1 {
		t.Fatalf("%d GETs for neighbouring ranges, want 1", n)
	}
	for i, r := range rs {
		if !slices.Equal(out[i], obj[r.Off:r.End()]) {
			t.Fatalf("range %d differs", i)
		}
	}
	cs.gets.Store(0)
	if _, err := storage.ReadRanges(ctx, cs, "k", rs, 0); err != nil {
		t.Fatal(err)
	}
	if n := cs.gets.Load(); n != 100 {
		t.Fatalf("%d GETs with maxGap 0 and gaps between ranges, want 100", n)
	}
	if _, err := storage.ReadRanges(ctx, cs, "k", []storage.Range{{Off: -1, Len: 2}}, 0); err == nil {
		t.Fatal("negative range accepted")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := storage.ReadRanges(cctx, cs, "k", rs, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: got %v", err)
	}
}
