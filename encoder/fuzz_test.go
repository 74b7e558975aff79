package encoder

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
)

// Fuzz targets. Run one with, e.g.,
//
//	go test ./encoder/ -run '^$' -fuzz '^FuzzOpen$' -fuzztime 60s
//
// Invariants checked:
//   - no decoder panics or allocates beyond what the input size and MaxBlockPoints allow,
//     whatever the bytes;
//   - a file the reader accepts re-encodes and decodes to the same points (a valid file
//     re-parses);
//   - encode then decode gives back every point bit for bit.
//
// Seeds: the frozen fixtures, the NAB data (when present) and edge values, plus the
// files under testdata/fuzz/<Target>/.

func fuzzSeedFiles(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join(fixtureRoot, "v*", "*.tsf"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzOpen(f *testing.F) {
	fuzzSeedFiles(f)
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !IsCorrupt(err) {
				t.Fatalf("open: error %v is not a *CorruptFileError", err)
			}
			return
		}
		var series []testSeries
		it := r.Iterator(nil)
		for it.Next() {
			s := it.At()
			series = append(series, testSeries{Key: s.Key, Tags: append([]string(nil), s.Tags...),
				Ts: append([]int64(nil), s.Ts...), Values: append([]float64(nil), s.Values...)})
		}
		itErr := it.Err()
		if itErr != nil && !IsCorrupt(itErr) {
			t.Fatalf("iterate: error %v is not a *CorruptFileError", itErr)
		}
		// The Arrow reader decodes the same series: the same points up to the same
		// error.
		rr := r.RecordReader(7)
		defer rr.Release()
		rows := 0
		for rr.Next() {
			rows += int(rr.RecordBatch().NumRows())
		}
		rrErr := rr.Err()
		if (itErr == nil) != (rrErr == nil) || (rrErr != nil && rrErr.Error() != itErr.Error()) {
			t.Fatalf("the iterator ends with %v, the record reader with %v", itErr, rrErr)
		}
		if rrErr == nil && rows != points(series) {
			t.Fatalf("the record reader gave %d rows, the iterator %d points", rows, points(series))
		}
		if itErr != nil {
			return
		}
		// Accepted input re-encodes to something that decodes the same.
		roundTrip(t, series)
	})
}

// FuzzBlockDecoders feeds hostile payloads straight to each decoder, behind the block
// checksum that a whole-file fuzzer would rarely get past.
func FuzzBlockDecoders(f *testing.F) {
	f.Add(appendTsDoD(nil, []int64{0, 10, 20, 35, 1 << 40}), uint16(5), int64(0))
	f.Add(appendGorilla(nil, edgeFloats()), uint16(len(edgeFloats())), int64(-1))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint16(MaxBlockPoints-1), int64(math.MaxInt64-1))
	// One payload of each v3 value encoding (the worked examples of docs/format/series.md).
	for _, ex := range workedValueExamples() {
		f.Add(ex.payload, uint16(len(ex.vals)-1), int64(0))
	}
	f.Fuzz(func(t *testing.T, src []byte, n uint16, t0 int64) {
		h := blockHeader{count: int(n) + 1, minTs: t0, maxTs: math.MaxInt64}
		var bd blockDecoder
		for e := range TsEncoding(255) {
			if !IsValidTsEncoding(CurrentVersion, e) {
				continue
			}
			h.tsEnc = e
			ts, err := bd.decodeTs(nil, &h, src)
			if err == nil && (len(ts) != h.count || ts[0] != t0) {
				t.Fatalf("%s: %d timestamps from %d without error", e, len(ts), h.count)
			}
		}
		for e := range ValueEncoding(255) {
			if !IsValidValueEncoding(CurrentVersion, e) {
				continue
			}
			h.valEnc = e
			vals, err := bd.decodeValues(nil, &h, src)
			if err == nil && len(vals) != h.count {
				t.Fatalf("%s: %d values from %d without error", e, len(vals), h.count)
			}
		}
		var bh blockHeader
		_, _ = bh.Unmarshal(src, Version2)
		_, _ = bh.unmarshal3(src, Version3)
		_, _, _, _ = parseSeriesHeader(src, 0, nil)
		_, _, _ = parseIndex(src, 1<<20, fileHeaderSize)
		var zbuf []byte
		_, _, _ = parseIndex3(src, 1<<20, fileHeaderSize, &zbuf)
		// A v3 writer parses the loose records a spool hands it.
		w := NewWriter(io.Discard)
		if err := w.AppendRecord(IndexEntry{Key: columnar.SeriesKey{Org: 1}, Length: int64(len(src)), Points: int64(h.count)}, src); err == nil {
			if err := w.Close(); err != nil {
				t.Fatalf("close after a record it took: %v", err)
			}
		}
	})
}

// seriesFromBytes turns fuzz input into a valid series: 8 bytes of value bits and a
// varint timestamp delta per point.
func seriesFromBytes(b []byte) testSeries {
	s := testSeries{Key: columnar.SeriesKey{Org: 1}}
	t := int64(0)
	if len(b) >= 8 {
		t = int64(binary.LittleEndian.Uint64(b))
		b = b[8:]
	}
	for len(b) >= 9 && len(s.Ts) < 50000 {
		d, n := binary.Uvarint(b[8:])
		if n <= 0 {
			d, n = 1, 1
		}
		v := math.Float64frombits(binary.LittleEndian.Uint64(b))
		b = b[8+n:]
		if len(s.Ts) > 0 {
			if d == 0 {
				d = 1
			}
			if nt := t + int64(d); nt <= t {
				break // would overflow MaxInt64
			} else {
				t = nt
			}
		}
		s.Ts = append(s.Ts, t)
		s.Values = append(s.Values, v)
	}
	return s
}

func FuzzRoundTrip(f *testing.F) {
	seed := func(ts []int64, vals []float64) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(ts[0]))
		for i, v := range vals {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
			d := uint64(1)
			if i+1 < len(ts) {
				d = uint64(ts[i+1] - ts[i])
			}
			b = binary.AppendUvarint(b, d)
		}
		return b
	}
	ef := edgeFloats()
	ts := make([]int64, len(ef))
	for i := range ts {
		ts[i] = int64(i) * 1000
	}
	f.Add(seed(ts, ef), uint16(3))
	f.Add(seed([]int64{math.MinInt64, 0}, []float64{1, 2}), uint16(1))
	if files := loadNABForFuzz(); len(files) > 0 {
		for _, s := range files {
			n := min(len(s.Ts), 300)
			f.Add(seed(s.Ts[:n], s.Values[:n]), uint16(100))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, bp uint16) {
		s := seriesFromBytes(b)
		if len(s.Ts) == 0 {
			return
		}
		roundTrip(t, []testSeries{s}, BlockPoints(1+int(bp)%MaxBlockPoints))
	})
}

// loadNABForFuzz returns one series per real-data file, or nothing when the data is not
// there (fuzzing must not depend on it).
func loadNABForFuzz() []testSeries {
	var out []testSeries
	for _, nf := range loadNABQuiet() {
		if len(nf.Series) > 0 {
			out = append(out, nf.Series[0])
		}
	}
	return out
}
