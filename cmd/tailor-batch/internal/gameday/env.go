package gameday

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/tailor-metrics/tailor/cmd/tailor-batch/internal/pipeline"
	"github.com/tailor-metrics/tailor/ingest"
	"github.com/tailor-metrics/tailor/ingest/workload"
	"github.com/tailor-metrics/tailor/internal/kafkaharness"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
	"github.com/tailor-metrics/tailor/storage/faults"
)

// env is one scenario's world: a workload, a broker, a store and the sink workers.
type env struct {
	cfg     Config
	res     *Result
	say     func(format string, args ...any)
	spec    workload.Spec
	gen     *workload.Gen
	dir     string
	cleanup []func()

	st      storage.Store // the store every stage shares
	cluster *kfake.Cluster
	brokers []string
	group   string
	net     *kafkaharness.Net // every Kafka client dials through it
	flush   int               // sink flush trigger, payloads per segment

	mu      sync.Mutex
	workers []*kafkaharness.Worker
	records int64 // records produced
	points  int64 // points produced, redeliveries included
	consume atomic.Int64
}

func newEnv(ctx context.Context, cfg Config, name string, res *Result, say func(string, ...any)) (*env, error) {
	e := &env{cfg: cfg, res: res, say: say, spec: Spec(cfg.Short, cfg.Seed), group: "tailor-gameday", net: kafkaharness.NewNet()}
	e.flush = 500
	if cfg.Short {
		e.flush = 60
	}
	var err error
	if e.gen, err = workload.New(e.spec); err != nil {
		return nil, err
	}
	dir, rm, err := tempDir(cfg)
	if err != nil {
		return nil, err
	}
	e.dir = dir
	e.cleanup = append(e.cleanup, rm)
	local, err := storage.OpenLocal(filepath.Join(dir, "store"))
	if err != nil {
		e.close()
		return nil, err
	}
	e.st = local
	e.cleanup = append(e.cleanup, func() { local.Close() })
	if e.cluster, err = pipeline.StartBroker(e.spec.Partitions); err != nil {
		e.close()
		return nil, err
	}
	e.cleanup = append(e.cleanup, e.cluster.Close)
	e.brokers = e.cluster.ListenAddrs()
	e.res.Produced = e.spec.Points()
	say("%d series × %d points on %d partitions, broker %v", e.spec.Series, e.spec.PointsPerSeries, e.spec.Partitions, e.brokers)
	return e, nil
}

func (e *env) close() {
	for _, w := range e.workers {
		w.Stop(context.Background())
	}
	for i := len(e.cleanup) - 1; i >= 0; i-- {
		e.cleanup[i]()
	}
}

// totalRecords is the number of workload records (malformed ones not included).
func (e *env) totalRecords() int64 {
	return int64(e.spec.Series*e.spec.Chunks() + e.gen.Redeliveries())
}

// produce sends the workload through the fault dialer; before is called before record i.
func (e *env) produce(ctx context.Context, before func(i int64) error) error {
	start := time.Now()
	pr, err := pipeline.ProduceCounted(ctx, e.brokers, pipeline.Topic, e.gen, pipeline.ProduceOptions{
		JSONShare: 0.1, Before: before,
		KafkaOpts: []kgo.Opt{e.net.Opt()},
	})
	e.records, e.points = pr.Records, pr.Points
	if err != nil {
		return err
	}
	e.say("produced %d records (%d points) in %.1fs", pr.Records, pr.Points, time.Since(start).Seconds())
	return nil
}

// startWorker starts a sink worker of the group over e.st, its store faults (a slow
// store) injected before it starts.
func (e *env) startWorker(ctx context.Context, name string, rules ...faults.Rule) (*kafkaharness.Worker, error) {
	w, err := kafkaharness.StartWorker(ctx, name, ingest.Options{
		Brokers: e.brokers, Topics: []string{pipeline.Topic}, Store: e.st, FlushPayloads: e.flush, Group: e.group,
		KafkaOpts: []kgo.Opt{e.net.Opt(), kgo.ClientID(name)},
	}, rules...)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.workers = append(e.workers, w)
	e.mu.Unlock()
	return w, nil
}

// waitRead waits until the workers have read at least n records between them, so that a
// fault hits consumption in flight rather than workers still joining the group.
func waitRead(ctx context.Context, ws []*kafkaharness.Worker, n int64) error {
	return waitFor(ctx, func() (bool, string) {
		var got int64
		for _, w := range ws {
			got += int64(w.Stats().Records)
		}
		return got >= n, fmt.Sprintf("workers read %d records, waited for %d", got, n)
	})
}

// waitOwned waits until each of ws owns a partition and together they own all of them:
// the group has settled on these members.
func (e *env) waitOwned(ctx context.Context, ws []*kafkaharness.Worker) error {
	return waitFor(ctx, func() (bool, string) {
		owned, each := 0, true
		counts := make([]int, len(ws))
		for i, w := range ws {
			counts[i] = w.Stats().Partitions
			owned += counts[i]
			each = each && counts[i] > 0
		}
		return each && owned == e.spec.Partitions, fmt.Sprintf("workers own %v of %d partitions", counts, e.spec.Partitions)
	})
}

// waitFor polls done every 20 ms until it holds or ctx ends; the error then says what
// done last saw.
func waitFor(ctx context.Context, done func() (bool, string)) error {
	for {
		ok, what := done()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// drain stops the scenario's workers gracefully and runs one worker of the same group
// until every partition is stored and committed to its end: whatever the fault left
// behind is picked up from the committed offsets.
func (e *env) drain(ctx context.Context) (ingest.Stats, error) {
	e.mu.Lock()
	ws := e.workers
	e.mu.Unlock()
	var errs []error
	for _, w := range ws {
		// A worker stopped in the middle of a store write returns the cancellation: the
		// segment is neither stored nor committed, and is read again. That is a stop, not
		// a failure; a killed worker's errors are the kill's.
		if err := w.Stop(ctx); err != nil && !w.Killed() && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("worker %s: %w", w.Name, err))
		}
	}
	for _, w := range ws {
		e.consume.Add(int64(w.Stats().Records))
	}
	e.row("sink workers that failed on their own", "0", len(errs), len(errs) == 0)
	for _, err := range errs {
		e.say("%v", err)
	}
	start := time.Now()
	st, err := kafkaharness.Drain(ctx, ingest.Options{
		Brokers: e.brokers, Topics: []string{pipeline.Topic}, Store: e.st, FlushPayloads: e.flush, Group: e.group,
	})
	if err != nil {
		return st, err
	}
	e.say("drained the group: %d records, %d segments in %.1fs", st.Records, st.Segments, time.Since(start).Seconds())
	e.mu.Lock()
	e.workers = nil
	e.mu.Unlock()
	e.consume.Add(int64(st.Records))
	return st, nil
}

// sinkAll produces while one worker drains: the no-fault sink for run-side scenarios.
func (e *env) sinkAll(ctx context.Context) error {
	if err := e.produce(ctx, nil); err != nil {
		return err
	}
	_, err := e.drain(ctx)
	return err
}

// runAll runs every shard window on st.
func (e *env) runAll(ctx context.Context, st storage.Store, onReport func(done, total int, rep *run.Report)) ([]*run.Report, error) {
	start := time.Now()
	reps, err := pipeline.RunAll(ctx, pipeline.RunOptions{Store: st, Parallel: 1, TempDir: filepath.Join(e.dir, "duckdb"), OnReport: onReport})
	e.say("ran %d shard windows in %.1fs", len(reps), time.Since(start).Seconds())
	return reps, err
}

// check compares the series files with the workload point by point and fills the
// result's counts. removed is what the runs reported removing as duplicates.
func (e *env) check(ctx context.Context, reports []*run.Report) error {
	var removed uint64
	for _, r := range reports {
		removed += r.Counts.Duplicates
	}
	c, err := pipeline.Check(ctx, e.st, e.gen, pipeline.Expect{PointsProduced: e.points, DuplicatesRemoved: removed})
	if err != nil {
		return err
	}
	e.res.Stored = c.Stored
	e.res.Lost = int64(c.Diff.MissingInNew)
	e.res.Duplicated = int64(c.Duplicated)
	unexpected := int64(c.Diff.MissingInLegacy) - int64(c.Duplicated)
	e.row("points with another value", "0", c.Diff.ValueDiffers, c.Diff.ValueDiffers == 0)
	e.row("points never produced", "0", unexpected, unexpected == 0)
	// The segments hold every offset once, so the run sees each redelivered payload, and
	// nothing else, twice: a replay by the sink (after a crash or a rebalance) that
	// stored an offset again would show here as more.
	redelivered := uint64(e.points - e.spec.Points())
	e.row("duplicates removed by the run", fmt.Sprintf("%d, the redelivered points", redelivered), removed, removed == redelivered)
	// Everything the point check found, in its words.
	for _, m := range c.Mismatches {
		e.res.Notes = append(e.res.Notes, "point check: "+m)
	}
	e.row("mismatches found by the point check", "none", len(c.Mismatches), c.Passed())
	return nil
}

func (e *env) row(check, expected string, actual any, ok bool) {
	e.res.row(check, expected, fmt.Sprint(actual), ok)
}

// rewind commits offset for partition p of the group, which must have no members: the
// next worker starts there. This is what an operator does with
// kafka-consumer-groups --reset-offsets --to-offset.
func (e *env) rewind(ctx context.Context, p int32, offset int64) error {
	// OffsetCommit v10 names topics by id; v9 (Kafka 3.x) by name, which is what we have.
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.MaxVersions(kversion.V3_9_0()))
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation, req.MemberID = e.group, -1, ""
	t := kmsg.NewOffsetCommitRequestTopic()
	t.Topic = pipeline.Topic
	pp := kmsg.NewOffsetCommitRequestTopicPartition()
	pp.Partition, pp.Offset, pp.LeaderEpoch = p, offset, -1
	t.Partitions = append(t.Partitions, pp)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("rewind partition %d to %d: %w", p, offset, err)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return fmt.Errorf("rewind partition %d to %d: %w", p, offset, err)
			}
		}
	}
	return nil
}
