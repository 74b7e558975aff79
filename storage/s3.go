package storage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tailor-metrics/tailor/internal/conntrack"
)

// S3 limits that shape multipart uploads.
const (
	// MinPartSize is S3's smallest part (all but the last part of an upload).
	MinPartSize = 5 << 20
	// MaxPartSize is S3's largest part.
	MaxPartSize = 5 << 30
	// maxParts is S3's part count limit: with the default 5 MiB parts an object can grow
	// to about 48.8 GiB.
	maxParts = 10000
)

// S3 operation names, used in errors, logs and metric labels.
const (
	opPut      = "PutObject"
	opGet      = "GetObject"
	opHead     = "HeadObject"
	opList     = "ListObjectsV2"
	opDelete   = "DeleteObject"
	opMPCreate = "CreateMultipartUpload"
	opMPPart   = "UploadPart"
	opMPDone   = "CompleteMultipartUpload"
	opMPAbort  = "AbortMultipartUpload"
	opMPList   = "ListParts"
)

// S3Options configure an S3 store. Zero fields take the documented defaults; the CLI
// fills this struct from its flags.
type S3Options struct {
	// PartSize is the multipart part size, and the largest body sent as one PutObject.
	// Default 5 MiB (MinPartSize), at most MaxPartSize. Ignored when Pool is set: the
	// pool's buffer size is the part size.
	PartSize int
	// Concurrency is how many parts of one upload are in flight at once. Default 8.
	Concurrency int
	// Pool bounds the memory of all uploads that share it. Default: a pool of this store
	// of 2·Concurrency+2 buffers of PartSize.
	Pool *BufferPool
	// Retry is the backoff and budget of every request. Zero fields take
	// DefaultRetryPolicy's values.
	Retry RetryPolicy
	// RequestTimeout bounds one attempt of a request that is not a streamed GET body
	// (HEAD, LIST page, a PUT of one part, complete, abort). Default 5m.
	RequestTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for response headers after a request was
	// sent. Default half of Retry.Unreachable (30s).
	ResponseHeaderTimeout time.Duration
	// ReadIdleTimeout: a GET whose body delivers no byte for this long is cut and resumed
	// from where it stopped (counted as a timeout retry). Default half of
	// Retry.Unreachable (30s).
	ReadIdleTimeout time.Duration
	// ListPageSize is MaxKeys of each ListObjectsV2 page. Default 1000 (S3's maximum).
	ListPageSize int
	// Credentials replaces the standard AWS credentials chain. For tests and embedding
	// only: the CLI never sets it, so production credentials always come from the chain.
	Credentials aws.CredentialsProvider
	// Registerer receives the store's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger receives retry and lifecycle logs; nil discards them. Credentials are never
	// logged.
	Logger *slog.Logger
}

func (o S3Options) withDefaults() (S3Options, error) {
	if o.Pool != nil {
		o.PartSize = o.Pool.Size()
	}
	if o.PartSize == 0 {
		o.PartSize = MinPartSize
	}
	if o.PartSize < MinPartSize {
		return o, fmt.Errorf("part size %d is smaller than min allowed %d (S3's smallest part)", o.PartSize, MinPartSize)
	}
	if o.PartSize > MaxPartSize {
		return o, fmt.Errorf("part size %d is larger than max allowed %d", o.PartSize, MaxPartSize)
	}
	if o.Concurrency == 0 {
		o.Concurrency = 8
	}
	if o.Concurrency < 0 || o.Concurrency > 1024 {
		return o, fmt.Errorf("upload concurrency %d out of range [1, 1024]", o.Concurrency)
	}
	if o.Pool == nil {
		p, err := NewBufferPool(o.PartSize, 2*o.Concurrency+2)
		if err != nil {
			return o, err
		}
		o.Pool = p
	}
	o.Retry = o.Retry.withDefaults()
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 5 * time.Minute
	}
	// Half the unreachable bound: a store that hangs is retried once, and the retry
	// logged, before the operation gives up.
	if o.ResponseHeaderTimeout <= 0 {
		o.ResponseHeaderTimeout = o.Retry.Unreachable / 2
	}
	if o.ReadIdleTimeout <= 0 {
		o.ReadIdleTimeout = o.Retry.Unreachable / 2
	}
	if o.ListPageSize == 0 {
		o.ListPageSize = 1000
	}
	if o.ListPageSize < 1 || o.ListPageSize > 1000 {
		return o, fmt.Errorf("list page size %d out of range [1, 1000]", o.ListPageSize)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// S3 is a Store over one bucket and key prefix of S3 or an S3-compatible server.
//
// Retries: the SDK's own retryer is off (aws.NopRetryer), and every request runs under
// this store's retrier instead, so that a request is never retried twice over (SDK
// attempts × ours), the budget is one clock for the whole operation, and every retry is
// counted by reason. See docs/storage.md.
type S3 struct {
	client *s3.Client
	conns  *conntrack.Tracker
	bucket string
	prefix string // "" or ends in "/"
	url    string
	opts   S3Options
	pool   *BufferPool

	retry    *retrier
	counters retryCounters
	metrics  *s3Metrics
	log      *slog.Logger
	// chainFellThrough is set when the credentials come from the end of the default
	// chain (EC2 instance metadata): nothing before it had any, so a failure to get
	// credentials means none were found.
	chainFellThrough bool
}

var (
	_ Store         = (*S3)(nil)
	_ RetryReporter = (*S3)(nil)
)

// S3 URL parameters.
const (
	paramEndpoint  = "endpoint"
	paramPathStyle = "path_style"
	paramRegion    = "region"
)

// OpenS3 opens s3://bucket/prefix with options o. URL parameters: endpoint (else
// AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL), path_style (default true when a custom
// endpoint is set), region (else the AWS chain's region, else us-east-1 when a custom
// endpoint is set).
func OpenS3(ctx context.Context, rawURL string, o S3Options) (*S3, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "s3" {
		return nil, fmt.Errorf("open s3 store %s: want s3://bucket/prefix", Redact(rawURL))
	}
	return openS3URL(ctx, u, o)
}

func openS3URL(ctx context.Context, u *url.URL, o S3Options) (*S3, error) {
	name := Redact(u.String())
	if u.User != nil {
		return nil, fmt.Errorf("open s3 store %s: credentials in the URL are not accepted; "+
			"use the AWS credentials chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, roles)", name)
	}
	if u.Opaque != "" || u.Fragment != "" || u.RawFragment != "" {
		return nil, fmt.Errorf("open s3 store %s: malformed URL: want s3://bucket/prefix?endpoint=…", name)
	}
	bucket := u.Host
	if bucket == "" {
		return nil, fmt.Errorf("open s3 store %s: no bucket; want s3://bucket/prefix", name)
	}
	if err := validBucket(bucket); err != nil {
		return nil, fmt.Errorf("open s3 store %s: %w", name, err)
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		if err := validKey(prefix); err != nil {
			return nil, fmt.Errorf("open s3 store %s: prefix: %w", name, err)
		}
		prefix += "/"
	}
	q, err := s3Query(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("open s3 store %s: %w", name, err)
	}
	endpoint := q[paramEndpoint]
	if endpoint == "" && !envTrue("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") {
		endpoint = os.Getenv("AWS_ENDPOINT_URL_S3")
		if endpoint == "" {
			endpoint = os.Getenv("AWS_ENDPOINT_URL")
		}
	}
	if endpoint != "" {
		eu, err := url.Parse(endpoint)
		if err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Host == "" {
			return nil, fmt.Errorf("open s3 store %s: endpoint is not an http(s) URL (want http://host:port)", name)
		}
		if eu.User != nil {
			// It would end up in logs and in URL(); credentials come from the chain only.
			return nil, fmt.Errorf("open s3 store %s: credentials in the endpoint are not accepted; "+
				"use the AWS credentials chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, roles)", name)
		}
		if eu.RawQuery != "" || eu.Fragment != "" || (eu.Path != "" && eu.Path != "/") {
			return nil, fmt.Errorf("open s3 store %s: endpoint %s has a path or parameters; want http://host:port", name, Redact(endpoint))
		}
		if strings.HasSuffix(eu.Host, ":") {
			return nil, fmt.Errorf("open s3 store %s: endpoint %s: empty port", name, Redact(endpoint))
		}
	}
	pathStyle := endpoint != ""
	if v, ok := q[paramPathStyle]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("open s3 store %s: path_style=%q: want true or false", name, v)
		}
		pathStyle = b
	}
	o, err = o.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("open s3 store %s: %w", name, err)
	}

	conns := conntrack.New()
	// A BuildableClient, not a plain *http.Client: the SDK adds AWS_CA_BUNDLE and the
	// profile's ca_bundle to it, which it refuses to do for other clients.
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = 0 // no global limit
		tr.MaxIdleConnsPerHost = 4*o.Concurrency + 16
		tr.ResponseHeaderTimeout = o.ResponseHeaderTimeout
		tr.ExpectContinueTimeout = time.Second
		// A connect that hangs (a firewall that drops SYNs) ends within half the
		// unreachable bound, as a wait for an answer does.
		dial := (&net.Dialer{Timeout: min(30*time.Second, o.Retry.Unreachable/2), KeepAlive: 30 * time.Second}).DialContext
		tr.DialContext = conns.Dialer(dial)
	})

	loadOpts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(hc),
		// Our retrier replaces the SDK's: see the S3 type comment.
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
		config.WithLogger(logging.Nop{}),
	}
	if r := q[paramRegion]; r != "" {
		loadOpts = append(loadOpts, config.WithRegion(r))
	}
	if o.Credentials != nil {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(o.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("open s3 store %s: load AWS config: %w", name, err)
	}
	if cfg.Region == "" {
		if endpoint == "" {
			return nil, fmt.Errorf("open s3 store %s: no AWS region: set AWS_REGION, a profile region, or ?region=", name)
		}
		cfg.Region = "us-east-1"
	}
	fellThrough := aws.IsCredentialsProvider(cfg.Credentials, &ec2rolecreds.Provider{})
	if err := checkCredentials(ctx, cfg.Credentials, fellThrough, o.Retry.Unreachable); err != nil {
		return nil, fmt.Errorf("open s3 store %s: %w", name, err)
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if endpoint != "" {
			so.BaseEndpoint = aws.String(endpoint)
		}
		so.UsePathStyle = pathStyle
		so.DisableLogOutputChecksumValidationSkipped = true
	})

	s := &S3{
		client:  client,
		conns:   conns,
		bucket:  bucket,
		prefix:  prefix,
		opts:    o,
		pool:    o.Pool,
		metrics: newS3Metrics(o.Registerer),
		log:     o.Logger.With("store", "s3", "bucket", bucket),

		chainFellThrough: fellThrough,
	}
	s.url = "s3://" + bucket
	if prefix != "" {
		s.url += "/" + strings.TrimSuffix(prefix, "/")
	}
	if len(q) > 0 {
		v := url.Values{}
		for k, x := range q {
			v.Set(k, x)
		}
		s.url += "?" + v.Encode()
	}
	s.pool.attach(s.metrics)
	s.retry = &retrier{policy: o.Retry, classify: s.classify, counters: &s.counters, metrics: s.metrics, log: s.log}
	s.log.Debug("opened s3 store", "prefix", prefix, "endpoint", endpoint, "path_style", pathStyle,
		"region", cfg.Region, "part_size", o.PartSize, "concurrency", o.Concurrency)
	return s, nil
}

// checkCredentials gets credentials once, at open, so that a store without any fails
// here with a message that names the chain. Left to the first request, the failure would
// read as "access denied (403)": on machines that are not EC2 instances, the metadata
// service at the end of the chain (or a proxy in its place) may answer 403.
func checkCredentials(ctx context.Context, p aws.CredentialsProvider, fellThrough bool, timeout time.Duration) error {
	if p == nil {
		return &AuthError{Op: "get credentials", NoCredentials: true, Chain: credentialChain(),
			Err: errors.New("the AWS config names no credentials provider")}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := p.Retrieve(ctx); err != nil {
		ae := &AuthError{Op: "get credentials", Code: "no usable credentials", Err: err}
		if fellThrough {
			ae.NoCredentials, ae.Chain = true, credentialChain()
		}
		return ae
	}
	return nil
}

// credentialChain describes the default AWS credentials chain as this process sees it,
// in the order the SDK tries it.
func credentialChain() string {
	profile := cmp.Or(os.Getenv("AWS_PROFILE"), os.Getenv("AWS_DEFAULT_PROFILE"), "default")
	cfgFile := cmp.Or(os.Getenv("AWS_CONFIG_FILE"), config.DefaultSharedConfigFilename())
	credFile := cmp.Or(os.Getenv("AWS_SHARED_CREDENTIALS_FILE"), config.DefaultSharedCredentialsFilename())
	imds := "EC2 instance metadata"
	if envTrue("AWS_EC2_METADATA_DISABLED") {
		imds += " (disabled by AWS_EC2_METADATA_DISABLED)"
	}
	return fmt.Sprintf("the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), a web identity token "+
		"(AWS_WEB_IDENTITY_TOKEN_FILE), profile %q in %s and %s (keys, SSO, credential_process), "+
		"container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or _FULL_URI), %s",
		profile, credFile, cfgFile, imds)
}

func envTrue(name string) bool {
	b, _ := strconv.ParseBool(os.Getenv(name))
	return b
}

// URL implements Store. It carries the explicit URL parameters, never credentials.
func (s *S3) URL() string { return s.url }

// Close implements Store.
// Requests still in flight fail.
func (s *S3) Close() error {
	s.conns.Cut(errStoreClosed)
	return nil
}

// errStoreClosed fails the dials of a closed store. Close closes the store's open
// connections through its tracker: the SDK clones the transport it is given, so the store
// cannot call CloseIdleConnections on the one in use, and idle keep-alive connections
// would outlive the store.
var errStoreClosed = errors.New("s3 store is closed")

// RetryStats implements RetryReporter.
func (s *S3) RetryStats() RetryStats { return s.counters.snapshot() }

// Bucket returns the store's bucket.
func (s *S3) Bucket() string { return s.bucket }

// ObjectKey returns the bucket key that holds key: the store's prefix + key.
func (s *S3) ObjectKey(key string) string { return s.prefix + key }

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (Attrs, error) {
	if err := validKey(key); err != nil {
		return Attrs{}, err
	}
	var size int64
	err := s.retry.do(ctx, opHead, key, s.opts.RequestTimeout, func(ctx context.Context) error {
		out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
		if err != nil {
			return err
		}
		size = aws.ToInt64(out.ContentLength)
		return nil
	})
	s.observe(opHead, err)
	if err != nil {
		return Attrs{}, err
	}
	return Attrs{Key: key, Size: size}, nil
}

// List implements Store. Pages of ListPageSize keys are fetched one at a time, each
// under the retry policy; S3 lists keys in lexical (UTF-8 byte) order.
func (s *S3) List(ctx context.Context, prefix string, fn func(Attrs) error) error {
	var token *string
	full := s.prefix + prefix
	for {
		var out *s3.ListObjectsV2Output
		err := s.retry.do(ctx, opList, prefix, s.opts.RequestTimeout, func(ctx context.Context) error {
			var err error
			out, err = s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
				Bucket:            &s.bucket,
				Prefix:            aws.String(full),
				ContinuationToken: token,
				MaxKeys:           aws.Int32(int32(s.opts.ListPageSize)),
			})
			return err
		})
		s.observe(opList, err)
		if err != nil {
			return err
		}
		for _, obj := range out.Contents {
			k := aws.ToString(obj.Key)
			if len(k) <= len(s.prefix) || !strings.HasPrefix(k, s.prefix) {
				continue
			}
			if err := fn(Attrs{Key: k[len(s.prefix):], Size: aws.ToInt64(obj.Size)}); err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
			return nil
		}
		token = out.NextContinuationToken
	}
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := validKey(key); err != nil {
		return err
	}
	err := s.retry.do(ctx, opDelete, key, s.opts.RequestTimeout, func(ctx context.Context) error {
		_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
		return err
	})
	if errors.Is(err, ErrNotExist) {
		err = nil
	}
	s.observe(opDelete, err)
	return err
}

// observe counts one finished operation by outcome.
func (s *S3) observe(op string, err error) {
	outcome := "ok"
	switch {
	case err == nil:
	case errors.Is(err, ErrExists):
		outcome = "exists"
	case errors.Is(err, ErrNotExist):
		outcome = "not_found"
	case IsAuth(err):
		outcome = "auth"
	case IsRetryable(err):
		outcome = "retry"
	default:
		outcome = "error"
	}
	s.metrics.requests.WithLabelValues(op, outcome).Inc()
}

// errIdle marks an attempt that the read-idle watchdog cut.
var errIdle = errors.New("no progress within the read idle timeout")

// throttleCodes are S3 and AWS error codes that mean "slow down" besides 503 SlowDown.
var throttleCodes = map[string]bool{
	"Throttling": true, "ThrottlingException": true, "ThrottledException": true,
	"RequestThrottledException": true, "TooManyRequestsException": true, "TooManyRequests": true,
	"RequestLimitExceeded": true, "BandwidthLimitExceeded": true, "RequestThrottled": true,
	"ProvisionedThroughputExceededException": true, "EC2ThrottledException": true,
}

// authCodes are error codes that mean the credentials or the policy are wrong.
var authCodes = map[string]bool{
	"AccessDenied": true, "InvalidAccessKeyId": true, "SignatureDoesNotMatch": true,
	"ExpiredToken": true, "InvalidToken": true, "TokenRefreshRequired": true,
	"AllAccessDisabled": true, "AccountProblem": true, "InvalidSecurity": true,
	"UnrecognizedClientException": true, "InvalidClientTokenId": true, "MissingSecurityHeader": true,
	"AuthorizationHeaderMalformed": true,
	// versitygw answers an unknown access key with 404 XAdminUserNotFound.
	"XAdminUserNotFound": true,
}

// errStatus returns the HTTP status and S3 error code of err, zero when it has none.
func errStatus(err error) (int, string) {
	status, code := 0, ""
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	return status, code
}

// classify implements classifyFunc for S3: it decides retry or stop, and translates
// permanent errors into ErrExists, ErrNotExist and AuthError.
func (s *S3) classify(op, key string, err error, attemptTimedOut bool) (Reason, error, bool) {
	if attemptTimedOut || errors.Is(err, errIdle) {
		return ReasonTimeout, nil, true
	}
	// A request that could not get credentials may still carry an HTTP status: that of
	// the credentials service (the EC2 metadata service answers 403 off EC2), not S3's.
	// So this comes before the status checks. The SDK wraps credential failures in plain
	// strings: "get identity: get credentials: failed to refresh cached credentials, ...".
	var se *v4.SigningError
	if msg := err.Error(); errors.As(err, &se) || strings.Contains(msg, "get identity") ||
		strings.Contains(msg, "failed to refresh cached credentials") || strings.Contains(msg, "get credentials") {
		ae := &AuthError{Op: op, Key: key, Code: "no usable credentials", Err: err}
		if s.chainFellThrough {
			ae.NoCredentials, ae.Chain = true, credentialChain()
		}
		return 0, ae, false
	}
	status, code := errStatus(err)
	wrap := func(target error) error {
		return fmt.Errorf("s3 %s %s: %w (%w)", op, key, target, err)
	}
	switch {
	case code == "SlowDown" || code == "SlowDownRead" || code == "SlowDownWrite",
		status == http.StatusServiceUnavailable && (code == "" || code == "ServiceUnavailable" || code == "UnknownError"):
		// A HEAD has no body, so its 503 carries no code; S3's 503s are SlowDown.
		return ReasonSlowDown, nil, true
	case status == http.StatusTooManyRequests || throttleCodes[code]:
		return ReasonThrottled, nil, true
	case code == "RequestTimeout" || code == "RequestTimeoutException":
		// 400 RequestTimeout: the server gave up reading a slow request body.
		return ReasonTimeout, nil, true
	case code == "NoSuchBucket":
		return 0, fmt.Errorf("s3 %s %s: bucket %q does not exist: check the s3:// URL, the endpoint and the region: %w",
			op, key, s.bucket, err), false
	case code == "NoSuchUpload":
		// The multipart upload is gone (aborted, or removed by the lifecycle rule). The
		// object was not written; the caller may start the whole upload again.
		return 0, &TransientError{Op: op, Key: key, Reason: ReasonServer, Attempts: 1, Err: err}, false
	case status == http.StatusPreconditionFailed || code == "PreconditionFailed":
		return 0, wrap(ErrExists), false
	case status == http.StatusForbidden || status == http.StatusUnauthorized || authCodes[code]:
		return 0, &AuthError{Op: op, Key: key, Status: status, Code: code, Err: err}, false
	case code == "NoSuchKey" || code == "NotFound" || (status == http.StatusNotFound && code == ""):
		// Only these mean "no such object". Any other 404 (a gateway's own codes) must
		// not make a reader believe an object is missing.
		return 0, wrap(ErrNotExist), false
	case status >= 500:
		return ReasonServer, nil, true
	case status != 0:
		return 0, fmt.Errorf("s3 %s %s: %w", op, key, err), false
	}
	// No HTTP response: the request could not be sent, or its response read.
	if reason, ok := transportReason(err); ok {
		return reason, nil, true
	}
	return 0, fmt.Errorf("s3 %s %s: %w", op, key, err), false
}

// transportReason classifies a network-level failure.
func transportReason(err error) (Reason, bool) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ReasonTimeout, true
	}
	var rse *smithyhttp.RequestSendError
	switch {
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return ReasonConnReset, true
	case errors.As(err, &rse):
		// Any other failure to send or to read the response: the connection is gone.
		return ReasonConnReset, true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return ReasonConnReset, true
	}
	// net/http reports a connection closed while reading a response with plain errors.
	msg := err.Error()
	if strings.Contains(msg, "connection reset") || strings.Contains(msg, "broken pipe") ||
		strings.Contains(msg, "server closed") || strings.Contains(msg, "transport connection broken") {
		return ReasonConnReset, true
	}
	return 0, false
}
