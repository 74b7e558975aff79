package ingest_test

// Game-day tests: the sink under broker, store, group and process faults. Each scenario
// ends with verify, which proves from the store alone that every produced offset of
// every partition is in exactly one segment (CheckChains, from footers), that every
// produced point is stored exactly once with its value bits and provenance unchanged
// (a digest over all rows), that the latest arrival of every (series, ts) carries the
// value workload.Expected says, and that every malformed record is in exactly one
// rejects file.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/ingest"
	"github.com/tailor-metrics/tailor/ingest/payload"
	"github.com/tailor-metrics/tailor/ingest/workload"
	"github.com/tailor-metrics/tailor/internal/kafkaharness"
	"github.com/tailor-metrics/tailor/internal/leakcheck"
	"github.com/tailor-metrics/tailor/storage"
	"github.com/tailor-metrics/tailor/storage/faults"
	"github.com/tailor-metrics/tailor/storage/s3test"
)

const gdTopic = "metrics"

func TestMain(m *testing.M) {
	if os.Getenv("TAILOR_SINK_CHILD") != "" {
		os.Exit(childSink())
	}
	os.Exit(leakcheck.Main(m))
}

// produced is what a test sent: end offsets, the digest of every point with its
// provenance, and the number of malformed records.
type produced struct {
	gen       *workload.Gen
	ends      map[string]map[int32]int64
	digest    uint64
	points    int64
	malformed int
}

func gdSpec(partitions int) workload.Spec {
	return workload.Spec{
		Seed: 7, Series: 60, Orgs: 5, PointsPerSeries: 200, PointsPerPayload: 20,
		IntervalMs: 10_000, Start: 1763949600000, Partitions: partitions, Redeliver: 0.05, Corrections: 0.5,
	}
}

func pointHash(org uint32, metric, ctx uint64, ts int64, bits uint64) uint64 {
	h := mix64(uint64(org) ^ 0x51)
	h = mix64(h ^ metric)
	h = mix64(h ^ ctx)
	h = mix64(h ^ uint64(ts))
	return mix64(h ^ bits)
}

func recordHash(sum uint64, n int64, partition int32, offset int64) uint64 {
	return mix64(sum ^ mix64(uint64(n)) ^ mix64(uint64(partition)<<48^uint64(offset)))
}

func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// produceWorkload sends spec's records (and a malformed record every 97 records) and
// returns what was produced. It may be called once per cluster.
func produceWorkload(t testing.TB, c *kfake.Cluster, spec workload.Spec) *produced {
	t.Helper()
	gen, err := workload.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	p := &produced{gen: gen, ends: map[string]map[int32]int64{gdTopic: {}}}
	sendWorkload(t, c, gen, p, func(int) bool { return true })
	return p
}

// sendWorkload produces the records of gen for which keep(i) is true.
func sendWorkload(t testing.TB, c *kfake.Cluster, gen *workload.Gen, p *produced, keep func(i int) bool) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var mu sync.Mutex
	var perr error
	done := func(sum uint64, n int64) func(*kgo.Record, error) {
		return func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				perr = err
				return
			}
			if n > 0 {
				p.digest += recordHash(sum, n, r.Partition, r.Offset)
			}
			p.ends[gdTopic][r.Partition] = max(p.ends[gdTopic][r.Partition], r.Offset+1)
		}
	}
	i := 0
	err = gen.Records(func(rec *workload.Record) error {
		i++
		if !keep(i) {
			return nil
		}
		var sum uint64
		for j, ts := range rec.Payload.Timestamps {
			sum += pointHash(rec.Payload.Org, rec.Payload.Metric, rec.Payload.Context, ts, math.Float64bits(rec.Payload.Values[j]))
		}
		n := int64(len(rec.Payload.Timestamps))
		p.points += n
		cl.Produce(ctx, &kgo.Record{Topic: gdTopic, Partition: rec.Partition, Value: payload.AppendProto(nil, &rec.Payload),
			Timestamp: time.UnixMilli(rec.Timestamp)}, done(sum, n))
		if i%97 == 0 {
			p.malformed++
			cl.Produce(ctx, &kgo.Record{Topic: gdTopic, Partition: rec.Partition, Value: []byte(`{"org_id": "not a number"}`),
				Timestamp: time.UnixMilli(rec.Timestamp)}, done(0, 0))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if perr != nil {
		t.Fatal(perr)
	}
}

type latest struct {
	recTs  int64
	part   int32
	offset int64
	bits   uint64
}

// verify checks the store against what was produced (see the file comment).
func verify(t testing.TB, st storage.Store, p *produced) {
	t.Helper()
	ctx := context.Background()
	segs, err := columnar.ListSegments(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := ingest.CheckChains(segs, nil, p.ends); err != nil {
		t.Fatal(err)
	}
	shards := map[string]bool{}
	for _, s := range segs {
		for _, name := range s.Footer.Shards {
			shards[name] = true
		}
	}
	type po struct {
		part   int32
		offset int64
	}
	sums := map[po]uint64{}
	counts := map[po]int64{}
	type sk struct {
		org           uint32
		metric, ctxID uint64
	}
	byKey := map[sk]map[int64]latest{}
	var rows int64
	for shard := range shards {
		splits := columnar.PlanSplits(segs, shard, columnar.AllTime, 64<<20)
		rd := columnar.NewPointReader(ctx, st, splits, columnar.Topics(segs), columnar.ReadOptions{})
		for rd.Next() {
			rec := rd.RecordBatch()
			org := rec.Column(0).(*array.Uint32)
			met := rec.Column(1).(*array.Uint64)
			cx := rec.Column(2).(*array.Uint64)
			ts := rec.Column(3).(*array.Int64)
			val := rec.Column(4).(*array.Float64)
			rts := rec.Column(5).(*array.Int64)
			part := rec.Column(7).(*array.Int32)
			off := rec.Column(8).(*array.Int64)
			for i := 0; i < int(rec.NumRows()); i++ {
				bits := math.Float64bits(val.Value(i))
				k := po{part.Value(i), off.Value(i)}
				sums[k] += pointHash(org.Value(i), met.Value(i), cx.Value(i), ts.Value(i), bits)
				counts[k]++
				rows++
				key := sk{org.Value(i), met.Value(i), cx.Value(i)}
				m := byKey[key]
				if m == nil {
					m = map[int64]latest{}
					byKey[key] = m
				}
				cand := latest{rts.Value(i), part.Value(i), off.Value(i), bits}
				if old, ok := m[ts.Value(i)]; !ok || cand.recTs > old.recTs ||
					cand.recTs == old.recTs && (cand.part > old.part || cand.part == old.part && cand.offset > old.offset) {
					m[ts.Value(i)] = cand
				}
			}
		}
		err := rd.Err()
		rd.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	var digest uint64
	for k, sum := range sums {
		digest += recordHash(sum, counts[k], k.part, k.offset)
	}
	if rows != p.points || digest != p.digest {
		t.Fatalf("segments hold %d points (digest %x), %d were produced (digest %x): a point is lost, duplicated or changed", rows, digest, p.points, p.digest)
	}
	var distinct int
	err = p.gen.Expected(func(k columnar.SeriesKey, ts int64, v float64) error {
		distinct++
		l, ok := byKey[sk{k.Org, k.Metric, k.Context}][ts]
		if !ok {
			return fmt.Errorf("point %v ts %d missing", k, ts)
		}
		if l.bits != math.Float64bits(v) {
			return fmt.Errorf("point %v ts %d: latest arrival has %v, want %v", k, ts, math.Float64frombits(l.bits), v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var stored int
	for _, m := range byKey {
		stored += len(m)
	}
	if stored != distinct {
		t.Fatalf("segments hold %d distinct points, the workload has %d", stored, distinct)
	}
	// Every malformed record is in exactly one rejects file.
	seen := map[[2]int64]int{}
	err = st.List(ctx, "rejects/", func(a storage.Attrs) error {
		b, err := storage.ReadAll(ctx, st, a.Key)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			var r ingest.Reject
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				return fmt.Errorf("%s: %w", a.Key, err)
			}
			seen[[2]int64{int64(r.Partition), r.Offset}]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("reject %v is stored %d times", k, n)
		}
	}
	if len(seen) != p.malformed {
		t.Fatalf("%d rejects stored, %d malformed records produced", len(seen), p.malformed)
	}
}

// gdOptions are fast test settings: small segments, quick retries.
func gdOptions(c *kfake.Cluster, st storage.Store, group string) ingest.Options {
	return ingest.Options{
		Brokers: c.ListenAddrs(), Topics: []string{gdTopic}, Group: group, Store: st,
		FlushPayloads: 40, FlushAge: 500 * time.Millisecond, Uploads: 4, RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		StopTimeout: 5 * time.Second, Logger: testLogger(group),
	}
}

func testLogger(name string) *slog.Logger {
	if os.Getenv("TAILOR_SINK_DEBUG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("worker", name)
}

// startWorker runs a sink in the background until stopWorker or the end of t, with
// rules injected into its own store before it starts.
func startWorker(t testing.TB, opt ingest.Options, rules ...faults.Rule) *kafkaharness.Worker {
	t.Helper()
	w, err := kafkaharness.StartWorker(context.Background(), opt.Group, opt, rules...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopWorker(t, w) })
	return w
}

// stopWorker cancels the worker (a SIGTERM) and waits for it, at most a minute.
func stopWorker(t testing.TB, w *kafkaharness.Worker) ingest.Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.Stop(ctx); err != nil {
		t.Errorf("sink: %v", err)
	}
	return w.Stats()
}

// drain runs one sink with StopAtEnd to completion.
func drain(t testing.TB, opt ingest.Options) ingest.Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stats, err := kafkaharness.Drain(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	return stats
}

// waitCommitted waits until the group has committed every partition's end, or fails
// after limit. It returns how long that took.
func waitCommitted(t testing.TB, c *kfake.Cluster, group string, ends map[int32]int64, limit time.Duration) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	d, err := kafkaharness.WaitCommitted(ctx, c.ListenAddrs(), group, gdTopic, ends)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func memStore(t testing.TB) *faults.Store {
	t.Helper()
	st, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return faults.Wrap(st)
}

// TestGameDayStoreFailures: the store answers 503 SlowDown to every create for a while,
// then breaks one upload mid-stream and throttles one more. The sink retries (counted),
// pauses the partition meanwhile, and never commits past unstored data. (An auth error
// stops the sink: TestSinkAuthErrorCommitsNothingUnstored.)
func TestGameDayStoreFailures(t *testing.T) {
	c := newCluster(t, 4, gdTopic)
	p := produceWorkload(t, c, gdSpec(4))
	fs := memStore(t)
	slow := fs.Inject(faults.Rule{Ops: faults.OpCreate, Window: 700 * time.Millisecond})
	cut := fs.Inject(faults.Rule{Ops: faults.OpCreate, Key: "segments/*/*/*.tseg", After: 5, Times: 1, MidStream: true, AfterBytes: 100})
	auth := fs.Inject(faults.Rule{Ops: faults.OpCreate, After: 2, Times: 1, Err: &storage.TransientError{Op: "PutObject", Reason: storage.ReasonThrottled, Attempts: 9, Err: errors.New("429")}})
	reg := newTestRegistry()
	opt := gdOptions(c, fs, "g")
	opt.Registerer = reg
	stats := drain(t, opt)
	if slow.Hits() == 0 || cut.Hits() != 1 || auth.Hits() != 1 {
		t.Fatalf("faults hit %d, %d, %d times", slow.Hits(), cut.Hits(), auth.Hits())
	}
	if stats.Retries < uint64(slow.Hits()+2) {
		t.Fatalf("%d retries counted, %d failures injected", stats.Retries, slow.Hits()+2)
	}
	if got := counterSum(t, reg, "tailor_sink_upload_retries_total"); got != float64(stats.Retries) {
		t.Fatalf("retries metric %v, stats %d", got, stats.Retries)
	}
	if got := counterSum(t, reg, "tailor_sink_points_total"); got != float64(p.points) {
		t.Fatalf("points metric %v, produced %d", got, p.points)
	}
	if got := counterSum(t, reg, "tailor_sink_rejects_total"); got != float64(p.malformed) {
		t.Fatalf("rejects metric %v, produced %d malformed", got, p.malformed)
	}
	if got := counterSum(t, reg, "tailor_sink_flushes_total"); got != float64(stats.Segments) || got == 0 {
		t.Fatalf("flushes metric %v, %d segments stored", got, stats.Segments)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	// tailor_sink_lag_records has no series here: they go with the partitions at close.
	for _, want := range []string{"tailor_sink_flush_bytes", "tailor_sink_upload_seconds",
		"tailor_sink_buffer_bytes", "tailor_sink_buffer_limit_bytes", "tailor_sink_uploads_in_flight", "tailor_sink_paused_partitions"} {
		if !names[want] {
			t.Errorf("metric %s is not exported", want)
		}
	}
	verify(t, fs.Inner(), p)
}

// TestGameDayBrokerFaults: fetches and offset commits fail for a while. Failed commits
// are retried on the next poll; nothing is lost or stored twice.
func TestGameDayBrokerFaults(t *testing.T) {
	c := newCluster(t, 4, gdTopic)
	p := produceWorkload(t, c, gdSpec(4))
	var fetchFails, commitFails atomic.Int32
	c.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if fetchFails.Add(1) > 5 {
			return nil, nil, false
		}
		c.KeepControl()
		r := req.(*kmsg.FetchRequest)
		resp := r.ResponseKind().(*kmsg.FetchResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	c.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if commitFails.Add(1) > 4 {
			return nil, nil, false
		}
		c.KeepControl()
		r := req.(*kmsg.OffsetCommitRequest)
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.UnknownServerError.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	fs := memStore(t)
	stats := drain(t, gdOptions(c, fs, "g"))
	if stats.CommitErrors == 0 {
		t.Fatalf("no commit failed: %+v", stats)
	}
	verify(t, fs.Inner(), p)
	// A second drain of the same group finds everything committed: it stores nothing.
	if s2 := drain(t, gdOptions(c, fs, "g")); s2.Segments != 0 {
		t.Fatalf("second drain stored %d segments", s2.Segments)
	}
}

// TestGameDayRebalanceMidUpload: a second worker joins while the first has uploads in
// flight that outlast the revoke wait. The first abandons them uncommitted and the
// uploads land late (zombies); the new owner re-consumes from the last commit and either
// finds the zombie's segment by its key or beats it to the key.
//
// The zombies are the first worker's first creates of segments: deaf to its context,
// like S3 PUTs already on the wire, and held until the first worker has abandoned an
// upload, so that its revoke always gives up on them, however slow the machine.
func TestGameDayRebalanceMidUpload(t *testing.T) {
	c := newCluster(t, 4, gdTopic)
	p := produceWorkload(t, c, gdSpec(4))
	local := memStore(t)
	release := make(chan struct{})
	zombies := faults.Wrap(local)
	z := zombies.Inject(faults.Rule{Ops: faults.OpCreate, Key: "segments/*/*/*.tseg", Times: 4, Late: true,
		Do: func(faults.Op, string) { <-release }})
	optA := gdOptions(c, zombies, "g")
	optA.RebalanceTimeout = 6 * time.Second // revoke waits 3 s for the uploads it holds
	a := startWorker(t, optA)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := z.Wait(ctx, 1); err != nil {
		t.Fatalf("no upload started: %v", err)
	}
	optB := gdOptions(c, local, "g")
	optB.RebalanceTimeout = 6 * time.Second
	b := startWorker(t, optB)
	for a.Stats().Abandoned == 0 {
		select {
		case <-ctx.Done():
			close(release)
			t.Fatalf("worker a abandoned no upload within a minute: %+v", a.Stats())
		case <-time.After(20 * time.Millisecond):
		}
	}
	close(release)
	waitCommitted(t, c, "g", p.ends[gdTopic], time.Minute)
	if err := z.WaitIdle(ctx); err != nil {
		t.Fatalf("zombie uploads still running: %v", err)
	}
	sa, sb := stopWorker(t, a), stopWorker(t, b)
	if z.Succeeded() == 0 {
		t.Fatal("no zombie upload landed")
	}
	t.Logf("worker a: %+v; worker b: %+v; zombies landed: %d", sa, sb, z.Succeeded())
	verify(t, local.Inner(), p)
}

// TestGameDayWorkersDownAndBack: the only worker stops while producers go on; nobody
// consumes for a while; then two workers (one slow: every create takes 150 ms) come back
// and catch up.
func TestGameDayWorkersDownAndBack(t *testing.T) {
	c := newCluster(t, 6, gdTopic)
	spec := gdSpec(6)
	gen, err := workload.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	p := &produced{gen: gen, ends: map[string]map[int32]int64{gdTopic: {}}}
	sendWorkload(t, c, gen, p, func(i int) bool { return i%2 == 0 })
	fs := memStore(t)
	w := startWorker(t, gdOptions(c, fs, "g"))
	waitCommitted(t, c, "g", p.ends[gdTopic], time.Minute)
	stopWorker(t, w)
	sendWorkload(t, c, gen, p, func(i int) bool { return i%2 == 1 })
	slow := startWorker(t, gdOptions(c, fs, "g"), faults.Rule{Ops: faults.OpCreate, Delay: 150 * time.Millisecond, PassThrough: true})
	fast := startWorker(t, gdOptions(c, fs, "g"))
	waitCommitted(t, c, "g", p.ends[gdTopic], time.Minute)
	stopWorker(t, slow)
	stopWorker(t, fast)
	verify(t, fs.Inner(), p)
}

// TestGameDayGracefulStop: the store is slow, the sink is stopped (SIGTERM) with uploads
// in flight and a short stop timeout: it abandons them uncommitted. The next worker
// resumes from the last commit, and nothing is lost or doubled.
func TestGameDayGracefulStop(t *testing.T) {
	c := newCluster(t, 4, gdTopic)
	p := produceWorkload(t, c, gdSpec(4))
	fs := memStore(t)
	slow := fs.Inject(faults.Rule{Ops: faults.OpCreate, After: 3, Delay: 2 * time.Second, PassThrough: true})
	opt := gdOptions(c, fs, "g")
	opt.StopTimeout = 300 * time.Millisecond
	w := startWorker(t, opt)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := slow.Wait(ctx, 1); err != nil {
		t.Fatalf("no upload reached the slow store: %v", err)
	}
	st := stopWorker(t, w)
	if st.Abandoned == 0 {
		t.Fatalf("stop abandoned nothing: %+v", st)
	}
	committed, err := kafkaharness.Committed(ctx, c.ListenAddrs(), "g", gdTopic)
	if err != nil {
		t.Fatal(err)
	}
	segs, err := columnar.ListSegments(context.Background(), fs.Inner())
	if err != nil {
		t.Fatal(err)
	}
	for part, off := range committed {
		covered := false
		for _, s := range segs {
			covered = covered || s.Header.Partition == part && s.Footer.EndOffset == off
		}
		if !covered {
			t.Fatalf("partition %d committed at %d, where no stored segment ends", part, off)
		}
	}
	slow.Remove()
	drain(t, gdOptions(c, fs, "g"))
	verify(t, fs.Inner(), p)
}

// TestGameDayBoundedMemory: 16 partitions whose segments never reach their payload or
// byte triggers, and a buffer pool that holds a fraction of the data: the sink flushes
// early for memory and pauses fetching instead of growing.
func TestGameDayBoundedMemory(t *testing.T) {
	c := newCluster(t, 16, gdTopic)
	spec := gdSpec(16)
	// 720,000 points: about 4 MB even as compressed segments, so the open segments
	// must pass the 1 MiB pool before the partitions reach their ends. With 120,000
	// points (745 KB stored) the pool filled only when enough frames were still raw,
	// and about one run in twenty never filled it; with 360,000, once the sink built
	// frames twice as fast (segment format v2), the partitions often reached their ends
	// one after another with less than 1 MiB open, and about one run in eight under
	// -race never filled it.
	spec.Series, spec.PointsPerSeries = 1200, 600
	p := produceWorkload(t, c, spec)
	fs := memStore(t)
	opt := gdOptions(c, fs, "g")
	// Only memory pressure (and the end of the stream) may flush: with the game days'
	// short flush age, a slow machine flushed by age before the pool ever filled.
	opt.FlushPayloads, opt.FlushAge = 1<<30, time.Hour
	opt.BufferBytes = 1 << 20
	stats := drain(t, opt)
	if stats.MemoryPauses == 0 {
		t.Fatalf("the buffer pool never filled: %+v", stats)
	}
	verify(t, fs.Inner(), p)
}

// childSink is a sink in a child process, so that tests can SIGKILL it. It reads its
// settings from the environment; TAILOR_SINK_HANG_AFTER=n makes every create after the
// first n hang (after writing the file TAILOR_SINK_MARKER), i.e. the process dies in
// the middle of an upload.
func childSink() int {
	st, err := storage.OpenLocal(os.Getenv("TAILOR_SINK_STORE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fs := faults.Wrap(st)
	if n, _ := strconv.Atoi(os.Getenv("TAILOR_SINK_HANG_AFTER")); n > 0 {
		marker := os.Getenv("TAILOR_SINK_MARKER")
		fs.Inject(faults.Rule{Ops: faults.OpCreate, After: n, Delay: time.Hour, Do: func(faults.Op, string) {
			_ = os.WriteFile(marker, nil, 0o644)
		}})
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	s, err := ingest.New(ingest.Options{
		Brokers: strings.Split(os.Getenv("TAILOR_SINK_BROKERS"), ","), Topics: []string{gdTopic},
		Group: "g", InstanceID: os.Getenv("TAILOR_SINK_INSTANCE"), Store: fs, FlushPayloads: 40, FlushAge: 500 * time.Millisecond,
		RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond, Logger: testLogger("child"),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := s.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func startChild(t testing.TB, c *kfake.Cluster, store, instance string, hangAfter int, marker string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TAILOR_SINK_CHILD=1", "TAILOR_SINK_STORE="+store,
		"TAILOR_SINK_BROKERS="+strings.Join(c.ListenAddrs(), ","), "TAILOR_SINK_INSTANCE="+instance,
		"TAILOR_SINK_HANG_AFTER="+strconv.Itoa(hangAfter), "TAILOR_SINK_MARKER="+marker)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

func waitFile(t testing.TB, path string, limit time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Since(start) > limit {
			t.Fatalf("%s did not appear within %s", path, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGameDayKillMidUploadAndRestart: a worker process is SIGKILLed in the middle of an
// upload and restarted with the same instance id (static membership). Its partitions
// are consumed again, and the segments hold everything exactly once. How soon is
// BenchmarkGameDayCatchUp's to measure: a loaded machine stretches it.
func TestGameDayKillMidUploadAndRestart(t *testing.T) {
	t.Logf("the restarted worker caught up %s after the kill", killAndRestart(t).Round(time.Millisecond))
}

// TestGameDayKillWithSurvivor: of two static members, one is SIGKILLed mid-upload and
// never comes back. The survivor takes its partitions over when its session times out
// (6 s) and the segments hold everything exactly once.
func TestGameDayKillWithSurvivor(t *testing.T) {
	t.Logf("the survivor caught up %s after the kill", killWithSurvivor(t).Round(time.Millisecond))
}

// BenchmarkGameDayCatchUp measures how soon a group consumes again after a worker
// process is SIGKILLed mid-upload: from the kill until every partition is committed to
// its end, in seconds (s/catchup). "restart" restarts the worker with its instance id:
// static membership gives it its partitions back at once, without waiting for its
// session to time out (0.2–0.35 s measured on an idle machine). "survivor" leaves the
// partitions to the other member, which gets them when the dead one's 6 s session times
// out (9.4–10.1 s). Each iteration also checks that the segments hold everything exactly
// once.
//
//	go test -run '^$' -bench GameDayCatchUp -benchtime 3x ./ingest/
func BenchmarkGameDayCatchUp(b *testing.B) {
	for _, bc := range []struct {
		name string
		run  func(testing.TB) time.Duration
	}{{"restart", killAndRestart}, {"survivor", killWithSurvivor}} {
		b.Run(bc.name, func(b *testing.B) {
			var total time.Duration
			for range b.N {
				total += bc.run(b)
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/catchup")
		})
	}
}

// killAndRestart kills a worker process mid-upload, restarts it with its instance id,
// verifies the store and returns how long after the kill the group had committed
// everything.
func killAndRestart(t testing.TB) time.Duration {
	c := newCluster(t, 4, gdTopic)
	p := produceWorkload(t, c, gdSpec(4))
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	marker := filepath.Join(dir, "hanging")
	child := startChild(t, c, store, "worker-0", 6, marker)
	waitFile(t, marker, time.Minute)
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	killed := time.Now()
	startChild(t, c, store, "worker-0", 0, "")
	waitCommitted(t, c, "g", p.ends[gdTopic], time.Minute)
	d := time.Since(killed)
	st, err := storage.OpenLocal(store)
	if err != nil {
		t.Fatal(err)
	}
	verify(t, st, p)
	return d
}

// killWithSurvivor runs two static members, kills one mid-upload for good, verifies
// the store and returns how long after the kill the survivor had committed everything.
func killWithSurvivor(t testing.TB) time.Duration {
	c := newCluster(t, 4, gdTopic)
	spec := gdSpec(4)
	gen, err := workload.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	p := &produced{gen: gen, ends: map[string]map[int32]int64{gdTopic: {}}}
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	marker := filepath.Join(dir, "hanging")
	child := startChild(t, c, store, "worker-0", 3, marker)
	st, err := storage.OpenLocal(store)
	if err != nil {
		t.Fatal(err)
	}
	opt := gdOptions(c, st, "g")
	opt.InstanceID = "worker-1"
	w := startWorker(t, opt)
	// Produce once the two members share the partitions, so the child gets data.
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		n := w.Stats().Partitions
		if n == 2 {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("the survivor owns %d partitions after a minute, want 2", n)
		}
	}
	sendWorkload(t, c, gen, p, func(int) bool { return true })
	waitFile(t, marker, time.Minute)
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	killed := time.Now()
	waitCommitted(t, c, "g", p.ends[gdTopic], time.Minute)
	d := time.Since(killed)
	verify(t, st, p)
	return d
}

func newTestRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

// counterSum adds up every series of the counter name.
func counterSum(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestSinkToS3: the sink against a real S3 API (versitygw), with one partition whose
// segment is larger than a part, so it streams as a multipart upload with parts in
// parallel; a 503 burst from the sink's view (the store's budget spent) on the way.
func TestSinkToS3(t *testing.T) {
	srv := s3test.Start(t)
	reg := prometheus.NewRegistry()
	s3 := srv.Open(t, "sink", storage.S3Options{Concurrency: 4, Registerer: reg})
	fs := faults.Wrap(s3)
	fs.Inject(faults.Rule{Ops: faults.OpCreate, Key: "segments/*/*/*.tseg", Times: 2})
	c := newCluster(t, 1, gdTopic)
	spec := gdSpec(1)
	spec.Series, spec.PointsPerSeries, spec.PointsPerPayload = 700, 2000, 100 // about 6 MiB of segment
	p := produceWorkload(t, c, spec)
	opt := gdOptions(c, fs, "g")
	opt.FlushPayloads, opt.FlushAge = 1<<30, time.Hour
	stats := drain(t, opt)
	if stats.Retries != 2 || stats.Segments != 1 || stats.Bytes <= storage.MinPartSize {
		t.Fatalf("want one segment of more than one part, stored after 2 retries: %+v", stats)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var multipart float64
	for _, mf := range mfs {
		if mf.GetName() == "tailor_storage_s3_multipart_uploads_total" {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "result" && l.GetValue() == "completed" {
						multipart += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	if multipart != 1 {
		t.Fatalf("%v completed multipart uploads, want 1", multipart)
	}
	verify(t, s3, p)
}
