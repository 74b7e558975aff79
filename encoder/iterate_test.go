package encoder

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestIterSubsets: an iterator over a slice of the index, a filter of keys and a
// timestamps-only decoding give exactly the series (and timestamps) that a full decode
// restricted the same way gives, in every format version and block size.
func TestIterSubsets(t *testing.T) {
	for seed := uint64(1); seed <= 12; seed++ {
		rng := rand.New(rand.NewPCG(seed, seed*31))
		series := randomSeries(rng, 1+rng.IntN(40), 2000)
		for _, v := range []uint16{Version1, Version2, Version3} {
			b := encodeFile(t, series, FormatVersion(v), BlockPoints(1+rng.IntN(700)))
			r, err := Open(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			n := len(r.Index())
			first, end := rng.IntN(n+1), rng.IntN(n+2)-1 // end -1: to the end
			odd := func(e IndexEntry) bool { return (e.Key.Metric^e.Key.Context)&1 == 1 }
			lo, hi := series[rng.IntN(len(series))].Ts[0], int64(1<<62)
			var want []testSeries
			for i, s := range series {
				if i < first || (end >= 0 && i >= end) || !odd(IndexEntry{Key: s.Key}) {
					continue
				}
				w := testSeries{Key: s.Key, Tags: s.Tags}
				for j, ts := range s.Ts {
					if ts >= lo && ts <= hi {
						w.Ts, w.Values = append(w.Ts, ts), append(w.Values, s.Values[j])
					}
				}
				if len(w.Ts) > 0 {
					want = append(want, w)
				}
			}
			for _, noValues := range []bool{false, true} {
				opts := []IterOpt{IterIndexRange(first, end), IterFilter(odd), IterTimeRange(lo, hi)}
				if noValues {
					opts = append(opts, IterNoValues())
				}
				it := r.Iterator(nil, opts...)
				var got []testSeries
				for it.Next() {
					s := it.At()
					if noValues && len(s.Values) != 0 {
						t.Fatalf("v%d: IterNoValues decoded %d values of %v", v, len(s.Values), s.Key)
					}
					got = append(got, testSeries{Key: s.Key, Tags: append([]string(nil), s.Tags...), Ts: append([]int64(nil), s.Ts...), Values: append([]float64(nil), s.Values...)})
				}
				if err := it.Err(); err != nil {
					t.Fatal(err)
				}
				if noValues {
					for i := range got {
						if i < len(want) {
							got[i].Values = want[i].Values // compared on timestamps alone
						}
					}
				}
				requireSameSeries(t, want, got)
			}
		}
	}
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r *bytes.Reader
	n int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n += int64(n)
	return n, err
}

// TestTailRead: a small first read from the end opens every file as the default does
// (one more read for the index), reading less when the file is larger.
func TestTailRead(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	series := randomSeries(rng, 30, 3000)
	for _, v := range []uint16{Version1, Version2, Version3} {
		b := encodeFile(t, series, FormatVersion(v))
		full := &countingReaderAt{r: bytes.NewReader(b)}
		small := &countingReaderAt{r: bytes.NewReader(b)}
		rf, err := Open(full, int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		rs, err := Open(small, int64(len(b)), TailRead(1))
		if err != nil {
			t.Fatal(err)
		}
		if len(rf.Index()) != len(rs.Index()) || small.n >= full.n {
			t.Fatalf("v%d: %d and %d series; read %d bytes with a small tail, %d by default", v, len(rf.Index()), len(rs.Index()), small.n, full.n)
		}
		var s Series
		e := rs.Index()[len(rs.Index())/2]
		if err := rs.ReadSeries(e, &s); err != nil || len(s.Ts) != int(e.Points) {
			t.Fatalf("v%d: %v, %d points of %d", v, err, len(s.Ts), e.Points)
		}
	}
}
