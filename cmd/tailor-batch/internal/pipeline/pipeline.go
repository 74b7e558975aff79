// Package pipeline is the orchestration shared by the demo, loadtest and gameday
// commands: produce a synthetic workload to a Kafka broker, sink it until caught up, run
// every shard and window, and check the series files point by point against the
// workload's expected output. The commands differ only in what they do around these
// steps (faults, measurements, reports), so each step is a function of its own and Run
// chains them the way the demo does.
package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tailor-metrics/tailor/ingest"
	"github.com/tailor-metrics/tailor/ingest/workload"
	"github.com/tailor-metrics/tailor/internal/kafkaharness"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
)

// Topic is the topic the embedded broker is seeded with.
const Topic = "metrics"

// StartBroker starts an embedded Kafka broker (kfake) on loopback with Topic seeded with
// the given partitions. Extra options (fault injection, fixed ports) come last.
func StartBroker(partitions int, opts ...kfake.Opt) (*kfake.Cluster, error) {
	return kafkaharness.StartBroker(partitions, Topic, opts...)
}

// RunOptions configures RunAll.
type RunOptions struct {
	Store    storage.Store
	Parallel int
	// TempDir is where DuckDB spills (default $TMPDIR/tailor-demo-duckdb).
	TempDir string
	// Say, when not nil, gets progress lines.
	Say func(format string, args ...any)
	// OnReport, when not nil, is called after each shard run (from RunAll's workers).
	OnReport func(done, total int, rep *run.Report)
}

// RunAll runs every shard and window that has data, with one reader and one DuckDB
// thread per CPU.
func RunAll(ctx context.Context, o RunOptions) ([]*run.Report, error) {
	say := sayer(o.Say)
	if o.TempDir == "" {
		o.TempDir = filepath.Join(os.TempDir(), "tailor-demo-duckdb")
	}
	reports, err := run.RunAll(ctx, run.AllOptions{
		RunOptions: run.RunOptions{Store: o.Store, Arrival: run.DefaultArrival(), Readers: runtime.NumCPU(), Engine: query.Options{Threads: runtime.NumCPU(), TempDir: o.TempDir}},
		Parallel:   o.Parallel,
		Progress: func(done, total int, rep *run.Report) {
			if o.OnReport != nil {
				o.OnReport(done, total, rep)
			}
			if done%16 == 0 || done == total {
				say("run: %d/%d shard windows", done, total)
			}
		},
	})
	if err != nil {
		return reports, fmt.Errorf("run: %w", err)
	}
	return reports, nil
}

// Options configures Run.
type Options struct {
	Gen   *workload.Gen
	Store storage.Store
	// Produce options: the share of JSON payloads and the malformed records to send.
	Produce ProduceOptions
	// FlushPayloads is the sink's flush trigger (payloads per segment).
	FlushPayloads int
	// Group is the sink's consumer group (default "tailor-demo").
	Group    string
	Parallel int
	TempDir  string
	// Say, when not nil, gets progress lines.
	Say func(format string, args ...any)
	// OnReport, when not nil, is called after each shard run.
	OnReport func(done, total int, rep *run.Report)
	// Stage, when not nil, is called as each stage (produce, sink, run, check) begins and
	// returns a function called when it ends: a place for measurements.
	Stage func(name string) (end func())
}

// Result is what Run saw at each step.
type Result struct {
	Records, PointsProduced int64
	// ProducedBytes are the record values' bytes sent to Kafka.
	ProducedBytes int64
	Sink          ingest.Stats
	Reports       []*run.Report
	// Stages are the wall seconds of produce (including the broker's start), sink, run
	// and check.
	Stages map[string]float64
	Check  *CheckResult
}

// Run is the demo's pipeline: broker, produce, sink until caught up, close the broker,
// run every shard, check every point. It returns what it has so far on error.
func Run(ctx context.Context, o Options) (*Result, error) {
	say := sayer(o.Say)
	res := &Result{Stages: map[string]float64{}}
	var (
		start time.Time
		end   func()
	)
	begin := func(name string) {
		start = time.Now()
		end = func() {}
		if o.Stage != nil {
			end = o.Stage(name)
		}
	}
	finish := func(name string) {
		end()
		res.Stages[name] += time.Since(start).Seconds()
	}
	spec := o.Gen.Spec()
	group := o.Group
	if group == "" {
		group = "tailor-demo"
	}

	// 1. An embedded broker on loopback.
	begin("produce")
	cluster, err := StartBroker(spec.Partitions)
	if err != nil {
		return nil, err
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	say("embedded Kafka broker on %v, topic %q with %d partitions", brokers, Topic, spec.Partitions)

	// 2. Produce.
	pr, err := ProduceCounted(ctx, brokers, Topic, o.Gen, o.Produce)
	if err != nil {
		return nil, err
	}
	records, points := pr.Records, pr.Points
	res.Records, res.PointsProduced, res.ProducedBytes = records, points, pr.Bytes
	finish("produce")
	say("produced %d records (%d points, %d redelivered payloads, %d malformed) in %.1fs", records, points, o.Gen.Redeliveries(), o.Produce.Malformed, time.Since(start).Seconds())

	// 3. Sink until caught up.
	begin("sink")
	ss, err := kafkaharness.Drain(ctx, ingest.Options{
		Brokers: brokers, Topics: []string{Topic}, Store: o.Store, FlushPayloads: o.FlushPayloads, Group: group,
	})
	if err != nil {
		return res, err
	}
	// The broker is no longer needed; closing it frees its memory (kfake keeps every
	// record in memory) and its goroutines before the CPU-heavy run.
	cluster.Close()
	res.Sink = ss
	finish("sink")
	say("sink stored %d segments (%d bytes, %d rejected records) in %.1fs", ss.Segments, ss.Bytes, ss.Rejected, time.Since(start).Seconds())

	// 4. Run every shard and window.
	begin("run")
	res.Reports, err = RunAll(ctx, RunOptions{Store: o.Store, Parallel: o.Parallel, TempDir: o.TempDir, Say: o.Say, OnReport: o.OnReport})
	if err != nil {
		return res, err
	}
	finish("run")

	// 5. Check every point against the workload's expected output.
	begin("check")
	var dups uint64
	for _, r := range res.Reports {
		dups += r.Counts.Duplicates
	}
	res.Check, err = Check(ctx, o.Store, o.Gen, Expect{
		PointsProduced: res.PointsProduced, DuplicatesRemoved: dups, Rejected: ss.Rejected, Malformed: o.Produce.Malformed,
	})
	if err != nil {
		return res, err
	}
	finish("check")
	return res, nil
}

func sayer(say func(string, ...any)) func(string, ...any) {
	if say == nil {
		return func(string, ...any) {}
	}
	return say
}
