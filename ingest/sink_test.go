package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/ingest"
	"github.com/tailor-metrics/tailor/ingest/payload"
	"github.com/tailor-metrics/tailor/internal/kafkaharness"
	"github.com/tailor-metrics/tailor/storage"
)

// newCluster starts an embedded broker with topic seeded, closed when t ends.
func newCluster(t testing.TB, partitions int32, topic string) *kfake.Cluster {
	t.Helper()
	c, err := kafkaharness.StartBroker(int(partitions), topic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// produce sends n one-series payloads round-robin over the partitions, plus one malformed
// record per call, and returns the end offset of every partition afterwards.
func produce(t testing.TB, c *kfake.Cluster, topic string, partitions int32, n, base int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	for i := base; i < base+n; i++ {
		p := columnar.Payload{SeriesKey: columnar.SeriesKey{Org: uint32(i % 5), Metric: uint64(i % 3), Context: uint64(i)},
			Timestamps: []int64{1763942400000 + int64(i)*1000, 1763942400000 + int64(i)*1000 + 1}, Values: []float64{float64(i), -float64(i)}}
		r := &kgo.Record{Topic: topic, Partition: int32(i) % partitions, Value: payload.AppendProto(nil, &p), Timestamp: time.UnixMilli(1763942400000 + int64(i))}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("{not json")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// runSink drains topic "m" of group into st with short retry pauses (see
// TestSinkPausesWhenStoreGivesUp).
func runSink(t testing.TB, c *kfake.Cluster, st storage.Store, group string, flush int) ingest.Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stats, err := kafkaharness.Drain(ctx, ingest.Options{Brokers: c.ListenAddrs(), Topics: []string{"m"}, Group: group, Store: st,
		FlushPayloads: flush, RetryBase: 5 * time.Millisecond, RetryMax: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return stats
}

func checkStore(t testing.TB, st storage.Store, records int64, ends map[string]map[int32]int64) {
	t.Helper()
	segs, err := columnar.ListSegments(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	if err := ingest.CheckChains(segs, nil, ends); err != nil {
		t.Fatal(err)
	}
	var covered uint64
	for _, s := range segs {
		covered += s.Footer.Records
	}
	if covered != uint64(records) {
		t.Fatalf("segments cover %d records, %d were produced", covered, records)
	}
}

// TestSinkRestartAndReplay: a sink drains, more is produced, a second sink of the same
// group continues from the commits; then a new group replays everything from offset 0
// with other flush boundaries over the same store. The segments must still hold every
// offset exactly once, which the replaying sink achieves by continuing each chain from
// the existing segments' ends.
func TestSinkRestartAndReplay(t *testing.T) {
	const parts = 3
	c := newCluster(t, parts, "m")
	st, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	produce(t, c, "m", parts, 40, 0)
	s1 := runSink(t, c, st, "g1", 7)
	produce(t, c, "m", parts, 25, 40)
	s2 := runSink(t, c, st, "g1", 7)
	if s1.Records+s2.Records != 67 || s1.Rejected+s2.Rejected != 2 {
		t.Fatalf("stats %+v %+v", s1, s2)
	}
	// 40+25 payloads over 3 partitions plus 2 malformed records on partition 0.
	ends := map[string]map[int32]int64{"m": {0: 22 + 2, 1: 22, 2: 21}}
	checkStore(t, st, 67, ends)

	// Smaller flushes: every segment we cut ends before the existing one; skip ahead.
	s3 := runSink(t, c, st, "g2", 5)
	if s3.Segments != 0 || s3.SegmentsExisting == 0 {
		t.Fatalf("replay stored new segments: %+v", s3)
	}
	checkStore(t, st, 67, ends)
	// Larger flushes: we hold records past the existing segment's end and must consume
	// them again from there (a rewind), never store an overlapping segment.
	s4 := runSink(t, c, st, "g3", 10)
	if s4.SegmentsExisting == 0 {
		t.Fatalf("replay met no existing segment: %+v", s4)
	}
	checkStore(t, st, 67, ends)
}

func TestCheckChainsFindsGapsAndOverlaps(t *testing.T) {
	seg := func(start, end int64) *columnar.Segment {
		return &columnar.Segment{Key: "k", Header: columnar.Header{Topic: "t", StartOffset: start}, Footer: columnar.Footer{EndOffset: end}}
	}
	ends := map[string]map[int32]int64{"t": {0: 30}}
	f := func(want bool, segs ...*columnar.Segment) {
		t.Helper()
		if err := ingest.CheckChains(segs, nil, ends); (err == nil) != want {
			t.Fatalf("CheckChains = %v, want ok=%v", err, want)
		}
	}
	f(true, seg(0, 10), seg(10, 30))
	f(false, seg(0, 10), seg(11, 30))
	f(false, seg(0, 12), seg(10, 30))
	f(false, seg(0, 10), seg(10, 29))
	f(false, seg(1, 30))
}

// TestSinkTopicRegexFindsNewTopics: a sink on a topic regex picks up a topic created
// while it runs, without a restart, and stores both topics exactly once.
func TestSinkTopicRegexFindsNewTopics(t *testing.T) {
	c := newCluster(t, 2, "m-a")
	produce(t, c, "m-a", 2, 10, 0)
	st := storage.NewMem(t.Name())
	w := startWorker(t, ingest.Options{
		Brokers: c.ListenAddrs(), Topics: []string{"m-.*"}, TopicRegex: true, Group: "g", Store: st,
		FlushPayloads: 4, FlushAge: 200 * time.Millisecond,
		KafkaOpts: []kgo.Opt{kgo.MetadataMinAge(50 * time.Millisecond), kgo.MetadataMaxAge(300 * time.Millisecond)},
	})
	createTopic(t, c, "m-b", 2)
	produce(t, c, "m-b", 2, 6, 100)
	// 10+1 records on m-a, 6+1 on m-b (the malformed one goes to partition 0).
	for start := time.Now(); w.Stats().Records < 18; time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > time.Minute {
			t.Fatalf("the sink consumed %d records of 18 in a minute", w.Stats().Records)
		}
	}
	ends := map[string]map[int32]int64{"m-a": {0: 6, 1: 5}, "m-b": {0: 4, 1: 3}}
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		segs, err := columnar.ListSegments(context.Background(), st)
		if err != nil {
			t.Fatal(err)
		}
		if ingest.CheckChains(segs, nil, ends) == nil {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("segments after a minute: %v", ingest.CheckChains(segs, nil, ends))
		}
	}
	stopWorker(t, w)
}

func createTopic(t testing.TB, c *kfake.Cluster, topic string, partitions int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, partitions, 1
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range resp.Topics {
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
			t.Fatalf("create topic %s: %v", topic, err)
		}
	}
}

// TestSinkStatsDuringSlowCommit: an offset commit that the broker holds does not hold
// the sink's lock. Stats (what the progress line and tests read) answers while the
// commit waits; the broker answers the commit only after that.
func TestSinkStatsDuringSlowCommit(t *testing.T) {
	c := newCluster(t, 1, gdTopic)
	committing, release := make(chan struct{}), make(chan struct{})
	c.ControlKey(int16(kmsg.OffsetCommit), func(kmsg.Request) (kmsg.Response, error, bool) {
		// Not handling the request keeps the control function: drop it, so that only
		// the first commit waits.
		c.DropControl()
		close(committing)
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	produce(t, c, gdTopic, 1, 5, 0)
	w := startWorker(t, ingest.Options{Brokers: c.ListenAddrs(), Topics: []string{gdTopic}, Group: "g", Store: storage.NewMem(t.Name()),
		FlushPayloads: 3, FlushAge: 200 * time.Millisecond})
	select {
	case <-committing:
	case <-time.After(time.Minute):
		t.Fatal("no commit within a minute")
	}
	got := make(chan ingest.Stats, 1)
	go func() { got <- w.Stats() }()
	select {
	case st := <-got:
		if st.Segments == 0 || st.Commits != 0 {
			t.Errorf("stats during the first commit: %+v; want a stored segment and no commit done", st)
		}
	case <-time.After(20 * time.Second):
		t.Error("Stats blocked while a commit waited for the broker: the lock is held across the request")
	}
	close(release)
	waitCommitted(t, c, "g", map[int32]int64{0: 6}, time.Minute)
	stopWorker(t, w)
}
