// Package faults wraps a storage.Store and injects failures into chosen calls: fail the
// Nth Create of a key pattern, break an upload mid-stream, answer 503 SlowDown for a
// while, slow calls down. Game-day tests of the sink and the run use it to check that no
// data is lost or duplicated when storage misbehaves.
//
//	fs := faults.Wrap(storage.NewMem("t"))
//	f := fs.Inject(faults.Rule{Ops: faults.OpCreate, Key: "segments/*/*/*.tseg", After: 2, Times: 1})
//	... run the sink against fs ...
//	if f.Hits() != 1 { t.Fatal(...) }
//
// The default injected error is a *storage.TransientError with reason slowdown, which is
// what the S3 store returns after its retry budget is spent: storage.IsRetryable reports
// true for it, so callers must pause and retry, never drop.
//
// Besides failing calls, a rule can slow them (Delay, PassThrough), make them land after
// their caller gave up (Late: a zombie upload), or run a hook at the moment it acts (Do:
// kill a run at its first part file). Tests wait for a fault with Wait and WaitIdle
// rather than polling: both end with the context they are given. It is the one store
// fault harness: the sink's tests, the run's and the gameday command use it.
package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tailor-metrics/tailor/storage"
)

// Op is a set of Store methods.
type Op uint8

// Store methods, combinable with |.
const (
	OpCreate Op = 1 << iota
	OpPut
	OpGet // GetRange
	OpStat
	OpList
	OpDelete

	OpWrite = OpCreate | OpPut
	OpRead  = OpGet | OpStat | OpList
	OpAll   = OpWrite | OpRead | OpDelete
)

var opNames = []string{"create", "put", "get", "stat", "list", "delete"}

// String returns the op's name, or names joined by "|".
func (o Op) String() string {
	s := ""
	for i, n := range opNames {
		if o&(1<<i) != 0 {
			if s != "" {
				s += "|"
			}
			s += n
		}
	}
	if s == "" {
		return "none"
	}
	return s
}

// Rule selects calls and says what goes wrong with them.
type Rule struct {
	// Ops are the methods the rule applies to. Zero means OpAll.
	Ops Op
	// Key is a path.Match pattern for the key (List: the prefix); "" matches every key.
	// "*" does not cross "/": "segments/*/*/*.tseg" matches segment keys.
	Key string
	// KeyFunc, if set, must also return true for the key.
	KeyFunc func(key string) bool
	// After lets the first After matching calls through untouched: After: 2, Times: 1
	// fails the third matching call only.
	After int
	// Times is how many calls fail, after which the rule stays in place but lets calls
	// through. Zero means no limit.
	Times int
	// Window, if positive, ends the rule that long after its first hit: "503s for 2
	// seconds".
	Window time.Duration
	// Err is the error of failed calls. Default: a *storage.TransientError with reason
	// slowdown, like the S3 store's after its retry budget.
	Err error
	// Delay sleeps before the call (a slow store). With PassThrough the call then runs
	// normally; without it, it fails.
	Delay       time.Duration
	PassThrough bool
	// MidStream breaks the data stream instead of the call: a Create or Put whose body
	// fails with Err after AfterBytes bytes (so the store sees a broken upload and must
	// store nothing), or a GetRange whose reader fails after AfterBytes bytes.
	MidStream  bool
	AfterBytes int64
	// Late makes a passed-through call deaf to its caller's context, as a request already
	// on the wire is: a write's body is read in full first, the Delay is waited out even
	// if the caller gives up, and the call then runs to completion. The caller may have
	// moved on long before (a zombie upload that lands after the sink abandoned it).
	// Late implies PassThrough.
	Late bool
	// Do, if set, is called each time the rule acts on a call, before its Delay and
	// before the call goes on or fails: a hook for what a test does at that moment (kill
	// a run at its first part file, mark that a process hangs in an upload).
	Do func(op Op, key string)
}

// Fault is one injected Rule.
type Fault struct {
	rule    Rule
	store   *Store
	matched atomic.Int64 // matching calls seen
	hits    atomic.Int64 // calls failed or delayed

	mu    sync.Mutex
	first time.Time
	// active counts the calls acted on that have not returned yet; succeeded those that
	// went on (PassThrough, Late) and returned no error.
	active, succeeded int
	// changed is closed and replaced whenever hits, active or succeeded change.
	changed chan struct{}
}

// Hits returns how many calls the fault acted on.
func (f *Fault) Hits() int { return int(f.hits.Load()) }

// Succeeded returns how many of the calls the fault let go on (PassThrough, Late)
// returned without an error: for Late, the zombie writes that landed.
func (f *Fault) Succeeded() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.succeeded
}

// Wait blocks until the fault has acted on at least n calls, or until ctx is done,
// returning ctx's error. Tests wait on it instead of polling Hits.
func (f *Fault) Wait(ctx context.Context, n int) error {
	return f.waitFor(ctx, func() bool { return f.hits.Load() >= int64(n) })
}

// WaitIdle blocks until every call the fault acted on has returned (Late calls
// included), or until ctx is done, returning ctx's error.
func (f *Fault) WaitIdle(ctx context.Context) error {
	return f.waitFor(ctx, func() bool { return f.active == 0 })
}

func (f *Fault) waitFor(ctx context.Context, done func() bool) error {
	for {
		f.mu.Lock()
		if done() {
			f.mu.Unlock()
			return nil
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// notifyLocked wakes the waiters; f.mu is held.
func (f *Fault) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// begin records that the fault acts on a call (match calls it), end that the call
// returned with err: every caller of match defers end when it gets a fault.
func (f *Fault) begin() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.active++
	f.notifyLocked()
}

func (f *Fault) end(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.active--
	if err == nil && f.passes() {
		f.succeeded++
	}
	f.notifyLocked()
}

// passes reports whether the calls the fault acts on go on to the store.
func (f *Fault) passes() bool { return f.rule.PassThrough || f.rule.Late }

// Matched returns how many calls matched the rule, acted on or not.
func (f *Fault) Matched() int { return int(f.matched.Load()) }

// Remove takes the fault out; calls in progress are not affected.
func (f *Fault) Remove() { f.store.remove(f) }

// Store is a storage.Store with injected faults. It is safe for concurrent use. It does
// not forward storage.LocalFiler, so every read goes through GetRange and can fail.
type Store struct {
	inner  storage.Store
	mu     sync.Mutex
	faults []*Fault
	calls  [6]atomic.Int64
	failed [6]atomic.Int64
}

var _ storage.Store = (*Store)(nil)

// Wrap returns s with no faults injected yet.
func Wrap(s storage.Store) *Store { return &Store{inner: s} }

// Inner returns the wrapped store.
func (s *Store) Inner() storage.Store { return s.inner }

// RetryStats implements storage.RetryReporter with the wrapped store's counters (zero
// when it does not retry). Injected failures are not retries; see Failed.
func (s *Store) RetryStats() storage.RetryStats {
	if rr, ok := s.inner.(storage.RetryReporter); ok {
		return rr.RetryStats()
	}
	return storage.RetryStats{}
}

// Inject adds a rule. Rules are checked in the order they were added; the first one that
// acts on a call wins.
func (s *Store) Inject(r Rule) *Fault {
	if r.Ops == 0 {
		r.Ops = OpAll
	}
	if r.Key != "" {
		if _, err := path.Match(r.Key, ""); err != nil {
			panic(fmt.Sprintf("BUG: faults: bad key pattern %q: %v", r.Key, err))
		}
	}
	f := &Fault{rule: r, store: s, changed: make(chan struct{})}
	s.mu.Lock()
	s.faults = append(s.faults, f)
	s.mu.Unlock()
	return f
}

// FailNth fails the nth (1-based) call of op on keys matching pattern with err (nil:
// a transient slowdown).
func (s *Store) FailNth(op Op, pattern string, n int, err error) *Fault {
	return s.Inject(Rule{Ops: op, Key: pattern, After: n - 1, Times: 1, Err: err})
}

// SlowDownFor answers every call of op with a transient 503 SlowDown error for d after
// the first hit.
func (s *Store) SlowDownFor(op Op, d time.Duration) *Fault {
	return s.Inject(Rule{Ops: op, Window: d})
}

// Clear removes every fault.
func (s *Store) Clear() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

// Calls returns how many calls of the ops in op were made, failed or not.
func (s *Store) Calls(op Op) int {
	return s.sum(op, &s.calls)
}

// Failed returns how many calls of the ops in op failed because of a fault.
func (s *Store) Failed(op Op) int {
	return s.sum(op, &s.failed)
}

func (s *Store) sum(op Op, c *[6]atomic.Int64) int {
	n := 0
	for i := range c {
		if op&(1<<i) != 0 {
			n += int(c[i].Load())
		}
	}
	return n
}

func (s *Store) remove(f *Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, g := range s.faults {
		if g == f {
			s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			return
		}
	}
}

func opIndex(op Op) int {
	for i := range opNames {
		if op == 1<<i {
			return i
		}
	}
	panic("BUG: faults: opIndex of a set")
}

// match finds the fault that acts on this call, if any.
func (s *Store) match(op Op, key string) *Fault {
	s.calls[opIndex(op)].Add(1)
	s.mu.Lock()
	faults := s.faults
	s.mu.Unlock()
	for _, f := range faults {
		r := &f.rule
		if r.Ops&op == 0 {
			continue
		}
		if r.Key != "" {
			if ok, _ := path.Match(r.Key, key); !ok {
				continue
			}
		}
		if r.KeyFunc != nil && !r.KeyFunc(key) {
			continue
		}
		n := f.matched.Add(1)
		if n <= int64(r.After) {
			continue
		}
		if r.Times > 0 && f.hits.Load() >= int64(r.Times) {
			continue
		}
		if r.Window > 0 {
			f.mu.Lock()
			if f.first.IsZero() {
				f.first = time.Now()
			}
			expired := time.Since(f.first) > r.Window
			f.mu.Unlock()
			if expired {
				continue
			}
		}
		if r.Times > 0 && f.hits.Add(1) > int64(r.Times) {
			continue // lost a race for the last hit
		} else if r.Times == 0 {
			f.hits.Add(1)
		}
		f.begin()
		return f
	}
	return nil
}

// act applies f to a call: it runs the hook and sleeps, then returns the error to fail
// with, or nil to go on (PassThrough, Late, MidStream). A Late call sleeps whatever
// happens to ctx.
func (s *Store) act(ctx context.Context, f *Fault, op Op, key string) error {
	r := &f.rule
	if r.Do != nil {
		r.Do(op, key)
	}
	if r.Delay > 0 {
		t := time.NewTimer(r.Delay)
		if r.Late {
			<-t.C
		} else {
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
	}
	if f.passes() || r.MidStream {
		return nil
	}
	s.failed[opIndex(op)].Add(1)
	return f.err(op, key)
}

// callCtx is the context a call goes on with: a Late call's outlives its caller's.
func callCtx(ctx context.Context, f *Fault) context.Context {
	if f != nil && f.rule.Late {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

func (f *Fault) err(op Op, key string) error {
	if f.rule.Err != nil {
		return fmt.Errorf("faults: %s %s: %w", op, key, f.rule.Err)
	}
	return &storage.TransientError{
		Op: op.String(), Key: key, Reason: storage.ReasonSlowDown, Attempts: 1,
		Err: errors.New("injected 503 SlowDown: please reduce your request rate"),
	}
}

// Create implements storage.Store.
func (s *Store) Create(ctx context.Context, key string, r io.Reader) error {
	return s.write(ctx, OpCreate, key, r, s.inner.Create)
}

// Put implements storage.Store.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) error {
	return s.write(ctx, OpPut, key, r, s.inner.Put)
}

func (s *Store) write(ctx context.Context, op Op, key string, r io.Reader, fn func(context.Context, string, io.Reader) error) (err error) {
	f := s.match(op, key)
	if f == nil {
		return fn(ctx, key, r)
	}
	defer func() { f.end(err) }()
	if f.rule.Late {
		// The body is on the wire before the answer is awaited.
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	if err := s.act(ctx, f, op, key); err != nil {
		return err
	}
	ctx = callCtx(ctx, f)
	if f.rule.MidStream {
		s.failed[opIndex(op)].Add(1)
		cut := &cutReader{r: r, left: f.rule.AfterBytes, err: f.err(op, key)}
		err := fn(ctx, key, cut)
		if err == nil && cut.fired {
			// The store must not have stored a body that failed to read.
			return fmt.Errorf("BUG: store %s stored %s although its body failed mid-stream", s.inner.URL(), key)
		}
		return err
	}
	return fn(ctx, key, r)
}

// GetRange implements storage.Store.
func (s *Store) GetRange(ctx context.Context, key string, off, length int64) (_ io.ReadCloser, err error) {
	f := s.match(OpGet, key)
	if f != nil {
		defer func() { f.end(err) }()
		if err := s.act(ctx, f, OpGet, key); err != nil {
			return nil, err
		}
	}
	rc, err := s.inner.GetRange(callCtx(ctx, f), key, off, length)
	if err != nil || f == nil || !f.rule.MidStream {
		return rc, err
	}
	s.failed[opIndex(OpGet)].Add(1)
	return struct {
		io.Reader
		io.Closer
	}{&cutReader{r: rc, left: f.rule.AfterBytes, err: f.err(OpGet, key)}, rc}, nil
}

// Stat implements storage.Store.
func (s *Store) Stat(ctx context.Context, key string) (_ storage.Attrs, err error) {
	f := s.match(OpStat, key)
	if f != nil {
		defer func() { f.end(err) }()
		if err := s.act(ctx, f, OpStat, key); err != nil {
			return storage.Attrs{}, err
		}
	}
	return s.inner.Stat(callCtx(ctx, f), key)
}

// List implements storage.Store. Rules match the prefix.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.Attrs) error) (err error) {
	f := s.match(OpList, prefix)
	if f != nil {
		defer func() { f.end(err) }()
		if err := s.act(ctx, f, OpList, prefix); err != nil {
			return err
		}
	}
	return s.inner.List(callCtx(ctx, f), prefix, fn)
}

// Delete implements storage.Store.
func (s *Store) Delete(ctx context.Context, key string) (err error) {
	f := s.match(OpDelete, key)
	if f != nil {
		defer func() { f.end(err) }()
		if err := s.act(ctx, f, OpDelete, key); err != nil {
			return err
		}
	}
	return s.inner.Delete(callCtx(ctx, f), key)
}

// URL implements storage.Store.
func (s *Store) URL() string { return s.inner.URL() }

// Close implements storage.Store.
func (s *Store) Close() error { return s.inner.Close() }

// cutReader returns err after left bytes.
type cutReader struct {
	r     io.Reader
	left  int64
	err   error
	fired bool
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		c.fired = true
		return 0, c.err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}
