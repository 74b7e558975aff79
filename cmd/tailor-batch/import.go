package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/ingest"
)

func newImportCmd() *cobra.Command {
	var (
		csvPath, storeURL, shardMap, topic string
		partition                          int32
		recordTime                         int64
		flushPayloads                      int
		flushBytes                         int64
	)
	cmd := &cobra.Command{
		Use:   "import --csv FILE --store URL",
		Short: "Write the points of a CSV file as segments, exactly as the sink would",
		Long: `Reads points in arrival order from a CSV file with the header
org_id,metric_id,context_key,ts,value (ts in Unix ms; value as text, NaN, +Inf, -Inf and -0
accepted) and writes them as segments. A later row for the same series and ts replaces an
earlier one. Rows are appended after the existing segments of --topic/--partition, so a
second import of the same points replaces the first.

A failed import never stores a row twice when it is run again:
  - Every row is checked before anything is stored: a malformed row fails the import,
    naming its line, and nothing is stored. Fix the file and import it again.
  - If storing fails part-way (the store, Ctrl-C), the error names the segments stored
    so far, and the import leaves a journal (imports/<topic>-<partition>.json) in the
    store. Run the same import again: it resumes, checks that the stored segments hold
    exactly the file's rows, stores the rest and removes the journal.
Do not run two imports into the same --topic and --partition at once. See docs/import.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			// Segment keys embed the topic (--partition's range is checked with the
			// other integer flags, flags.go).
			if err := columnar.CheckTopic(topic); err != nil {
				return usageErrorf("--topic: %w", err)
			}
			st, err := createStore(ctx, storeURL, "--store")
			if err != nil {
				return err
			}
			defer st.Close()
			sm, err := loadShardMap(shardMap)
			if err != nil {
				return err
			}
			f, err := os.Open(csvPath)
			if err != nil {
				return fmt.Errorf("import: %w (check --csv)", err)
			}
			defer f.Close()
			stats, err := ingest.ImportCSV(ctx, filepath.Base(csvPath), f, ingest.ImportOptions{
				Store: st, ShardMap: sm, Topic: topic, Partition: partition, RecordTime: recordTime,
				FlushPayloads: flushPayloads, FlushBytes: flushBytes,
			})
			if err != nil {
				return err
			}
			if stats.Resumed {
				fmt.Fprintf(cmd.OutOrStdout(), "resumed the unfinished import into %s-%d: %d of its segments were stored already and hold the same rows\n",
					topic, partition, stats.SegmentsExisting)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d rows as %d records in %d segments (offsets %d..%d of %s-%d) into %s\n",
				stats.Rows, stats.Records, stats.Segments+stats.SegmentsExisting, stats.FirstOffset, stats.EndOffset, topic, partition, st.URL())
			if rs := storeRetries(st); rs != nil {
				printRetries(cmd.OutOrStdout(), "store retries: ", *rs)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&csvPath, "csv", "", "CSV file to import (required)")
	_ = cmd.MarkFlagRequired("csv")
	storeFlag(cmd, &storeURL, true)
	cmd.Flags().StringVar(&shardMap, "shard-map", "", "shard map YAML (default: org_id mod 64)")
	cmd.Flags().StringVar(&topic, "topic", "import", "pseudo-topic the rows are appended to")
	cmd.Flags().Int32Var(&partition, "partition", 0, "pseudo-partition the rows are appended to")
	cmd.Flags().Int64Var(&recordTime, "record-time", 0, "record timestamp (Unix ms) stamped on every row")
	cmd.Flags().IntVar(&flushPayloads, "flush-payloads", 100_000, "records per segment")
	cmd.Flags().Int64Var(&flushBytes, "flush-bytes", 64<<20, "bytes per segment")
	return cmd
}
