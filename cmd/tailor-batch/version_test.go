package main

import (
	"bytes"
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/run"
)

func TestBuildVersion(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Path: "github.com/tailor-metrics/tailor", Version: "v0.3.0"},
		Deps:      []*debug.Module{{Path: "github.com/duckdb/duckdb-go/v2", Version: "v2.10506.0"}},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	v := buildVersion(bi)
	if v.Version != "v0.3.0" || v.Commit != "0123456789abcdef0123456789abcdef01234567-dirty" || v.CommitTime != "2026-12-01T10:00:00Z" || v.Go != "go1.26.0" || v.DuckDBGo != "v2.10506.0" {
		t.Fatalf("buildVersion = %+v", v)
	}
	bi.Settings[2].Value = "false"
	if v := buildVersion(bi); v.Commit != "0123456789abcdef0123456789abcdef01234567" {
		t.Fatalf("clean checkout: commit %q", v.Commit)
	}
	bi.Main.Version, bi.Settings = "(devel)", nil
	if v := buildVersion(bi); v.Version != "(devel)" || !strings.HasPrefix(v.Commit, "unknown") {
		t.Fatalf("no VCS stamp: %+v", v)
	}
	old := commit
	commit = "feedface0123456789-dirty" // -ldflags -X main.commit, for builds in a git worktree
	defer func() { commit = old }()
	if v := buildVersion(bi); v.Commit != "feedface0123456789-dirty" {
		t.Fatalf("ldflags commit: %q", v.Commit)
	}
	// validate's reports carry the same, shortened.
	if v := tailorVersion(); !strings.HasSuffix(v, " (feedface0123-dirty)") {
		t.Fatalf("tailorVersion = %q", v)
	}
	if v := buildVersion(nil); v.Version != "(devel)" || v.Formats.SeriesFile != encoder.CurrentVersion || v.Formats.Manifest != run.AlgoVersion() {
		t.Fatalf("no build info: %+v", v)
	}
}

// TestVersionCommand: version and --version print the same lines, with DuckDB's own
// answer and the format versions; --json has the same as fields.
func TestVersionCommand(t *testing.T) {
	out, err := runCLI(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tailor-batch ", "\ncommit    ", "\ngo        go1.", "\nduckdb    v1.", "duckdb-go v2.", "\nformats   segment v2 (reads v1 to v2), series file v", "manifest algorithm " + run.AlgoVersion()} {
		if !strings.Contains(out, want) {
			t.Fatalf("version lacks %q:\n%s", want, out)
		}
	}
	flag, err := runCLI(t, "--version")
	if err != nil || flag != out {
		t.Fatalf("--version printed %q (%v), want %q", flag, err, out)
	}
	var stdout bytes.Buffer
	if err := runCLIio(t, nil, &stdout, &stdout, "version", "--json"); err != nil {
		t.Fatal(err)
	}
	var v versionInfo
	if err := json.Unmarshal(stdout.Bytes(), &v); err != nil || !strings.HasPrefix(v.DuckDB, "v1.") || v.Formats.Segment != 2 || v.Formats.SegmentReads != "v1 to v2" || v.Formats.SeriesFile != encoder.CurrentVersion {
		t.Fatalf("version --json: %+v %v\n%s", v, err, stdout.String())
	}
	// Without a command or --version, the root prints its help and exits 0.
	if help, err := runCLI(t); err != nil || !strings.Contains(help, "Available Commands") {
		t.Fatalf("root: %v\n%s", err, help)
	}
}
