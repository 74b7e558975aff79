// Package kafkaharness is the Kafka side of Tailor's one fault harness, shared by the
// sink's game-day tests (ingest) and the gameday command: an embedded broker, sink
// workers that can be stopped, killed or slowed, a network to the broker that can be
// cut, and a consumer group's committed offsets. Store faults come from storage/faults:
// every worker writes through a faults.Store of its own.
//
// It does not import testing, since the command links it: every helper returns its
// error, and tests wrap them.
package kafkaharness

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailor-metrics/tailor/ingest"
	"github.com/tailor-metrics/tailor/internal/conntrack"
	"github.com/tailor-metrics/tailor/storage/faults"
)

// StartBroker starts an embedded Kafka broker (kfake, one broker: it serves every
// request on one goroutine, so one is faster than three) on loopback, with topic seeded
// with the given partitions. Extra options (fault injection, fixed ports) come last.
// The caller closes it.
func StartBroker(partitions int, topic string, opts ...kfake.Opt) (*kfake.Cluster, error) {
	opts = append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(int32(partitions), topic)}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded broker: %w", err)
	}
	return c, nil
}

// ErrKilled is what a killed worker's store writes fail with. It is not retryable, so
// the sink gives up its segment instead of pausing, as a crashed process would.
var ErrKilled = errors.New("worker killed")

// Worker is a sink running in the background.
type Worker struct {
	Name string
	Sink *ingest.Sink
	// Store is the worker's own view of the store: faults injected into it (a slow
	// store, a kill) hit this worker only.
	Store *faults.Store

	cancel context.CancelFunc
	done   chan struct{}
	err    error
	killed atomic.Bool
	once   sync.Once
}

// StartWorker starts a sink with opt, its store wrapped in the worker's faults.Store
// with rules injected before the sink starts, and runs it until Stop or Kill (or until
// ctx ends).
func StartWorker(ctx context.Context, name string, opt ingest.Options, rules ...faults.Rule) (*Worker, error) {
	w := &Worker{Name: name, Store: faults.Wrap(opt.Store), done: make(chan struct{})}
	for _, r := range rules {
		w.Store.Inject(r)
	}
	opt.Store = w.Store
	s, err := ingest.New(opt)
	if err != nil {
		return nil, fmt.Errorf("worker %s: %w", name, err)
	}
	w.Sink = s
	wctx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	go func() {
		defer close(w.done)
		w.err = s.Run(wctx)
	}()
	return w, nil
}

// Stats returns the worker's running totals.
func (w *Worker) Stats() ingest.Stats { return w.Sink.Stats() }

// Stop stops the worker as SIGTERM would: it stores its open segments, commits and
// leaves the group. It returns what Run returned, or an error if the worker has not
// stopped when ctx ends. Stopping twice returns the same.
func (w *Worker) Stop(ctx context.Context) error {
	w.cancel()
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		return fmt.Errorf("worker %s did not stop: %w", w.Name, ctx.Err())
	}
}

// Kill stops the worker as a crash would: from now on its store writes fail with
// ErrKilled, so what it holds in memory is neither stored nor committed and the group
// reads it again. (The client still leaves the group, so the group does not wait for
// the session timeout; a killed process is what the sink's own tests SIGKILL.)
//
// It returns an error only if the worker has not stopped when ctx ends: what Run
// returns after a kill is the kill's doing.
func (w *Worker) Kill(ctx context.Context) error {
	w.once.Do(func() {
		w.killed.Store(true)
		w.Store.Inject(faults.Rule{Ops: faults.OpWrite, Err: ErrKilled})
	})
	if err := w.Stop(ctx); err != nil && ctx.Err() != nil {
		return err
	}
	return nil
}

// Killed reports whether Kill was called: the worker's errors are the kill's.
func (w *Worker) Killed() bool { return w.killed.Load() }

// Drain runs one sink with opt until every partition is stored and committed up to the
// end offsets it saw when it started (StopAtEnd is forced).
func Drain(ctx context.Context, opt ingest.Options) (ingest.Stats, error) {
	opt.StopAtEnd = true
	s, err := ingest.New(opt)
	if err != nil {
		return ingest.Stats{}, err
	}
	err = s.Run(ctx)
	return s.Stats(), err
}

// Committed returns group's committed offset of every partition of topic that has one.
func Committed(ctx context.Context, brokers []string, group, topic string) (map[int32]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, fmt.Errorf("committed offsets: %w", err)
	}
	defer cl.Close()
	m, err := ingest.CommittedOffsets(ctx, cl, group, []string{topic})
	if err != nil {
		return nil, err
	}
	if m[topic] == nil {
		return map[int32]int64{}, nil
	}
	return m[topic], nil
}

// WaitCommitted waits until group has committed every partition of topic up to its end
// in ends, polling every 50 ms, and returns how long that took. When ctx ends first it
// returns an error with the offsets committed by then.
func WaitCommitted(ctx context.Context, brokers []string, group, topic string, ends map[int32]int64) (time.Duration, error) {
	start := time.Now()
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		got, err := Committed(qctx, brokers, group, topic)
		cancel()
		if err == nil && reached(got, ends) {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return time.Since(start), fmt.Errorf("group %s committed %v of %s after %s, want %v (last error: %v): %w",
				group, got, topic, time.Since(start).Round(time.Millisecond), ends, err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func reached(got, ends map[int32]int64) bool {
	for p, end := range ends {
		if got[p] < end {
			return false
		}
	}
	return true
}

// errUnreachable is what dials fail with while the network is cut.
var errUnreachable = errors.New("broker unreachable (game day)")

// Net is the network between Kafka clients and the broker: Cut closes every connection
// and refuses new ones until Restore, as if the broker were unreachable. Give clients
// Opt.
type Net struct{ t *conntrack.Tracker }

// NewNet returns a network that is up.
func NewNet() *Net { return &Net{t: conntrack.New()} }

// Opt makes a Kafka client dial through the network.
func (n *Net) Opt() kgo.Opt { return kgo.Dialer(n.t.Dialer(nil)) }

// Cut closes every connection and refuses new ones; it returns how many it closed.
func (n *Net) Cut() int { return n.t.Cut(errUnreachable) }

// Restore lets connections through again; it returns how many dials were refused.
func (n *Net) Restore() (refused int) { return n.t.Restore() }
