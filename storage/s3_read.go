package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// GetRange implements Store. The returned reader resumes by itself: when the body breaks
// off (connection reset, stalled for ReadIdleTimeout, cut short), it sends a new ranged
// GET from the first byte not yet delivered, with If-Match on the first response's ETag
// so that a replaced object fails the read instead of splicing two versions.
func (s *S3) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := validKey(key); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", key, off)
	}
	if length == 0 {
		// No bytes wanted; only existence matters.
		if _, err := s.Stat(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(eofReader{}), nil
	}
	rr := &rangeReader{s: s, ctx: ctx, key: key, pos: off, end: -1}
	if length > 0 {
		rr.end = off + length
	}
	err := rr.open(time.Now())
	s.observe(opGet, err)
	if err != nil {
		return nil, err
	}
	return rr, nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// rangeReader streams [pos, end) of one object and resumes after broken bodies.
type rangeReader struct {
	s   *S3
	ctx context.Context
	key string
	pos int64 // next byte to deliver
	end int64 // one past the last byte; -1 until the first response tells the size
	// etag pins the object version after the first response.
	etag string

	body   io.ReadCloser
	actx   context.Context    // the current attempt's context
	cancel context.CancelFunc // ends the current attempt
	idle   *time.Timer        // cuts the current attempt when no byte arrives in time
	done   bool               // EOF reached or closed
	err    error              // sticky
	// streak counts broken bodies since the last byte arrived, from streakStart; the
	// backoff grows and the budget runs over a streak.
	streak      int
	streakStart time.Time
	mu          sync.Mutex // guards cancel against the idle timer
}

// open sends GETs under the retry policy until one delivers a body for [pos, end).
// failedAt is when the current streak of failures began; the budget counts from it.
func (rr *rangeReader) open(failedAt time.Time) error {
	s := rr.s
	budget := *s.retry
	since := time.Since(failedAt)
	budget.policy.Budget = max(budget.policy.Budget-since, time.Nanosecond)
	budget.policy.Unreachable = max(budget.policy.Unreachable-since, time.Nanosecond)
	return budget.do(rr.ctx, opGet, rr.key, 0, func(ctx context.Context) error {
		actx, cancel := context.WithCancelCause(ctx)
		in := &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + rr.key)}
		if rr.pos > 0 || rr.end >= 0 {
			rng := "bytes=" + strconv.FormatInt(rr.pos, 10) + "-"
			if rr.end >= 0 {
				rng += strconv.FormatInt(rr.end-1, 10)
			}
			in.Range = &rng
		}
		if rr.etag != "" {
			in.IfMatch = &rr.etag
		}
		idle := time.AfterFunc(s.opts.ReadIdleTimeout, func() { cancel(errIdle) })
		out, err := s.client.GetObject(actx, in)
		if err != nil {
			idle.Stop()
			cerr := context.Cause(actx)
			cancel(nil)
			status, code := errStatus(err)
			switch {
			case errors.Is(cerr, errIdle) && ctx.Err() == nil:
				return fmt.Errorf("%w: %w", errIdle, err)
			case status == http.StatusRequestedRangeNotSatisfiable || code == "InvalidRange":
				// The range starts at or past the end: the object exists and the range is
				// cut to nothing, as the Store contract says.
				rr.done = true
				return nil
			case rr.etag != "" && (status == http.StatusPreconditionFailed || code == "PreconditionFailed"):
				return fmt.Errorf("s3 %s %s: object was replaced while it was being read: %w", opGet, rr.key, errObjectChanged)
			}
			return err
		}
		if rr.etag == "" {
			rr.etag = aws.ToString(out.ETag)
		}
		if rr.end < 0 {
			rr.end = rr.pos + aws.ToInt64(out.ContentLength)
		}
		rr.mu.Lock()
		rr.body, rr.actx, rr.cancel, rr.idle = out.Body, actx, func() { cancel(nil) }, idle
		rr.mu.Unlock()
		return nil
	})
}

var errObjectChanged = errors.New("object changed during read")

// Read implements io.Reader.
func (rr *rangeReader) Read(p []byte) (int, error) {
	for {
		if rr.err != nil {
			return 0, rr.err
		}
		if rr.done || (rr.end >= 0 && rr.pos >= rr.end) {
			rr.closeBody()
			return 0, io.EOF
		}
		if len(p) == 0 {
			return 0, nil
		}
		if rr.body == nil {
			rr.err = rr.open(time.Now())
			continue
		}
		if left := rr.end - rr.pos; int64(len(p)) > left {
			p = p[:left]
		}
		n, err := rr.body.Read(p)
		if n > 0 {
			rr.streak = 0
			rr.pos += int64(n)
			rr.idle.Reset(rr.s.opts.ReadIdleTimeout)
			rr.s.metrics.readBytes.Add(float64(n))
		}
		if err == nil || (err == io.EOF && rr.pos >= rr.end) {
			if n > 0 {
				return n, nil
			}
			continue
		}
		// The body broke off: io.EOF before end, a reset, or the idle watchdog.
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if errors.Is(context.Cause(rr.actx), errIdle) {
			err = fmt.Errorf("%w: %w", errIdle, err)
		}
		rr.closeBody()
		if cerr := rr.ctx.Err(); cerr != nil {
			rr.err = context.Cause(rr.ctx)
			return n, rr.err
		}
		if rr.err = rr.resume(err); rr.err != nil {
			return n, rr.err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// resume counts the broken body as a retry and reopens at pos.
func (rr *rangeReader) resume(cause error) error {
	s := rr.s
	reason, perr, retry := s.classify(opGet, rr.key, cause, false)
	if !retry {
		return fmt.Errorf("read %s at %d: %w", rr.key, rr.pos, perr)
	}
	if rr.streak == 0 {
		rr.streakStart = time.Now()
	}
	rr.streak++
	// Bytes arrived until the streak began: the store was there then.
	if err := s.retry.wait(rr.ctx, opGet, rr.key, reason, rr.streak, rr.streakStart, rr.streakStart, cause); err != nil {
		return err
	}
	return rr.open(rr.streakStart)
}

func (rr *rangeReader) closeBody() {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if rr.body == nil {
		return
	}
	rr.idle.Stop()
	rr.body.Close()
	rr.cancel()
	rr.body, rr.actx, rr.cancel, rr.idle = nil, nil, nil, nil
}

// Close implements io.Closer.
func (rr *rangeReader) Close() error {
	rr.closeBody()
	rr.done = true
	if rr.err == nil {
		rr.err = errors.New("read after close")
	}
	return nil
}
