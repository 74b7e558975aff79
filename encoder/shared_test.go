package encoder

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
)

// scrapeSeries is nodes × perNode series of n points: the series of one node share
// their timestamps (a scrape's), keys interleave the nodes as hashed contexts do.
func scrapeSeries(rng *rand.Rand, nodes, perNode, n int) []testSeries {
	var out []testSeries
	for node := range nodes {
		ts := make([]int64, n)
		t := int64(1_700_000_000_000) + rng.Int64N(10_000)
		for i := range ts {
			ts[i] = t
			t += 10_000 + rng.Int64N(30)
		}
		for j := range perNode {
			s := testSeries{Key: columnar.SeriesKey{Org: 1, Metric: uint64(j % 3), Context: rng.Uint64()}, Ts: slices.Clone(ts)}
			v := float64(rng.IntN(1000))
			for range n {
				v += float64(rng.IntN(3))
				s.Values = append(s.Values, v)
			}
			if node%2 == 0 {
				s.Tags = []string{"node:" + string(rune('a'+node))}
			}
			out = append(out, s)
		}
	}
	sortSeries(out)
	return out
}

// fileBlocks lists every block of a v3 file once: its column count.
func fileBlocks(t testing.TB, b []byte) map[int64]int {
	t.Helper()
	r, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]int{}
	for _, e := range r.Index() {
		bi, err := r.BlockInfo(e)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range bi {
			if c, ok := out[x.Offset]; ok && c != x.Columns {
				t.Fatalf("block at %d has %d and %d columns", x.Offset, c, x.Columns)
			}
			out[x.Offset] = x.Columns
		}
	}
	return out
}

// TestSharedBlocks: series with equal timestamps share blocks, one per node, wherever
// their keys put them; series with timestamps of their own get blocks of their own.
func TestSharedBlocks(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	series := scrapeSeries(rng, 5, 40, 150)
	lone := randomSeries(rand.New(rand.NewPCG(9, 9)), 20, 400)
	for i := range lone {
		lone[i].Key.Org = 2
	}
	all := append(series, lone...)
	sortSeries(all)
	b := roundTrip(t, all)
	blocks := fileBlocks(t, b)
	shared, cols := 0, 0
	for _, c := range blocks {
		if c > 1 {
			shared++
			cols += c
		}
	}
	if shared != 5 || cols != 200 {
		t.Fatalf("%d shared blocks with %d columns, want one for each of 5 nodes, 200 columns", shared, cols)
	}
	// The same points in v2 take far more: every series repeats its timestamps and pays a
	// record header, a block header and a 60-byte index entry.
	v2 := encodeFile(t, series, FormatVersion(Version2))
	v3 := encodeFile(t, series)
	if per := float64(len(v2)-len(v3)) / float64(len(series)); per < 60 {
		t.Fatalf("v3 saves %.1f bytes a series over v2, want at least 60", per)
	}
}

// TestSharedBlockLimits: a block takes at most shareColumns columns and about shareBytes
// of values, and only from series within shareWindow of its first; all points still come
// back.
func TestSharedBlockLimits(t *testing.T) {
	ts := []int64{1, 2, 3, 4}
	mk := func(n int, vals func(i int) []float64) []testSeries {
		out := make([]testSeries, n)
		for i := range out {
			out[i] = testSeries{Key: columnar.SeriesKey{Org: 1, Context: uint64(i)}, Ts: ts, Values: vals(i)}
		}
		return out
	}
	f := func(name string, series []testSeries, check func(t *testing.T, blocks map[int64]int)) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			check(t, fileBlocks(t, roundTrip(t, series)))
		})
	}
	f("columns", mk(3*shareColumns+5, func(i int) []float64 { return []float64{float64(i), 1, 2, 3} }), func(t *testing.T, blocks map[int64]int) {
		var got []int
		for _, c := range blocks {
			got = append(got, c)
		}
		slices.Sort(got)
		if !slices.Equal(got, []int{5, shareColumns, shareColumns, shareColumns}) {
			t.Fatalf("blocks of %v columns", got)
		}
	})
	// Series with equal timestamps shareWindow apart, other series between them: a block
	// takes columns only from fewer than shareWindow series after its first.
	long := make([]testSeries, 3*shareWindow)
	for i := range long {
		long[i] = testSeries{Key: columnar.SeriesKey{Org: 1, Context: uint64(i)}, Ts: []int64{int64(i), int64(i) + 1}, Values: []float64{1, 2}}
		if i%shareWindow == 0 {
			long[i].Ts = []int64{-5, -4}
		}
	}
	f("window", long, func(t *testing.T, blocks map[int64]int) {
		for off, c := range blocks {
			if c > 1 {
				t.Fatalf("block at %d shared by %d series %d apart", off, c, shareWindow)
			}
		}
	})
	big := func(i int) []float64 {
		return []float64{math.Float64frombits(uint64(i) * 0x9e3779b97f4a7c15), 1, 2, math.NaN()}
	}
	f("bytes", mk(2*shareBytes/32, big), func(t *testing.T, blocks map[int64]int) {
		if len(blocks) < 2 {
			t.Fatalf("%d blocks for %d bytes of values", len(blocks), 2*shareBytes)
		}
	})
}

// TestSpoolWritesWhatWriterWrites: a run's path (Spool, in any order, spilled or not,
// then AppendRecord in key order) writes the very bytes that Writer.Append writes, so the
// output does not depend on the order the run met the series in.
func TestSpoolWritesWhatWriterWrites(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 1))
	series := append(scrapeSeries(rng, 4, 30, 100), randomSeries(rng, 40, 3000)...)
	sortSeries(series)
	for i := 1; i < len(series); i++ {
		if series[i].Key == series[i-1].Key {
			t.Fatal("the generators made one key twice")
		}
	}
	for _, v := range []uint16{Version2, Version3} {
		want := encodeFile(t, series, FormatVersion(v))
		for _, mem := range []int{1 << 30, 1} {
			sp := NewSpool(t.TempDir(), mem, FormatVersion(v))
			for _, i := range rng.Perm(len(series)) {
				s := series[i]
				if err := sp.Add(s.Key, s.Tags, s.Ts, s.Values); err != nil {
					t.Fatal(err)
				}
			}
			var got []byte
			if err := sp.WriteSorted(1<<40, func(file []byte, _, _ int64) error {
				got = append(got, file...)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("v%d, memory %d: the spool wrote %d bytes, the writer %d, not the same", v, mem, len(got), len(want))
			}
			sp.Close()
		}
	}
}

// countingReader counts reads, and the bytes read.
type countingReader struct {
	r            *bytes.Reader
	reads, bytes int
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.reads++
	c.bytes += len(p)
	return c.r.ReadAt(p, off)
}

// TestSharedBlocksReadOnce: going through a file in key order reads each shared block
// once (the Series keeps it until its last series is read, then drops it), and keeps no
// more than the blocks still to be used.
func TestSharedBlocksReadOnce(t *testing.T) {
	// Two orgs of 3 nodes each, 3 blocks a series: 9 blocks in use at a time, 18 in all.
	rng := rand.New(rand.NewPCG(12, 12))
	var series []testSeries
	for org := range uint32(2) {
		s := scrapeSeries(rng, 3, 30, 120)
		for i := range s {
			s[i].Key.Org = org + 1
		}
		series = append(series, s...)
	}
	sortSeries(series)
	b := roundTrip(t, series, BlockPoints(40))
	cr := &countingReader{r: bytes.NewReader(b)}
	r, err := Open(cr, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.v3.blocks) != 18 {
		t.Fatalf("%d blocks, want 18", len(r.v3.blocks))
	}
	opened := cr.reads
	it := r.Iterator(nil)
	most := 0
	for it.Next() {
		most = max(most, len(it.cur.blocks.byID))
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	if got, want := cr.reads-opened, len(r.v3.blocks); got != want {
		t.Fatalf("%d block reads for %d blocks", got, want)
	}
	if most > 9 {
		t.Fatalf("the iterator kept %d blocks at once, 9 are in use", most)
	}
}
