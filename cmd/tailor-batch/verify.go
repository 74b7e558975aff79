package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailor-metrics/tailor/ingest"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
)

func newVerifyCmd() *cobra.Command {
	var (
		storeURL, shard, shardMap, window, lateness, group string
		tempDir                                            string
		brokers, topics                                    []string
		windowSize, flushAge, kafkaTimeout                 time.Duration
		deep, jsonOut                                      bool
		readers                                            int
	)
	cmd := &cobra.Command{
		Use:   "verify --store URL [--shard S] [--window W] [--brokers B --group G] [--deep] [--json]",
		Short: "Prove from the store's own files that every stored point is served, once, intact",
		Long: `Checks, from the segments and manifests alone (docs/verify.md):

  segments  per (topic, partition), the segments cover one gapless, non-overlapping range
            of offsets, up to the group's committed offset with --brokers and --group;
            every gap and overlap is named with its offsets
  runs      every published manifest's parts exist with the size and SHA-256 it records
            and decode; every input segment it names is still there (or is listed as
            collected); _CURRENT names a published run
  coverage  every frame of every segment is read by the current run of every shard and
            window its points belong to, or is reported as not yet run, with its points
            and bytes; degraded runs (that skipped corrupt frames) are reported
  life      compacted and rewritten runs account for their sources (derived_mismatch);
            no serving part and no segment holds a point of an applied delete
            (deleted_remains); an input that is gone and that gc did not record
            collecting is lost (input_lost); gc's records fill the chains it collected
  --deep    every current run is made again from its inputs, in memory, and its counts
            and part bytes compared with the published ones (runs made from runs, by
            compaction, deletes or retention, are checked as "life" says)

--shard and --window limit the runs and coverage checked. The arrival rule (--window-size,
--lateness, --flush-age) must be the one run used; by default verify takes it from the
published manifests. Each problem is listed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if (len(brokers) > 0) != (group != "") {
				return fmt.Errorf("--brokers and --group go together: the committed offsets are the group's")
			}
			st, err := openStore(ctx, storeURL, "--store", storage.SegmentsPrefix, storage.SeriesPrefix)
			if err != nil {
				return err
			}
			defer st.Close()
			opt := run.VerifyOptions{Store: st, Deep: deep, Readers: readers}
			if shard != "" {
				m, err := loadShardMap(shardMap)
				if err != nil {
					return fmt.Errorf("--shard-map: %w", err)
				}
				if opt.Shard, err = checkShard("--shard", shard, m); err != nil {
					return err
				}
			}
			fl := cmd.Flags()
			if fl.Changed("window-size") || fl.Changed("lateness") || fl.Changed("flush-age") {
				opt.Arrival = run.Arrival{Size: windowSize, FlushAge: flushAge}
				if lateness != "none" {
					d, err := time.ParseDuration(lateness)
					if err != nil || d < 0 {
						return fmt.Errorf("--lateness %q: want none or a duration such as 1h", lateness)
					}
					opt.Arrival.Closed, opt.Arrival.Lateness = true, d
				}
			} else if opt.Arrival, err = publishedArrival(ctx, st, windowSize, flushAge); err != nil {
				return err
			}
			if window != "" {
				w, err := run.ParseWindow(window, opt.Arrival.Size)
				if err != nil {
					return usageErrorf("--window: %w", err)
				}
				opt.Window, opt.Arrival.Size = &w, w.Size
			}
			if len(brokers) > 0 {
				kctx, cancel := context.WithTimeout(ctx, kafkaTimeout)
				defer cancel()
				cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
				if err != nil {
					return fmt.Errorf("--brokers: %w", err)
				}
				defer cl.Close()
				if opt.Committed, err = ingest.CommittedOffsets(kctx, cl, group, topics); err != nil {
					return fmt.Errorf("%w (is --brokers %s reachable within --kafka-timeout %s?)", err, strings.Join(brokers, ","), kafkaTimeout)
				}
			}
			if tempDir == "" {
				tempDir = os.TempDir()
			}
			opt.Engine = query.Options{Threads: max(1, runtime.NumCPU()), MemoryLimit: run.DefaultMemoryLimit(1), TempDir: tempDir}
			log := loggerFrom(ctx)
			opt.Stage = func(s string) { log.Info("verify", "stage", s) }
			start := time.Now()
			rep, err := run.Verify(ctx, opt)
			if err != nil {
				return fmt.Errorf("verify %s: %w", st.URL(), err)
			}
			if jsonOut {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(struct {
					OK bool `json:"ok"`
					*run.VerifyReport
				}{rep.OK(), rep}); err != nil {
					return err
				}
			} else {
				printVerify(cmd.OutOrStdout(), st.URL(), rep, time.Since(start))
			}
			if !rep.OK() {
				return &checkFailed{fmt.Sprintf("verify: %d problems", len(rep.Problems))}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	storeFlag(cmd, &storeURL, false)
	fl.StringVar(&shard, "shard", "", "check only this shard's runs and coverage")
	fl.StringVar(&shardMap, "shard-map", "", "shard map YAML the sink used, to check --shard (default: 64 shared shards)")
	fl.StringVar(&window, "window", "", "check only this window's runs and coverage, FROM/DURATION or a window name like run's")
	fl.DurationVar(&windowSize, "window-size", run.DefaultWindowSize, "the runs' window size (default: the published runs')")
	fl.StringVar(&lateness, "lateness", "none", "the runs' --lateness (default: the published runs')")
	fl.DurationVar(&flushAge, "flush-age", run.DefaultFlushAge, "the runs' --flush-age (default: the published runs')")
	fl.StringSliceVar(&brokers, "brokers", nil, "Kafka seed brokers, to check the segments reach the group's committed offsets (with --group)")
	fl.StringVar(&group, "group", "", "the sink's consumer group (with --brokers)")
	fl.StringSliceVar(&topics, "topics", nil, "with --group: only these topics (default: every topic the group committed to)")
	fl.DurationVar(&kafkaTimeout, "kafka-timeout", 30*time.Second, "how long fetching the committed offsets may take")
	fl.BoolVar(&deep, "deep", false, "make every current run again from its inputs, in memory, and compare counts and bytes")
	fl.IntVar(&readers, "readers", runtime.NumCPU(), "segment byte ranges decoded in parallel per deep run")
	fl.StringVar(&tempDir, "temp-dir", "", "where deep runs spill (default: $TMPDIR)")
	fl.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	return cmd
}

// publishedArrival is the arrival rule of the store's current runs, or run's defaults
// (with size and flushAge) when nothing is published. Runs made with different rules are
// reported by verify itself (rule_differs), against the rule of the first run.
func publishedArrival(ctx context.Context, st storage.Store, size, flushAge time.Duration) (run.Arrival, error) {
	a := run.Arrival{Size: size, FlushAge: flushAge}
	ms, err := run.Published(ctx, st)
	if err != nil {
		return a, fmt.Errorf("read the published runs: %w", err)
	}
	if len(ms) == 0 {
		return a, nil
	}
	return ms[0].Arrival()
}

func printVerify(w io.Writer, url string, r *run.VerifyReport, elapsed time.Duration) {
	fmt.Fprintf(w, "verify %s (%.1fs)\n", url, elapsed.Seconds())
	gaps := r.Count(run.SegmentGap) + r.Count(run.SegmentOverlap) + r.Count(run.CommittedGap)
	fmt.Fprintf(w, "  segments  %d in %d partitions, %d bytes: %s\n", r.Segments, len(r.Partitions), r.Bytes, okOr(gaps+r.Count(run.SegmentUnreadable), "every partition one gapless chain"))
	for _, p := range r.Partitions {
		c := ""
		if p.Committed >= 0 {
			c = fmt.Sprintf(", committed %d", p.Committed)
		}
		fmt.Fprintf(w, "            %s-%d: %d segments, offsets [%d, %d)%s\n", p.Topic, p.Partition, p.Segments, p.From, p.To, c)
	}
	partProblems := r.Count(run.PartMissing) + r.Count(run.PartSize) + r.Count(run.PartChecksum) + r.Count(run.PartCorrupt) + r.Count(run.CurrentMissing) + r.Count(run.ManifestUnreadable) + r.Count(run.InputChanged)
	fmt.Fprintf(w, "  runs      %d manifests (%d serving), %d parts, %d bytes: %s\n", r.Runs, r.Current, r.Parts, r.PartBytes, okOr(partProblems, "every part present, checksummed and decoded"))
	if len(r.Collected) > 0 {
		fmt.Fprintf(w, "            %d input segments no longer stored (%d recorded by gc; coverage shows whether anything depends on them)\n", len(r.Collected), r.CollectedRanges)
	}
	if r.Derived > 0 || r.Superseded > 0 || r.Tombstones > 0 {
		fmt.Fprintf(w, "  life      %d derived runs serve (%d runs they supersede), %d deletes (%d applied): %s\n", r.Derived, r.Superseded, r.Tombstones, r.Applied,
			okOr(r.Count(run.DerivedMismatch)+r.Count(run.DeletedRemains)+r.Count(run.InputLost), "derived runs account for their sources, no deleted point stored"))
	}
	fmt.Fprintf(w, "  coverage  %d of %d shard windows covered, %d frames, %d points: %s\n", r.Covered, r.Windows, r.Frames, r.Points,
		okOr(r.Count(run.NotRun)+r.Count(run.RunDegraded)+r.Count(run.FrameCorrupt)+r.Count(run.RuleDiffers), "every frame read by its window's run"))
	if r.Deep > 0 || r.DeepSkipped > 0 || r.Count(run.CountsDiffer) > 0 {
		fmt.Fprintf(w, "  deep      %d runs made again: %s\n", r.Deep, okOr(r.Count(run.CountsDiffer), "the same counts and bytes"))
		if r.DeepDerived > 0 {
			fmt.Fprintf(w, "            %d derived runs not made again: made from runs, not segments (checked under life)\n", r.DeepDerived)
		}
		if r.DeepSkipped > 0 {
			fmt.Fprintf(w, "            %d runs not made again: an input of each is collected, replaced or unreadable\n", r.DeepSkipped)
		}
	}
	if r.OK() {
		fmt.Fprintln(w, "OK: every stored point is served by a published run, and every published part is intact")
		return
	}
	fmt.Fprintf(w, "FAILED: %d problems\n", len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  %s%s\n", p, verifyRemedy(p))
	}
}

func okOr(problems int, ok string) string {
	if problems == 0 {
		return "ok, " + ok
	}
	return fmt.Sprintf("%d problems", problems)
}
