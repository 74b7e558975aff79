package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// createSegment streams w's segment into a conditional create of its key: the bytes
// flow through a pipe, so the store (S3: a multipart upload with parts in parallel,
// local: a temp file) holds at most its own part buffers, never a second copy of the
// segment. It returns the bytes written, or an error wrapping storage.ErrExists if the
// key exists. w.WriteTo writes the same bytes each time, so a failed attempt is retried
// by calling createSegment again.
func createSegment(ctx context.Context, st storage.Store, w *columnar.SegmentWriter) (int64, error) {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := w.WriteTo(pw)
		pw.CloseWithError(err)
	}()
	cr := &countReader{r: pr}
	err := st.Create(ctx, w.Key(), cr)
	// Unblock the writer if the store stopped reading early (error or ErrExists), and
	// wait for it: a retry must not run WriteTo while this one still seals frames.
	pr.CloseWithError(errors.New("upload ended"))
	<-done
	if err != nil {
		return 0, fmt.Errorf("store segment %s: %w", w.Key(), err)
	}
	return cr.n, nil
}

// existingSegment opens the segment stored under w's key.
func existingSegment(ctx context.Context, st storage.Store, w *columnar.SegmentWriter) (*columnar.Segment, error) {
	seg, err := columnar.OpenSegment(ctx, st, w.Key(), -1)
	if err != nil {
		return nil, fmt.Errorf("segment %s exists but cannot be read: %w", w.Key(), err)
	}
	return seg, nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
