package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// storeSegment writes w's segment with a conditional create. If the key already exists
// it returns the existing segment (opened from its footer) and no error: the caller
// continues the partition's chain from the existing segment's end offset.
func storeSegment(ctx context.Context, st storage.Store, w *columnar.SegmentWriter) (size int64, existing *columnar.Segment, err error) {
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return 0, nil, fmt.Errorf("encode segment %s: %w", w.Key(), err)
	}
	size = int64(buf.Len())
	err = st.Create(ctx, w.Key(), &buf)
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
