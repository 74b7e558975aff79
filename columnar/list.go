package columnar

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/tailor-metrics/tailor/storage"
)

// ListOptions choose which segments ListSegmentsWith opens.
type ListOptions struct {
	// Keep, when not nil, is asked about every key under segments/ before its footer is
	// opened; segments it refuses are not opened.
	Keep func(key string) bool
	// SkipCorrupt leaves out the segments whose header, trailer or footer is corrupt
	// (ErrCorrupt) instead of failing, and hands each error to OnCorrupt. Other errors
	// (the store's) still fail the listing.
	SkipCorrupt bool
	OnCorrupt   func(err error)
}

// openers bounds the footers opened at once: each is two or three small ranged reads,
// dominated by latency on an object store.
const openers = 16

// ListSegments opens every segment under segments/ in the store, sorted by key.
func ListSegments(ctx context.Context, st storage.Store) ([]*Segment, error) {
	return ListSegmentsWith(ctx, st, ListOptions{})
}

// ListSegmentsWith opens the segments under segments/ that opt keeps, sorted by key.
func ListSegmentsWith(ctx context.Context, st storage.Store, opt ListOptions) ([]*Segment, error) {
	var attrs []storage.Attrs
	err := st.List(ctx, "segments/", func(a storage.Attrs) error {
		if opt.Keep == nil || opt.Keep(a.Key) {
			attrs = append(attrs, a)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	segs := make([]*Segment, len(attrs))
	errs := make([]error, len(attrs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, openers)
	for i, a := range attrs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			segs[i], errs[i] = OpenSegment(ctx, st, a.Key, a.Size)
		}()
	}
	wg.Wait()
	out := segs[:0]
	for i, s := range segs {
		switch err := errs[i]; {
		case err == nil:
			out = append(out, s)
		case opt.SkipCorrupt && errors.Is(err, ErrCorrupt):
			if opt.OnCorrupt != nil {
				opt.OnCorrupt(err)
			}
		default:
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
