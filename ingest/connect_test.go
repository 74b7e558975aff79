package ingest

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tailor-metrics/tailor/storage"
)

// timedLog records log lines and when the first line containing want arrived.
type timedLog struct {
	mu    sync.Mutex
	b     strings.Builder
	want  string
	first time.Time
}

func (l *timedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.first.IsZero() && strings.Contains(string(p), l.want) {
		l.first = time.Now()
	}
	return l.b.Write(p)
}

func (l *timedLog) get() (string, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String(), l.first
}

// TestSinkCannotConnect: a sink whose brokers cannot be reached logs so at once, naming
// the broker, and Run fails after ConnectTimeout with ErrNoBroker, also when it first
// lists end offsets (StopAtEnd).
func TestSinkCannotConnect(t *testing.T) {
	t.Parallel()
	for _, stopAtEnd := range []bool{false, true} {
		// Port 1 needs root to listen on, and nothing does in a test environment.
		const addr = "127.0.0.1:1"
		logs := &timedLog{want: "cannot connect to Kafka broker"}
		const timeout = 3 * time.Second
		s, err := New(Options{
			Brokers: []string{addr}, Topics: []string{"m"}, Store: storage.NewMem("t"), StopAtEnd: stopAtEnd,
			ConnectTimeout: timeout,
			Logger:         slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		start := time.Now()
		err = s.Run(ctx)
		d := time.Since(start)
		cancel()
		if !errors.Is(err, ErrNoBroker) || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("stop-at-end %v: got %v, want ErrNoBroker naming %s and why", stopAtEnd, err, addr)
		}
		if d < timeout || d > timeout+15*time.Second {
			t.Fatalf("stop-at-end %v: Run returned after %s, want just after the %s connect timeout", stopAtEnd, d, timeout)
		}
		out, first := logs.get()
		if first.IsZero() || !strings.Contains(out, "broker="+addr) {
			t.Fatalf("stop-at-end %v: no warning naming the broker:\n%s", stopAtEnd, out)
		}
		if w := first.Sub(start); w > timeout {
			t.Fatalf("stop-at-end %v: the first warning came after %s, want within seconds", stopAtEnd, w)
		}
	}
}

// TestSinkKeepsRetryingAfterDisconnect: the connect timeout is for a sink that never
// connected. One that connected and then lost its broker keeps retrying, as before, and
// stops only when it is told to.
func TestSinkKeepsRetryingAfterDisconnect(t *testing.T) {
	t.Parallel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "m"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &timedLog{want: "connected to Kafka"}
	const timeout = time.Second
	s, err := New(Options{
		Brokers: c.ListenAddrs(), Topics: []string{"m"}, Store: storage.NewMem("t"), ConnectTimeout: timeout,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for {
		if _, first := logs.get(); !first.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sink never connected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Close()
	select {
	case err := <-done:
		t.Fatalf("Run returned %v after the broker went away; it must keep retrying", err)
	case <-time.After(4 * timeout):
	}
	cancel()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after cancel")
	}
}
