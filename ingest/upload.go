package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// job is one segment upload. The poll loop creates it; one uploader goroutine runs it
// and fills the result fields before it closes done; the poll loop reads them after.
type job struct {
	k       tp
	epoch   uint64
	w       *columnar.SegmentWriter
	rej     rejects
	reason  string
	mem     int64
	started time.Time
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}

	// end is where the partition's chain continues: the segment's end, or the end of
	// the segment someone else stored under the same key (existing).
	end      int64
	existing bool
	size     int64
	// stored and rejCreated carry progress over retries (see storeOnce).
	stored, rejCreated bool
	// err is set when the job was cancelled, fatal when the store failed for good
	// (storage.IsRetryable is false): nothing may be committed for it.
	err, fatal error
}

func (j *job) finished() bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

// upload stores j, retrying retryable errors with exponential backoff and jitter until
// it succeeds or is cancelled. A store error never means success and never drops the
// segment: the partition's next segment waits (and its fetching pauses) until this one
// is stored, or, for a permanent error, the sink stops uncommitted.
func (s *Sink) upload(j *job) {
	defer func() {
		s.upMem.Add(-j.mem)
		s.metrics.inflight.Dec()
		close(j.done)
		s.upWG.Done()
		s.wakeup()
	}()
	select {
	case s.sem <- struct{}{}:
	case <-j.ctx.Done():
		j.err = j.ctx.Err()
		return
	}
	defer func() { <-s.sem }()
	for attempt := 1; ; attempt++ {
		err := s.storeOnce(j)
		if err == nil {
			s.metrics.uploadSeconds.Observe(time.Since(j.started).Seconds())
			return
		}
		if j.ctx.Err() != nil {
			j.err = j.ctx.Err()
			return
		}
		if !storage.IsRetryable(err) {
			s.opt.Logger.Error("segment upload failed for good; stopping, nothing past the stored segments is committed",
				"key", j.w.Key(), "err", err)
			j.fatal = err
			return
		}
		reason := retryReason(err)
		s.metrics.retries.WithLabelValues(reason).Inc()
		s.mu.Lock()
		s.stats.Retries++
		s.mu.Unlock()
		d := backoff(s.opt.RetryBase, s.opt.RetryMax, attempt)
		s.opt.Logger.Warn("segment upload failed; partition paused, retrying", "key", j.w.Key(), "attempt", attempt,
			"reason", reason, "retry_in", d.Round(time.Millisecond), "err", err)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-j.ctx.Done():
			t.Stop()
			j.err = j.ctx.Err()
			return
		}
	}
}

// The default pause between attempts of a segment upload that the store gave up on:
// doubling from storePauseMin to storePauseMax, with jitter (Options.RetryBase and
// RetryMax; tests shorten them there).
const storePauseMin, storePauseMax = time.Second, 30 * time.Second

// retryReason labels a retried upload for the retries metric.
func retryReason(err error) string {
	var te *storage.TransientError
	if errors.As(err, &te) {
		return te.Reason.String()
	}
	return "error"
}

// backoff is the full-jitter delay before retry number attempt (1-based).
func backoff(base, ceil time.Duration, attempt int) time.Duration {
	c := ceil
	if attempt < 32 {
		if d := base << (attempt - 1); d > 0 && d < c {
			c = d
		}
	}
	return c/2 + time.Duration(rand.Int64N(int64(c/2)+1))
}

// storeOnce makes one attempt: store the segment, streaming its bytes into the store
// (which uploads large ones as multipart, parts in parallel), and its rejects file.
//
// The rejects file lives under a key derived from the segment's start, like the
// segment, so two writers of one start (a zombie and the new owner, or a replay with
// other flush boundaries) share it. The protocol keeps it equal to the stored segment's
// rejects: every writer creates it (conditionally) before the segment, so a stored
// segment with rejects always has its file. A writer that then finds the segment
// existing with another end deletes the file only if it created it (the segment's own
// writer had no rejects, or its create would have failed); a writer that stores the
// segment rewrites the file with its own rejects (or deletes it when it has none),
// replacing what a writer that crashed before its segment left behind.
func (s *Sink) storeOnce(j *job) error {
	hdr := j.w.Header()
	rkey := RejectsKey(hdr.Topic, hdr.Partition, hdr.StartOffset, hdr.StartTimestamp)
	rej := j.rej.buf
	if !j.stored {
		if len(rej) > 0 && !j.rejCreated {
			err := s.opt.Store.Create(j.ctx, rkey, bytes.NewReader(rej))
			switch {
			case err == nil:
				j.rejCreated = true
			case !errors.Is(err, storage.ErrExists):
				return fmt.Errorf("store rejects %s: %w", rkey, err)
			}
		}
		end := j.w.EndOffset()
		size, err := createSegment(j.ctx, s.opt.Store, j.w)
		switch {
		case errors.Is(err, storage.ErrExists):
			seg, oerr := existingSegment(j.ctx, s.opt.Store, j.w)
			if oerr != nil {
				return oerr
			}
			j.existing, j.end = true, seg.Footer.EndOffset
			if j.end == end {
				// The same range: our own earlier attempt (a create whose answer was
				// lost) or a writer of the same records. Its rejects are ours.
				break
			}
			if j.rejCreated {
				if err := s.opt.Store.Delete(j.ctx, rkey); err != nil {
					return fmt.Errorf("delete rejects %s of a segment stored by another writer: %w", rkey, err)
				}
			}
			return nil
		case err != nil:
			return err
		default:
			j.end, j.size = end, size
		}
		j.stored = true
		if j.rejCreated {
			return nil
		}
	}
	if len(rej) > 0 {
		if err := s.opt.Store.Put(j.ctx, rkey, bytes.NewReader(rej)); err != nil {
			return fmt.Errorf("store rejects %s: %w", rkey, err)
		}
		return nil
	}
	if err := s.opt.Store.Delete(j.ctx, rkey); err != nil {
		return fmt.Errorf("delete stale rejects %s: %w", rkey, err)
	}
	return nil
}

// runUpload runs j, an upload a partition handed over, in a goroutine of its own.
func (s *Sink) runUpload(j *job) {
	s.upMem.Add(j.mem)
	s.metrics.inflight.Inc()
	s.upWG.Add(1)
	go s.upload(j)
}
