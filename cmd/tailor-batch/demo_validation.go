package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/ingest/workload"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/storage"
	"github.com/tailor-metrics/tailor/validate"
)

// Differences the demo injects into its legacy copy, and must find again.
const (
	demoDropped = 5
	demoChanged = 7
)

// demoValidation is the demo's migration check: a legacy copy of the expected points
// as Parquet with a few injected differences, then diff and validate against it.
type demoValidation struct {
	Legacy        string          `json:"legacy"`
	LegacyPoints  uint64          `json:"legacy_points"`
	Dropped       uint64          `json:"injected_dropped"`
	Changed       uint64          `json:"injected_changed"`
	Diff          validate.Counts `json:"diff"`
	Orgs          int             `json:"orgs"`
	FailedOrgs    []uint32        `json:"failed_orgs"`
	InjectedOrgs  []uint32        `json:"injected_orgs"`
	Report        string          `json:"report"`
	Seconds       float64         `json:"seconds"`
	Found         string          `json:"found"`
	FoundProblems []string        `json:"found_problems,omitempty"`
}

// injectedCounts are the differences written into one org's legacy copy.
type injectedCounts struct{ dropped, changed uint64 }

// writeDemoLegacy writes gen's expected points to a Parquet file, dropping demoDropped
// and changing demoChanged of them, spread over the stream.
func writeDemoLegacy(path string, gen *workload.Gen, v *demoValidation) (injected map[uint32]*injectedCounts, err error) {
	total := uint64(gen.Spec().Points())
	if total < 4*(demoDropped+demoChanged) {
		return nil, fmt.Errorf("demo: %d points are too few to inject %d differences", total, demoDropped+demoChanged)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	pw := validate.NewParquetWriter[validate.PointRow](f)
	injected = map[uint32]*injectedCounts{}
	org := func(o uint32) *injectedCounts {
		if injected[o] == nil {
			injected[o] = &injectedCounts{}
		}
		return injected[o]
	}
	dropEvery, changeEvery := total/demoDropped, total/demoChanged
	var i uint64
	err = gen.Expected(func(k columnar.SeriesKey, ts int64, val float64) error {
		defer func() { i++ }()
		switch {
		case i%dropEvery == dropEvery/3 && v.Dropped < demoDropped:
			v.Dropped++
			org(k.Org).dropped++
			return nil
		case i%changeEvery == changeEvery/2 && v.Changed < demoChanged:
			v.Changed++
			org(k.Org).changed++
			// Another value by bits, also when val is NaN (NaN equals NaN).
			if math.Float64bits(val) == math.Float64bits(1) {
				val = 2
			} else {
				val = 1
			}
		}
		return pw.Write(validate.PointRow{Org: k.Org, Metric: k.Metric, Context: k.Context, Ts: ts, Value: val})
	})
	if err != nil {
		return nil, err
	}
	v.LegacyPoints = pw.Rows()
	return injected, pw.Close()
}

// runDemoValidation writes the legacy copy into dir, diffs the store against it and
// writes the validation report, then checks that exactly the injected differences
// were found and exactly the orgs that got them failed.
func runDemoValidation(ctx context.Context, gen *workload.Gen, st storage.Store, dir string, progress io.Writer) (*demoValidation, error) {
	storeURL := st.URL()
	start := time.Now()
	v := &demoValidation{Legacy: filepath.Join(dir, "legacy.parquet"), Report: filepath.Join(dir, "validation-report")}
	injected, err := writeDemoLegacy(v.Legacy, gen, v)
	if err != nil {
		return nil, fmt.Errorf("write legacy copy: %w", err)
	}
	fmt.Fprintf(progress, "demo: legacy copy %s: %d points, %d dropped and %d changed on purpose\n", v.Legacy, v.LegacyPoints, v.Dropped, v.Changed)
	res, err := runDiff(ctx, diffJob{newURL: storeURL, newStore: st, legacy: query.LegacyOptions{Source: v.Legacy}, bucket: query.DefaultBucket}, progress)
	if err != nil {
		return nil, err
	}
	rep, err := validate.BuildReport(res.groups, validate.ReportOptions{New: storeURL, Legacy: v.Legacy, Thresholds: validate.DefaultThresholds(), Bucket: query.DefaultBucket})
	if err != nil {
		return nil, err
	}
	if _, err := writeReport(rep, v.Report); err != nil {
		return nil, err
	}
	v.Diff, v.Orgs = rep.Total.Counts, len(rep.Orgs)
	for _, o := range rep.Orgs {
		if !o.Pass {
			v.FailedOrgs = append(v.FailedOrgs, o.Org)
		}
	}
	// An org must fail exactly when the share of a kind injected into it (dropped points
	// are missing in legacy, changed ones differ in value) is above the threshold.
	var mustFail []uint32
	for _, o := range rep.Orgs {
		if n := injected[o.Org]; n != nil {
			v.InjectedOrgs = append(v.InjectedOrgs, o.Org)
			if over := func(c uint64) bool { return 100*float64(c)/float64(o.PointsCompared) > validate.DefaultMaxDiffPct }; over(n.dropped) || over(n.changed) {
				mustFail = append(mustFail, o.Org)
			}
		}
	}
	want := validate.Counts{Equal: v.LegacyPoints - v.Changed, MissingInLegacy: v.Dropped, ValueDiffers: v.Changed}
	if v.Diff != want {
		v.FoundProblems = append(v.FoundProblems, fmt.Sprintf("diff found %+v, want %+v", v.Diff, want))
	}
	if fmt.Sprint(v.FailedOrgs) != fmt.Sprint(mustFail) {
		v.FoundProblems = append(v.FoundProblems, fmt.Sprintf("validate failed orgs %v, want %v (injected into %v)", v.FailedOrgs, mustFail, v.InjectedOrgs))
	}
	v.Found = "exactly the injected differences"
	if len(v.FoundProblems) > 0 {
		v.Found = "FAILED"
	}
	v.Seconds = time.Since(start).Seconds()
	return v, nil
}

func (v *demoValidation) print(w io.Writer, kept bool) {
	fmt.Fprintf(w, "  legacy copy       %d points as Parquet, %d dropped and %d changed on purpose\n", v.LegacyPoints, v.Dropped, v.Changed)
	fmt.Fprintf(w, "  diff              %d equal, %d missing in new, %d missing in legacy, %d value differs\n", v.Diff.Equal, v.Diff.MissingInNew, v.Diff.MissingInLegacy, v.Diff.ValueDiffers)
	fmt.Fprintf(w, "  validate          %d of %d orgs FAIL at %s (orgs %v)", len(v.FailedOrgs), v.Orgs, validate.FormatPct(validate.DefaultMaxDiffPct), v.FailedOrgs)
	if kept {
		fmt.Fprintf(w, "; report %s/report.html\n", v.Report)
	} else {
		fmt.Fprintf(w, "; --keep keeps the report\n")
	}
	fmt.Fprintf(w, "  validation check  %s", v.Found)
	if v.Found == "FAILED" {
		fmt.Fprintln(w)
		for _, p := range v.FoundProblems {
			fmt.Fprintf(w, "    %s\n", p)
		}
		return
	}
	fmt.Fprintf(w, " (%.1fs)\n", v.Seconds)
}
