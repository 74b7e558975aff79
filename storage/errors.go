package storage

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNotExist is returned when a key does not exist.
var ErrNotExist = errors.New("object does not exist")

// ErrExists is returned by Create when the key already exists (S3: 412 Precondition
// Failed, or 409 ConditionalRequestConflict when another conditional write of the same key
// was in flight).
var ErrExists = errors.New("object already exists")

// ErrNoStore is returned when a store opened for reading does not exist: a local
// directory that is missing, or a store without any of the keys a reader needs (see
// CheckData). Errors that wrap it are *NoStoreError.
var ErrNoStore = errors.New("store does not exist")

// NoStoreError says which store does not exist, or which of its key prefixes a reader
// found empty. It wraps ErrNoStore. The message names the store (without credentials);
// what the user should do depends on the command, which adds it.
type NoStoreError struct {
	URL string // the store's URL, credential-free
	// Dir is the missing local directory; empty when the store exists but holds none of
	// Prefixes.
	Dir      string
	Prefixes []string
}

func (e *NoStoreError) Error() string {
	if e.Dir != "" {
		return fmt.Sprintf("store %s does not exist (no directory %s)", e.URL, e.Dir)
	}
	return fmt.Sprintf("store %s holds no Tailor data (no keys under %s)", e.URL, strings.Join(e.Prefixes, " or "))
}

func (e *NoStoreError) Unwrap() error { return ErrNoStore }

// Reason is why a store request was retried. It is the label of the retry counters.
type Reason uint8

// Retry reasons.
const (
	ReasonSlowDown  Reason = iota + 1 // 503 SlowDown: the bucket partition is throttling.
	ReasonThrottled                   // 429 or a throttling error code.
	ReasonServer                      // any other 5xx.
	ReasonTimeout                     // an attempt timed out (no response headers, stalled body, deadline).
	ReasonConnReset                   // connection reset, refused, closed or cut mid-body.

	numReasons = iota + 1
)

// Reasons lists every valid Reason, in label order of the metrics.
var Reasons = []Reason{ReasonSlowDown, ReasonThrottled, ReasonServer, ReasonTimeout, ReasonConnReset}

// String returns the metric label of r.
func (r Reason) String() string {
	switch r {
	case ReasonSlowDown:
		return "slowdown"
	case ReasonThrottled:
		return "throttled"
	case ReasonServer:
		return "5xx"
	case ReasonTimeout:
		return "timeout"
	case ReasonConnReset:
		return "conn_reset"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// IsValid reports whether r is one of the defined reasons.
func (r Reason) IsValid() bool { return r >= ReasonSlowDown && r < numReasons }

// TransientError is a failure that may go away by itself: the store kept getting
// throttled, 5xx or connection errors until its retry budget was spent, or a fault
// injector simulated one. Nothing was stored (Create/Put) or returned (reads).
//
// Callers must not drop the data: the sink pauses and tries the whole operation again
// later. IsRetryable reports true for it.
type TransientError struct {
	Op       string        // S3 operation, e.g. "PutObject", "UploadPart"
	Key      string        // key relative to the store
	Reason   Reason        // reason of the last failed attempt
	Attempts int           // attempts made, ≥1
	Elapsed  time.Duration // time spent, including backoff
	// Unreachable is how long the store gave no answer (connections refused, reset or
	// timing out) when that made the operation give up (RetryPolicy.Unreachable); 0
	// when the budget ran out instead.
	Unreachable time.Duration
	Err         error // the last attempt's error
}

func (e *TransientError) Error() string {
	if e.Unreachable > 0 {
		return fmt.Sprintf("%s %s: store unreachable: no answer for %s, %d attempts (%s): %v",
			e.Op, e.Key, e.Unreachable.Round(time.Millisecond), e.Attempts, e.Reason, e.Err)
	}
	return fmt.Sprintf("%s %s: gave up after %d attempts in %s (%s): %v",
		e.Op, e.Key, e.Attempts, e.Elapsed.Round(time.Millisecond), e.Reason, e.Err)
}

func (e *TransientError) Unwrap() error { return e.Err }

// AuthError is an authentication or authorization failure (403 AccessDenied,
// InvalidAccessKeyId, SignatureDoesNotMatch, expired tokens, no credentials at all). It is
// never retried and never means success: a Create that fails with an AuthError stored
// nothing and the caller must keep its data.
type AuthError struct {
	Op     string
	Key    string
	Status int    // HTTP status, 0 when no request was sent (no credentials)
	Code   string // S3 error code, e.g. "SignatureDoesNotMatch"
	// NoCredentials is set when the AWS credentials chain found none; Chain then says
	// what it tried.
	NoCredentials bool
	Chain         string
	Err           error
}

func (e *AuthError) Error() string {
	what := e.Op
	if e.Key != "" {
		what += " " + e.Key
	}
	if e.NoCredentials {
		return fmt.Sprintf("%s: no AWS credentials found (tried %s): %v", what, e.Chain, e.Err)
	}
	code := e.Code
	if e.Status != 0 {
		code = strings.TrimSpace(fmt.Sprintf("%d %s", e.Status, e.Code))
	}
	return fmt.Sprintf("%s: access denied (%s): check the AWS credentials chain "+
		"(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_SESSION_TOKEN expiry, instance or pod role), "+
		"the region and endpoint, and that the bucket policy allows this operation: %v", what, code, e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }

// IsRetryable reports whether err is transient: trying the same operation again later may
// succeed. It is false for ErrExists, ErrNotExist, auth errors, invalid keys and the
// caller's context being cancelled.
//
// A TransientError whose last attempt timed out wraps context.DeadlineExceeded of that
// attempt; it is still retryable, so the check for it comes first.
func IsRetryable(err error) bool {
	var te *TransientError
	return errors.As(err, &te)
}

// IsAuth reports whether err is an authentication or authorization failure.
func IsAuth(err error) bool {
	var ae *AuthError
	return errors.As(err, &ae)
}
