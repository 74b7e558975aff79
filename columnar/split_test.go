package columnar

import (
	"bytes"
	"context"
	"io"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/tailor-metrics/tailor/storage"
)

// countingStore counts the bytes and requests of ranged reads.
type countingStore struct {
	storage.Store
	gets, bytes atomic.Int64
}

func (c *countingStore) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	c.gets.Add(1)
	c.bytes.Add(n)
	return c.Store.GetRange(ctx, key, off, n)
}

// multiShardSegment writes a segment whose payloads fall in several shards, with small
// frames so that every shard has many.
func multiShardSegment(t *testing.T, st storage.Store, seed uint64, frameRows int) (*Segment, map[string][]row) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	ps, srcs := genPayloads(rng, 200)
	seg := writeSegment(t, st, ps, srcs, frameRows)
	want := map[string][]row{}
	for i, p := range ps {
		sh := DefaultShardMap().Shard(p.Org, p.Metric)
		for j := range p.Timestamps {
			want[sh] = append(want[sh], row{p.SeriesKey, p.Timestamps[j], math.Float64bits(p.Values[j]), srcs[i].Timestamp, srcs[i].Offset})
		}
	}
	if len(want) < 2 {
		t.Fatalf("want payloads in several shards, got %d", len(want))
	}
	return seg, want
}

// TestSplitsOwnEachFrameOnce: whatever the split size, every frame of the shard belongs
// to exactly one split, the one its first byte falls in, and reading the splits gives
// back every point once.
func TestSplitsOwnEachFrameOnce(t *testing.T) {
	local, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	seg, want := multiShardSegment(t, local, 5, 97)
	mem := storage.NewMem("splits")
	b, err := storage.ReadAll(context.Background(), local, seg.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := mem.Put(context.Background(), seg.Key, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	sizes := []int64{1, 2, 8, 100, int64(seg.Footer.Frames[0].Length), int64(seg.Footer.Frames[0].Offset), 4096, seg.Size - 1, seg.Size, 1 << 30, math.MaxInt64}
	for range 6 {
		sizes = append(sizes, 1+rng.Int64N(seg.Size))
	}
	for _, size := range sizes {
		for shard, rows := range want {
			si := uint32(seg.Footer.shardIndex(shard))
			splits := PlanSplits([]*Segment{seg}, shard, AllTime, size)
			seen := map[uint64]int{}
			for _, sp := range splits {
				if sp.From%uint64(size) != 0 || sp.To <= sp.From || sp.To > uint64(seg.Size) {
					t.Fatalf("size %d: split [%d, %d) is not a range of the cut", size, sp.From, sp.To)
				}
				for _, f := range sp.Frames {
					if f.Offset < sp.From || f.Offset >= sp.To {
						t.Fatalf("size %d: frame at %d in split [%d, %d)", size, f.Offset, sp.From, sp.To)
					}
					seen[f.Offset]++
				}
			}
			for _, f := range seg.Footer.Frames {
				if n := seen[f.Offset]; (f.Shard == si) != (n == 1) || n > 1 {
					t.Fatalf("size %d shard %s: frame at %d (shard %d) planned %d times", size, shard, f.Offset, f.Shard, n)
				}
			}
			for name, st := range map[string]storage.Store{"mmap": local, "ranged": mem} {
				got, stats := readAll(t, st, []*Segment{seg}, shard, AllTime, size, 3)
				sortRows(got)
				sortRows(rows)
				if len(got) != len(rows) || stats.Frames != uint64(len(seen)) {
					t.Fatalf("%s size %d shard %s: %d rows from %d frames, want %d from %d", name, size, shard, len(got), stats.Frames, len(rows), len(seen))
				}
				for i := range got {
					if got[i] != rows[i] {
						t.Fatalf("%s size %d: row %d = %+v, want %+v", name, size, i, got[i], rows[i])
					}
				}
			}
		}
	}
}

// TestReadOnlyWhatTheShardNeeds: opening reads the head and the tail, never the frames;
// reading a shard fetches only its frames, and a window drops frames by their footer
// range before any byte of them is read.
func TestReadOnlyWhatTheShardNeeds(t *testing.T) {
	ctx := context.Background()
	mem := storage.NewMem("prune")
	seg, want := multiShardSegment(t, mem, 6, 50)
	cs := &countingStore{Store: mem}
	opened, err := OpenSegment(ctx, cs, seg.Key, seg.Size)
	if err != nil {
		t.Fatal(err)
	}
	footer := int64(len(opened.Footer.Marshal(nil)))
	if max := int64(headProbe) + TrailerSize + footer; cs.bytes.Load() > max || cs.gets.Load() > 3 {
		t.Fatalf("open read %d bytes in %d requests; head, trailer and footer are %d bytes", cs.bytes.Load(), cs.gets.Load(), max)
	}
	for shard := range want {
		si := uint32(seg.Footer.shardIndex(shard))
		var frames, size uint64
		var lo, hi int64 = math.MaxInt64, math.MinInt64
		for _, f := range seg.Footer.Frames {
			if f.Shard == si {
				frames++
				size += uint64(f.Length)
				lo, hi = min(lo, f.MinTs), max(hi, f.MaxTs)
			}
		}
		cs.bytes.Store(0)
		_, stats := readAll(t, cs, []*Segment{seg}, shard, AllTime, 1<<30, 2)
		// The shard's frames are contiguous, so its GETs cover exactly its frames.
		if stats.Frames != frames || stats.Bytes != size || uint64(cs.bytes.Load()) != size {
			t.Fatalf("shard %s: decoded %d frames, fetched %d bytes (store served %d); its frames: %d, %d bytes", shard, stats.Frames, stats.Bytes, cs.bytes.Load(), frames, size)
		}
		// A window holding only the newest frame's last ts.
		win := TimeRange{hi, hi + 1}
		var inWin uint64
		for _, f := range seg.Footer.Frames {
			if f.Shard == si && win.Overlaps(f.MinTs, f.MaxTs) {
				inWin++
			}
		}
		rows, stats := readAll(t, cs, []*Segment{seg}, shard, win, 1<<30, 1)
		if stats.Frames != inWin || inWin >= frames || len(rows) == 0 {
			t.Fatalf("shard %s window %v: decoded %d frames, %d overlap it, of %d; %d rows", shard, win, stats.Frames, inWin, frames, len(rows))
		}
	}
}
