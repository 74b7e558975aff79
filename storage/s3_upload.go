package storage

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Create implements Store with If-None-Match: * on the PutObject, or on the
// CompleteMultipartUpload of a multipart upload; see upload.
func (s *S3) Create(ctx context.Context, key string, r io.Reader) error {
	return s.upload(ctx, key, r, true)
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, r io.Reader) error {
	return s.upload(ctx, key, r, false)
}

// upload streams r to key.
//
// Fast path: a body shorter than one part is buffered and sent as one PutObject. Slow
// path: a streaming multipart upload. The reader fills one pool buffer at a time and hands
// it to a part uploader; at most Concurrency parts are in flight, and the shared
// BufferPool bounds the memory of all uploads together. The uploader never holds a
// half-filled buffer while it waits for the pool, so uploads that share a pool cannot
// deadlock: every buffer taken is either being uploaded (and comes back) or being filled.
//
// Any failure aborts the multipart upload, so no parts are left behind unless the abort
// itself fails (counted in tailor_storage_s3_multipart_uploads_total{result="abort_failed"};
// the bucket lifecycle rule in docs/storage.md removes those).
func (s *S3) upload(ctx context.Context, key string, r io.Reader, conditional bool) error {
	if err := validKey(key); err != nil {
		return err
	}
	// Fast path: a body the store can read at any offset and longer than one part is
	// uploaded from where it lies (see multipartReaderAt).
	if ra, ok := r.(readerAtSeeker); ok {
		cur, err := ra.Seek(0, io.SeekCurrent)
		if err == nil {
			end, err := ra.Seek(0, io.SeekEnd)
			if err == nil && end-cur > int64(s.opts.PartSize) {
				// The body counts as read whatever the outcome, as a streamed one would.
				return s.multipartReaderAt(ctx, key, ra, cur, end-cur, conditional)
			}
			if _, err := ra.Seek(cur, io.SeekStart); err != nil {
				return fmt.Errorf("s3 upload %s: seek body: %w", key, err)
			}
		}
	}
	buf, err := s.pool.Get(ctx)
	if err != nil {
		return fmt.Errorf("s3 upload %s: wait for a part buffer: %w", key, err)
	}
	n, err := io.ReadFull(ctxReader{ctx, r}, buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		defer s.pool.Put(buf)
		return s.putObject(ctx, key, buf[:n], conditional)
	case err != nil:
		s.pool.Put(buf)
		return fmt.Errorf("s3 upload %s: read body: %w", key, err)
	}
	// The first buffer is full. Peek one byte, without taking a second buffer, to tell a
	// body of exactly one part from a longer one.
	var peek [1]byte
	m, err := io.ReadFull(ctxReader{ctx, r}, peek[:])
	if m == 0 {
		if err != nil && err != io.EOF {
			s.pool.Put(buf)
			return fmt.Errorf("s3 upload %s: read body: %w", key, err)
		}
		defer s.pool.Put(buf)
		return s.putObject(ctx, key, buf, conditional)
	}
	return s.multipartUpload(ctx, key, buf, peek[0], r, conditional)
}

// putObject sends body as one PutObject.
func (s *S3) putObject(ctx context.Context, key string, body []byte, conditional bool) error {
	in := &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           aws.String(s.prefix + key),
		ContentLength: aws.Int64(int64(len(body))),
	}
	if conditional {
		in.IfNoneMatch = aws.String("*")
	}
	// ambiguous is set when an attempt may have stored the object without us seeing the
	// response (connection cut, timeout). A later 412 may then be our own write.
	ambiguous, probe := false, false
	err := s.retry.do(ctx, opPut, key, s.opts.RequestTimeout, func(ctx context.Context) error {
		if probe {
			probe = false
			if err := s.probePut(ctx, key, conditional); err != nil {
				return err
			}
		}
		in.Body = bytes.NewReader(body)
		_, err := s.client.PutObject(ctx, in)
		if err != nil && responseStatus(err) == 0 {
			ambiguous, probe = true, true
		}
		return err
	})
	if conditional && err != nil {
		err = s.resolveConditional(ctx, opPut, key, err, ambiguous, func() string {
			sum := md5.Sum(body)
			return hex.EncodeToString(sum[:])
		})
	}
	s.observe(opPut, err)
	if err == nil {
		s.metrics.uploadedBytes.Add(float64(len(body)))
	}
	return err
}

// probePut asks with a HEAD, before a PUT of key that broke off without an answer is
// sent again, what the server would tell it. A server may refuse a PUT before reading
// its body (412 for a conditional PUT of a key that exists, 403) and reset the
// connection: Go's HTTP client then reports the broken write of the body, not the
// answer, and the same body sent again breaks the same way, until the budget is spent.
// Whether the answer or the broken write wins is a race of two goroutines, which a
// loaded machine or the race detector loses nearly every time (TestS3ThroughFaultProxy
// gave up after 355 attempts in 20 s). A HEAD has no body, so its answer arrives.
//
// probePut returns nil when the PUT should be sent again, and otherwise the error to
// stop with: ErrExists for a conditional PUT of a key that exists (the caller then
// compares ETags: it may be our own write), or the HEAD's permanent error (auth, a
// missing bucket), for classify to translate.
func (s *S3) probePut(ctx context.Context, key string, conditional bool) error {
	_, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if err == nil {
		if conditional {
			return fmt.Errorf("s3 %s %s: %w (found by a HEAD after an attempt broke off)", opPut, key, ErrExists)
		}
		return nil
	}
	reason, perr, retry := s.classify(opHead, key, err, false)
	if retry {
		// The PUT that follows is this request's retry: count it as one, so that every
		// failed request shows in the retry counts.
		s.retry.count(opHead, reason)
		s.log.Warn("store request failed; retrying", "op", opHead, "key", key, "reason", reason.String(), "err", err)
		return nil
	}
	if errors.Is(perr, ErrNotExist) {
		return nil
	}
	return err
}

// responseStatus returns the HTTP status of err's response, 0 when no response arrived.
func responseStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// resolveConditional settles a conditional write that failed with err.
//
//   - 412 after an ambiguous attempt: the first attempt may have succeeded and the retry
//     found our own object. If the stored ETag is the one our bytes produce, the Create
//     succeeded. (Another writer with byte-identical content is indistinguishable, and
//     equally harmless: the stored object holds exactly our bytes.)
//   - 409 ConditionalRequestConflict: another conditional write of the key was in flight.
//     If the key exists now, report ErrExists; if not, the other writer failed, and the
//     caller gets a TransientError to try again.
func (s *S3) resolveConditional(ctx context.Context, op, key string, err error, ambiguous bool, wantETag func() string) error {
	status, code := errStatus(err)
	switch {
	case errors.Is(err, ErrExists) && ambiguous:
		etag, herr := s.headETag(ctx, key)
		if herr == nil && etag == wantETag() {
			s.log.Info("conditional create: retry found our own object", "op", op, "key", key, "etag", etag)
			return nil
		}
		return err
	case status == 409 && code == "ConditionalRequestConflict":
		if _, serr := s.Stat(ctx, key); serr == nil {
			return fmt.Errorf("s3 %s %s: %w (%w)", op, key, ErrExists, err)
		}
		return &TransientError{Op: op, Key: key, Reason: ReasonServer, Attempts: 1, Err: err}
	}
	return err
}

// headETag returns the unquoted ETag of key.
func (s *S3) headETag(ctx context.Context, key string) (string, error) {
	var etag string
	err := s.retry.do(ctx, opHead, key, s.opts.RequestTimeout, func(ctx context.Context) error {
		out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
		if err != nil {
			return err
		}
		etag = strings.Trim(aws.ToString(out.ETag), `"`)
		return nil
	})
	return etag, err
}

// multipart is one streaming multipart upload in progress.
type multipart struct {
	s        *S3
	key      string
	uploadID string

	ctx    context.Context // cancelled on the first part failure
	cancel context.CancelCauseFunc
	sem    chan struct{} // parts in flight
	wg     sync.WaitGroup

	mu    sync.Mutex
	parts []types.CompletedPart
	err   error
}

func (s *S3) multipartUpload(ctx context.Context, key string, first []byte, peek byte, r io.Reader, conditional bool) (err error) {
	mp, err := s.newMultipart(ctx, key)
	if err != nil {
		s.pool.Put(first)
		return err
	}
	defer mp.end()
	defer func() {
		if err != nil {
			err = errors.Join(err, mp.abort())
		}
	}()

	size := int64(len(first))
	mp.startBuf(1, first)
	for partNum := int32(2); ; partNum++ {
		if err := mp.failed(); err != nil {
			break
		}
		buf, err := s.pool.Get(mp.ctx)
		if err != nil {
			mp.fail(fmt.Errorf("s3 upload %s: wait for a part buffer: %w", key, err))
			break
		}
		buf[0] = peek
		n, rerr := io.ReadFull(ctxReader{mp.ctx, r}, buf[1:])
		n++
		last := false
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			last = true
		case rerr != nil:
			s.pool.Put(buf)
			mp.fail(fmt.Errorf("s3 upload %s: read body: %w", key, rerr))
		default:
			var p [1]byte
			m, perr := io.ReadFull(ctxReader{mp.ctx, r}, p[:])
			switch {
			case m == 1:
				peek = p[0]
			case perr == io.EOF:
				last = true
			default:
				s.pool.Put(buf)
				mp.fail(fmt.Errorf("s3 upload %s: read body: %w", key, perr))
			}
		}
		if mp.failed() != nil {
			break
		}
		if partNum > maxParts {
			s.pool.Put(buf)
			mp.fail(fmt.Errorf("s3 upload %s: object is larger than %d parts of %d bytes; raise the part size", key, maxParts, s.opts.PartSize))
			break
		}
		size += int64(n)
		mp.startBuf(partNum, buf[:n])
		if last {
			break
		}
	}
	mp.wg.Wait()
	if err := mp.failed(); err != nil {
		return err
	}
	return mp.complete(ctx, conditional, size)
}

// partChecksum is the checksum of every part, declared when the upload is created and
// sent with each part, as the transfer manager does: the SDK computes a CRC32 of each
// part anyway (its default), and with the algorithm declared the server combines the
// parts' checksums at complete time instead of computing a CRC64NVME of every part on
// top (versitygw's default for uploads created without one). The complete request then
// names each part's CRC32.
const partChecksum = types.ChecksumAlgorithmCrc32

// newMultipart starts a multipart upload of key. The caller must call end, and abort
// on failure.
func (s *S3) newMultipart(ctx context.Context, key string) (*multipart, error) {
	var uploadID string
	err := s.retry.do(ctx, opMPCreate, key, s.opts.RequestTimeout, func(ctx context.Context) error {
		out, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
			Bucket: &s.bucket, Key: aws.String(s.prefix + key), ChecksumAlgorithm: partChecksum,
		})
		if err != nil {
			return err
		}
		uploadID = aws.ToString(out.UploadId)
		return nil
	})
	s.observe(opMPCreate, err)
	if err != nil {
		return nil, err
	}
	s.metrics.multipartActive.Inc()
	mctx, cancel := context.WithCancelCause(ctx)
	return &multipart{s: s, key: key, uploadID: uploadID, ctx: mctx, cancel: cancel, sem: make(chan struct{}, s.opts.Concurrency)}, nil
}

// end releases the upload's context and gauge once it completed or was aborted.
func (mp *multipart) end() {
	mp.cancel(nil)
	mp.s.metrics.multipartActive.Dec()
}

// readerAtSeeker is a body the store can read in parts at any offset (*bytes.Reader,
// *os.File, io.SectionReader).
type readerAtSeeker interface {
	io.ReaderAt
	io.Seeker
}

// multipartReaderAt uploads [base, base+size) of ra in parts read straight from ra:
// fast path for bodies already in memory or in a file (the sink's segments). No pool
// buffer is taken and nothing is copied; the parts are read concurrently, at most
// Concurrency at once, as the streaming path does.
func (s *S3) multipartReaderAt(ctx context.Context, key string, ra io.ReaderAt, base, size int64, conditional bool) (err error) {
	partSize := int64(s.opts.PartSize)
	if n := (size + partSize - 1) / partSize; n > maxParts {
		return fmt.Errorf("s3 upload %s: object of %d bytes is larger than %d parts of %d bytes; raise the part size", key, size, maxParts, partSize)
	}
	mp, err := s.newMultipart(ctx, key)
	if err != nil {
		return err
	}
	defer mp.end()
	defer func() {
		if err != nil {
			err = errors.Join(err, mp.abort())
		}
	}()
	for num, off := int32(1), int64(0); off < size && mp.failed() == nil; num, off = num+1, off+partSize {
		n := min(partSize, size-off)
		mp.start(num, n, func() io.ReadSeeker { return io.NewSectionReader(ra, base+off, n) }, func() {})
	}
	mp.wg.Wait()
	if err := mp.failed(); err != nil {
		return err
	}
	return mp.complete(ctx, conditional, size)
}

// startBuf uploads one part from a pool buffer in the background; it takes ownership of
// buf.
func (mp *multipart) startBuf(num int32, buf []byte) {
	mp.start(num, int64(len(buf)), func() io.ReadSeeker { return bytes.NewReader(buf) }, func() { mp.s.pool.Put(buf) })
}

// start uploads one part of size bytes in the background. open returns the part's body
// from its first byte, once per attempt; release runs when the part is done with it.
func (mp *multipart) start(num int32, size int64, open func() io.ReadSeeker, release func()) {
	select {
	case mp.sem <- struct{}{}:
	case <-mp.ctx.Done():
		release()
		mp.fail(context.Cause(mp.ctx))
		return
	}
	mp.wg.Add(1)
	go func() {
		defer mp.wg.Done()
		defer func() { <-mp.sem }()
		defer release()
		part, err := mp.uploadPart(num, size, open)
		if err != nil {
			mp.fail(err)
			return
		}
		mp.mu.Lock()
		mp.parts = append(mp.parts, part)
		mp.mu.Unlock()
	}()
}

// uploadPart sends one part with its CRC32 (see partChecksum) and returns what the
// complete request must name.
func (mp *multipart) uploadPart(num int32, size int64, open func() io.ReadSeeker) (types.CompletedPart, error) {
	s := mp.s
	part := types.CompletedPart{PartNumber: aws.Int32(num)}
	err := s.retry.do(mp.ctx, opMPPart, mp.key, s.opts.RequestTimeout, func(ctx context.Context) error {
		out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:            &s.bucket,
			Key:               aws.String(s.prefix + mp.key),
			UploadId:          &mp.uploadID,
			PartNumber:        aws.Int32(num),
			Body:              open(),
			ContentLength:     aws.Int64(size),
			ChecksumAlgorithm: partChecksum,
		})
		if err != nil {
			return err
		}
		part.ETag, part.ChecksumCRC32 = out.ETag, out.ChecksumCRC32
		return nil
	})
	s.observe(opMPPart, err)
	if err != nil {
		return part, fmt.Errorf("part %d: %w", num, err)
	}
	s.metrics.uploadedBytes.Add(float64(size))
	return part, nil
}

// fail records the first error and stops the other parts.
func (mp *multipart) fail(err error) {
	mp.mu.Lock()
	defer mp.mu.Unlock()
	if mp.err == nil {
		mp.err = err
		mp.cancel(err)
	}
}

func (mp *multipart) failed() error {
	mp.mu.Lock()
	defer mp.mu.Unlock()
	return mp.err
}

// complete publishes the upload. With conditional, If-None-Match: * makes the complete
// fail with 412 when the key exists; versitygw ≥ 1.x and AWS S3 (since 2024-08) honour it.
func (mp *multipart) complete(ctx context.Context, conditional bool, size int64) error {
	s := mp.s
	slices.SortFunc(mp.parts, func(a, b types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
	in := &s3.CompleteMultipartUploadInput{
		Bucket:          &s.bucket,
		Key:             aws.String(s.prefix + mp.key),
		UploadId:        &mp.uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: mp.parts},
	}
	if conditional {
		in.IfNoneMatch = aws.String("*")
	}
	ambiguous := false
	err := s.retry.do(ctx, opMPDone, mp.key, s.opts.RequestTimeout, func(ctx context.Context) error {
		_, err := s.client.CompleteMultipartUpload(ctx, in)
		if err != nil && responseStatus(err) == 0 {
			ambiguous = true
		}
		if err != nil && ambiguous {
			// The complete may have gone through before the connection broke: then the
			// retry finds the upload gone (404 NoSuchUpload) and the object in place.
			if _, code := errStatus(err); code == "NoSuchUpload" {
				return errCompletedElsewhere
			}
		}
		return err
	})
	if errors.Is(err, errCompletedElsewhere) {
		etag, herr := s.headETag(ctx, mp.key)
		if herr == nil && etag == mp.etag() {
			err = nil
		} else {
			err = fmt.Errorf("s3 %s %s: upload %s vanished after an interrupted complete, and the object there is not ours: %w",
				opMPDone, mp.key, mp.uploadID, ErrExists)
		}
	} else if conditional && err != nil {
		err = s.resolveConditional(ctx, opMPDone, mp.key, err, ambiguous, mp.etag)
	}
	s.observe(opMPDone, err)
	switch {
	case err == nil:
		s.metrics.multipart.WithLabelValues("completed").Inc()
		s.log.Debug("multipart upload completed", "key", mp.key, "parts", len(mp.parts), "bytes", size)
		return nil
	case errors.Is(err, ErrExists):
		s.metrics.multipart.WithLabelValues("exists").Inc()
	}
	return err
}

var errCompletedElsewhere = errors.New("multipart upload no longer exists")

// etag is the ETag S3 gives the completed object: the MD5 of the concatenated binary
// part MD5s, a dash, and the part count.
func (mp *multipart) etag() string {
	h := md5.New()
	for _, p := range mp.parts {
		b, err := hex.DecodeString(strings.Trim(aws.ToString(p.ETag), `"`))
		if err != nil {
			return "" // not an MD5 ETag (e.g. SSE-KMS): never matches
		}
		h.Write(b)
	}
	return fmt.Sprintf("%x-%d", h.Sum(nil), len(mp.parts))
}

// abortRounds bounds how often abort aborts one upload that keeps coming back.
const abortRounds = 4

// abort removes the upload's parts. It runs even when the caller's context is done, with
// a short budget of its own; an abort that fails leaves the upload to the bucket
// lifecycle rule.
//
// A part request that was in flight when the upload failed (cut by the cancelled
// context after its body was sent) can still land after the abort and bring the upload
// back: AWS documents this for AbortMultipartUpload, and versitygw re-creates the
// upload's directory. So abort waits a moment, checks with ListParts that the upload is
// gone, and aborts again while it is not (100 ms, 200 ms, 400 ms).
func (mp *multipart) abort() error {
	s := mp.s
	ctx, cancel := context.WithTimeout(context.WithoutCancel(mp.ctx), 2*time.Minute)
	defer cancel()
	err := errors.New("BUG: no abort round ran")
	wait := 100 * time.Millisecond
	for round := range abortRounds {
		if err = mp.abortOnce(ctx); err != nil {
			break
		}
		time.Sleep(wait)
		wait *= 2
		var gone bool
		if gone, err = mp.gone(ctx); err != nil || gone {
			break
		}
		err = fmt.Errorf("the upload still exists after %d aborts (a late part brought it back)", round+1)
	}
	s.observe(opMPAbort, err)
	if err != nil {
		s.metrics.multipart.WithLabelValues("abort_failed").Inc()
		s.log.Warn("abort multipart upload failed; the bucket lifecycle rule will remove its parts",
			"key", mp.key, "upload_id", mp.uploadID, "err", err)
		return fmt.Errorf("abort upload %s: %w", mp.uploadID, err)
	}
	s.metrics.multipart.WithLabelValues("aborted").Inc()
	return nil
}

func (mp *multipart) abortOnce(ctx context.Context) error {
	s := mp.s
	err := s.retry.do(ctx, opMPAbort, mp.key, s.opts.RequestTimeout, func(ctx context.Context) error {
		_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
			Bucket: &s.bucket, Key: aws.String(s.prefix + mp.key), UploadId: &mp.uploadID,
		})
		return err
	})
	if _, code := errStatus(err); code == "NoSuchUpload" {
		return nil // already gone
	}
	return err
}

// gone reports whether the upload no longer exists (ListParts answers NoSuchUpload).
func (mp *multipart) gone(ctx context.Context) (bool, error) {
	s := mp.s
	err := s.retry.do(ctx, opMPList, mp.key, s.opts.RequestTimeout, func(ctx context.Context) error {
		_, err := s.client.ListParts(ctx, &s3.ListPartsInput{
			Bucket: &s.bucket, Key: aws.String(s.prefix + mp.key), UploadId: &mp.uploadID, MaxParts: aws.Int32(1),
		})
		return err
	})
	if _, code := errStatus(err); code == "NoSuchUpload" {
		return true, nil
	}
	return false, err
}
