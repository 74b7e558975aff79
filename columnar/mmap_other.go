//go:build !unix

package columnar

import (
	"context"
	"errors"

	"github.com/tailor-metrics/tailor/storage"
)

// Without mmap, local stores are read with ranged reads like object stores.
const mmapSupported = false

// Unused without mmap; declared for memoryBound.
const (
	pageSize      = 4096
	mmapDropBytes = 0
)

type mmapFetcher struct {
	files storage.LocalFiler
	mem   *memMeter
	fs    *FrameStats
}

func (f *mmapFetcher) start(context.Context, *Split) error {
	return errors.New("BUG: mmap is not supported on this platform")
}
func (f *mmapFetcher) frame(context.Context, int) ([]byte, error) { return nil, f.start(nil, nil) }
func (f *mmapFetcher) done()                                      {}
