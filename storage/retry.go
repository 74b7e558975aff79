package storage

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// RetryPolicy is the backoff of one store operation: exponential with full jitter
// (sleep a uniform random time in [0, min(MaxDelay, BaseDelay·2^attempt))), until the
// operation succeeds, fails permanently, the store stops answering for Unreachable, or
// Budget is spent.
//
// Two limits, because two things go wrong. A store that answers "slow down" (503
// SlowDown, 429, 5xx) is there and busy: S3 answers SlowDown while it splits a hot
// partition, which takes minutes, and giving up early only moves the retry to the
// caller, so Budget is long. A store that does not answer at all (connection refused,
// reset, timed out: a wrong endpoint, a network that is down) will most likely not
// answer the next minute either, and a command must not sit silent for minutes: so
// Unreachable is short.
type RetryPolicy struct {
	// BaseDelay is the first backoff ceiling. Default 100ms.
	BaseDelay time.Duration
	// MaxDelay caps one backoff. Default 20s.
	MaxDelay time.Duration
	// Budget is the total time one operation may spend, attempts and sleeps included,
	// before it returns a TransientError. Default 5m.
	Budget time.Duration
	// Unreachable is how long one operation keeps trying while no attempt gets an
	// answer from the store (connections refused, reset or cut, attempts that time
	// out) before it returns a TransientError saying so. Any answer, even an error,
	// starts it again. Default 1m. The S3 store also cuts each wait of one attempt (for
	// a connection, for response headers, for the next byte of a body) at half of it.
	Unreachable time.Duration
}

// DefaultRetryPolicy returns the defaults documented on RetryPolicy.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: 20 * time.Second, Budget: 5 * time.Minute, Unreachable: time.Minute}
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetryPolicy()
	if p.BaseDelay <= 0 {
		p.BaseDelay = d.BaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = d.MaxDelay
	}
	if p.MaxDelay < p.BaseDelay {
		p.MaxDelay = p.BaseDelay
	}
	if p.Budget <= 0 {
		p.Budget = d.Budget
	}
	if p.Unreachable <= 0 {
		p.Unreachable = d.Unreachable
	}
	return p
}

// backoff returns the full-jitter sleep before retry number attempt (1-based).
func (p RetryPolicy) backoff(attempt int) time.Duration {
	ceil := p.MaxDelay
	if attempt < 32 {
		if c := p.BaseDelay << (attempt - 1); c > 0 && c < ceil {
			ceil = c
		}
	}
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}

// RetryStats is a snapshot of a store's retry counters, for run reports. Counts are
// retries (attempts after the first), by the reason of the failed attempt.
type RetryStats struct {
	SlowDown        int64         `json:"slowdown"`
	Throttled       int64         `json:"throttled"`
	Server          int64         `json:"5xx"`
	Timeout         int64         `json:"timeout"`
	ConnReset       int64         `json:"conn_reset"`
	BudgetExhausted int64         `json:"budget_exhausted"` // operations that gave up with a TransientError
	Backoff         time.Duration `json:"backoff_ns"`       // total time slept between attempts
}

// Total returns the number of retries of all reasons.
func (s RetryStats) Total() int64 {
	return s.SlowDown + s.Throttled + s.Server + s.Timeout + s.ConnReset
}

// Get returns the count of one reason.
func (s RetryStats) Get(r Reason) int64 {
	switch r {
	case ReasonSlowDown:
		return s.SlowDown
	case ReasonThrottled:
		return s.Throttled
	case ReasonServer:
		return s.Server
	case ReasonTimeout:
		return s.Timeout
	case ReasonConnReset:
		return s.ConnReset
	}
	return 0
}

// Sub returns s − prev, the retries between two snapshots (one run of a long-lived store).
func (s RetryStats) Sub(prev RetryStats) RetryStats {
	return RetryStats{
		SlowDown:        s.SlowDown - prev.SlowDown,
		Throttled:       s.Throttled - prev.Throttled,
		Server:          s.Server - prev.Server,
		Timeout:         s.Timeout - prev.Timeout,
		ConnReset:       s.ConnReset - prev.ConnReset,
		BudgetExhausted: s.BudgetExhausted - prev.BudgetExhausted,
		Backoff:         s.Backoff - prev.Backoff,
	}
}

// RetryReporter is implemented by stores that retry internally (S3). Run reports print
// its snapshot; stores that never retry (local directory) do not implement it.
type RetryReporter interface {
	RetryStats() RetryStats
}

// retryCounters are the live counters behind RetryStats.
type retryCounters struct {
	byReason  [numReasons]atomic.Int64
	exhausted atomic.Int64
	backoffNs atomic.Int64
}

func (c *retryCounters) snapshot() RetryStats {
	return RetryStats{
		SlowDown:        c.byReason[ReasonSlowDown].Load(),
		Throttled:       c.byReason[ReasonThrottled].Load(),
		Server:          c.byReason[ReasonServer].Load(),
		Timeout:         c.byReason[ReasonTimeout].Load(),
		ConnReset:       c.byReason[ReasonConnReset].Load(),
		BudgetExhausted: c.exhausted.Load(),
		Backoff:         time.Duration(c.backoffNs.Load()),
	}
}

// classifyFunc sorts an attempt's error: retry (reason, true) or stop (the error to
// return, already translated, false). attemptTimedOut is true when the attempt's own
// deadline, not the caller's context, ended it.
type classifyFunc func(op, key string, err error, attemptTimedOut bool) (Reason, error, bool)

// retrier runs store operations under a RetryPolicy and counts the retries.
type retrier struct {
	policy   RetryPolicy
	classify classifyFunc
	counters *retryCounters
	metrics  *s3Metrics // may be nil
	log      *slog.Logger
}

// do calls fn until it succeeds, fails permanently, or the budget or the unreachable
// bound is spent. Each attempt gets its own context, with a deadline of timeout when
// timeout > 0. The caller's context ends the loop at once, also while sleeping.
func (r *retrier) do(ctx context.Context, op, key string, timeout time.Duration, fn func(ctx context.Context) error) error {
	start := time.Now()
	lastAnswer := start
	for attempt := 1; ; attempt++ {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if timeout > 0 {
			actx, cancel = context.WithTimeout(ctx, timeout)
		}
		err := fn(actx)
		timedOut := err != nil && actx.Err() != nil && ctx.Err() == nil
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		reason, perr, retry := r.classify(op, key, err, timedOut)
		if !retry {
			return perr
		}
		if reason.answered() {
			lastAnswer = time.Now()
		}
		if err := r.wait(ctx, op, key, reason, attempt, start, lastAnswer, err); err != nil {
			return err
		}
	}
}

// answered reports whether a failed attempt of reason got an answer from the store.
func (r Reason) answered() bool { return r != ReasonTimeout && r != ReasonConnReset }

// wait counts a retry of reason, logs it at warn level and sleeps its backoff. It
// returns a TransientError instead when the sleep would overrun the budget that started
// at start, or, when the store has not answered since lastAnswer, the unreachable bound.
func (r *retrier) wait(ctx context.Context, op, key string, reason Reason, attempt int, start, lastAnswer time.Time, err error) error {
	d := r.policy.backoff(attempt)
	now := time.Now()
	elapsed := now.Sub(start)
	var unreachable time.Duration
	if silent := now.Sub(lastAnswer); !reason.answered() && silent+d > r.policy.Unreachable {
		unreachable = silent
	}
	if elapsed+d > r.policy.Budget || unreachable > 0 {
		r.counters.exhausted.Add(1)
		if r.metrics != nil {
			r.metrics.budgetExhausted.WithLabelValues(op).Inc()
		}
		msg := "store retry budget spent; giving up"
		if unreachable > 0 {
			msg = "store unreachable; giving up"
		}
		r.log.Warn(msg, "op", op, "key", key, "attempts", attempt,
			"elapsed", elapsed.Round(time.Millisecond), "reason", reason.String(), "err", err)
		return &TransientError{Op: op, Key: key, Reason: reason, Attempts: attempt, Elapsed: elapsed, Unreachable: unreachable, Err: err}
	}
	r.count(op, reason)
	r.counters.backoffNs.Add(int64(d))
	if r.metrics != nil {
		r.metrics.backoffSeconds.Add(d.Seconds())
	}
	// Warn, not debug: a store that keeps failing must show while the command waits,
	// never as minutes of silence.
	r.log.Warn("store request failed; retrying", "op", op, "key", key, "attempt", attempt,
		"reason", reason.String(), "err", err, "next_delay", d.Round(time.Millisecond),
		"elapsed", elapsed.Round(time.Millisecond))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

func (r *retrier) count(op string, reason Reason) {
	r.counters.byReason[reason].Add(1)
	if r.metrics != nil {
		r.metrics.retries.WithLabelValues(op, reason.String()).Inc()
	}
}
