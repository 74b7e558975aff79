package s3test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FaultKind is what a FaultProxy does to a request.
type FaultKind uint8

// Fault kinds.
const (
	// SlowDown answers 503 SlowDown without forwarding the request.
	SlowDown FaultKind = iota + 1
	// TooManyRequests answers 429 without forwarding.
	TooManyRequests
	// InternalError answers 500 InternalError without forwarding.
	InternalError
	// Slow waits Delay, then forwards the request normally.
	Slow
	// Drop closes the client's connection without forwarding: the request never reached
	// the server.
	Drop
	// DropResponse forwards the request, lets the server finish it, then closes the
	// connection without answering: the client cannot know whether the write happened.
	DropResponse
	// DropMidBody forwards, sends the response headers and AfterBytes bytes of the body,
	// then closes the connection.
	DropMidBody
	// Stall forwards, sends the headers and AfterBytes bytes of the body, waits Delay,
	// then sends the rest: a body that stops making progress for a while.
	Stall
)

var kindNames = map[FaultKind]string{
	SlowDown: "slowdown", TooManyRequests: "429", InternalError: "500", Slow: "slow",
	Drop: "drop", DropResponse: "drop_response", DropMidBody: "drop_mid_body", Stall: "stall",
}

func (k FaultKind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ProxyRule selects requests and says what goes wrong with them.
type ProxyRule struct {
	Kind FaultKind
	// Op is the S3 operation to match, e.g. "PutObject", "UploadPart",
	// "CompleteMultipartUpload", "GetObject", "HeadObject", "ListObjectsV2"; "" matches
	// every request. See OpOf.
	Op string
	// Match, if set, must also return true.
	Match func(*http.Request) bool
	// After lets the first After matching requests through.
	After int
	// Burst and Period make bursts: of every Period matching requests, the first Burst
	// are hit. Period 0 hits every matching request.
	Burst, Period int
	// Times caps the hits; 0 means no cap.
	Times int
	// Delay is the wait of Slow and Stall.
	Delay time.Duration
	// AfterBytes is how much of the body DropMidBody and Stall send first.
	AfterBytes int64
}

// ProxyFault is one rule in a FaultProxy.
type ProxyFault struct {
	rule    ProxyRule
	proxy   *FaultProxy
	matched atomic.Int64
	hits    atomic.Int64
}

// Hits returns how many requests the fault acted on.
func (f *ProxyFault) Hits() int { return int(f.hits.Load()) }

func (f *ProxyFault) unhit() {
	f.hits.Add(-1)
	f.proxy.mu.Lock()
	f.proxy.hits[f.rule.Kind]--
	f.proxy.mu.Unlock()
}

// Remove takes the fault out of the proxy.
func (f *ProxyFault) Remove() {
	p := f.proxy
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, g := range p.faults {
		if g == f {
			p.faults = append(p.faults[:i:i], p.faults[i+1:]...)
			return
		}
	}
}

// FaultProxy is an HTTP proxy on loopback between an S3 client and a server, which
// injects faults into chosen requests. It keeps the Host header, so SigV4 signatures made
// for the proxy's address verify at the server. Rules can change while it runs.
type FaultProxy struct {
	// URL is http://127.0.0.1:<port>, the endpoint to give clients.
	URL string

	upstream string
	srv      *http.Server
	// closed ends the faults that wait (Slow, Stall) when the proxy closes: a handler
	// still reading a request's body never sees its client go.
	closed chan struct{}

	mu       sync.Mutex
	faults   []*ProxyFault
	hits     map[FaultKind]int
	requests map[string]int
	inFlight map[string]int
	maxIn    map[string]int
	total    atomic.Int64

	badGateway atomic.Int64
}

// BadGateway returns how many requests failed because the upstream could not be reached
// (not injected faults).
func (p *FaultProxy) BadGateway() int { return int(p.badGateway.Load()) }

// StartFaultProxy starts a proxy to upstream (http://host:port) and stops it when t
// ends.
func StartFaultProxy(t TB, upstream string) *FaultProxy {
	t.Helper()
	p, err := NewFaultProxy(upstream)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// NewFaultProxy starts a proxy to upstream (http://host:port) for callers that are not
// tests (the gameday command); Close stops it.
func NewFaultProxy(upstream string) (*FaultProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fault proxy: listen: %w", err)
	}
	p := &FaultProxy{
		URL:      "http://" + l.Addr().String(),
		upstream: strings.TrimSuffix(upstream, "/"),
		hits:     map[FaultKind]int{},
		requests: map[string]int{},
		inFlight: map[string]int{},
		maxIn:    map[string]int{},
		closed:   make(chan struct{}),
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second}
	go p.srv.Serve(l)
	return p, nil
}

// Close stops the proxy, waiting up to 5 s for requests in flight. Requests waiting in
// a fault return at once.
func (p *FaultProxy) Close() {
	close(p.closed)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.srv.Shutdown(ctx)
	p.srv.Close()
}

// Add adds a rule; rules are checked in the order added and the first that acts wins.
func (p *FaultProxy) Add(r ProxyRule) *ProxyFault {
	if r.Kind == 0 {
		panic("BUG: fault proxy rule without a Kind")
	}
	f := &ProxyFault{rule: r, proxy: p}
	p.mu.Lock()
	p.faults = append(p.faults, f)
	p.mu.Unlock()
	return f
}

// Clear removes every rule.
func (p *FaultProxy) Clear() {
	p.mu.Lock()
	p.faults = nil
	p.mu.Unlock()
}

// Hits returns how many requests faults of kind acted on.
func (p *FaultProxy) Hits(kind FaultKind) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits[kind]
}

// Requests returns how many requests of op ("" for all) reached the proxy.
func (p *FaultProxy) Requests(op string) int {
	if op == "" {
		return int(p.total.Load())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests[op]
}

// MaxInFlight returns the most requests of op that were in the proxy at once.
func (p *FaultProxy) MaxInFlight(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxIn[op]
}

// OpOf names the S3 operation of a path-style request.
func OpOf(r *http.Request) string {
	q := r.URL.Query()
	path := strings.TrimPrefix(r.URL.Path, "/")
	hasKey := strings.Contains(path, "/") && !strings.HasSuffix(path, "/")
	_, uploadID := q["uploadId"]
	switch r.Method {
	case http.MethodGet:
		switch {
		case !hasKey && q.Get("list-type") == "2":
			return "ListObjectsV2"
		case !hasKey && q.Has("uploads"):
			return "ListMultipartUploads"
		case !hasKey:
			return "ListObjects"
		case uploadID:
			return "ListParts"
		}
		return "GetObject"
	case http.MethodHead:
		if !hasKey {
			return "HeadBucket"
		}
		return "HeadObject"
	case http.MethodPut:
		switch {
		case !hasKey:
			return "CreateBucket"
		case uploadID && q.Has("partNumber"):
			return "UploadPart"
		}
		return "PutObject"
	case http.MethodPost:
		switch {
		case q.Has("uploads"):
			return "CreateMultipartUpload"
		case uploadID:
			return "CompleteMultipartUpload"
		}
		return "Post"
	case http.MethodDelete:
		switch {
		case uploadID:
			return "AbortMultipartUpload"
		case !hasKey:
			return "DeleteBucket"
		}
		return "DeleteObject"
	}
	return r.Method
}

func (p *FaultProxy) match(r *http.Request, op string) *ProxyFault {
	p.mu.Lock()
	faults := p.faults
	p.requests[op]++
	p.mu.Unlock()
	p.total.Add(1)
	for _, f := range faults {
		rule := &f.rule
		if rule.Op != "" && rule.Op != op {
			continue
		}
		if rule.Match != nil && !rule.Match(r) {
			continue
		}
		n := f.matched.Add(1) - 1 // 0-based
		if n < int64(rule.After) {
			continue
		}
		if rule.Period > 0 {
			burst := max(rule.Burst, 1)
			if (n-int64(rule.After))%int64(rule.Period) >= int64(burst) {
				continue
			}
		}
		if h := f.hits.Add(1); rule.Times > 0 && h > int64(rule.Times) {
			f.hits.Add(-1)
			continue
		}
		p.mu.Lock()
		p.hits[rule.Kind]++
		p.mu.Unlock()
		return f
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := OpOf(r)
	p.mu.Lock()
	p.inFlight[op]++
	p.maxIn[op] = max(p.maxIn[op], p.inFlight[op])
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inFlight[op]--
		p.mu.Unlock()
	}()
	f := p.match(r, op)
	if f == nil {
		p.forward(w, r, nil)
		return
	}
	switch f.rule.Kind {
	case SlowDown:
		writeS3Error(w, r, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
	case TooManyRequests:
		writeS3Error(w, r, http.StatusTooManyRequests, "TooManyRequests", "Too many requests.")
	case InternalError:
		writeS3Error(w, r, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
	case Slow:
		select {
		case <-time.After(f.rule.Delay):
		case <-r.Context().Done():
			return
		case <-p.closed:
			return
		}
		p.forward(w, r, nil)
	case Drop:
		hijackClose(w)
	default:
		p.forward(w, r, f)
	}
}

func writeS3Error(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	// Drain the body so the client sees the answer rather than a reset.
	io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("x-amz-request-id", "faultproxy")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
			`<Error><Code>%s</Code><Message>%s</Message><RequestId>faultproxy</RequestId></Error>`, code, msg)
	}
}

func hijackClose(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("BUG: fault proxy response writer cannot hijack")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST, like a crashed load balancer
		}
		conn.Close()
	}
}

var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// forward sends r upstream and relays the answer, applying f (DropResponse,
// DropMidBody, Stall) when set.
func (p *FaultProxy) forward(w http.ResponseWriter, r *http.Request, f *ProxyFault) {
	out, err := http.NewRequestWithContext(r.Context(), r.Method, p.upstream+r.URL.RequestURI(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	out.Host = r.Host // the signature covers it
	out.ContentLength = r.ContentLength
	if r.ContentLength == 0 {
		out.Body = nil
	}
	resp, err := p.exchange(out)
	if err != nil {
		if r.Context().Err() == nil {
			p.badGateway.Add(1)
			http.Error(w, "fault proxy: "+err.Error(), http.StatusBadGateway)
		}
		return
	}
	defer resp.Body.Close()
	if f != nil && f.rule.Kind == DropResponse {
		io.Copy(io.Discard, resp.Body)
		hijackClose(w)
		return
	}
	if f != nil && (f.rule.Kind == DropMidBody || f.rule.Kind == Stall) {
		if resp.ContentLength >= 0 && resp.ContentLength <= f.rule.AfterBytes || r.Method == http.MethodHead {
			// The body is too short to break in the middle: no fault, no hit.
			f.unhit()
		} else {
			p.writePartial(w, r, resp, f)
			return
		}
	}
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	for _, h := range hopHeaders {
		w.Header().Del(h)
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// exchange sends out upstream on a connection of its own and returns the answer. It
// reads the answer while the request body is still being written, and an answer that
// arrived counts even when the write then failed: a server may refuse a request before
// reading its body (versitygw answers 412 to a conditional PUT of a key that exists, or
// 403) and reset the connection. http.Transport returns the broken write instead, as
// soon as it sees it, so a proxy built on it would turn the server's 412 into a 502,
// a fault nobody injected (and on a loaded machine, nearly every time).
func (p *FaultProxy) exchange(out *http.Request) (*http.Response, error) {
	var d net.Dialer
	conn, err := d.DialContext(out.Context(), "tcp", out.URL.Host)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(out.Context(), func() { conn.Close() })
	// The proxy answers the client's Expect: 100-continue itself (net/http reads the
	// body on demand); upstream must not send interim answers.
	out.Header.Del("Expect")
	out.Close = true
	werr := make(chan error, 1)
	go func() { werr <- out.Write(conn) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), out)
	if err != nil {
		stop()
		conn.Close()
		if w := <-werr; w != nil {
			return nil, fmt.Errorf("%w (writing the request: %v)", err, w)
		}
		return nil, err
	}
	resp.Body = &exchangeBody{ReadCloser: resp.Body, conn: conn, stop: stop}
	return resp, nil
}

// exchangeBody closes the exchange's connection with the answer's body.
type exchangeBody struct {
	io.ReadCloser
	conn net.Conn
	stop func() bool
}

func (b *exchangeBody) Close() error {
	b.stop()
	b.ReadCloser.Close()
	return b.conn.Close()
}

// writePartial writes the response by hand on the hijacked connection, so it can stop or
// pause in the middle of the body.
func (p *FaultProxy) writePartial(w http.ResponseWriter, r *http.Request, resp *http.Response, f *ProxyFault) {
	hj := w.(http.Hijacker)
	conn, bufrw, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	bw := bufio.NewWriter(conn)
	fmt.Fprintf(bw, "HTTP/1.1 %s\r\n", resp.Status)
	h := resp.Header.Clone()
	for _, k := range hopHeaders {
		h.Del(k)
	}
	if resp.ContentLength >= 0 {
		h.Set("Content-Length", fmt.Sprint(resp.ContentLength))
	}
	h.Set("Connection", "close")
	h.Write(bw)
	bw.WriteString("\r\n")
	if r.Method == http.MethodHead {
		bw.Flush()
		return
	}
	if _, err := io.CopyN(bw, resp.Body, f.rule.AfterBytes); err != nil && !errors.Is(err, io.EOF) {
		return
	}
	bw.Flush()
	_ = bufrw
	if f.rule.Kind == DropMidBody {
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		return
	}
	select {
	case <-time.After(f.rule.Delay):
	case <-r.Context().Done():
		return
	case <-p.closed:
		return
	}
	io.Copy(bw, resp.Body)
	bw.Flush()
}
