package columnar

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/tailor-metrics/tailor/storage"
)

// DefaultFetchBytes caps one coalesced ranged GET: neighbouring frames of a split are
// fetched together up to this size. It matches storage.MaxCoalescedRequest, the size S3
// serves at full speed on one connection.
const DefaultFetchBytes = storage.MaxCoalescedRequest

// fetchGap is the largest gap between two planned frames that one GET still spans: below
// about 1 MiB, reading the unused bytes costs less than another request's latency.
const fetchGap = 1 << 20

// fetcher hands a reader the bytes of one split's frames, in order. The bytes of frame i
// stay valid until the next call. Not safe for concurrent use: one per reader goroutine.
type fetcher interface {
	// start prepares to read sp's frames.
	start(ctx context.Context, sp *Split) error
	// frame returns the bytes (frame header included) of sp.Frames[i]; i increases.
	frame(ctx context.Context, i int) ([]byte, error)
	// done releases what start took (a mapping, a file).
	done()
}

// newFetcher picks how to read: mapped files for a local store, ranged GETs otherwise.
func newFetcher(st storage.Store, fetchBytes int64, mem *memMeter, fs *FrameStats) fetcher {
	if lf, ok := st.(storage.LocalFiler); ok && mmapSupported {
		return &mmapFetcher{files: lf, mem: mem, fs: fs}
	}
	return &rangeFetcher{st: st, max: fetchBytes, mem: mem, fs: fs}
}

// rangeFetcher reads a split's frames with ranged GETs into one reused buffer,
// coalescing neighbouring frames into one request of up to max bytes.
type rangeFetcher struct {
	st  storage.Store
	max int64
	mem *memMeter
	fs  *FrameStats

	sp     *Split
	groups []storage.RangeGroup
	g      int // index of the group in buf, -1 before the first
	last   []int
	buf    []byte
	ranges []storage.Range
}

func (f *rangeFetcher) start(_ context.Context, sp *Split) error {
	f.sp = sp
	f.ranges = f.ranges[:0]
	for _, fr := range sp.Frames {
		f.ranges = append(f.ranges, storage.Range{Off: int64(fr.Offset), Len: int64(fr.Length)})
	}
	f.groups = storage.CoalesceRanges(f.ranges, fetchGap, f.max)
	// Frames are sorted and do not overlap, so group members are consecutive frames.
	f.last = f.last[:0]
	for _, g := range f.groups {
		f.last = append(f.last, g.Members[len(g.Members)-1])
	}
	f.g = -1
	return nil
}

func (f *rangeFetcher) frame(ctx context.Context, i int) ([]byte, error) {
	if f.g < 0 || i > f.last[f.g] {
		f.g++
		for f.last[f.g] < i {
			f.g++
		}
		g := f.groups[f.g]
		old := cap(f.buf)
		var err error
		f.buf, err = storage.ReadRange(ctx, f.st, f.sp.Seg.Key, g.Off, g.Len, f.buf)
		f.mem.add(int64(cap(f.buf) - old))
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return nil, corrupt(f.sp.Seg.Key, uint64(g.Off), "truncated: cannot read bytes [%d, %d) that the footer names (%v)", g.Off, g.End(), err)
			}
			return nil, fmt.Errorf("read segment %s: %w", f.sp.Seg.Key, err)
		}
		f.fs.Bytes += uint64(g.Len)
		f.buf = f.buf[:g.Len]
	}
	g := f.groups[f.g]
	r := f.ranges[i]
	return f.buf[r.Off-g.Off : r.End()-g.Off], nil
}

func (f *rangeFetcher) done() { f.sp = nil }
