package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/ingest/workload"
	"github.com/tailor-metrics/tailor/pointdiff"
	"github.com/tailor-metrics/tailor/storage"
	"github.com/tailor-metrics/tailor/validate"
)

// Expect is what the check compares the pipeline's counters against.
type Expect struct {
	// PointsProduced counts every point sent, redeliveries included.
	PointsProduced int64
	// DuplicatesRemoved is what the runs reported removing.
	DuplicatesRemoved uint64
	// Rejected is what the sink rejected; Malformed is what was sent.
	Rejected  uint64
	Malformed int
}

// CheckResult is the outcome of Check.
type CheckResult struct {
	// Mismatches are the first few differences, readable; empty when the check passed.
	Mismatches []string
	// Stored is the points in the series files.
	Stored int64
	// Diff is the one-to-one diff against the expected points: MissingInNew are lost
	// points, MissingInLegacy unexpected ones (duplicates included).
	Diff validate.Counts
	// Duplicated counts series-file points whose (series, ts) repeats the previous one.
	Duplicated uint64
}

// Passed reports whether every expected point came out exactly once with its value.
func (c *CheckResult) Passed() bool { return len(c.Mismatches) == 0 }

// Check walks the published series files and the workload's expected points in the same
// (series, ts) order and reports the first mismatches.
func Check(ctx context.Context, st storage.Store, gen *workload.Gen, e Expect) (*CheckResult, error) {
	type exp struct {
		k  columnar.SeriesKey
		ts int64
		v  float64
	}
	next := make(chan exp, 4096)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(next)
		_ = gen.Expected(func(k columnar.SeriesKey, ts int64, v float64) error {
			select {
			case next <- exp{k, ts, v}:
				return nil
			case <-stop:
				return errors.New("stopped")
			}
		})
	}()
	res := &CheckResult{}
	note := func(format string, args ...any) {
		if len(res.Mismatches) < 10 {
			res.Mismatches = append(res.Mismatches, fmt.Sprintf(format, args...))
		}
	}
	m := validate.Merger{OnDiff: func(k pointdiff.Kind, n, l *validate.Point) {
		switch {
		case n == nil:
			note("%s: %+v ts %d", k, l.Key, l.Ts)
		case l == nil:
			note("%s: %+v ts %d", k, n.Key, n.Ts)
		default:
			note("%s: %+v ts %d: got bits %016x, want %016x", k, n.Key, n.Ts, math.Float64bits(n.Value), math.Float64bits(l.Value))
		}
	}}
	head, ok := <-next
	var (
		prev     validate.Point
		havePrev bool
	)
	err := CatPoints(ctx, st, "", func(s *encoder.Series) error {
		for i, ts := range s.Ts {
			res.Stored++
			p := validate.Point{Key: s.Key, Ts: ts, Value: s.Values[i]}
			if havePrev && prev.Key == p.Key && prev.Ts == p.Ts {
				res.Duplicated++
			}
			prev, havePrev = p, true
			m.AddNew(p)
			// Feed expected points up to p, so the merge buffers almost nothing.
			for ok && (head.k.Less(p.Key) || head.k == p.Key && head.ts <= p.Ts) {
				m.AddLegacy(validate.Point{Key: head.k, Ts: head.ts, Value: head.v})
				head, ok = <-next
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for ; ok; head, ok = <-next {
		m.AddLegacy(validate.Point{Key: head.k, Ts: head.ts, Value: head.v})
	}
	c := m.Close()
	res.Diff = c
	if c.MissingInNew+c.MissingInLegacy+c.ValueDiffers > 0 {
		note("diff: %d equal, %d missing from the series files, %d unexpected, %d with another value", c.Equal, c.MissingInNew, c.MissingInLegacy, c.ValueDiffers)
	}
	want := gen.Spec().Points()
	if res.Stored != want {
		note("series files hold %d points, want %d", res.Stored, want)
	}
	redeliveredPoints := uint64(e.PointsProduced - want)
	if e.DuplicatesRemoved != redeliveredPoints {
		note("the run removed %d duplicates, the workload redelivered %d points", e.DuplicatesRemoved, redeliveredPoints)
	}
	if e.Rejected != uint64(e.Malformed) {
		note("the sink rejected %d records, %d malformed were sent", e.Rejected, e.Malformed)
	}
	return res, nil
}
