package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/cmd/tailor-batch/internal/pipeline"
	"github.com/tailor-metrics/tailor/ingest/workload"
	"github.com/tailor-metrics/tailor/storage"
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
	// Validation is the diff and validate of a legacy copy with injected differences.
	Validation *demoValidation `json:"validation,omitempty"`
	kept       bool
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
	st, err := createStore(ctx, o.storeURL, "--store")
	if err != nil {
		return nil, err
	}
	defer st.Close()
	sum.Store = st.URL()

	res, err := pipeline.Run(ctx, pipeline.Options{
		Gen: gen, Store: st, FlushPayloads: o.flushPayloads, Parallel: o.parallel, Say: say,
		Produce: pipeline.ProduceOptions{JSONShare: o.jsonShare, Malformed: o.malformed},
	})
	if err != nil {
		return nil, err
	}
	sum.fill(res)
	sum.Check = "passed"
	if len(sum.Mismatches) > 0 {
		sum.Check = "FAILED"
	}

	// Migration: a legacy copy with injected differences, found again by diff and validate.
	vdir, err := os.MkdirTemp("", "tailor-demo-validation-")
	if err != nil {
		return sum, err
	}
	if !o.keep {
		defer os.RemoveAll(vdir)
	}
	sum.kept = o.keep
	if sum.Validation, err = runDemoValidation(ctx, gen, st, vdir, progress); err != nil {
		return sum, fmt.Errorf("demo validation: %w", err)
	}
	sum.Stages["validate"] = sum.Validation.Seconds
	sum.Retries = storeRetries(st)
	if sum.Validation.Found == "FAILED" {
		sum.Check = "FAILED"
		sum.Mismatches = append(sum.Mismatches, sum.Validation.FoundProblems...)
	}
	return sum, nil
}

// fill copies what the pipeline saw into the summary.
func (s *demoSummary) fill(res *pipeline.Result) {
	s.Records, s.PointsProduced = res.Records, res.PointsProduced
	s.Rejected, s.Segments, s.SegmentBytes = res.Sink.Rejected, res.Sink.Segments, res.Sink.Bytes
	for k, v := range res.Stages {
		s.Stages[k] = v
	}
	if res.Reports != nil {
		rs := summarize(res.Reports, 0)
		s.ShardRuns, s.DuplicatesRemove, s.PointsOut, s.SeriesOut, s.BytesOut, s.BytesPerPoint = rs.Runs, rs.Duplicates, rs.PointsOut, rs.Series, rs.BytesOut, rs.BytesPerPoint
		for k, v := range rs.StageSeconds {
			s.Stages["run."+k] = v
		}
	}
	if res.Check != nil {
		s.Mismatches = res.Check.Mismatches
	}
}

func (s *demoSummary) print(w io.Writer) {
	fmt.Fprintf(w, "\nTailor demo — %s\n", s.Store)
	fmt.Fprintf(w, "  produced          %d records: %d points over %d series, %d payloads redelivered, %d malformed\n", s.Records, s.PointsProduced, s.Series, s.Redeliveries, s.Malformed)
	fmt.Fprintf(w, "  sink              %d segments, %d bytes, %d records rejected to rejects/\n", s.Segments, s.SegmentBytes, s.Rejected)
	fmt.Fprintf(w, "  run               %d shard windows, %d redelivered points removed\n", s.ShardRuns, s.DuplicatesRemove)
	fmt.Fprintf(w, "  series files      %d points in %d series, %d bytes = %.2f bytes/point\n", s.PointsOut, s.SeriesOut, s.BytesOut, s.BytesPerPoint)
	fmt.Fprintf(w, "  seconds           produce %.1f, sink %.1f, run %.1f, check %.1f\n", s.Stages["produce"], s.Stages["sink"], s.Stages["run"], s.Stages["check"])
	if s.Retries != nil {
		printRetries(w, "  store retries     ", *s.Retries)
	}
	if s.Validation != nil {
		s.Validation.print(w, s.kept)
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
