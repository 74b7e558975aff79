package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/ingest"
	"github.com/tailor-metrics/tailor/ingest/payload"
	"github.com/tailor-metrics/tailor/ingest/workload"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/storage"
	"github.com/tailor-metrics/tailor/validate"
)

// demoOptions are the demo's knobs; flags fill them.
type demoOptions struct {
	spec          workload.Spec
	storeURL      string
	keep          bool
	jsonOut       bool
	flushPayloads int
	jsonShare     float64
	malformed     int
	parallel      int
}

// demoSummary is what the demo prints (and --json emits as one object).
type demoSummary struct {
	Store            string             `json:"store"`
	Series           int                `json:"series"`
	Records          int64              `json:"records"`
	PointsProduced   int64              `json:"points_produced"`
	Redeliveries     int                `json:"redelivered_payloads"`
	Malformed        int                `json:"malformed_records"`
	Rejected         uint64             `json:"rejected_records"`
	Segments         uint64             `json:"segments"`
	SegmentBytes     int64              `json:"segment_bytes"`
	ShardRuns        int                `json:"shard_runs"`
	DuplicatesRemove uint64             `json:"redeliveries_removed"`
	PointsOut        uint64             `json:"points_out"`
	SeriesOut        uint64             `json:"series_out"`
	BytesOut         int64              `json:"bytes_out"`
	BytesPerPoint    float64            `json:"bytes_per_point"`
	Stages           map[string]float64 `json:"stage_seconds"`
	Check            string             `json:"check"`
	Mismatches       []string           `json:"mismatches,omitempty"`
	// Retries are the store's request retries by reason over the whole demo (S3 only).
	Retries *storage.RetryStats `json:"store_retries,omitempty"`
}

func newDemoCmd() *cobra.Command {
	o := demoOptions{spec: workload.Default()}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline on an embedded Kafka broker and check every point",
		Long: `Starts an embedded Kafka broker (kfake) on loopback, produces a synthetic workload
(5 million points over 5,000 series by default, spread over 8 partitions, about 1% of the
payloads redelivered), runs the sink until it has caught up, runs every shard, and checks
that every distinct (series, ts) produced appears exactly once in the series files with
its latest value. Exits non-zero if the check fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sum, err := runDemo(cmd.Context(), o, os.Stderr)
			if sum != nil {
				if o.jsonOut {
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					_ = enc.Encode(sum)
				} else {
					sum.print(cmd.OutOrStdout())
				}
			}
			if err != nil {
				return err
			}
			if sum.Check != "passed" {
				return &checkFailed{"demo: check failed"}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.storeURL, "store", "", "object store for segments and series files (default: a new temporary directory)")
	fl.BoolVar(&o.keep, "keep", false, "keep the temporary store")
	fl.BoolVar(&o.jsonOut, "json", false, "print the summary as one JSON object")
	fl.IntVar(&o.spec.Series, "series", o.spec.Series, "series")
	fl.IntVar(&o.spec.PointsPerSeries, "points-per-series", o.spec.PointsPerSeries, "points per series")
	fl.IntVar(&o.spec.PointsPerPayload, "points-per-payload", o.spec.PointsPerPayload, "points per payload")
	fl.IntVar(&o.spec.Partitions, "partitions", o.spec.Partitions, "Kafka partitions")
	fl.Float64Var(&o.spec.Redeliver, "redeliver", o.spec.Redeliver, "share of payloads delivered twice")
	fl.Uint64Var(&o.spec.Seed, "seed", o.spec.Seed, "workload seed")
	fl.IntVar(&o.flushPayloads, "flush-payloads", 2000, "sink flush trigger (payloads per segment)")
	fl.Float64Var(&o.jsonShare, "json-share", 0.1, "share of payloads sent as JSON instead of protobuf")
	fl.IntVar(&o.malformed, "malformed", 3, "malformed records to send (they must land in rejects/)")
	fl.IntVar(&o.parallel, "parallel", 1, "shard runs at once")
	return cmd
}

func runDemo(ctx context.Context, o demoOptions, progress io.Writer) (*demoSummary, error) {
	gen, err := workload.New(o.spec)
	if err != nil {
		return nil, err
	}
	sum := &demoSummary{Series: o.spec.Series, Redeliveries: gen.Redeliveries(), Malformed: o.malformed, Stages: map[string]float64{}}
	stage := func(name string, start time.Time) { sum.Stages[name] += time.Since(start).Seconds() }
	say := func(format string, args ...any) { fmt.Fprintf(progress, "demo: "+format+"\n", args...) }

	if o.storeURL == "" {
		dir, err := os.MkdirTemp("", "tailor-demo-")
		if err != nil {
			return nil, err
		}
		if !o.keep {
			defer os.RemoveAll(dir)
		}
		o.storeURL = "file://" + dir
	}
	st, err := openStore(ctx, o.storeURL)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	sum.Store = st.URL()

	// 1. An embedded broker on loopback.
	start := time.Now()
	const topic = "metrics"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(o.spec.Partitions), topic))
	if err != nil {
		return nil, fmt.Errorf("start embedded broker: %w", err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	say("embedded Kafka broker on %v, topic %q with %d partitions", brokers, topic, o.spec.Partitions)

	// 2. Produce.
	records, points, err := produceWorkload(ctx, brokers, topic, gen, o)
	if err != nil {
		return nil, err
	}
	sum.Records, sum.PointsProduced = records, points
	stage("produce", start)
	say("produced %d records (%d points, %d redelivered payloads, %d malformed) in %.1fs", records, points, gen.Redeliveries(), o.malformed, time.Since(start).Seconds())

	// 3. Sink until caught up.
	start = time.Now()
	sink, err := ingest.New(ingest.Options{
		Brokers: brokers, Topics: []string{topic}, Store: st, FlushPayloads: o.flushPayloads, StopAtEnd: true,
		Group: "tailor-demo",
	})
	if err != nil {
		return nil, err
	}
	if err := sink.Run(ctx); err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	// The broker is no longer needed; closing it frees its memory (kfake keeps every
	// record in memory) and its goroutines before the CPU-heavy run.
	cluster.Close()
	ss := sink.Stats()
	sum.Rejected, sum.Segments, sum.SegmentBytes = ss.Rejected, ss.Segments, ss.Bytes
	stage("sink", start)
	say("sink stored %d segments (%d bytes, %d rejected records) in %.1fs", ss.Segments, ss.Bytes, ss.Rejected, time.Since(start).Seconds())

	// 4. Run every shard and window.
	start = time.Now()
	reports, err := query.RunAll(ctx, query.AllOptions{
		RunOptions: query.RunOptions{Store: st, Arrival: query.DefaultArrival(), Readers: runtime.NumCPU(), Engine: query.Options{Threads: runtime.NumCPU(), TempDir: os.TempDir() + "/tailor-demo-duckdb"}},
		Parallel:   o.parallel,
		Progress: func(done, total int, rep *query.Report) {
			if done%16 == 0 || done == total {
				say("run: %d/%d shard windows", done, total)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	rs := summarize(reports, time.Since(start))
	sum.ShardRuns, sum.DuplicatesRemove, sum.PointsOut, sum.SeriesOut, sum.BytesOut, sum.BytesPerPoint = rs.Runs, rs.Duplicates, rs.PointsOut, rs.Series, rs.BytesOut, rs.BytesPerPoint
	stage("run", start)
	for k, v := range rs.StageSeconds {
		sum.Stages["run."+k] = v
	}

	// 5. Check every point against the workload's expected output.
	start = time.Now()
	sum.Mismatches, err = checkOutputs(ctx, st, gen, sum)
	if err != nil {
		return sum, err
	}
	stage("check", start)
	sum.Retries = storeRetries(st)
	sum.Check = "passed"
	if len(sum.Mismatches) > 0 {
		sum.Check = "FAILED"
	}
	return sum, nil
}

func produceWorkload(ctx context.Context, brokers []string, topic string, gen *workload.Gen, o demoOptions) (records, points int64, err error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(4<<20),
		kgo.MaxBufferedRecords(20_000),
		kgo.ProducerLinger(5*time.Millisecond),
	)
	if err != nil {
		return 0, 0, fmt.Errorf("producer: %w", err)
	}
	defer cl.Close()
	var (
		perr  error
		errCh = make(chan error, 1)
	)
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			select {
			case errCh <- err:
			default:
			}
		}
	}
	n := 0
	err = gen.Records(func(rec *workload.Record) error {
		var value []byte
		// A stable share of records as JSON, the rest as protobuf: the sink detects each.
		if o.jsonShare > 0 && float64(n%1000) < o.jsonShare*1000 {
			value = payload.AppendJSON(nil, &rec.Payload)
		} else {
			value = payload.AppendProto(nil, &rec.Payload)
		}
		n++
		records++
		points += int64(len(rec.Payload.Timestamps))
		cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: rec.Partition, Value: value, Timestamp: time.UnixMilli(rec.Timestamp)}, done)
		select {
		case perr = <-errCh:
			return perr
		default:
			return nil
		}
	})
	for i := 0; i < o.malformed && err == nil; i++ {
		bad := [][]byte{[]byte(`{"org_id":1,"metric_id":2,"context_key":3,"timestamps":[1],"values":[0.5,`), {0xff, 0xff, 0xff}, []byte(`{"org_id":-1}`)}[i%3]
		records++
		cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(i % o.spec.Partitions), Value: bad, Timestamp: time.UnixMilli(o.spec.Start)}, done)
	}
	if ferr := cl.Flush(ctx); ferr != nil && err == nil {
		err = ferr
	}
	select {
	case perr = <-errCh:
		if err == nil {
			err = perr
		}
	default:
	}
	if err != nil {
		return records, points, fmt.Errorf("produce: %w", err)
	}
	return records, points, nil
}

// checkOutputs walks the published series files and the workload's expected points in
// the same (series, ts) order and reports the first mismatches.
func checkOutputs(ctx context.Context, st storage.Store, gen *workload.Gen, sum *demoSummary) ([]string, error) {
	type exp struct {
		k  columnar.SeriesKey
		ts int64
		v  float64
	}
	next := make(chan exp, 4096)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(next)
		_ = gen.Expected(func(k columnar.SeriesKey, ts int64, v float64) error {
			select {
			case next <- exp{k, ts, v}:
				return nil
			case <-stop:
				return errors.New("stopped")
			}
		})
	}()
	var mism []string
	note := func(format string, args ...any) {
		if len(mism) < 10 {
			mism = append(mism, fmt.Sprintf(format, args...))
		}
	}
	m := validate.Merger{OnDiff: func(k validate.Kind, n, l *validate.Point) {
		switch {
		case n == nil:
			note("%s: %+v ts %d", k, l.Key, l.Ts)
		case l == nil:
			note("%s: %+v ts %d", k, n.Key, n.Ts)
		default:
			note("%s: %+v ts %d: got bits %016x, want %016x", k, n.Key, n.Ts, math.Float64bits(n.Value), math.Float64bits(l.Value))
		}
	}}
	head, ok := <-next
	var got int64
	err := catPoints(ctx, st, "", func(s *encoder.Series) error {
		for i, ts := range s.Ts {
			got++
			p := validate.Point{Key: s.Key, Ts: ts, Value: s.Values[i]}
			m.AddNew(p)
			// Feed expected points up to p, so the merge buffers almost nothing.
			for ok && (head.k.Less(p.Key) || head.k == p.Key && head.ts <= p.Ts) {
				m.AddLegacy(validate.Point{Key: head.k, Ts: head.ts, Value: head.v})
				head, ok = <-next
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for ; ok; head, ok = <-next {
		m.AddLegacy(validate.Point{Key: head.k, Ts: head.ts, Value: head.v})
	}
	c := m.Close()
	if c.MissingInNew+c.MissingInLegacy+c.ValueDiffers > 0 {
		note("diff: %d equal, %d missing from the series files, %d unexpected, %d with another value", c.Equal, c.MissingInNew, c.MissingInLegacy, c.ValueDiffers)
	}
	want := gen.Spec().Points()
	if got != want {
		note("series files hold %d points, want %d", got, want)
	}
	redeliveredPoints := uint64(sum.PointsProduced - want)
	if sum.DuplicatesRemove != redeliveredPoints {
		note("the run removed %d duplicates, the workload redelivered %d points", sum.DuplicatesRemove, redeliveredPoints)
	}
	if sum.Rejected != uint64(sum.Malformed) {
		note("the sink rejected %d records, %d malformed were sent", sum.Rejected, sum.Malformed)
	}
	return mism, nil
}

func (s *demoSummary) print(w io.Writer) {
	fmt.Fprintf(w, "\nTailor demo — %s\n", s.Store)
	fmt.Fprintf(w, "  produced          %d records: %d points over %d series, %d payloads redelivered, %d malformed\n", s.Records, s.PointsProduced, s.Series, s.Redeliveries, s.Malformed)
	fmt.Fprintf(w, "  sink              %d segments, %d bytes, %d records rejected to rejects/\n", s.Segments, s.SegmentBytes, s.Rejected)
	fmt.Fprintf(w, "  run               %d shard windows, %d redelivered points removed\n", s.ShardRuns, s.DuplicatesRemove)
	fmt.Fprintf(w, "  series files      %d points in %d series, %d bytes = %.2f bytes/point\n", s.PointsOut, s.SeriesOut, s.BytesOut, s.BytesPerPoint)
	fmt.Fprintf(w, "  seconds           produce %.1f, sink %.1f, run %.1f, check %.1f\n", s.Stages["produce"], s.Stages["sink"], s.Stages["run"], s.Stages["check"])
	if s.Retries != nil {
		fmt.Fprint(w, "  ")
		printRetries(w, *s.Retries)
	}
	fmt.Fprintf(w, "  check             %s", s.Check)
	if s.Check == "passed" {
		fmt.Fprintf(w, ": every distinct (series, ts) appears exactly once with its latest value\n")
	} else {
		fmt.Fprintln(w)
		for _, m := range s.Mismatches {
			fmt.Fprintf(w, "    %s\n", m)
		}
	}
}
