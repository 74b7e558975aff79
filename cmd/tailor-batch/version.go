package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/run"
)

// version is the release, set at build time with -ldflags "-X main.version=v1.2.3"
// (the Makefile sets it from git describe). Without it, the module version that
// `go install …@v1.2.3` records is used, and "(devel)" for a plain go build.
var version string

// commit is the VCS revision when the build did not record one: go build stamps
// vcs.revision from a clone, but not from a git worktree (whose .git is a file), so
// the Makefile passes -ldflags "-X main.commit=$(git rev-parse HEAD)[-dirty]" as well.
var commit string

// versionInfo is what `version` prints.
type versionInfo struct {
	Version string `json:"version"`
	// Commit is the VCS revision the binary was built from, with -dirty when the
	// checkout had local changes; CommitTime is the commit's time.
	Commit     string `json:"commit"`
	CommitTime string `json:"commit_time,omitempty"`
	Go         string `json:"go"`
	Platform   string `json:"platform"`
	// DuckDB is what the linked DuckDB says (SELECT version()), DuckDBGo the duckdb-go
	// module that links it.
	DuckDB   string `json:"duckdb"`
	DuckDBGo string `json:"duckdb_go,omitempty"`
	Formats  struct {
		// Segment is the segment version written, SegmentReads the versions read; the
		// same for SeriesFile and SeriesFileReads.
		Segment         uint16 `json:"segment"`
		SegmentReads    string `json:"segment_reads"`
		SeriesFile      uint16 `json:"series_file"`
		SeriesFileReads string `json:"series_file_reads"`
		Manifest        string `json:"manifest_algorithm"`
	} `json:"formats"`
}

// buildVersion fills what the build recorded (debug.ReadBuildInfo); bi may be nil.
func buildVersion(bi *debug.BuildInfo) versionInfo {
	v := versionInfo{Version: version, Commit: "unknown (built without VCS information)", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		if v.Version == "" {
			v.Version = bi.Main.Version
		}
		v.Go = bi.GoVersion
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				v.CommitTime = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if rev != "" {
			v.Commit = rev + dirty
		} else if commit != "" {
			v.Commit = commit
		}
		for _, d := range bi.Deps {
			if d.Path == "github.com/duckdb/duckdb-go/v2" {
				v.DuckDBGo = d.Version
				if d.Replace != nil {
					v.DuckDBGo = d.Replace.Version
				}
			}
		}
	}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	if bi == nil && commit != "" {
		v.Commit = commit
	}
	v.Formats.Segment = columnar.SegmentVersion
	v.Formats.SegmentReads = fmt.Sprintf("v1 to v%d", columnar.SegmentVersion)
	v.Formats.SeriesFile = encoder.CurrentVersion
	v.Formats.SeriesFileReads = fmt.Sprintf("v%d to v%d", encoder.Version1, encoder.CurrentVersion)
	v.Formats.Manifest = run.AlgoVersion()
	return v
}

// tailorVersion is this binary's version for reports (validate's): the release and,
// when the build recorded one, the commit's first 12 hex digits (-dirty for a checkout
// with local changes), from the same build information as the version command.
func tailorVersion() string {
	bi, _ := debug.ReadBuildInfo()
	v := buildVersion(bi)
	if strings.HasPrefix(v.Commit, "unknown") {
		return v.Version
	}
	rev, dirty, _ := strings.Cut(v.Commit, "-")
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty != "" {
		rev += "-" + dirty
	}
	return v.Version + " (" + rev + ")"
}

// duckDBVersion asks the linked DuckDB for its version.
func duckDBVersion(ctx context.Context) (_ string, err error) {
	eng, err := query.Open(ctx, query.Options{})
	if err != nil {
		return "", err
	}
	defer func() { err = errors.Join(err, eng.Close()) }()
	res, err := eng.Query(ctx, "SELECT version() || ' (' || (SELECT source_id FROM pragma_version()) || ')'", nil)
	if err != nil {
		return "", err
	}
	defer res.Release()
	for res.Next() {
		rec := res.RecordBatch()
		if rec.NumRows() > 0 {
			if s, ok := rec.Column(0).(*array.String); ok {
				return strings.Clone(s.Value(0)), nil // the batch is freed on Release
			}
			return strings.Clone(rec.Column(0).ValueStr(0)), nil
		}
	}
	if err := res.Err(); err != nil {
		return "", err
	}
	return "", errors.New("duckdb: SELECT version() returned no row")
}

// printVersion prints the version information, as text or one JSON object.
func printVersion(ctx context.Context, w io.Writer, jsonOut bool) error {
	bi, _ := debug.ReadBuildInfo()
	v := buildVersion(bi)
	d, err := duckDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("version: ask duckdb: %w", err)
	}
	v.DuckDB = d
	if jsonOut {
		return writeJSON(w, v)
	}
	fmt.Fprintf(w, "tailor-batch %s\n", v.Version)
	fmt.Fprintf(w, "commit    %s", v.Commit)
	if v.CommitTime != "" {
		fmt.Fprintf(w, " (%s)", v.CommitTime)
	}
	fmt.Fprintf(w, "\ngo        %s %s\n", v.Go, v.Platform)
	fmt.Fprintf(w, "duckdb    %s", v.DuckDB)
	if v.DuckDBGo != "" {
		fmt.Fprintf(w, ", duckdb-go %s", v.DuckDBGo)
	}
	fmt.Fprintf(w, "\nformats   segment v%d (reads %s), series file v%d (reads %s), manifest algorithm %s\n",
		v.Formats.Segment, v.Formats.SegmentReads, v.Formats.SeriesFile, v.Formats.SeriesFileReads, v.Formats.Manifest)
	return nil
}

func newVersionCmd() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "version [--json]",
		Short: "Print the version, the commit, Go, DuckDB and the format versions",
		Long: `Prints the release (or "(devel)"), the commit the binary was built from (with -dirty
when the checkout had local changes), the Go toolchain, the linked DuckDB (as it
answers SELECT version()) and the versions of the formats this build writes: segments,
series files (and the series file versions it reads), and the manifest algorithm, which
changes whenever the same inputs would give other output bytes. tailor-batch --version
prints the same.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return printVersion(cmd.Context(), cmd.OutOrStdout(), jsonOut)
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}
