package columnar

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// FrameStats counts what decoding saw and how long each step took.
type FrameStats struct {
	Frames, CorruptFrames uint64
	RowsIn, RowsOut       uint64
	OutOfWindow           uint64
	// Bytes is how many segment bytes were fetched (frames, plus the gaps a coalesced
	// ranged GET read between them).
	Bytes  uint64
	Timers ReadTimers
	// Skipped names the corrupt frames skipped under SkipCorrupt, so that a caller that
	// reads a frame more than once (a run's own and late outputs) counts it once.
	Skipped []FrameRef
}

// FrameRef names a frame: its segment and byte offset.
type FrameRef struct {
	Key    string
	Offset uint64
}

// Add adds o's counts and timers to s.
func (s *FrameStats) Add(o FrameStats) {
	s.Frames += o.Frames
	s.CorruptFrames += o.CorruptFrames
	s.RowsIn += o.RowsIn
	s.RowsOut += o.RowsOut
	s.OutOfWindow += o.OutOfWindow
	s.Bytes += o.Bytes
	s.Timers.add(o.Timers)
	s.Skipped = append(s.Skipped, o.Skipped...)
}

// ReadTimers total the time the readers spent, per step, summed over reader goroutines
// (so with several readers they can add up to more than the wall time), as the old
// system's FileFormat reported them.
type ReadTimers struct {
	// Read is the readers' whole time on segment bytes: every step below plus window
	// filtering, without the time spent waiting for the consumer to take a batch.
	Read time.Duration
	// Fetch is mapping the file (local store) or the ranged GETs (object store).
	Fetch time.Duration
	// Verify is the crc32c check of the compressed bytes. On a mapped file this is where
	// pages are first touched, so it includes reading them from disk.
	Verify time.Duration
	// Decompress is zstd, and in version-2 segments s2 and the ts and value codecs.
	Decompress time.Duration
	// Decode is turning the decompressed payload into the Arrow columns.
	Decode time.Duration
}

func (t *ReadTimers) add(o ReadTimers) {
	t.Read += o.Read
	t.Fetch += o.Fetch
	t.Verify += o.Verify
	t.Decompress += o.Decompress
	t.Decode += o.Decode
}

// MemoryStats is the reader's memory: the bound it promises and the peak it reached.
//
// BoundBytes = Readers × (FetchBytes + LargestRaw + BatchBytes) + BatchBytes: each reader
// holds at most one fetched unit (one frame when mapped, one coalesced GET otherwise),
// one decompressed frame (LargestRaw: its raw payload, and for a version-2 frame also its
// ts and value sections as s2 decodes them) and the batch it fills; the consumer holds
// one more batch.
// PeakBytes is the most those buffers ever held at once, measured as they are taken
// and given back. Batches that a consumer keeps past Next (DuckDB may hold exported
// arrays) are counted too, so a peak above the bound means the consumer held on.
type MemoryStats struct {
	Readers    int
	FetchBytes int64
	LargestRaw int64
	BatchBytes int64
	BoundBytes int64
	PeakBytes  int64
}

// ReadStats is everything a PointReader measured: counts, timers and memory.
type ReadStats struct {
	FrameStats
	Memory MemoryStats
}

// String formats the stats for a run report: one line each for counts, timers and
// memory.
func (s ReadStats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "frames %d (corrupt skipped %d), rows in %d, out %d, out of window %d, bytes %d\n",
		s.Frames, s.CorruptFrames, s.RowsIn, s.RowsOut, s.OutOfWindow, s.Bytes)
	t := s.Timers
	fmt.Fprintf(&b, "read %s: fetch %s, verify %s, unpack %s, decode %s\n",
		t.Read.Round(time.Millisecond), t.Fetch.Round(time.Millisecond), t.Verify.Round(time.Millisecond),
		t.Decompress.Round(time.Millisecond), t.Decode.Round(time.Millisecond))
	m := s.Memory
	fmt.Fprintf(&b, "reader memory peak %s, bound %s = %d readers × (fetch %s + frame %s + batch %s) + batch",
		mib(m.PeakBytes), mib(m.BoundBytes), m.Readers, mib(m.FetchBytes), mib(m.LargestRaw), mib(m.BatchBytes))
	return b.String()
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// memMeter tracks bytes held and their peak. Buffers are counted when they grow, not on
// every use, so the hot path touches it only while buffers warm up.
type memMeter struct {
	cur, peak atomic.Int64
}

func (m *memMeter) add(n int64) {
	c := m.cur.Add(n)
	for {
		p := m.peak.Load()
		if c <= p || m.peak.CompareAndSwap(p, c) {
			return
		}
	}
}
