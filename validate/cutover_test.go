package validate

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/ingest"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
)

const (
	hour    = int64(3_600_000)
	base    = int64(1763942400000) // 2025-11-24T00:00:00Z
	step    = int64(600_000)       // a point every 10 minutes
	cutOrg  = uint32(5)
	cutover = base + 2*hour + hour/2 // mid-window, and exactly on a point
)

// cutoverStores builds the two roots through import and run with 1h windows. Both hold
// org 5's two series over six hours; Tailor's values are the legacy value + 0.25, so a
// reader can tell which side served each point. Legacy lacks hour 1 (a legacy gap).
// Org 6 shares neither shard nor points, and must never leak in.
func cutoverStores(t *testing.T) (legacyURL, tailorURL string) {
	t.Helper()
	mk := func(name string, tailor bool) string {
		var b strings.Builder
		b.WriteString(columnar.CSVHeader + "\n")
		for _, org := range []uint32{cutOrg, cutOrg + 1} {
			for m := uint64(1); m <= 2; m++ {
				for ts := base; ts < base+6*hour; ts += step {
					if !tailor && ts >= base+hour && ts < base+2*hour {
						continue
					}
					v := float64((ts - base) / step)
					if tailor {
						v += 0.25
					}
					b.Write(columnar.AppendCSVPoint(nil, columnar.SeriesKey{Org: org, Metric: m, Context: 1}, ts, v))
				}
			}
		}
		ctx := context.Background()
		url := "file://" + t.TempDir() + "/" + name
		st, err := storage.OpenWith(ctx, url, storage.Options{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := ingest.ImportCSV(ctx, name+".csv", strings.NewReader(b.String()), ingest.ImportOptions{Store: st, Topic: "metrics"}); err != nil {
			t.Fatal(err)
		}
		if _, err := run.RunAll(ctx, run.AllOptions{RunOptions: run.RunOptions{Store: st}, WindowSize: time.Hour}); err != nil {
			t.Fatal(err)
		}
		return url
	}
	return mk("legacy", false), mk("tailor", true)
}

func planFor(t *testing.T, legacyURL, tailorURL, mode string, rev int, cutovers ...string) *Plan {
	t.Helper()
	y := fmt.Sprintf("version: 1\nrevision: %d\nmode: %s\nlegacy: %s\ntailor: %s\norgs:\n", rev, mode, legacyURL, tailorURL)
	if len(cutovers) > 0 {
		y += fmt.Sprintf("  - org: %d\n    cutovers:\n", cutOrg)
		for _, c := range cutovers {
			at, serve, _ := strings.Cut(c, " ")
			y += fmt.Sprintf("      - {at: %s, serve: %s}\n", at, serve)
		}
	}
	p, err := ParsePlan([]byte(y))
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	return p
}

type served struct {
	ts     int64
	tailor bool
}

// readThrough resolves [from, to) and reads org 5 the way a dependent pipeline does.
// Every (series, ts) must come at most once; it returns series 1's points by ts.
func readThrough(t *testing.T, p *Plan, from, to int64) ([]Resolved, []served) {
	t.Helper()
	ctx := context.Background()
	rs, err := Resolve(ctx, ResolveOptions{Plan: p}, cutOrg, from, to)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var out []served
	err = ReadResolved(ctx, nil, rs, cutOrg, func(k columnar.SeriesKey, ts int64, v float64) error {
		if k.Org != cutOrg {
			return fmt.Errorf("org %d leaked in", k.Org)
		}
		key := fmt.Sprint(k, ts)
		if seen[key] {
			return fmt.Errorf("%v ts %d served twice", k, ts)
		}
		seen[key] = true
		if ts < from || ts >= to {
			return fmt.Errorf("ts %d outside [%d, %d)", ts, from, to)
		}
		if want := float64((ts - base) / step); v != want && v != want+0.25 {
			return fmt.Errorf("ts %d value %v", ts, v)
		}
		if k.Metric == 1 {
			out = append(out, served{ts, v != float64((ts-base)/step)})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2*len(out) {
		t.Fatalf("series 2 has %d points, series 1 %d", len(seen)-len(out), len(out))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ts < out[j].ts })
	return rs, out
}

// expect checks that series 1 got exactly one point per step in [from, to) outside
// the gaps, from the side side(ts) names.
func expect(t *testing.T, got []served, from, to int64, gap func(int64) bool, tailor func(int64) bool) {
	t.Helper()
	i := 0
	for ts := from; ts < to; ts += step {
		if gap(ts) {
			continue
		}
		if i >= len(got) || got[i].ts != ts {
			t.Fatalf("point %d: want ts %d, got %v", i, ts, got[min(i, len(got)-1)])
		}
		if got[i].tailor != tailor(ts) {
			t.Fatalf("ts %s served by tailor=%v, want %v", FormatTimestamp(ts), got[i].tailor, tailor(ts))
		}
		i++
	}
	if i != len(got) {
		t.Fatalf("%d points served, want %d", len(got), i)
	}
}

func legacyGap(ts int64) bool { return ts >= base+hour && ts < base+2*hour }

func TestCutoverEdges(t *testing.T) {
	legacyURL, tailorURL := cutoverStores(t)
	at := FormatTimestamp(cutover)
	back := base + 4*hour + step/2 // between two points
	noGap := func(int64) bool { return false }

	t.Run("point at the cutover and a straddling window", func(t *testing.T) {
		p := planFor(t, legacyURL, tailorURL, "partial", 1, at+" tailor")
		rs, got := readThrough(t, p, base, base+6*hour)
		if len(rs) != 2 || rs[0].Serve != Legacy || rs[0].To != cutover || rs[1].Serve != Tailor || rs[1].From != cutover {
			t.Fatalf("pieces %+v", rs)
		}
		// The window [2h, 3h) holds the cutover: its files serve both pieces, each in part.
		straddle := base + 2*hour
		if rs[0].Files[len(rs[0].Files)-1].WindowFrom != straddle || rs[1].Files[0].WindowFrom != straddle {
			t.Fatalf("the straddling window must be listed on both sides: %+v", rs)
		}
		expect(t, got, base, base+6*hour, legacyGap, func(ts int64) bool { return ts >= cutover })
		// The legacy gap is reported where it is, and not filled from Tailor.
		if len(rs[0].Gaps) != 1 || rs[0].Gaps[0] != (Range{base + hour, base + 2*hour}) || len(rs[1].Gaps) != 0 {
			t.Fatalf("gaps %+v / %+v\n%+v", rs[0].Gaps, rs[1].Gaps, rs[0].Files)
		}
	})
	t.Run("ranges that end or start at the cutover", func(t *testing.T) {
		p := planFor(t, legacyURL, tailorURL, "partial", 1, at+" tailor")
		rs, got := readThrough(t, p, base+2*hour, cutover)
		if len(rs) != 1 || rs[0].Serve != Legacy {
			t.Fatalf("pieces %+v", rs)
		}
		expect(t, got, base+2*hour, cutover, noGap, func(int64) bool { return false })
		rs, got = readThrough(t, p, cutover, cutover+1)
		if len(rs) != 1 || rs[0].Serve != Tailor || len(got) != 1 || !got[0].tailor || got[0].ts != cutover {
			t.Fatalf("the point at the cutover: pieces %+v, points %+v", rs, got)
		}
	})
	t.Run("forward then back", func(t *testing.T) {
		p := planFor(t, legacyURL, tailorURL, "partial", 2, at+" tailor", FormatTimestamp(back)+" legacy")
		rs, got := readThrough(t, p, base, base+6*hour)
		if len(rs) != 3 || rs[2].Serve != Legacy || rs[2].From != back {
			t.Fatalf("pieces %+v", rs)
		}
		expect(t, got, base, base+6*hour, legacyGap, func(ts int64) bool { return ts >= cutover && ts < back })
	})
	t.Run("rollback is a plan change, no data rewritten", func(t *testing.T) {
		before := listing(t, legacyURL) + listing(t, tailorURL)
		p1 := planFor(t, legacyURL, tailorURL, "partial", 1, at+" tailor")
		_, got := readThrough(t, p1, base, base+6*hour)
		expect(t, got, base, base+6*hour, legacyGap, func(ts int64) bool { return ts >= cutover })
		p2 := planFor(t, legacyURL, tailorURL, "partial", 2) // org 5 removed: legacy again
		_, got = readThrough(t, p2, base, base+6*hour)
		expect(t, got, base, base+6*hour, legacyGap, func(int64) bool { return false })
		if after := listing(t, legacyURL) + listing(t, tailorURL); after != before {
			t.Fatalf("resolving changed the stores:\n%s\n%s", before, after)
		}
	})
	t.Run("shadow and full", func(t *testing.T) {
		_, got := readThrough(t, planFor(t, legacyURL, tailorURL, "shadow", 1, at+" tailor"), base, base+6*hour)
		expect(t, got, base, base+6*hour, legacyGap, func(int64) bool { return false })
		_, got = readThrough(t, planFor(t, legacyURL, tailorURL, "full", 1), base, base+6*hour)
		expect(t, got, base, base+6*hour, noGap, func(int64) bool { return true })
	})
}

func listing(t *testing.T, url string) string {
	t.Helper()
	ctx := context.Background()
	st, err := storage.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var b strings.Builder
	if err := st.List(ctx, "", func(a storage.Attrs) error {
		fmt.Fprintf(&b, "%s %d\n", a.Key, a.Size)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestPlanRejects(t *testing.T) {
	head := "version: 1\nrevision: 1\nmode: partial\nlegacy: file:///l\ntailor: file:///t\norgs:\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"unsorted", head + "  - org: 7\n    cutovers:\n      - {at: 2025-11-24T04:00:00Z, serve: tailor}\n      - {at: 2025-11-24T03:00:00Z, serve: legacy}\n", "org 7: cutover 2 at 2025-11-24T03:00:00.000Z is not after cutover 1"},
		{"same instant", head + "  - org: 7\n    cutovers:\n      - {at: 1000, serve: tailor}\n      - {at: 1000, serve: legacy}\n", "org 7: cutover 2"},
		{"overlapping", head + "  - org: 8\n    cutovers:\n      - {at: 1000, serve: tailor}\n      - {at: 2000, serve: tailor}\n", "org 8: cutover 2 at 1970-01-01T00:00:02.000Z switches to tailor, which already serves"},
		{"org twice", head + "  - org: 9\n    cutovers: [{at: 1000, serve: tailor}]\n  - org: 9\n    cutovers: [{at: 5000, serve: legacy}]\n", "org 9: listed twice"},
		{"first to legacy", head + "  - org: 3\n    cutovers: [{at: 1000, serve: legacy}]\n", "org 3: cutover 1"},
		{"bad mode", strings.Replace(head, "partial", "half", 1), `mode "half"`},
		{"bad version", strings.Replace(head, "version: 1", "version: 2", 1), "version 2"},
		{"bad time", head + "  - org: 3\n    cutovers: [{at: yesterday, serve: tailor}]\n", `timestamp "yesterday"`},
		{"unknown field", head + "  - org: 3\n    cutover: []\n", "cutover"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePlan([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// FuzzParsePlan: any bytes give a plan that validates, or an error; never a panic, and
// a plan that parses resolves any range into pieces that tile it in order.
func FuzzParsePlan(f *testing.F) {
	f.Add([]byte("version: 1\nrevision: 1\nmode: partial\nlegacy: a\ntailor: b\norgs:\n  - org: 7\n    cutovers:\n      - {at: 1000, serve: tailor}\n      - {at: 2000, serve: legacy}\n"))
	f.Add([]byte("version: 1\nrevision: 2\nmode: full\nlegacy: a\ntailor: b\n"))
	f.Add([]byte("version: 1\nrevision: 1\nmode: shadow\nlegacy: a\ntailor: b\norgs: [{org: 1, cutovers: [{at: 2025-11-24T00:00:00Z, serve: tailor}]}]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePlan(b)
		if err != nil {
			return
		}
		for _, o := range append(p.Orgs, OrgPlan{Org: 123456}) {
			for _, r := range [][2]int64{{-1 << 62, 1 << 62}, {0, 1}, {999, 2001}} {
				ps, err := p.Pieces(o.Org, r[0], r[1])
				if err != nil {
					t.Fatal(err)
				}
				cur := r[0]
				for _, pc := range ps {
					if pc.From != cur || pc.To <= pc.From {
						t.Fatalf("pieces %+v do not tile [%d, %d)", ps, r[0], r[1])
					}
					cur = pc.To
				}
				if cur != r[1] {
					t.Fatalf("pieces %+v end at %d, want %d", ps, cur, r[1])
				}
			}
		}
	})
}
