package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// The sink's pause when the store gave up on a segment (storage.IsRetryable: its own
// retry budget is spent, e.g. minutes of 503 SlowDown): it waits, doubling from
// storePauseMin to storePauseMax, and stores the same segment again. Variables so that
// tests can shorten them.
var storePauseMin, storePauseMax = time.Second, time.Minute

// storeSegment writes w's segment with a conditional create. If the key already exists
// it returns the existing segment (opened from its footer) and no error: the caller
// continues the partition's chain from the existing segment's end offset.
//
// With onPause set, a retryable error never skips the segment: storeSegment calls
// onPause, sleeps, and tries again until the segment is stored or ctx ends. Other errors
// (auth, invalid key, ctx) are returned at once, and the caller must not commit past
// the segment.
func storeSegment(ctx context.Context, st storage.Store, w *columnar.SegmentWriter, onPause func(err error, wait time.Duration)) (size int64, existing *columnar.Segment, err error) {
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return 0, nil, fmt.Errorf("encode segment %s: %w", w.Key(), err)
	}
	size = int64(buf.Len())
	for wait := storePauseMin; ; wait = min(2*wait, storePauseMax) {
		err = st.Create(ctx, w.Key(), bytes.NewReader(buf.Bytes()))
		if onPause == nil || !storage.IsRetryable(err) || ctx.Err() != nil {
			break
		}
		onPause(err, wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, nil, fmt.Errorf("store segment %s: stopped while paused: %w (last store error: %w)", w.Key(), context.Cause(ctx), err)
		case <-t.C:
		}
	}
	if errors.Is(err, storage.ErrExists) {
		seg, oerr := columnar.OpenSegment(ctx, st, w.Key(), -1)
		if oerr != nil {
			return 0, nil, fmt.Errorf("segment %s exists but cannot be read: %w", w.Key(), oerr)
		}
		return 0, seg, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("store segment %s: %w", w.Key(), err)
	}
	return size, nil, nil
}
