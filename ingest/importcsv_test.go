package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
	"github.com/tailor-metrics/tailor/storage/faults"
)

// importCSV is rows CSV lines of a few series in arrival order (runs of one series, so
// they form records of several rows), with a malformed line at badLine (1-based, the
// header is line 1) when badLine > 1.
func importCSV(rows, badLine int) string {
	rng := rand.New(rand.NewPCG(5, 5))
	var b strings.Builder
	b.WriteString(columnar.CSVHeader + "\n")
	k := columnar.SeriesKey{Org: 1, Metric: 1}
	for i := range rows {
		if line := i + 2; line == badLine {
			b.WriteString("1,2,3,not-a-ts,5\n")
			continue
		}
		if rng.IntN(4) == 0 {
			k = columnar.SeriesKey{Org: uint32(rng.IntN(70)), Metric: rng.Uint64N(5), Context: rng.Uint64N(3)}
		}
		v := rng.NormFloat64()
		if i%97 == 0 {
			v = math.Copysign(0, -1)
		}
		b.Write(columnar.AppendCSVPoint(nil, k, 1763942400000+int64(i)*1000, v))
	}
	return b.String()
}

// storeContents is every object of st, by key.
func storeContents(t *testing.T, st storage.Store) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	out := map[string][]byte{}
	err := st.List(ctx, "", func(a storage.Attrs) error {
		b, err := storage.ReadAll(ctx, st, a.Key)
		out[a.Key] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameContents fails unless got holds exactly the objects of want.
func sameContents(t *testing.T, got, want map[string][]byte) {
	t.Helper()
	keys := func(m map[string][]byte) []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	if gk, wk := keys(got), keys(want); !slices.Equal(gk, wk) {
		t.Fatalf("store holds %q, want %q", gk, wk)
	}
	for k, b := range want {
		if !bytes.Equal(got[k], b) {
			t.Fatalf("%s differs from a clean import's", k)
		}
	}
}

var importTestOptions = ImportOptions{Topic: "metrics", FlushPayloads: 40}

// cleanImport is what one import of csv into an empty store stores.
func cleanImport(t *testing.T, csv string) map[string][]byte {
	t.Helper()
	st := storage.NewMem("clean")
	opt := importTestOptions
	opt.Store = st
	if _, err := ImportCSV(context.Background(), "clean.csv", strings.NewReader(csv), opt); err != nil {
		t.Fatal(err)
	}
	return storeContents(t, st)
}

// TestImportMalformedStoresNothing: a file with a malformed line fails naming the line
// and stores nothing; the fixed file then imports as if the failure never happened.
func TestImportMalformedStoresNothing(t *testing.T) {
	ctx := context.Background()
	st := storage.NewMem("t")
	opt := importTestOptions
	opt.Store = st
	_, err := ImportCSV(ctx, "p.csv", strings.NewReader(importCSV(3000, 2500)), opt)
	if err == nil || !strings.Contains(err.Error(), "import p.csv line 2500: ts") || !strings.Contains(err.Error(), "nothing was stored") {
		t.Fatalf("err = %v, want line 2500 named and nothing stored", err)
	}
	if got := storeContents(t, st); len(got) != 0 {
		t.Fatalf("a malformed file left %d objects", len(got))
	}
	fixed := importCSV(3000, 0)
	if _, err := ImportCSV(ctx, "p.csv", strings.NewReader(fixed), opt); err != nil {
		t.Fatal(err)
	}
	sameContents(t, storeContents(t, st), cleanImport(t, fixed))
}

// TestImportResumes: an import that fails part-way (a malformed line of an input that
// cannot be read twice, a store that fails) names the segments it stored; importing
// again resumes it, and the store ends up byte for byte as after one clean import: every
// row once, at the same offsets.
func TestImportResumes(t *testing.T) {
	ctx := context.Background()
	fixed := importCSV(3000, 0)
	clean := cleanImport(t, fixed)
	for _, tc := range []struct {
		name string
		// first is the failing import's input; faults, when set, are put into the store.
		first  io.Reader
		faults func(*faults.Store)
		want   string
	}{
		{name: "malformed line of a stream", first: struct{ io.Reader }{strings.NewReader(importCSV(3000, 2500))}, want: "import p.csv line 2500: ts"},
		{name: "store fails", first: strings.NewReader(fixed), faults: func(fs *faults.Store) {
			fs.FailNth(faults.OpCreate, "segments/*/*/*.tseg", 3, nil)
		}, want: "store segment"},
		{name: "store fails on the journal", first: strings.NewReader(fixed), faults: func(fs *faults.Store) {
			fs.FailNth(faults.OpCreate, "imports/*", 1, nil)
		}, want: "write journal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := faults.Wrap(storage.NewMem("t"))
			if tc.faults != nil {
				tc.faults(fs)
			}
			opt := importTestOptions
			opt.Store = fs
			stats, err := ImportCSV(ctx, "p.csv", tc.first, opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			left := storeContents(t, fs)
			if len(stats.Keys) > 0 {
				msg := err.Error()
				if !strings.Contains(msg, fmt.Sprintf("%d segments of metrics-0 hold offsets %d..%d: ", len(stats.Keys), stats.FirstOffset, stats.EndOffset)) {
					t.Fatalf("err = %v, does not name the offsets stored", err)
				}
				for _, k := range stats.Keys[:min(len(stats.Keys), 10)] {
					if !strings.Contains(msg, k) {
						t.Fatalf("err = %v, does not name stored segment %s", err, k)
					}
				}
				if !strings.Contains(msg, "re-run the import") || !strings.Contains(msg, JournalKey("metrics", 0)) {
					t.Fatalf("err = %v, does not say how to finish", err)
				}
				if _, ok := left[JournalKey("metrics", 0)]; !ok || len(left) != len(stats.Keys)+1 {
					t.Fatalf("a failed import left %d objects for %d segments", len(left), len(stats.Keys))
				}
			} else if !strings.Contains(err.Error(), "nothing was stored") || len(left) != 0 {
				t.Fatalf("err = %v with %d objects left", err, len(left))
			}
			fs.Clear()
			again, err := ImportCSV(ctx, "p.csv", strings.NewReader(fixed), opt)
			if err != nil {
				t.Fatal(err)
			}
			if again.Resumed != (len(stats.Keys) > 0) || again.SegmentsExisting != uint64(len(stats.Keys)) {
				t.Fatalf("resumed %v with %d segments found, the failed import stored %d", again.Resumed, again.SegmentsExisting, len(stats.Keys))
			}
			sameContents(t, storeContents(t, fs), clean)
		})
	}
}

// TestImportResumeRefusesOtherRows: resuming with rows other than the unfinished import's
// fails, naming the segment, and stores nothing; so does an input shorter than what it
// stored.
func TestImportResumeRefusesOtherRows(t *testing.T) {
	ctx := context.Background()
	full := importCSV(3000, 0)
	lines := strings.SplitAfter(full, "\n")
	for _, tc := range []struct {
		name string
		// input is the resuming import's input, given what the failed one stored.
		input func(st storage.Store, stored []string) string
		want  string
	}{
		{"other rows", func(storage.Store, []string) string {
			return lines[0] + "9,9,9,1,1\n" + strings.Join(lines[1:], "")
		}, "does not hold the same rows"},
		{"malformed", func(storage.Store, []string) string { return importCSV(3000, 2000) },
			"line 2000: ts \"not-a-ts\": want Unix milliseconds as an integer; the unfinished import's segments of metrics-0 hold offsets 0.."},
		{"shorter", func(st storage.Store, stored []string) string {
			// The rows of the first two segments: up to the first record of the third.
			seg, err := columnar.OpenSegment(ctx, st, stored[2], -1)
			if err != nil {
				t.Fatal(err)
			}
			first := seg.Footer.Frames[0].MinOffset
			for _, f := range seg.Footer.Frames {
				first = min(first, f.MinOffset)
			}
			return strings.Join(lines[:first], "")
		}, "this input ends at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := faults.Wrap(storage.NewMem("t"))
			fs.FailNth(faults.OpCreate, "segments/*/*/*.tseg", 5, nil)
			opt := importTestOptions
			opt.Store = fs
			stats, err := ImportCSV(ctx, "p.csv", strings.NewReader(full), opt)
			if err == nil || len(stats.Keys) != 4 {
				t.Fatalf("first import: %v, %d segments stored", err, len(stats.Keys))
			}
			before := storeContents(t, fs)
			_, err = ImportCSV(ctx, "q.csv", strings.NewReader(tc.input(fs, stats.Keys)), opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			sameContents(t, storeContents(t, fs), before)
		})
	}
}

// TestImportValidatesTopic: a topic that would make keys readers misparse is refused
// before anything is stored.
func TestImportValidatesTopic(t *testing.T) {
	for _, topic := range []string{"a/b", strings.Repeat("t", 300), "x y"} {
		st := storage.NewMem("t")
		_, err := ImportCSV(context.Background(), "p.csv", strings.NewReader(importCSV(10, 0)), ImportOptions{Store: st, Topic: topic})
		if err == nil || !strings.Contains(err.Error(), "topic") {
			t.Errorf("topic %.20q: err = %v", topic, err)
		}
		if n := len(storeContents(t, st)); n != 0 {
			t.Errorf("topic %.20q: %d objects stored", topic, n)
		}
	}
	_, err := ImportCSV(context.Background(), "p.csv", strings.NewReader(importCSV(10, 0)), ImportOptions{Store: storage.NewMem("t"), Partition: -1})
	if err == nil || !strings.Contains(err.Error(), "partition -1") {
		t.Errorf("partition -1: err = %v", err)
	}
}
