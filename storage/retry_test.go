package storage

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestBackoffFullJitter(t *testing.T) {
	p := RetryPolicy{BaseDelay: 10 * time.Millisecond, MaxDelay: 200 * time.Millisecond}.withDefaults()
	for attempt := 1; attempt <= 40; attempt++ {
		ceil := min(p.MaxDelay, p.BaseDelay<<min(attempt-1, 30))
		var maxSeen time.Duration
		for range 200 {
			d := p.backoff(attempt)
			if d < 0 || d > ceil {
				t.Fatalf("attempt %d: backoff %s outside [0, %s]", attempt, d, ceil)
			}
			maxSeen = max(maxSeen, d)
		}
		if maxSeen < ceil/2 {
			t.Fatalf("attempt %d: 200 draws never passed %s of a %s ceiling: not full jitter", attempt, maxSeen, ceil)
		}
	}
	if d := DefaultRetryPolicy(); d.Budget < time.Minute {
		t.Fatalf("default budget %s is not long", d.Budget)
	}
}

// TestRetrierBudget: transient errors are retried and counted until the budget is spent;
// permanent ones stop at once; the caller's context stops the loop.
func TestRetrierBudget(t *testing.T) {
	transient := errors.New("transient")
	permanent := errors.New("permanent")
	classify := func(op, key string, err error, timedOut bool) (Reason, error, bool) {
		switch {
		case timedOut:
			return ReasonTimeout, nil, true
		case errors.Is(err, transient):
			return ReasonSlowDown, nil, true
		}
		return 0, err, false
	}
	var c retryCounters
	r := &retrier{
		policy:   RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, Budget: 50 * time.Millisecond}.withDefaults(),
		classify: classify, counters: &c, log: slog.New(slog.DiscardHandler),
	}
	ctx := context.Background()

	n := 0
	err := r.do(ctx, "Op", "k", 0, func(context.Context) error {
		if n++; n < 4 {
			return transient
		}
		return nil
	})
	if err != nil || n != 4 || c.snapshot().SlowDown != 3 {
		t.Fatalf("3 transient failures then success: err %v, calls %d, stats %+v", err, n, c.snapshot())
	}

	err = r.do(ctx, "Op", "k", 0, func(context.Context) error { return transient })
	var te *TransientError
	if !errors.As(err, &te) || !IsRetryable(err) || te.Attempts < 2 || te.Reason != ReasonSlowDown {
		t.Fatalf("endless transient failures: %v", err)
	}
	if c.snapshot().BudgetExhausted != 1 {
		t.Fatalf("budget exhausted count %d", c.snapshot().BudgetExhausted)
	}

	n = 0
	err = r.do(ctx, "Op", "k", 0, func(context.Context) error { n++; return permanent })
	if !errors.Is(err, permanent) || n != 1 || IsRetryable(err) {
		t.Fatalf("permanent failure: err %v after %d calls", err, n)
	}

	// A per-attempt timeout is a timeout retry; the TransientError stays retryable
	// although it wraps context.DeadlineExceeded.
	err = r.do(ctx, "Op", "k", time.Millisecond, func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if !IsRetryable(err) || !errors.Is(err, context.DeadlineExceeded) || c.snapshot().Timeout == 0 {
		t.Fatalf("attempt timeouts: err %v, stats %+v", err, c.snapshot())
	}

	cctx, cancel := context.WithCancel(ctx)
	n = 0
	err = r.do(cctx, "Op", "k", 0, func(context.Context) error {
		n++
		cancel()
		return transient
	})
	if !errors.Is(err, context.Canceled) || n != 1 || IsRetryable(err) {
		t.Fatalf("cancelled caller: err %v after %d calls", err, n)
	}
}

func TestRetryStatsSub(t *testing.T) {
	a := RetryStats{SlowDown: 5, Timeout: 2, ConnReset: 1, Backoff: time.Second}
	b := RetryStats{SlowDown: 2, Timeout: 1}
	d := a.Sub(b)
	if d.SlowDown != 3 || d.Timeout != 1 || d.ConnReset != 1 || d.Total() != 5 || d.Backoff != time.Second {
		t.Fatalf("Sub: %+v", d)
	}
	for _, r := range Reasons {
		if !r.IsValid() || r.String() == "" {
			t.Fatalf("reason %d invalid", r)
		}
	}
	if Reason(0).IsValid() || Reason(numReasons).IsValid() {
		t.Fatal("out-of-range reasons valid")
	}
}

func TestBufferPool(t *testing.T) {
	p, err := NewBufferPool(16, 2)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, _ := p.Get(ctx)
	b, _ := p.Get(ctx)
	if len(a) != 16 || p.InUse() != 2 {
		t.Fatalf("len %d, in use %d", len(a), p.InUse())
	}
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := p.Get(tctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("exhausted pool: got %v, want to wait until the deadline", err)
	}
	done := make(chan []byte)
	go func() {
		c, _ := p.Get(ctx)
		done <- c
	}()
	p.Put(a)
	c := <-done
	if &c[0] != &a[0] {
		t.Fatal("returned buffer not reused")
	}
	p.Put(b)
	p.Put(c)
	if p.InUse() != 0 {
		t.Fatalf("in use %d after all Puts", p.InUse())
	}
	if _, err := NewBufferPool(0, 1); err == nil {
		t.Fatal("zero size accepted")
	}
}

// TestRetrierUnreachable: attempts that get no answer (refused, reset, timed out) stop
// after Unreachable, long before the budget; answers that ask to retry (503, 429, 5xx)
// keep going until the budget, and any answer starts the unreachable clock again. Every
// retry is logged at warn level with its attempt, error and next delay. In a synctest
// bubble the clock is exact whatever the machine's load.
func TestRetrierUnreachable(t *testing.T) {
	refused := errors.New("connect: connection refused")
	slowDown := errors.New("503 SlowDown")
	classify := func(op, key string, err error, _ bool) (Reason, error, bool) {
		if errors.Is(err, refused) {
			return ReasonConnReset, nil, true
		}
		return ReasonSlowDown, nil, true
	}
	synctest.Test(t, func(t *testing.T) {
		var logs strings.Builder
		var c retryCounters
		r := &retrier{
			policy:   RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second, Budget: time.Hour, Unreachable: 10 * time.Second}.withDefaults(),
			classify: classify, counters: &c,
			log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		}
		ctx := context.Background()

		start := time.Now()
		n := 0
		err := r.do(ctx, "ListObjectsV2", "segments/", 0, func(context.Context) error { n++; return refused })
		var te *TransientError
		if !errors.As(err, &te) || te.Unreachable <= 0 || te.Unreachable > 10*time.Second || !IsRetryable(err) {
			t.Fatalf("refused connections: got %v, want a TransientError after at most the 10s bound", err)
		}
		if d := time.Since(start); d > 10*time.Second || d < 9*time.Second {
			t.Fatalf("refused connections gave up after %s, want just under 10s (backoff ≤ 1s)", d)
		}
		if !strings.Contains(err.Error(), "store unreachable: no answer for") {
			t.Fatalf("message: %v", err)
		}
		lines := strings.Count(logs.String(), `level=WARN msg="store request failed; retrying"`)
		if lines != n-1 || n < 5 {
			t.Fatalf("%d attempts, %d warn lines (want one per retry):\n%s", n, lines, logs.String())
		}
		for _, want := range []string{"op=ListObjectsV2", "key=segments/", "attempt=1 ", "attempt=2 ", "reason=conn_reset",
			`err="connect: connection refused"`, "next_delay=", `msg="store unreachable; giving up"`} {
			if !strings.Contains(logs.String(), want) {
				t.Fatalf("the logs have no %q:\n%s", want, logs.String())
			}
		}

		// Throttling for a minute is not "unreachable": it is retried through.
		start = time.Now()
		err = r.do(ctx, "Op", "k", 0, func(context.Context) error {
			if time.Since(start) < time.Minute {
				return slowDown
			}
			return nil
		})
		if err != nil {
			t.Fatalf("a minute of SlowDown with a 10s unreachable bound: %v", err)
		}

		// Refusals broken by an answer every 8s never stay unanswered for 10s.
		start = time.Now()
		last := start
		err = r.do(ctx, "Op", "k", 0, func(context.Context) error {
			switch {
			case time.Since(start) > time.Minute:
				return nil
			case time.Since(last) >= 8*time.Second:
				last = time.Now()
				return slowDown
			}
			return refused
		})
		if err != nil {
			t.Fatalf("refusals with an answer every 8s: %v", err)
		}
	})
}
