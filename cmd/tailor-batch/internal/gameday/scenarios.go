package gameday

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/internal/kafkaharness"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
	"github.com/tailor-metrics/tailor/storage/faults"
	"github.com/tailor-metrics/tailor/storage/s3test"
)

// pick is the short or the full value.
func pick[T any](e *env, short, full T) T {
	if e.cfg.Short {
		return short
	}
	return full
}

// runAndCheck runs every shard window and checks the series files.
func runAndCheck(ctx context.Context, e *env) error {
	reps, err := e.runAll(ctx, e.st, nil)
	if err != nil {
		return err
	}
	return e.check(ctx, reps)
}

// workersDown: two workers consume; at a third of the stream both crash (their
// uncommitted records are lost from memory); the rest of the second third is produced
// with no worker at all; then two new workers come back and catch up from the committed
// offsets.
func workersDown(ctx context.Context, e *env) error {
	var ws []*kafkaharness.Worker
	start := func() error {
		for i := range 2 {
			w, err := e.startWorker(ctx, fmt.Sprintf("w%d", i))
			if err != nil {
				return err
			}
			ws = append(ws, w)
		}
		return nil
	}
	if err := start(); err != nil {
		return err
	}
	n := e.totalRecords()
	var whileDown int64
	err := e.produce(ctx, func(i int64) error {
		switch i {
		case n / 3:
			if err := waitRead(ctx, ws, n/4); err != nil {
				return err
			}
			for _, w := range ws {
				if err := w.Kill(ctx); err != nil {
					return err
				}
			}
			e.say("killed both workers at record %d", i)
		case 2 * n / 3:
			whileDown = i - n/3
			e.say("%d records produced with no worker; starting two new workers", whileDown)
			return start()
		}
		return nil
	})
	if err != nil {
		return err
	}
	e.row("records produced while every worker was down", fmt.Sprintf("%d (a third)", n/3), whileDown, whileDown > 0)
	if _, err := e.drain(ctx); err != nil {
		return err
	}
	// The workers' stats count what they read, stored or not. Read again: what the killed
	// workers held uncommitted, plus what a rebalance moved while the two new workers
	// joined one after the other (seen on CI: twice a third). The group must resume from
	// its committed offsets, so it never reads the whole stream again.
	replayed := e.consume.Load() - e.records
	e.row("records read again after the crash", fmt.Sprintf("0..%d (resumed from committed offsets)", n-1), replayed, replayed >= 0 && replayed < n)
	return runAndCheck(ctx, e)
}

// slowWorker: two workers, one of them starved: every store write waits (as a worker
// whose CPU is taken by a neighbour would). The group must not drop it, and its
// partitions must come out complete, only later.
func slowWorker(ctx context.Context, e *env) error {
	fast, err := e.startWorker(ctx, "fast")
	if err != nil {
		return err
	}
	delay := pick(e, 300*time.Millisecond, time.Second)
	slow, err := e.startWorker(ctx, "slow", faults.Rule{Ops: faults.OpWrite, Delay: delay, PassThrough: true})
	if err != nil {
		return err
	}
	// Records flow once the group has settled with both workers owning partitions.
	if err := e.waitOwned(ctx, []*kafkaharness.Worker{fast, slow}); err != nil {
		return err
	}
	if err := e.produce(ctx, nil); err != nil {
		return err
	}
	// Both work through what they own before the drain takes over: once they have read
	// every record, the drain's stop makes each store what it holds, the slow worker
	// only later.
	start := time.Now()
	if err := waitRead(ctx, []*kafkaharness.Worker{fast, slow}, e.records); err != nil {
		return err
	}
	e.say("the two workers read every record %.1fs after producing ended", time.Since(start).Seconds())
	if _, err := e.drain(ctx); err != nil {
		return err
	}
	fs, ss := fast.Stats(), slow.Stats()
	e.row("records read by the slow worker", fmt.Sprintf("> 0, its writes delayed %s each", delay), ss.Records, ss.Records > 0)
	e.row("records read by the fast worker", "> 0", fs.Records, fs.Records > 0)
	e.row("segments stored: slow, fast", "both > 0", fmt.Sprintf("%d, %d", ss.Segments, fs.Segments), ss.Segments > 0 && fs.Segments > 0)
	return runAndCheck(ctx, e)
}

// throttling: the store is a real S3 server (versitygw) behind a proxy that answers
// bursts of 503 SlowDown to the sink's writes and the runs' reads and writes. The store
// retries with backoff; nothing may be lost or written twice.
func throttling(ctx context.Context, e *env) error {
	srv, err := s3test.Launch(e.dir)
	if err != nil {
		return err
	}
	e.cleanup = append(e.cleanup, srv.Stop)
	px, err := s3test.NewFaultProxy(srv.Endpoint)
	if err != nil {
		return err
	}
	e.cleanup = append(e.cleanup, px.Close)
	storm := px.Add(s3test.ProxyRule{Kind: s3test.SlowDown, Burst: pick(e, 2, 3), Period: pick(e, 6, 5)})
	st, err := srv.OpenStore(px.URL, "gameday", storage.S3Options{})
	if err != nil {
		return err
	}
	e.cleanup = append(e.cleanup, func() { st.Close() })
	e.st = st
	if err := e.sinkAll(ctx); err != nil {
		return err
	}
	if err := runAndCheck(ctx, e); err != nil {
		return err
	}
	rs := st.RetryStats()
	hits := int64(storm.Hits())
	e.row("503 SlowDown answers sent", "> 0", hits, hits > 0)
	// Every SlowDown is retried, as a SlowDown, or as a timeout when a loaded machine
	// did not read the answer within the attempt's deadline; no retry is counted for a
	// SlowDown that was never sent.
	e.row("slowdown retries", fmt.Sprintf("<= %d, with timeouts and resets >= %d", hits, hits),
		fmt.Sprintf("%d (+%d timeouts, %d resets)", rs.SlowDown, rs.Timeout, rs.ConnReset),
		rs.SlowDown > 0 && rs.SlowDown <= hits && rs.SlowDown+rs.Timeout+rs.ConnReset >= hits)
	e.row("operations that spent the retry budget", "0", rs.BudgetExhausted, rs.BudgetExhausted == 0)
	uploads, err := srv.ListMultipartUploads(ctx)
	if err != nil {
		return err
	}
	e.row("unfinished multipart uploads", "0", len(uploads), len(uploads) == 0)
	return nil
}

// shardKill: the run is killed halfway (a lost spot instance) right after a job wrote
// its first part file, before its manifest. Readers must not see that job's output;
// the re-run skips the completed windows and completes the rest.
func shardKill(ctx context.Context, e *env) error {
	if err := e.sinkAll(ctx); err != nil {
		return err
	}
	runCtx, kill := context.WithCancel(ctx)
	defer kill()
	var (
		armed     atomic.Bool
		killedKey atomic.Value
		completed atomic.Int64
		visible   atomic.Uint64
	)
	// The first part file written once half the windows are done kills the run, at the
	// moment of its write: the job has written no manifest yet.
	st := faults.Wrap(e.st)
	atPart := st.Inject(faults.Rule{
		Ops: faults.OpWrite, Times: 1, PassThrough: true,
		KeyFunc: func(key string) bool {
			return armed.Load() && strings.HasPrefix(key, run.SeriesPrefix) && strings.HasSuffix(key, ".tsf")
		},
		Do: func(_ faults.Op, key string) {
			killedKey.Store(key)
			kill()
		},
	})
	_, err := e.runAll(runCtx, st, func(done, total int, rep *run.Report) {
		if rep.Err == "" {
			completed.Add(1)
			visible.Add(rep.Counts.PointsOut)
		}
		if done >= total/2 {
			armed.Store(true)
		}
	})
	if atPart.Hits() == 0 {
		return fmt.Errorf("the run finished before it could be killed (err %v)", err)
	}
	if err != nil {
		e.res.Notes = append(e.res.Notes, "killed run: "+err.Error())
	}
	e.row("the killed run's error", "context canceled", named(err, context.Canceled.Error()), err != nil && strings.Contains(err.Error(), context.Canceled.Error()))
	// What readers see now: only the completed windows.
	var seen uint64
	if err := pipelineCat(ctx, e, &seen); err != nil {
		return err
	}
	e.row("points visible after the kill", fmt.Sprintf("%d, the completed windows' only", visible.Load()), seen, seen == visible.Load())
	if _, err := e.st.Stat(ctx, killedKey.Load().(string)); err != nil {
		e.say("the killed job's part %s was not stored (%v)", killedKey.Load(), err)
	}
	reps, err := e.runAll(ctx, e.st, nil)
	if err != nil {
		return err
	}
	var skipped int64
	for _, r := range reps {
		if r.Skipped {
			skipped++
		}
	}
	var ran int64
	for _, r := range reps {
		if !r.Skipped && r.Err == "" && r.Published {
			ran++
		}
	}
	e.row("windows skipped by the re-run (already complete)", fmt.Sprint(completed.Load()), skipped, skipped == completed.Load())
	e.row("windows run again and published", fmt.Sprint(int64(len(reps))-completed.Load()), ran, ran == int64(len(reps))-completed.Load())
	return e.check(ctx, reps)
}

// corruptSegment: bytes in the middle of a stored segment are flipped. The run must fail
// that shard window naming the segment and byte offset. Recovery: delete the segment,
// rewind the group's offset of its partition to the segment's first offset, sink again
// (the segments after it already exist and are recognised), and re-run.
func corruptSegment(ctx context.Context, e *env) error {
	if err := e.sinkAll(ctx); err != nil {
		return err
	}
	segs, err := columnar.ListSegments(ctx, e.st)
	if err != nil {
		return err
	}
	seg := segs[len(segs)/2]
	path := e.st.(storage.LocalFiler).LocalPath(seg.Key)
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	off := len(b) / 2
	for i := off; i < off+8 && i < len(b); i++ {
		b[i] ^= 0x5a
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	e.say("flipped 8 bytes at %d of %s", off, seg.Key)
	reps, err := e.runAll(ctx, e.st, nil)
	if err != nil {
		e.res.Notes = append(e.res.Notes, "run error: "+err.Error())
	}
	e.row("the run's error names the corrupt segment", seg.Key, named(err, seg.Key), err != nil && strings.Contains(err.Error(), seg.Key))
	e.row("the run's error names the byte offset", "at byte N", named(err, "at byte"), err != nil && strings.Contains(err.Error(), "at byte"))
	var failed int
	for _, r := range reps {
		if r.Err != "" {
			failed++
		}
	}
	e.row("shard windows failed", fmt.Sprintf("1..%d (those with frames in it)", len(reps)-1), failed, failed >= 1 && failed < len(reps))

	// Recovery.
	topic, part, first, err := columnar.ParseSegmentKey(seg.Key)
	if err != nil {
		return err
	}
	if err := e.st.Delete(ctx, seg.Key); err != nil {
		return err
	}
	if err := e.rewind(ctx, part, first); err != nil {
		return err
	}
	e.say("deleted %s and rewound %s/%d to offset %d", seg.Key, topic, part, first)
	st, err := e.drain(ctx)
	if err != nil {
		return err
	}
	e.row("segments written again by the replay", ">= 1", st.Segments, st.Segments >= 1)
	if _, err := e.st.Stat(ctx, seg.Key); err != nil {
		e.row("the deleted segment is back", seg.Key, "missing", false)
	}
	reps, err = e.runAll(ctx, e.st, nil)
	if err != nil {
		return err
	}
	return e.check(ctx, reps)
}

// rebalanceStorm: one worker stays; others join and leave at evenly spaced points of
// the stream, so partitions move again and again while records flow. Production waits
// at each change until the group has settled on the new members: every change is a
// rebalance that happened, mid-stream, whatever the machine's speed.
func rebalanceStorm(ctx context.Context, e *env) error {
	steady, err := e.startWorker(ctx, "steady")
	if err != nil {
		return err
	}
	events := pick(e, 4, 12)
	members := []*kafkaharness.Worker{steady}
	var joined []*kafkaharness.Worker
	n := e.totalRecords()
	changes := 0
	change := func(i int) error {
		if err := waitRead(ctx, members, 1); err != nil {
			return err
		}
		if i%3 == 2 && len(members) > 1 {
			w := members[1]
			members = append(members[:1:1], members[2:]...)
			if err := w.Stop(ctx); err != nil {
				return fmt.Errorf("worker %s: %w", w.Name, err)
			}
			e.say("worker %s left", w.Name)
		} else {
			w, err := e.startWorker(ctx, fmt.Sprintf("w%d", i))
			if err != nil {
				return err
			}
			members = append(members, w)
			joined = append(joined, w)
			e.say("worker %s joined", w.Name)
		}
		if err := e.waitOwned(ctx, members); err != nil {
			return err
		}
		changes++
		return nil
	}
	if err := e.produce(ctx, func(i int64) error {
		for k := 1; k <= events; k++ {
			if i == n*int64(k)/int64(events+1) {
				return change(k - 1)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	e.row("membership changes, each settled by the group", fmt.Sprint(events), changes, changes == events)
	var read uint64
	for _, w := range joined {
		read += w.Stats().Records
	}
	e.row("records read by the workers that joined", "> 0", read, read > 0)
	if _, err := e.drain(ctx); err != nil {
		return err
	}
	return runAndCheck(ctx, e)
}

// brokerUnreachable: while records flow, every connection to the broker is cut and new
// ones refused for a few seconds. Producer and workers retry and carry on.
func brokerUnreachable(ctx context.Context, e *env) error {
	var ws []*kafkaharness.Worker
	for i := range 2 {
		w, err := e.startWorker(ctx, fmt.Sprintf("w%d", i))
		if err != nil {
			return err
		}
		ws = append(ws, w)
	}
	outage := pick(e, 3*time.Second, 10*time.Second)
	n := e.totalRecords()
	var cut int
	restored := make(chan int, 1)
	if err := e.produce(ctx, func(i int64) error {
		if i == n/2 {
			if err := waitRead(ctx, ws, n/3); err != nil {
				return err
			}
			cut = e.net.Cut()
			e.say("broker unreachable: %d connections cut", cut)
			time.AfterFunc(outage, func() { restored <- e.net.Restore() })
		}
		return nil
	}); err != nil {
		return err
	}
	var refused int
	select {
	case refused = <-restored:
	case <-ctx.Done():
		return ctx.Err()
	}
	e.row("connections cut", "> 0", cut, cut > 0)
	e.row("dials refused during the outage", fmt.Sprintf("> 0 in %s", outage), refused, refused > 0)
	if _, err := e.drain(ctx); err != nil {
		return err
	}
	return runAndCheck(ctx, e)
}

// named says whether err's message contains s.
func named(err error, s string) string {
	switch {
	case err == nil:
		return "no error"
	case strings.Contains(err.Error(), s):
		return "named"
	}
	return "not named"
}
