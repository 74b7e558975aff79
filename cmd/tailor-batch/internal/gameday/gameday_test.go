package gameday

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
)

// TestShortScenarios runs every scenario's short version: nothing may be lost or
// duplicated, every expectation must hold, and the output ends with the totals line.
func TestShortScenarios(t *testing.T) {
	names := Names()
	if testing.Short() {
		names = []string{"shard-kill"}
	}
	var results []*Result
	for _, name := range names {
		sc, err := Find(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) {
			rs := Run(context.Background(), Config{Short: true, Dir: t.TempDir(), Say: t.Logf}, sc)
			results = append(results, rs...)
			var out bytes.Buffer
			Print(&out, rs)
			t.Log(out.String())
			r := rs[0]
			if !r.Passed() || r.Stored != r.Produced || r.Produced == 0 {
				t.Fatalf("%s failed:\n%s", name, out.String())
			}
		})
	}
	var out bytes.Buffer
	Print(&out, results)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var want int64
	for _, r := range results {
		want += r.Produced
	}
	if last := lines[len(lines)-1]; last != fmt.Sprintf("produced=%d stored=%d lost=0 duplicated=0", want, want) {
		t.Errorf("last line %q", last)
	}
}

// TestCheckFindsLoss: the scenarios' check must be able to fail. A segment deleted
// without a replay loses its points, and the result says so.
func TestCheckFindsLoss(t *testing.T) {
	ctx := context.Background()
	res := &Result{Name: "loss"}
	e, err := newEnv(ctx, Config{Short: true, Dir: t.TempDir()}, "loss", res, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	if err := e.sinkAll(ctx); err != nil {
		t.Fatal(err)
	}
	segs, err := columnar.ListSegments(ctx, e.st)
	if err != nil || len(segs) < 2 {
		t.Fatalf("segments %d, err %v", len(segs), err)
	}
	if err := e.st.Delete(ctx, segs[0].Key); err != nil {
		t.Fatal(err)
	}
	if err := runAndCheck(ctx, e); err != nil {
		t.Fatal(err)
	}
	if res.Lost == 0 || res.Passed() || res.Stored+res.Lost != res.Produced {
		t.Fatalf("deleted segment not reported as loss: %+v", res)
	}
	// The point check's own findings reach the result: a failed row, and its words.
	var row *Row
	for i := range res.Rows {
		if res.Rows[i].Check == "mismatches found by the point check" {
			row = &res.Rows[i]
		}
	}
	if row == nil || row.OK || row.Actual == "0" {
		t.Fatalf("the point check's mismatches are not a failed row: %+v", res.Rows)
	}
	var missing bool
	for _, n := range res.Notes {
		missing = missing || strings.HasPrefix(n, "point check: missing_in_new")
	}
	if !missing {
		t.Fatalf("no note names a missing point: %q", res.Notes)
	}
}

func TestFind(t *testing.T) {
	if s, err := Find("all"); err != nil || len(s) != 8 {
		t.Fatalf("all: %d scenarios, %v", len(s), err)
	}
	if _, err := Find("nope"); err == nil || !strings.Contains(err.Error(), "workers-down") {
		t.Fatalf("unknown scenario: %v", err)
	}
}
