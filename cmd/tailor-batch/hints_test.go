package main

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/run"
)

// TestLibrariesNameNoFlags: no library (any package outside cmd/ and bench/) puts a
// command-line flag in a string: libraries take structs, and the command names the
// flags (withFlags, verifyRemedy, the commands' own checks). storage/s3test starts
// versitygw, whose own flags are arguments, not messages.
func TestLibrariesNameNoFlags(t *testing.T) {
	flag := regexp.MustCompile(`(^|[\s(])--[a-z][a-z-]+`)
	allowed := map[string]bool{"storage/s3test/s3test.go": true}
	root := filepath.Join("..", "..")
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			switch rel {
			case "cmd", "bench", "deploy", ".git", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") || allowed[filepath.ToSlash(rel)] {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			if s, err := strconv.Unquote(lit.Value); err == nil && flag.MatchString(s) {
				found = append(found, fmt.Sprintf("%s: %q", rel, s))
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) > 0 {
		t.Fatalf("libraries name command-line flags; let the command add them:\n%s", strings.Join(found, "\n"))
	}
}

// TestWithFlags: the library errors that say what to change get the flags that change
// it, wrapped so that they keep their type; other errors are left alone.
func TestWithFlags(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("run org-mod-1 W: %w", &run.ResourceError{Err: errors.New("Out of Memory Error")}), "(--memory-limit, --threads, --temp-dir)"},
		{fmt.Errorf("1 of 2 shard runs failed: %w", &run.WorseRunError{Shard: "org-mod-1", Window: "W", RunID: "b", Current: "a"}), "(--accept-degraded serves it)"},
		{fmt.Errorf("legacy: %w", &query.MissingColumnError{Source: "l.parquet", Column: "ts", For: "ts", Type: "BIGINT"}), "map another column to ts (--legacy-column ts=NAME)"},
	} {
		got := withFlags(tc.err)
		if !strings.HasSuffix(got.Error(), tc.want) || !errors.Is(got, tc.err) {
			t.Errorf("withFlags(%v) = %v, want it to end in %q and wrap the error", tc.err, got, tc.want)
		}
	}
	plain := errors.New("open store: no such bucket")
	if got := withFlags(plain); got != plain {
		t.Errorf("withFlags changed an error with no flag to name: %v", got)
	}
	if withFlags(nil) != nil {
		t.Error("withFlags(nil) is not nil")
	}
}

// TestVerifyRemedy: the verify problems whose fix is a command line say it.
func TestVerifyRemedy(t *testing.T) {
	for _, tc := range []struct {
		p    run.Problem
		want string
	}{
		{run.Problem{Kind: run.RuleDiffers, RunID: "r"}, " (pass the run's --window-size, --lateness and --flush-age)"},
		{run.Problem{Kind: run.NotRun, Shard: "org-mod-3", Window: "20251124T0000Z-4h"}, " (tailor-batch run --shard org-mod-3 --window 20251124T0000Z-4h)"},
		{run.Problem{Kind: run.NotRun, Shard: "org-mod-3", Window: "20251124T0000Z-4h", RunID: "r"}, ""},
		{run.Problem{Kind: run.DeletedRemains, RunID: "r", Key: "series/x/part-0.tsf"}, " (tailor-batch delete --apply --recheck)"},
		{run.Problem{Kind: run.PartMissing}, ""},
	} {
		if got := verifyRemedy(tc.p); got != tc.want {
			t.Errorf("verifyRemedy(%v) = %q, want %q", tc.p.Kind, got, tc.want)
		}
	}
}

// TestSinkNeedsBrokersAndTopics: --brokers and --topics are required and may not be
// given empty; either is a usage error naming the flag, before the sink starts.
func TestSinkNeedsBrokersAndTopics(t *testing.T) {
	store := "file://" + t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sink", "--brokers", "", "--topics", "t", "--store", store}, "--brokers: no broker given"},
		{[]string{"sink", "--brokers", "127.0.0.1:1", "--topics", "", "--store", store}, "--topics: no topic given"},
	} {
		_, err := runCLI(t, tc.args...)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want a usage error with %q", tc.args, err, tc.want)
		}
	}
}
