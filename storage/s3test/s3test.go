// Package s3test runs a real S3 API server for tests: versitygw (Apache-2.0, an S3
// gateway over a POSIX directory), built once by scripts/versitygw.sh, started on a free
// loopback port with a fresh data directory, and stopped when the test ends.
//
// Any package's tests can use it:
//
//	srv := s3test.Start(t)                 // fails the test if versitygw is not built
//	st := srv.Open(t, "run1", storage.S3Options{})   // *storage.S3 on s3://<bucket>/run1
//	url := srv.URL("run1")                 // for code that opens stores by URL; call
//	srv.Setenv(t)                          // first, so the AWS chain finds the test keys
//
// A FaultProxy between the client and the server injects 503 SlowDown bursts, slow
// responses and dropped connections: see StartFaultProxy and Server.OpenVia.
//
// The helpers take a TB, which *testing.T and *testing.B satisfy; the package does not
// import testing, so a command can run the same server and proxy without a test
// (tailor-batch gameday): Launch, NewFaultProxy and the methods that return errors.
//
// The binary is found at $TAILOR_VERSITYGW, else
// ${TAILOR_CACHE:-$HOME/.cache/tailor}/bin/versitygw. A missing binary fails the test
// (CI must run these tests, not skip them): run scripts/versitygw.sh (make tools).
package s3test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/tailor-metrics/tailor/storage"
)

// Test credentials of every server. They are not secret.
const (
	AccessKey = "tailor-test-access"
	SecretKey = "tailor-test-secret-key-0123456789"
	Region    = "us-east-1"
)

// Server is one running versitygw.
type Server struct {
	// Endpoint is http://127.0.0.1:<port>.
	Endpoint string
	// Bucket is an empty bucket created at start.
	Bucket string
	// Dir is the gateway's data directory: one subdirectory per bucket.
	Dir string

	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
	// hc serves every plain SDK client of the server (Client, ClientVia), so that Stop
	// can close their idle connections: each would keep two goroutines alive.
	hc *http.Client
}

var bucketSeq atomic.Int64

// TB is what the helpers need of a test: testing.TB has every method.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
	Setenv(key, value string)
}

// Binary returns the versitygw binary path, or an error that says how to build it.
func Binary() (string, error) {
	p := os.Getenv("TAILOR_VERSITYGW")
	if p == "" {
		cache := os.Getenv("TAILOR_CACHE")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("versitygw: no TAILOR_VERSITYGW, TAILOR_CACHE or home directory: %w", err)
			}
			cache = filepath.Join(home, ".cache", "tailor")
		}
		p = filepath.Join(cache, "bin", "versitygw")
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("versitygw binary %s not found: run scripts/versitygw.sh (make tools) to build it: %w", p, err)
	}
	return p, nil
}

// Start starts a versitygw with a fresh data directory and one empty bucket, and stops it
// when t ends. It fails t when the binary is missing or the server does not come up.
func Start(t TB) *Server {
	t.Helper()
	srv, err := Launch(t.TempDir())
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// Launch starts a versitygw with its data under dir (which must exist) and one empty
// bucket; Stop stops it.
func Launch(dir string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	var lastErr error
	// A free port can be taken between probing and binding; try a few times.
	for i := range 3 {
		d := filepath.Join(dir, fmt.Sprintf("versitygw-%d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, fmt.Errorf("start versitygw: %w", err)
		}
		srv, err := start(bin, d)
		if err == nil {
			return srv, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("start versitygw: %w", lastErr)
}

func start(bin, dir string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		return nil, err
	}
	args := []string{
		"--port", fmt.Sprintf("127.0.0.1:%d", port),
		"--access", AccessKey, "--secret", SecretKey, "--region", Region,
		"--quiet", "--keep-alive",
		"posix",
	}
	if !xattrSupported(dir) {
		// versitygw keeps ETags and metadata in xattrs; without them it needs a sidecar
		// directory, or conditional writes would not see existing objects.
		side := filepath.Join(dir, "meta")
		if err := os.Mkdir(side, 0o755); err != nil {
			return nil, err
		}
		args = append(args, "--sidecar", side)
	}
	args = append(args, data)
	cmd := exec.Command(bin, args...)
	// Only what versitygw needs: no AWS or VGW settings leak in from the developer's shell.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	srv := &Server{
		Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port),
		Dir:      data,
		cmd:      cmd,
		logs:     logs,
		done:     make(chan struct{}),
		hc:       &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
	}
	go func() { cmd.Wait(); close(srv.done) }()
	if err := srv.waitReady(15 * time.Second); err != nil {
		srv.Stop()
		return nil, err
	}
	if srv.Bucket, err = srv.NewBucket(""); err != nil {
		srv.Stop()
		return nil, err
	}
	return srv, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func xattrSupported(dir string) bool {
	return setXattrProbe(dir) == nil
}

func (s *Server) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("versitygw exited at start: %s", s.logs.String())
		default:
		}
		// Any HTTP answer (403 for an unsigned request) means the gateway serves.
		resp, err := http.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("versitygw at %s not ready after %s: %s", s.Endpoint, limit, s.logs.String())
}

// Stop stops the gateway (an interrupt, then a kill after 5 s) and waits for it.
func (s *Server) Stop() {
	s.hc.CloseIdleConnections()
	if s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// Logs returns what the gateway printed.
func (s *Server) Logs() string { return s.logs.String() }

// Kill stops the gateway at once, for tests of a store that loses its server.
func (s *Server) Kill() {
	s.cmd.Process.Kill()
	<-s.done
}

// Credentials returns a static provider of the test keys.
func Credentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, "")
}

// Client returns a plain SDK client of the server (no Tailor retries), for setup and
// inspection.
func (s *Server) Client() *s3.Client {
	return s.ClientVia(s.Endpoint)
}

// ClientVia returns a plain SDK client that sends its requests to endpoint, e.g. a
// FaultProxy in front of the server.
func (s *Server) ClientVia(endpoint string) *s3.Client {
	return s3.New(s3.Options{
		HTTPClient:   s.hc,
		Region:       Region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  Credentials(),
		Retryer:      aws.NopRetryer{},
	})
}

// CreateBucket creates a bucket and returns its name; "" picks a fresh name.
func (s *Server) CreateBucket(t TB, name string) string {
	t.Helper()
	name, err := s.NewBucket(name)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return name
}

// NewBucket is CreateBucket returning its error.
func (s *Server) NewBucket(name string) (string, error) {
	if name == "" {
		name = fmt.Sprintf("tailor-test-%d", bucketSeq.Add(1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &name}); err != nil {
		return "", fmt.Errorf("create bucket %s: %w\n%s", name, err, s.logs.String())
	}
	return name, nil
}

// URL returns the s3:// URL of prefix in the server's bucket, with the endpoint as a URL
// parameter. Opening it needs the test credentials in the AWS chain: see Setenv.
func (s *Server) URL(prefix string) string {
	return s.URLVia(s.Endpoint, prefix)
}

// URLVia is URL with requests sent to endpoint (a FaultProxy).
func (s *Server) URLVia(endpoint, prefix string) string {
	u := "s3://" + s.Bucket
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		u += "/" + prefix
	}
	return u + "?endpoint=" + endpoint
}

// Setenv points the standard AWS credentials chain at the test keys for the rest of t,
// and shuts out the developer's own AWS config, profiles and instance metadata. Like
// t.Setenv it cannot be used in parallel tests; use Open there.
func (s *Server) Setenv(t TB) {
	t.Helper()
	Setenv(t)
}

// Setenv sets the test credentials in the environment (see Server.Setenv).
func Setenv(t TB) {
	t.Helper()
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           AccessKey,
		"AWS_SECRET_ACCESS_KEY":       SecretKey,
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  Region,
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_ENDPOINT_URL":            "",
		"AWS_ENDPOINT_URL_S3":         "",
	} {
		t.Setenv(k, v)
	}
}

// Open opens prefix of the server's bucket as a Tailor store with the test credentials
// and options o, and closes it when t ends.
func (s *Server) Open(t TB, prefix string, o storage.S3Options) *storage.S3 {
	t.Helper()
	return s.OpenVia(t, s.Endpoint, prefix, o)
}

// OpenVia is Open with requests sent to endpoint (a FaultProxy).
func (s *Server) OpenVia(t TB, endpoint, prefix string, o storage.S3Options) *storage.S3 {
	t.Helper()
	st, err := s.OpenStore(endpoint, prefix, o)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// OpenStore opens prefix of the server's bucket as a Tailor store that sends its
// requests to endpoint (the server's or a FaultProxy's), with the test credentials unless
// o has its own. The caller closes it.
func (s *Server) OpenStore(endpoint, prefix string, o storage.S3Options) (*storage.S3, error) {
	if o.Credentials == nil {
		o.Credentials = Credentials()
	}
	st, err := storage.OpenS3(context.Background(), s.URLVia(endpoint, prefix), o)
	if err != nil {
		return nil, fmt.Errorf("open s3 store: %w", err)
	}
	return st, nil
}

// MultipartUploads returns the keys of the bucket's unfinished multipart uploads.
func (s *Server) MultipartUploads(t TB) []string {
	t.Helper()
	keys, err := s.ListMultipartUploads(context.Background())
	if err != nil {
		t.Fatalf("%v", err)
	}
	return keys
}

// ListMultipartUploads is MultipartUploads returning its error.
func (s *Server) ListMultipartUploads(ctx context.Context) ([]string, error) {
	out, err := s.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &s.Bucket})
	if err != nil {
		return nil, fmt.Errorf("list multipart uploads: %w", err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key))
	}
	return keys, nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() > 1<<20 {
		return len(p), nil // keep the head: start-up errors are what matter
	}
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// NoRoleMetadata points the AWS SDK's instance metadata client, for the rest of t, at a
// server on loopback that answers like an EC2 instance without a role (404 to
// everything). A test of the credentials chain then dials nothing outside the machine,
// and the server's cleanup ends the SDK's keep-alive connection to it, which the SDK
// would otherwise keep open (two goroutines) for 90 s.
func NoRoleMetadata(t TB) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("instance metadata server: %v", err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://"+l.Addr().String())
}
