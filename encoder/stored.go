package encoder

import (
	"bytes"
	"context"
	"fmt"

	"github.com/tailor-metrics/tailor/storage"
)

// OpenStored reads the series file at key of st whole and opens it: its callers decode
// all or most of its series, so one GET is cheaper than a ranged read per series.
func OpenStored(ctx context.Context, st storage.Store, key string) (*Reader, error) {
	b, err := storage.ReadAll(ctx, st, key)
	if err != nil {
		return nil, err
	}
	r, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", key, err)
	}
	return r, nil
}
