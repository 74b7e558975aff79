//go:build duckdb_arrow

package run

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/pointdiff"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/storage"
)

type legacyPoint struct {
	k  columnar.SeriesKey
	ts int64
	v  float64
}

func comparePoints(a, b legacyPoint) int {
	return cmp.Or(a.k.Compare(b.k), cmp.Compare(a.ts, b.ts))
}

// storePoints reads every published point of st.
func storePoints(t *testing.T, st storage.Store) []legacyPoint {
	t.Helper()
	m, err := OpenSeries(context.Background(), st, query.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var out []legacyPoint
	for m.Next() {
		s := m.At()
		for i, ts := range s.Ts {
			out = append(out, legacyPoint{s.Key, ts, s.Values[i]})
		}
	}
	if err := m.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// randomLegacy is the new side's points with random differences of every kind: dropped
// points, other values (NaN payloads, -0, ±Inf, a change below a tolerance), copies
// that agree and copies that do not, and points and series legacy alone holds.
func randomLegacy(rng *rand.Rand, pts []legacyPoint, dups bool) []legacyPoint {
	edge := []float64{math.NaN(), math.Float64frombits(0x7ff8000000000bad), math.Float64frombits(0xfff8000000000001), math.Copysign(0, -1), 0, math.Inf(1), math.Inf(-1), 1e30}
	var out []legacyPoint
	for _, p := range pts {
		switch r := rng.IntN(100); {
		case r < 5:
			continue // missing in legacy
		case r < 10:
			p.v = edge[rng.IntN(len(edge))]
		case r < 14:
			p.v += 1e-9
		case r < 18:
			p.v += float64(rng.IntN(3) + 1)
		case r < 22 && dups:
			out = append(out, p)
			c := p
			if rng.IntN(2) == 0 {
				c.v = edge[rng.IntN(len(edge))]
			}
			out = append(out, c)
			if rng.IntN(3) == 0 {
				out = append(out, p)
			}
			continue
		}
		out = append(out, p)
	}
	for range len(pts) / 20 {
		p := pts[rng.IntN(len(pts))]
		p.ts += int64(rng.IntN(1000)) + 1 // a point only legacy has (or one more copy)
		if rng.IntN(4) == 0 {
			p.k.Context += 100 // a series only legacy has
		}
		p.v = rng.NormFloat64()
		out = append(out, p)
		if dups && rng.IntN(5) == 0 {
			out = append(out, p) // a duplicate Tailor does not have
		}
	}
	return out
}

// legacyPointsReader hands DuckDB points as one Arrow batch.
type legacyPointsReader struct {
	refs atomic.Int64
	rec  arrow.RecordBatch
	done bool
}

func newLegacyPointsReader(pts []legacyPoint) *legacyPointsReader {
	b := array.NewRecordBuilder(memory.DefaultAllocator, columnar.SortedSchema)
	defer b.Release()
	for _, p := range pts {
		b.Field(0).(*array.Uint32Builder).Append(p.k.Org)
		b.Field(1).(*array.Uint64Builder).Append(p.k.Metric)
		b.Field(2).(*array.Uint64Builder).Append(p.k.Context)
		b.Field(3).(*array.Int64Builder).Append(p.ts)
		b.Field(4).(*array.Float64Builder).Append(p.v)
	}
	return &legacyPointsReader{rec: b.NewRecordBatch()}
}

func (r *legacyPointsReader) Retain()                        { r.refs.Add(1) }
func (r *legacyPointsReader) Release()                       {}
func (r *legacyPointsReader) Schema() *arrow.Schema          { return columnar.SortedSchema }
func (r *legacyPointsReader) Err() error                     { return nil }
func (r *legacyPointsReader) RecordBatch() arrow.RecordBatch { return r.rec }
func (r *legacyPointsReader) Record() arrow.RecordBatch      { return r.rec }
func (r *legacyPointsReader) Next() bool {
	if r.done {
		return false
	}
	r.done = true
	return true
}

// writeParquet writes pts, in their order, with DuckDB: small row groups so that there
// are many, and columns of the types sel gives.
func writeParquet(t *testing.T, e *query.Engine, path string, pts []legacyPoint, sel string) {
	t.Helper()
	ctx := context.Background()
	if err := e.Exec(ctx, "SET preserve_insertion_order = true"); err != nil {
		t.Fatal(err)
	}
	defer e.Exec(ctx, "SET preserve_insertion_order = false")
	res, err := e.Query(ctx, fmt.Sprintf("COPY (SELECT %s FROM pts) TO '%s' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 61)", sel, path),
		map[string]array.RecordReader{"pts": newLegacyPointsReader(pts)})
	if err != nil {
		t.Fatal(err)
	}
	res.Release()
}

func writeCSV(t *testing.T, path string, pts []legacyPoint) {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(columnar.CSVHeader + "\r\n\n")
	for _, p := range pts {
		b.Write(columnar.AppendCSVPoint(nil, p.k, p.ts, p.v))
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeSeriesFile writes sorted points without copies as one series file.
func writeSeriesFile(t *testing.T, pts []legacyPoint) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := encoder.NewWriter(&buf)
	for i := 0; i < len(pts); {
		j := i
		var ts []int64
		var vs []float64
		for ; j < len(pts) && pts[j].k == pts[i].k; j++ {
			ts, vs = append(ts, pts[j].ts), append(vs, pts[j].v)
		}
		if err := w.Append(pts[i].k, nil, ts, vs); err != nil {
			t.Fatal(err)
		}
		i = j
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// dedup keeps one copy of each (series, ts).
func dedup(pts []legacyPoint) []legacyPoint {
	out := slices.Clone(pts)
	slices.SortStableFunc(out, comparePoints)
	return slices.CompactFunc(out, func(a, b legacyPoint) bool { return comparePoints(a, b) == 0 })
}

func canonicalGroups(gs []pointdiff.Group) string {
	gs = slices.Clone(gs)
	slices.SortFunc(gs, func(a, b pointdiff.Group) int {
		return cmp.Or(cmp.Compare(a.Org, b.Org), cmp.Compare(a.Metric, b.Metric), cmp.Compare(a.Bucket, b.Bucket), cmp.Compare(a.Kind, b.Kind))
	})
	var b strings.Builder
	for _, g := range gs {
		fmt.Fprintf(&b, "%+v\n", g)
	}
	return b.String()
}

func rowString(r pointdiff.Row) string {
	f := func(v *float64) string {
		if v == nil {
			return "null"
		}
		return fmt.Sprintf("%#x", math.Float64bits(*v))
	}
	return fmt.Sprintf("%s %d/%d/%d@%d new=%s legacy=%s", r.Kind, r.Org, r.Metric, r.Context, r.Ts, f(r.New), f(r.Legacy))
}

// TestMergeJoinEqualsSQL: on random differences of every kind, the Go merge-join and
// sql/diff.sql give the same groups (totals, per org, per metric, per bucket, first and
// last ts) and the same --out rows in the same order, for legacy Parquet (sorted,
// shuffled, other column types, a glob of several files), CSV (sorted and not), a
// series file and a store, unscoped and scoped, with and without a tolerance.
func TestMergeJoinEqualsSQL(t *testing.T) {
	ctx := context.Background()
	t.Run("late", func(t *testing.T) {
		st := storage.NewMem("diff")
		lateWorkload(t, st, 9, 64)
		if _, err := RunAll(ctx, AllOptions{RunOptions: RunOptions{Store: st, Arrival: testArrival(), Engine: query.Options{Threads: 1}}}); err != nil {
			t.Fatal(err)
		}
		testMergeJoinEqualsSQL(t, st)
	})
	// Values at every edge on the new side too (0 and -0, NaN payloads, infinities), so
	// that the legacy side's edge values meet each of them.
	t.Run("edges", func(t *testing.T) {
		st := storage.NewMem("edges")
		edge := []float64{0, math.Copysign(0, -1), math.NaN(), math.Float64frombits(0xfff8000000000001), math.Inf(1), math.Inf(-1), 1e30, 1.5}
		var pts []legacyPoint
		base := int64(1763942400000)
		for org := range uint32(4) {
			for m := range uint64(3) {
				for i := range int64(40) {
					pts = append(pts, legacyPoint{columnar.SeriesKey{Org: org, Metric: m, Context: 1}, base + i*600_000, edge[(int(org)+int(m)+int(i))%len(edge)]})
				}
			}
		}
		for org := range uint32(4) {
			shard := fmt.Sprintf("org-mod-%d", org)
			w := Window{From: time.UnixMilli(base).UTC(), Size: 8 * time.Hour}
			var mine []legacyPoint
			for _, p := range pts {
				if p.k.Org == org {
					mine = append(mine, p)
				}
			}
			file := writeSeriesFile(t, mine)
			key := PartKey(shard, w, "edges", 0)
			if err := st.Put(ctx, key, bytes.NewReader(file)); err != nil {
				t.Fatal(err)
			}
			part, err := DescribePart(key, file)
			if err != nil {
				t.Fatal(err)
			}
			tr := w.TsRange()
			if err := Publish(ctx, st, &Manifest{RunID: "edges", Shard: shard, Window: w.Name(), From: tr.From, To: tr.To, Parts: []Part{part}}, PublishOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		testMergeJoinEqualsSQL(t, st)
	})
}

func testMergeJoinEqualsSQL(t *testing.T, st storage.Store) {
	ctx := context.Background()
	pts := storePoints(t, st)
	e, err := query.Open(ctx, query.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	base := int64(1763942400000)
	type source struct {
		name string
		make func(t *testing.T, leg []legacyPoint) string
		dups bool
	}
	sources := []source{
		{"parquet sorted", func(t *testing.T, leg []legacyPoint) string {
			p := filepath.Join(dir, "sorted.parquet")
			slices.SortStableFunc(leg, comparePoints)
			writeParquet(t, e, p, leg, "*")
			return p
		}, true},
		{"parquet shuffled, signed and float columns", func(t *testing.T, leg []legacyPoint) string {
			p := filepath.Join(dir, "shuffled.parquet")
			rng.Shuffle(len(leg), func(i, j int) { leg[i], leg[j] = leg[j], leg[i] })
			writeParquet(t, e, p, leg, "org_id::BIGINT AS org, metric_id::BIGINT AS metric_id, context_key::UINTEGER AS context_key, ts, value::FLOAT AS value")
			return p
		}, true},
		{"parquet glob of files by org, each sorted", func(t *testing.T, leg []legacyPoint) string {
			slices.SortStableFunc(leg, func(a, b legacyPoint) int { return cmp.Compare(a.ts, b.ts) }) // by time: row groups overlap
			for org := range 4 {
				var part []legacyPoint
				for _, p := range leg {
					if p.k.Org%2 == uint32(org%2) && p.k.Org/2 == uint32(org/2) {
						part = append(part, p)
					}
				}
				writeParquet(t, e, filepath.Join(dir, fmt.Sprintf("glob-%d.parquet", org)), part, "*")
			}
			return query.GlobPrefix + filepath.Join(dir, "glob-*.parquet")
		}, true},
		{"csv shuffled", func(t *testing.T, leg []legacyPoint) string {
			p := filepath.Join(dir, "legacy.csv")
			rng.Shuffle(len(leg), func(i, j int) { leg[i], leg[j] = leg[j], leg[i] })
			writeCSV(t, p, leg)
			return p
		}, true},
		{"series file", func(t *testing.T, leg []legacyPoint) string {
			p := filepath.Join(dir, "legacy.tsf")
			if err := os.WriteFile(p, writeSeriesFile(t, dedup(leg)), 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}, false},
		{"store", func(t *testing.T, leg []legacyPoint) string {
			d := filepath.Join(dir, fmt.Sprintf("store-%d", rng.Uint32()))
			lst, err := storage.OpenLocal(d)
			if err != nil {
				t.Fatal(err)
			}
			defer lst.Close()
			w := Window{From: time.UnixMilli(base - 24*hourMs).UTC(), Size: 48 * time.Hour}
			file := writeSeriesFile(t, dedup(leg))
			key := PartKey("org-mod-0", w, "legacy", 0)
			if err := lst.Put(ctx, key, bytes.NewReader(file)); err != nil {
				t.Fatal(err)
			}
			part, err := DescribePart(key, file)
			if err != nil {
				t.Fatal(err)
			}
			tr := w.TsRange()
			if err := Publish(ctx, lst, &Manifest{RunID: "legacy", Shard: "org-mod-0", Window: w.Name(), From: tr.From, To: tr.To, Parts: []Part{part}}, PublishOptions{}); err != nil {
				t.Fatal(err)
			}
			return "file://" + d
		}, false},
	}
	scopes := []query.Scope{
		{},
		{Shard: "org-mod-1"},
		{Window: Window{From: time.UnixMilli(base + 2*hourMs).UTC(), Size: 2 * time.Hour}.TsRange()},
		{Orgs: query.IDs(0, 2), Metrics: query.NewIDSet(query.IDRange{Lo: 1, Hi: 4})},
	}
	joins := 0
	for _, src := range sources {
		for si, scope := range scopes {
			t.Run(fmt.Sprintf("%s/scope%d", src.name, si), func(t *testing.T) {
				leg := randomLegacy(rng, pts, src.dups)
				opt := DiffOptions{New: st, Legacy: query.LegacyOptions{Source: src.make(t, leg)}, Scope: scope, Tolerance: []float64{0, 1e-6}[si%2]}
				if strings.Contains(src.name, "signed") {
					opt.Legacy.Columns = map[string]string{"org_id": "org"}
				}
				var rows [2][]string
				var res [2]*DiffResult
				for i, sqlPath := range []bool{false, true} {
					o := opt
					o.SQL = sqlPath
					o.Rows = func(r pointdiff.Row) error { rows[i] = append(rows[i], rowString(r)); return nil }
					r, err := Diff(ctx, e, o)
					if err != nil {
						t.Fatal(err)
					}
					res[i] = r
				}
				if res[0].Method != "merge-join" || res[1].Method != "sql" {
					t.Fatalf("methods %s (%s), %s", res[0].Method, res[0].Why, res[1].Method)
				}
				joins++
				if g, w := canonicalGroups(res[0].Groups), canonicalGroups(res[1].Groups); g != w {
					t.Fatalf("merge-join groups:\n%s\nSQL groups:\n%s", g, w)
				}
				if len(rows[1]) == 0 {
					t.Fatal("no differing rows: the test proves too little")
				}
				if g, w := strings.Join(rows[0], "\n"), strings.Join(rows[1], "\n"); g != w {
					for i := range min(len(rows[0]), len(rows[1])) {
						if rows[0][i] != rows[1][i] {
							t.Fatalf("row %d of %d/%d: merge-join %s, SQL %s", i, len(rows[0]), len(rows[1]), rows[0][i], rows[1][i])
						}
					}
					t.Fatalf("merge-join %d rows, SQL %d", len(rows[0]), len(rows[1]))
				}
				var kinds [5]uint64
				for _, g := range res[1].Groups {
					kinds[g.Kind] += g.Points
				}
				if src.dups && si == 0 && (kinds[pointdiff.DuplicateInLegacy] == 0 || kinds[pointdiff.ValueDiffers] == 0 || kinds[pointdiff.MissingInNew] == 0 || kinds[pointdiff.MissingInLegacy] == 0) {
					t.Fatalf("kinds %v: not every kind of difference was made", kinds)
				}
			})
		}
	}
	if joins != len(sources)*len(scopes) {
		t.Fatalf("%d merge-joins compared", joins)
	}
}

// TestMergeJoinFallsBack: legacy Parquet with NULLs is read by the SQL diff, which
// defines what they mean.
func TestMergeJoinFallsBack(t *testing.T) {
	ctx := context.Background()
	st := storage.NewMem("diff")
	lateWorkload(t, st, 3, 64)
	if _, err := RunAll(ctx, AllOptions{RunOptions: RunOptions{Store: st, Arrival: testArrival(), Engine: query.Options{Threads: 1}}}); err != nil {
		t.Fatal(err)
	}
	e, err := query.Open(ctx, query.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	p := filepath.Join(t.TempDir(), "nulls.parquet")
	writeParquet(t, e, p, storePoints(t, st), "org_id, metric_id, context_key, ts, CASE WHEN ts % 7 = 0 THEN NULL ELSE value END AS value")
	res, err := Diff(ctx, e, DiffOptions{New: st, Legacy: query.LegacyOptions{Source: p}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != "sql" || !strings.Contains(res.Why, "NULL") {
		t.Fatalf("method %s (%s), want sql because of NULLs", res.Method, res.Why)
	}
}
