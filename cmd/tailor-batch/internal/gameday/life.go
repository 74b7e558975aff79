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

	"github.com/tailor-metrics/tailor/cmd/tailor-batch/internal/pipeline"
	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/internal/kafkaharness"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/run"
)

// The arrival rule of the life scenario: windows short enough that the workload's hour
// of points spans several, and close while records flow (docs/run.md, Late data).
var lifeArrival = run.Arrival{Size: 10 * time.Minute, Closed: true, Lateness: 20 * time.Minute, FlushAge: 5 * time.Minute}

// lifeReplay is gc's replay retention in the scenario, on the stream's committed clock
// (committedClock): longer than a window plus its lateness and flush age, so that a
// segment it collects is read only by windows no segment stored later can reach.
const lifeReplay = 45 * time.Minute

// lifeSteps is how many steps the life scenario's records flow in, a run pass between
// two steps.
const lifeSteps = 8

// historyLife: while records flow into two sink workers, four loops run side by side,
// as their CronJobs would: run every shard window (with 5 min rollups), compact into 1 h
// and 2 h windows, retain (a policy that expires the 5 min rollups, never a raw point)
// and gc (a short grace; the replay retention on the stream's clock). Compactions meet
// runs made after them, retention meets compactions, gc meets all three. At the end,
// after a last pass of each, every point must be served once with its value and verify
// must find the store intact.
func historyLife(ctx context.Context, e *env) error {
	// Small segments, so that each partition's stream is many of them, and the first
	// ones are old while the last ones are still coming.
	e.flush = pick(e, 10, 100)
	for i := range 2 {
		if _, err := e.startWorker(ctx, fmt.Sprintf("w%d", i)); err != nil {
			return err
		}
	}
	l := &lifeLoops{e: e, tmp: filepath.Join(e.dir, "life"), grace: pick(e, 3*time.Second, 10*time.Second)}
	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, loop := range []func(context.Context) error{l.runs, l.compact, l.retain, l.gc} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lctx.Err() == nil {
				if err := loop(lctx); err != nil && lctx.Err() == nil {
					l.fail(err)
					return
				}
			}
		}()
	}
	// The records flow in steps, each after a run pass ended since the step before: the
	// loops meet a stream still arriving however fast or loaded the machine is.
	n := e.totalRecords()
	step := max(n/lifeSteps, 1)
	var passes int64
	err := e.produce(ctx, func(i int64) error {
		if i == 0 || i%step != 0 {
			return nil
		}
		err := waitFor(ctx, func() (bool, string) {
			got := l.runPasses.Load()
			return got > passes, fmt.Sprintf("%d run passes ended while %d of %d records were produced", got, i, n)
		})
		passes = l.runPasses.Load()
		return err
	})
	flowing := l.runPasses.Load()
	if err == nil {
		_, err = e.drain(ctx)
	}
	stop()
	wg.Wait()
	if err != nil {
		return err
	}
	if err := l.err(); err != nil {
		return err
	}
	// A last pass of each, in order, then gc again past its grace: what the loops left
	// half done is finished, and nothing superseded stays behind. The stream has ended:
	// compaction runs as the next day's schedule would, when every window is due.
	clock, err := l.streamClock(ctx)
	if err != nil {
		return err
	}
	l.endClock = clock.Add(24 * time.Hour)
	for _, step := range []func(context.Context) error{l.runs, l.compact, l.retain, l.gc} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	time.Sleep(l.grace)
	if err := l.gc(ctx); err != nil {
		return err
	}
	e.row("run passes while records flowed", fmt.Sprintf(">= %d", lifeSteps-1), flowing, flowing >= lifeSteps-1)
	e.row("compacted runs made", "> 0", l.compacted.Load(), l.compacted.Load() > 0)
	e.row("runs retention rewrote (their 5 min rollups expired)", "> 0", l.retained.Load(), l.retained.Load() > 0)
	e.row("superseded runs gc collected", "> 0", l.collectedRuns.Load(), l.collectedRuns.Load() > 0)
	e.row("segments gc collected (recorded)", "> 0", l.collectedSegs.Load(), l.collectedSegs.Load() > 0)
	e.row("passes that met a newer run (never worse; the next pass sees it)", "any", l.races.Load(), true)
	ms, err := run.Published(ctx, e.st)
	if err != nil {
		return err
	}
	small := 0
	for _, m := range ms {
		if m.To-m.From < (2 * time.Hour).Milliseconds() {
			small++
		}
	}
	e.row("serving runs left uncompacted", "0", small, small == 0)
	rep, err := run.Verify(ctx, run.VerifyOptions{Store: e.st, Arrival: lifeArrival, Engine: query.Options{Threads: 1}})
	if err != nil {
		return err
	}
	e.row("verify problems", "0", len(rep.Problems), rep.OK())
	for i, p := range rep.Problems {
		if i == 5 {
			break
		}
		e.res.Notes = append(e.res.Notes, p.String())
	}
	c, err := pipeline.Check(ctx, e.st, e.gen, pipeline.Expect{PointsProduced: e.points})
	if err != nil {
		return err
	}
	e.res.Stored, e.res.Lost, e.res.Duplicated = c.Stored, int64(c.Diff.MissingInNew), int64(c.Duplicated)
	unexpected := int64(c.Diff.MissingInLegacy) - int64(c.Duplicated)
	e.row("points with another value", "0", c.Diff.ValueDiffers, c.Diff.ValueDiffers == 0)
	e.row("points never produced", "0", unexpected, unexpected == 0)
	if e.res.Lost > 0 || e.res.Duplicated > 0 || c.Diff.ValueDiffers > 0 || unexpected > 0 {
		e.res.Notes = append(e.res.Notes, c.Mismatches...)
	}
	return nil
}

// lifeLoops are the four lifecycle loops of historyLife and what they did.
type lifeLoops struct {
	e     *env
	tmp   string
	grace time.Duration
	// endClock, once the stream ended, is compaction's clock: a day later, when every
	// window is due.
	endClock time.Time

	mu       sync.Mutex
	firstErr error

	runPasses, compacted, retained, collectedRuns, collectedSegs, races atomic.Int64
}

func (l *lifeLoops) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.firstErr == nil {
		l.firstErr = err
	}
}

func (l *lifeLoops) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.firstErr
}

// benign reports whether err is the one answer two steps racing on a window may give:
// a rewrite or compaction found a newer run serving (never worse); the next pass sees
// the new run.
func (l *lifeLoops) benign(err error) bool {
	if worse := (*run.WorseRunError)(nil); errors.As(err, &worse) {
		l.races.Add(1)
		return true
	}
	return false
}

// streamClock is the time the whole stream is past: of every partition, the start of
// its newest stored segment, and of those the earliest. A segment still open (its
// records arrive, in this compressed stream, far longer than a flush age after its
// start) starts no earlier than its partition's newest stored one, so no segment stored
// later starts before the clock. Zero until every partition stored a segment.
func (l *lifeLoops) streamClock(ctx context.Context) (time.Time, error) {
	segs, err := columnar.ListSegmentsWith(ctx, l.e.st, columnar.ListOptions{})
	if err != nil {
		return time.Time{}, err
	}
	newest := map[int32]int64{}
	for _, s := range segs {
		newest[s.Header.Partition] = max(newest[s.Header.Partition], s.Header.StartTimestamp)
	}
	if len(newest) < l.e.spec.Partitions {
		return time.Time{}, nil
	}
	t := int64(1<<63 - 1)
	for _, n := range newest {
		t = min(t, n)
	}
	return time.UnixMilli(t), nil
}

// committedClock is the clock gc's replay retention counts from: of every partition,
// the start of its newest segment that lies wholly below the group's committed offset,
// and of those the earliest. The sink commits only after a segment is stored (uploads
// run in parallel, and a rebalance hands a partition over mid-segment), so every
// segment yet to be stored holds offsets past the committed one, and its records come
// after those of the segments below it. Zero until every partition committed one.
func (l *lifeLoops) committedClock(ctx context.Context) (time.Time, error) {
	committed, err := kafkaharness.Committed(ctx, l.e.brokers, l.e.group, pipeline.Topic)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return time.Time{}, nil // the workers have not joined yet
	}
	if err != nil {
		return time.Time{}, err
	}
	segs, err := columnar.ListSegmentsWith(ctx, l.e.st, columnar.ListOptions{})
	if err != nil {
		return time.Time{}, err
	}
	newest := map[int32]int64{}
	for _, s := range segs {
		h := s.Header
		if c, ok := committed[h.Partition]; ok && h.Topic == pipeline.Topic && s.Footer.EndOffset <= c {
			newest[h.Partition] = max(newest[h.Partition], h.StartTimestamp)
		}
	}
	if len(newest) < l.e.spec.Partitions {
		return time.Time{}, nil
	}
	t := int64(1<<63 - 1)
	for _, n := range newest {
		t = min(t, n)
	}
	return time.UnixMilli(t), nil
}

func (l *lifeLoops) runs(ctx context.Context) error {
	defer pause(ctx, 200*time.Millisecond)
	_, err := run.RunAll(ctx, run.AllOptions{RunOptions: run.RunOptions{
		Store: l.e.st, Arrival: lifeArrival, Readers: 2, Engine: query.Options{Threads: 1, TempDir: filepath.Join(l.tmp, "duckdb")},
		Rollups: &run.RollupConfig{ResolutionsMs: []int64{5 * 60_000}, CounterTags: []string{"type:counter"}},
	}})
	l.runPasses.Add(1)
	if err != nil && !l.benign(err) {
		return fmt.Errorf("run: %w", err)
	}
	return nil
}

func (l *lifeLoops) compact(ctx context.Context) error {
	defer pause(ctx, 500*time.Millisecond)
	now := l.endClock
	if now.IsZero() {
		var err error
		if now, err = l.streamClock(ctx); err != nil || now.IsZero() {
			return err
		}
	}
	rep, err := run.Compact(ctx, run.CompactOptions{Store: l.e.st, Levels: []time.Duration{time.Hour, 2 * time.Hour}, Now: now, TempDir: filepath.Join(l.tmp, "compact"),
		Rollups: &run.RollupConfig{ResolutionsMs: []int64{60 * 60_000}, CounterTags: []string{"type:counter"}}})
	if err != nil && !l.benign(err) {
		return fmt.Errorf("compact: %w", err)
	}
	for _, s := range rep.Shards {
		for _, r := range s.Runs {
			if !r.Done {
				l.compacted.Add(1)
			}
		}
	}
	return nil
}

func (l *lifeLoops) retain(ctx context.Context) error {
	defer pause(ctx, 500*time.Millisecond)
	pol := &run.RetentionPolicy{Grace: run.Duration(time.Hour), Default: map[string]run.Duration{"5m": run.Duration(24 * time.Hour)}}
	rep, err := run.Retain(ctx, run.RetainOptions{Store: l.e.st, Policy: pol, TempDir: filepath.Join(l.tmp, "retain")})
	if err != nil && !l.benign(err) {
		return fmt.Errorf("retain: %w", err)
	}
	l.retained.Add(int64(len(rep.Runs) - len(rep.Failed)))
	return nil
}

func (l *lifeLoops) gc(ctx context.Context) error {
	defer pause(ctx, time.Second)
	clock, err := l.committedClock(ctx)
	if err != nil {
		return err
	}
	if clock.IsZero() {
		clock = time.UnixMilli(0) // no segment is old enough yet
	}
	rep, err := run.GC(ctx, run.GCOptions{Store: l.e.st, Grace: l.grace, ReplayRetention: lifeReplay, SegmentsNow: clock})
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	l.collectedRuns.Add(int64(len(rep.Runs)))
	l.collectedSegs.Add(int64(len(rep.Segments)))
	return nil
}

// pause waits d between two passes of a loop, as a schedule would.
func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
