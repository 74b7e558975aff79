//go:build unix

package columnar

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"github.com/tailor-metrics/tailor/storage"
)

const mmapSupported = true

// mmapFetcher maps a split's frames of a local segment file read-only and hands out
// slices of the mapping: no copy, no read buffer. Pages of frames already decoded are
// dropped (MADV_DONTNEED) once mmapDropBytes of them have gathered, so a reader's
// resident share of a mapping stays under mmapDropBytes plus one frame however large
// the split is.
//
// Segments are immutable once stored; a file truncated while it is mapped would fault
// (SIGBUS) on the missing pages, which is why start checks the size against the one
// the footer was read with.
type mmapFetcher struct {
	files storage.LocalFiler
	mem   *memMeter
	fs    *FrameStats

	sp      *Split
	data    []byte // the mapping
	base    uint64 // file offset of data[0], page-aligned
	dropped uint64 // data[:dropped] has been released
	held    int64  // bytes counted in mem for the current frame
}

var pageSize = uint64(os.Getpagesize())

// mmapDropBytes is how much of a mapping is decoded before its pages are dropped. Each
// MADV_DONTNEED costs a TLB shootdown; dropping per frame (about 0.2-1 MiB) spent 9% of a
// read's CPU in madvise, every 8 MiB costs next to nothing and bounds the resident pages.
const mmapDropBytes = 8 << 20

func (f *mmapFetcher) start(_ context.Context, sp *Split) error {
	path := f.files.LocalPath(sp.Seg.Key)
	file, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read segment %s: %w", sp.Seg.Key, err)
	}
	defer file.Close() // the mapping outlives the descriptor
	fi, err := file.Stat()
	if err != nil {
		return fmt.Errorf("read segment %s: %w", sp.Seg.Key, err)
	}
	if fi.Size() != sp.Seg.Size {
		return corrupt(sp.Seg.Key, uint64(min(fi.Size(), sp.Seg.Size)), "file is %d bytes, was %d when its footer was read (truncated or replaced)", fi.Size(), sp.Seg.Size)
	}
	f.base = sp.Start() / pageSize * pageSize
	n := sp.End() - f.base
	data, err := syscall.Mmap(int(file.Fd()), int64(f.base), int(n), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("read segment %s: mmap [%d, %d): %w", sp.Seg.Key, f.base, sp.End(), err)
	}
	// The frames are read once, front to back: let the kernel read ahead.
	_ = syscall.Madvise(data, syscall.MADV_SEQUENTIAL)
	f.sp, f.data, f.dropped = sp, data, 0
	f.fs.Bytes += sp.End() - sp.Start()
	return nil
}

func (f *mmapFetcher) frame(_ context.Context, i int) ([]byte, error) {
	fr := f.sp.Frames[i]
	off := fr.Offset - f.base
	// Everything before this frame's first page has been decoded: drop it.
	if cut := off / pageSize * pageSize; cut-f.dropped >= mmapDropBytes {
		_ = syscall.Madvise(f.data[f.dropped:cut], syscall.MADV_DONTNEED)
		f.dropped = cut
	}
	// Resident: the pages not dropped yet, up to the end of this frame.
	held := int64(off + uint64(fr.Length) - f.dropped)
	f.mem.add(held - f.held)
	f.held = held
	return f.data[off : off+uint64(fr.Length)], nil
}

func (f *mmapFetcher) done() {
	if f.data != nil {
		_ = syscall.Munmap(f.data)
	}
	f.mem.add(-f.held)
	f.sp, f.data, f.held = nil, nil, 0
}
