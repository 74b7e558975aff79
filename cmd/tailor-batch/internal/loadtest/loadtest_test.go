package loadtest

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestRunSmall runs the whole load test on a small workload: both scales pass their
// check, every stage is measured, the shards and the forecast are filled, and the
// report prints.
func TestRunSmall(t *testing.T) {
	rep, err := Run(context.Background(), Options{Scale: 2, BaseSeries: 40, Parallel: 1, Dir: t.TempDir(), Prices: DefaultPrices(), IngestRate: 1e5, Say: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Base.Check != "passed" || rep.K.Check != "passed" {
		t.Fatalf("checks %s / %s: %v %v", rep.Base.Check, rep.K.Check, rep.Base.Mismatches, rep.K.Mismatches)
	}
	if rep.K.Points != 2*rep.Base.Points || rep.Base.Points != 40*500 {
		t.Fatalf("points %d and %d", rep.Base.Points, rep.K.Points)
	}
	for _, g := range rep.Growth {
		if g.Points != 2 || g.Wall <= 0 || g.CPU <= 0 {
			t.Errorf("growth %+v", g)
		}
	}
	for _, name := range []string{"produce", "sink", "run"} {
		if s := rep.K.Stages[name]; s.OutBytes <= 0 || s.PeakRSS <= 0 {
			t.Errorf("stage %s: %+v", name, s)
		}
	}
	if s := rep.K.Stages["sink"].Requests; s.Put == 0 {
		t.Errorf("sink made no PUTs: %+v", s)
	}
	if s := rep.K.Stages["run"].Requests; s.Get == 0 || s.Put == 0 {
		t.Errorf("run requests %+v, want ranged GETs and PUTs", s)
	}
	if len(rep.Slowest) == 0 || rep.Skewed.Ratio < 1 {
		t.Errorf("shards: slowest %v, skew %+v", rep.Slowest, rep.Skewed)
	}
	f := rep.Forecast
	if f.TotalPerBillion <= 0 || f.KafkaSaved.PerBillion <= 0 || len(f.Rows) != 5 {
		t.Errorf("forecast %+v", f)
	}
	// The history's life: compaction made fewer runs and reads cheaper, gc collected.
	l := rep.K.Life
	if l.RunsAfter >= l.RunsBefore || l.ReadAfter.Get >= l.ReadBefore.Get || l.FilesCollected == 0 || l.SegmentBytesCollected == 0 {
		t.Errorf("life at 2×: %+v", l)
	}
	if s := rep.K.Stages["compact"]; s.OutBytes <= 0 || s.Requests.Put == 0 {
		t.Errorf("compact stage: %+v", s)
	}
	if f.Life.CPUSecPerPoint <= 0 || f.Life.ReadSaved <= 0 {
		t.Errorf("life cost %+v", f.Life)
	}
	var out bytes.Buffer
	rep.Print(&out)
	for _, want := range []string{"wall 2×", "most skewed shard", "Kafka retention saved", "per billion points", "storage saved by compaction", "one read of every point"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestGrowthFlags: a stage is flagged only when its time grows more than SuperLinear
// times the points.
func TestGrowthFlags(t *testing.T) {
	f := func(name string, wall1, wallK, cpu1, cpuK float64, want bool) {
		t.Helper()
		b := &Measure{Points: 100, Stages: map[string]*StageMeasure{}}
		k := &Measure{Points: 1000, Stages: map[string]*StageMeasure{}}
		for _, s := range Stages {
			b.Stages[s], k.Stages[s] = &StageMeasure{Wall: 1, CPU: 1}, &StageMeasure{Wall: 10, CPU: 10}
		}
		b.Stages["run"], k.Stages["run"] = &StageMeasure{Wall: wall1, CPU: cpu1}, &StageMeasure{Wall: wallK, CPU: cpuK}
		for _, g := range growth(b, k) {
			if g.Stage == "run" && g.SuperLinear != want {
				t.Errorf("%s: growth %+v, super-linear %v, want %v", name, g, g.SuperLinear, want)
			}
			if g.Stage != "run" && g.SuperLinear {
				t.Errorf("%s: linear stage %s flagged", name, g.Stage)
			}
		}
	}
	f("linear", 1, 10, 1, 10, false)
	f("sub-linear", 2, 8, 2, 8, false)
	f("just under the bound", 1, 12.4, 1, 12, false)
	f("n squared wall", 1, 100, 1, 10, true)
	f("cpu only", 1, 10, 1, 13, true)
}

func TestPrices(t *testing.T) {
	d := DefaultPrices()
	if d.S3StorageGBMonth != 0.023 || d.ComputeVCPUHour <= 0 || d.LegacyKafkaHours <= d.TailorKafkaHours {
		t.Fatalf("defaults %+v", d)
	}
	if _, err := ParsePrices([]byte("s3_storage_gb_mnth: 1\n"), "x.yaml"); err == nil || !strings.Contains(err.Error(), "s3_storage_gb_mnth") {
		t.Errorf("typo: %v, want the unknown field named", err)
	}
	if _, err := ParsePrices([]byte("compute_vcpu_hour: -1\n"), "x.yaml"); err == nil || !strings.Contains(err.Error(), "compute_vcpu_hour") {
		t.Errorf("negative: %v", err)
	}
	p, err := parseOver(d, []byte("compute_vcpu_hour: 0.02\n"), "x.yaml")
	if err != nil || p.ComputeVCPUHour != 0.02 || p.S3StorageGBMonth != d.S3StorageGBMonth {
		t.Errorf("override: %+v %v", p, err)
	}
}

// TestForecastArithmetic pins the forecast to hand-computed figures.
func TestForecastArithmetic(t *testing.T) {
	p := Prices{S3StorageGBMonth: 0.02, S3PutPer1000: 0.005, S3GetPer1000: 0.0004, ComputeVCPUHour: 0.036, KafkaGBMonth: 0.1, KafkaReplication: 3, LegacyKafkaHours: 146, TailorKafkaHours: 0, SegmentRetentionHr: 0}
	// 1e6 points: 36 CPU-s (1e-3 h per 1e5 points...), 1 GiB of series files, 1000 PUTs.
	k := &Measure{Points: 1e6, Stages: map[string]*StageMeasure{
		"produce": {OutBytes: gib},
		"sink":    {CPU: 18, Requests: Requests{Put: 500}},
		"run":     {CPU: 18, OutBytes: gib, Requests: Requests{Put: 500}},
	}}
	f := forecast(k, p, 1000)
	want := map[string]float64{
		"compute (sink + run)":             36.0 / 3600 * 0.036 * 1000, // per billion = ×1000
		"storage: series files, one month": 0.02 * 1000,
		"requests: PUT + LIST":             1000.0 / 1000 * 0.005 * 1000,
	}
	for _, r := range f.Rows {
		if w, ok := want[r.Item]; ok && (r.PerBillion < w*0.999 || r.PerBillion > w*1.001) {
			t.Errorf("%s: $%g per billion, want $%g", r.Item, r.PerBillion, w)
		}
	}
	// Kafka: 1 GiB per 1e6 points, 3 copies, 146 h = 0.2 month: 1000 GiB × 3 × 0.2 × $0.1.
	if w := 1000 * 3 * 146.0 / 730 * 0.1; f.KafkaSaved.PerBillion < w*0.999 || f.KafkaSaved.PerBillion > w*1.001 {
		t.Errorf("kafka saved $%g per billion, want $%g", f.KafkaSaved.PerBillion, w)
	}
}
