package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrNoBroker is wrapped by the error Run returns when the sink never connected to any
// Kafka broker within Options.ConnectTimeout.
var ErrNoBroker = errors.New("cannot connect to any Kafka broker")

// connLogEvery spaces the warnings about one broker that cannot be reached: the first
// failure is logged at once, then one line per broker this often, not one per dial.
const connLogEvery = 10 * time.Second

// connWatch follows the client's broker connections (a kgo hook). A sink that cannot
// reach a broker says so within seconds, naming it, and one that never connected gives
// up after timeout, so a wrong --brokers fails instead of waiting forever. Once a
// connection worked, a broker that goes away is retried by franz-go for as long as it
// takes, as before: a cluster restart must not stop the sink.
type connWatch struct {
	log     *slog.Logger
	brokers []string
	timeout time.Duration

	connected atomic.Bool
	mu        sync.Mutex
	started   time.Time
	lastErr   map[string]error     // broker address → its last dial error
	lastLog   map[string]time.Time // broker address → when it was last logged
}

var _ kgo.HookBrokerConnect = (*connWatch)(nil)

func newConnWatch(log *slog.Logger, brokers []string, timeout time.Duration) *connWatch {
	return &connWatch{log: log, brokers: brokers, timeout: timeout, lastErr: map[string]error{}, lastLog: map[string]time.Time{}}
}

// start starts the clock of the connect timeout: Run calls it, since the client dials
// only once it is asked for something.
func (w *connWatch) start(now time.Time) {
	w.mu.Lock()
	w.started = now
	w.mu.Unlock()
}

// OnBrokerConnect implements kgo.HookBrokerConnect. err is nil once a connection is up
// and the broker answered (ApiVersions, SASL).
func (w *connWatch) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	addr := net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port)))
	if err == nil {
		if !w.connected.Swap(true) {
			w.log.Info("connected to Kafka", "broker", addr)
		}
		return
	}
	now := time.Now()
	w.mu.Lock()
	w.lastErr[addr] = err
	due := now.Sub(w.lastLog[addr]) >= connLogEvery
	if due {
		w.lastLog[addr] = now
	}
	waited := now.Sub(w.started)
	w.mu.Unlock()
	if !due {
		return
	}
	if w.connected.Load() {
		w.log.Warn("cannot connect to Kafka broker; retrying", "broker", addr, "err", err)
		return
	}
	w.log.Warn("cannot connect to Kafka broker; retrying", "broker", addr, "err", err,
		"waited", waited.Round(time.Millisecond), "gives_up_in", max(0, w.timeout-waited).Round(time.Second))
}

// check returns the error Run stops with when the sink has not connected within the
// timeout; nil while it has connected or may still.
func (w *connWatch) check(now time.Time) error {
	if w.connected.Load() {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started.IsZero() || now.Sub(w.started) < w.timeout {
		return nil
	}
	return w.errLocked(now)
}

func (w *connWatch) errLocked(now time.Time) error {
	addrs := make([]string, 0, len(w.lastErr))
	for a := range w.lastErr {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	var b strings.Builder
	for _, a := range addrs {
		fmt.Fprintf(&b, "; %s: %v", a, w.lastErr[a])
	}
	if len(addrs) == 0 {
		b.WriteString("; no connection attempt finished")
	}
	return fmt.Errorf("sink: %w in %s (brokers %s%s): check the broker addresses and that they are reachable",
		ErrNoBroker, now.Sub(w.started).Round(time.Millisecond), strings.Join(w.brokers, ","), b.String())
}

// bound returns ctx, cancelled with the connect error when the timeout passes before
// the sink connected: for the requests Run makes before its poll loop.
func (w *connWatch) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	w.mu.Lock()
	left := w.timeout - time.Since(w.started)
	w.mu.Unlock()
	t := time.AfterFunc(max(left, 0), func() {
		if err := w.check(time.Now()); err != nil {
			cancel(err)
		}
	})
	return ctx, func() { t.Stop(); cancel(nil) }
}

// listEnds lists the end offsets for StopAtEnd. Until the sink has connected, a failure
// to reach the brokers is retried every second, as the poll loop would, and ends in the
// connect error after the timeout.
func (s *Sink) listEnds(ctx context.Context) (map[tp]int64, error) {
	ctx, cancel := s.conn.bound(ctx)
	defer cancel()
	for {
		ends, err := listEndOffsets(ctx, s.cl, s.opt.Topics)
		if cause := context.Cause(ctx); errors.Is(cause, ErrNoBroker) {
			return nil, cause
		}
		if err == nil || s.conn.connected.Load() || ctx.Err() != nil {
			if err != nil {
				return nil, fmt.Errorf("sink: %w", err)
			}
			return ends, nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
