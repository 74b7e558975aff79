package kafkaharness

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/ingest"
	"github.com/tailor-metrics/tailor/ingest/payload"
	"github.com/tailor-metrics/tailor/storage"
	"github.com/tailor-metrics/tailor/storage/faults"
)

func broker(t *testing.T) []string {
	t.Helper()
	c, err := StartBroker(1, "m")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// produce sends n one-point payloads to partition 0 of "m".
func produce(t *testing.T, brokers []string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("m"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range n {
		p := columnar.Payload{SeriesKey: columnar.SeriesKey{Org: 1, Metric: 2, Context: uint64(i)},
			Timestamps: []int64{1763942400000}, Values: []float64{float64(i)}}
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: payload.AppendProto(nil, &p)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDrainSaysSinkOnce: an error of the sink reaches the caller with one "sink:"
// prefix (the demo used to print "sink: sink: …"), and keeps its identity.
func TestDrainSaysSinkOnce(t *testing.T) {
	brokers := broker(t)
	produce(t, brokers, 3)
	fs := faults.Wrap(storage.NewMem(t.Name()))
	fs.Inject(faults.Rule{Ops: faults.OpCreate, Err: &storage.AuthError{Op: "PutObject", Status: 403, Code: "AccessDenied", Err: errors.New("denied")}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := Drain(ctx, ingest.Options{Brokers: brokers, Topics: []string{"m"}, Group: "g", Store: fs, FlushPayloads: 1})
	if !storage.IsAuth(err) || strings.Count(err.Error(), "sink:") != 1 {
		t.Fatalf("drain into a denied store: %v; want the AuthError with one sink: prefix", err)
	}
	// A drain lists the end offsets first; a topic the broker does not have fails there.
	_, err = Drain(ctx, ingest.Options{Brokers: brokers, Topics: []string{"nope"}, Group: "g", Store: fs})
	if err == nil || !strings.HasPrefix(err.Error(), "sink: ") || strings.Count(err.Error(), "sink:") != 1 || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("drain of a missing topic: %v; want one sink: prefix and the topic", err)
	}
}

// TestKilledWorkerStoresNothing: a killed worker's writes fail, so what it read is
// neither stored nor committed, as after a crash; a drain of the group then stores it.
func TestKilledWorkerStoresNothing(t *testing.T) {
	brokers := broker(t)
	produce(t, brokers, 4)
	st := storage.NewMem(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opt := ingest.Options{Brokers: brokers, Topics: []string{"m"}, Group: "g", Store: st, FlushPayloads: 1000, FlushAge: time.Hour}
	w, err := StartWorker(ctx, "w", opt)
	if err != nil {
		t.Fatal(err)
	}
	for w.Stats().Records < 4 {
		select {
		case <-ctx.Done():
			t.Fatalf("the worker read %d of 4 records", w.Stats().Records)
		case <-time.After(10 * time.Millisecond):
		}
	}
	// The stop that follows the kill tries to store the open segment, and fails.
	if err := w.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if !w.Killed() || w.Store.Failed(faults.OpWrite) == 0 {
		t.Fatalf("killed %v, failed writes %d; want the open segment's write refused", w.Killed(), w.Store.Failed(faults.OpWrite))
	}
	segs, err := columnar.ListSegments(ctx, st)
	if err != nil || len(segs) != 0 {
		t.Fatalf("a killed worker stored %d segments (%v)", len(segs), err)
	}
	if got, err := Committed(ctx, brokers, "g", "m"); err != nil || len(got) != 0 {
		t.Fatalf("a killed worker committed %v (%v)", got, err)
	}
	stats, err := Drain(ctx, opt)
	if err != nil || stats.Records != 4 || stats.Segments != 1 {
		t.Fatalf("drain after the kill: %+v, %v; want the 4 records in a segment", stats, err)
	}
	if _, err := WaitCommitted(ctx, brokers, "g", "m", map[int32]int64{0: 4}); err != nil {
		t.Fatal(err)
	}
}
