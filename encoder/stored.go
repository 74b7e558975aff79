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
	// The key goes into every CorruptFileError the reader returns, also when a series is
	// decoded later.
	r, err := Open(bytes.NewReader(b), int64(len(b)), FileName(key))
	if err != nil {
		if IsCorrupt(err) {
			return nil, err // it names the key already
		}
		return nil, fmt.Errorf("open %s: %w", key, err)
	}
	return r, nil
}
