package ingest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/ingest"
	"github.com/tailor-metrics/tailor/internal/kafkaharness"
	"github.com/tailor-metrics/tailor/storage"
	"github.com/tailor-metrics/tailor/storage/faults"
)

func isSegment(key string) bool { return strings.HasSuffix(key, ".tseg") }

// TestSinkPausesWhenStoreGivesUp: the store spends its whole retry budget on several
// segment uploads (a *storage.TransientError, what S3 returns after minutes of 503
// SlowDown). The sink pauses and stores the same segments again: nothing is skipped and
// nothing is stored twice.
func TestSinkPausesWhenStoreGivesUp(t *testing.T) {
	const parts = 3
	c := newCluster(t, parts, "m")
	produce(t, c, "m", parts, 40, 0)
	fs := faults.Wrap(storage.NewMem(t.Name()))
	// The 2nd to 6th segment uploads fail, so one segment fails several times in a row.
	f := fs.Inject(faults.Rule{Ops: faults.OpCreate, KeyFunc: isSegment, After: 1, Times: 5})
	st := runSink(t, c, fs, "g", 7)
	if f.Hits() != 5 {
		t.Fatalf("the fault hit %d uploads, want 5", f.Hits())
	}
	if st.Records != 41 || st.Rejected != 1 {
		t.Fatalf("stats %+v", st)
	}
	checkStore(t, fs, 41, map[string]map[int32]int64{"m": {0: 14 + 1, 1: 13, 2: 13}})
}

// TestSinkAuthErrorCommitsNothingUnstored: an auth error is never taken as success. The
// sink stops with the AuthError, no committed offset lies past what the segments hold,
// and a sink started after the credentials are fixed stores the rest exactly once.
func TestSinkAuthErrorCommitsNothingUnstored(t *testing.T) {
	const parts = 3
	c := newCluster(t, parts, "m")
	produce(t, c, "m", parts, 40, 0)
	fs := faults.Wrap(storage.NewMem(t.Name()))
	denied := &storage.AuthError{Op: "PutObject", Status: 403, Code: "AccessDenied", Err: errors.New("injected 403 AccessDenied")}
	f := fs.Inject(faults.Rule{Ops: faults.OpCreate, KeyFunc: isSegment, After: 2, Err: denied})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := kafkaharness.Drain(ctx, ingest.Options{Brokers: c.ListenAddrs(), Topics: []string{"m"}, Group: "g", Store: fs,
		FlushPayloads: 7, RetryBase: 5 * time.Millisecond, RetryMax: 40 * time.Millisecond})
	if !storage.IsAuth(err) {
		t.Fatalf("sink under a denied store: got %v, want the AuthError", err)
	}
	if f.Hits() == 0 {
		t.Fatal("the auth fault never fired")
	}
	segs, err := columnar.ListSegments(ctx, fs)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[int32]int64{}
	for _, seg := range segs {
		stored[seg.Header.Partition] = max(stored[seg.Header.Partition], seg.Footer.EndOffset)
	}
	committed := committedOffsets(t, c, "g", "m")
	for p := range int32(parts) {
		if committed[p] > stored[p] {
			t.Errorf("partition %d: committed offset %d is past the stored segments' end %d", p, committed[p], stored[p])
		}
	}
	if got := len(segs); got >= 41/7 {
		t.Fatalf("%d segments stored although uploads were denied", got)
	}
	// Credentials fixed: the same group resumes from its commits and loses nothing.
	f.Remove()
	runSink(t, c, fs, "g", 7)
	checkStore(t, fs, 41, map[string]map[int32]int64{"m": {0: 14 + 1, 1: 13, 2: 13}})
}

// committedOffsets returns the group's committed offset per partition (0 when none).
func committedOffsets(t *testing.T, c *kfake.Cluster, group, topic string) map[int32]int64 {
	t.Helper()
	m, err := kafkaharness.Committed(context.Background(), c.ListenAddrs(), group, topic)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
