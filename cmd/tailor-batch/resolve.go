package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/storage"
	"github.com/tailor-metrics/tailor/validate"
)

func newResolveCmd() *cobra.Command {
	var (
		planPath, from, to, shardMap, format string
		org                                  uint32
	)
	cmd := &cobra.Command{
		Use:   "resolve --plan PLAN.yaml --org X --from T1 --to T2 [--format text|json]",
		Short: "Say which files, legacy or Tailor's, serve each part of an org's time range",
		Long: `Reads the migration plan and splits [--from, --to) of the org at its cutovers. Each
part is served by legacy or by Tailor; resolve lists the series files of that side's
root whose windows overlap the part. A dependent pipeline reads each file keeping only
the org's points with ts inside its part, so a window that straddles a cutover is read
in part from each side and no point comes twice. Parts no file covers are listed as
gaps. Times are RFC 3339 or Unix ms; a point at a cutover belongs to the side it
switches to.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("--format %q: want text or json", format)
			}
			p, err := validate.LoadPlan(planPath)
			if err != nil {
				return err
			}
			f, err := validate.ParseTimestamp(from)
			if err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			t, err := validate.ParseTimestamp(to)
			if err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			m, err := loadShardMap(shardMap)
			if err != nil {
				return fmt.Errorf("--shard-map: %w", err)
			}
			open := func(ctx context.Context, url string) (storage.Store, error) {
				return openStore(ctx, url, "the roots in --plan")
			}
			rs, err := validate.Resolve(cmd.Context(), validate.ResolveOptions{Plan: p, ShardMap: m, Open: open}, org, f, t)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if format == "json" {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					Revision int                 `json:"plan_revision"`
					Mode     validate.Mode       `json:"mode"`
					Org      uint32              `json:"org_id"`
					Pieces   []validate.Resolved `json:"pieces"`
				}{p.Revision, p.Mode, org, rs})
			}
			fmt.Fprintf(w, "plan revision %d (%s), org %d, [%s, %s)\n", p.Revision, p.Mode, org, validate.FormatTimestamp(f), validate.FormatTimestamp(t))
			for _, r := range rs {
				fmt.Fprintf(w, "\n[%s, %s)  %s  %s  %d files\n", validate.FormatTimestamp(r.From), validate.FormatTimestamp(r.To), r.Serve, storage.Redact(r.Root), len(r.Files))
				for _, fl := range r.Files {
					fmt.Fprintf(w, "  %s\n", fl.Key)
				}
				for _, g := range r.Gaps {
					fmt.Fprintf(w, "  gap: no %s file covers [%s, %s)\n", r.Serve, validate.FormatTimestamp(g.From), validate.FormatTimestamp(g.To))
				}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&planPath, "plan", "", "migration plan YAML (required)")
	fl.Uint32Var(&org, "org", 0, "org id (required)")
	fl.StringVar(&from, "from", "", "start of the range, inclusive (required)")
	fl.StringVar(&to, "to", "", "end of the range, exclusive (required)")
	fl.StringVar(&shardMap, "shard-map", "", "shard map YAML (default: 64 shared shards)")
	fl.StringVar(&format, "format", "text", "output: text or json")
	for _, f := range []string{"plan", "org", "from", "to"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}
