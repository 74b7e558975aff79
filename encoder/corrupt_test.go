package encoder

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
)

// readAll opens b and decodes every series through both the iterator and the Arrow
// reader, returning the first error.
func readAll(b []byte) error {
	r, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return err
	}
	it := r.Iterator(nil)
	for it.Next() {
	}
	if err := it.Err(); err != nil {
		return err
	}
	rr := r.RecordReader(1000)
	defer rr.Release()
	for rr.Next() {
	}
	return rr.Err()
}

func TestReaderRejects(t *testing.T) {
	good := encodeFile(t, randomSeries(rand.New(rand.NewPCG(3, 3)), 5, 100), BlockPoints(30))
	n := len(good)
	mutate := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), good...))
	}
	tests := []struct {
		name string
		b    []byte
		is   error
	}{
		{"empty", nil, ErrTruncated},
		{"short", good[:20], ErrTruncated},
		{"trailer magic", mutate(func(b []byte) []byte { b[n-1] ^= 1; return b }), ErrBadMagic},
		{"header magic", mutate(func(b []byte) []byte { b[0] = 'X'; return b }), ErrBadMagic},
		{"trailer version", mutate(func(b []byte) []byte { b[n-8] = 9; return b }), ErrUnsupportedVersion},
		{"header version", mutate(func(b []byte) []byte { b[4] = 9; return b }), ErrUnsupportedVersion},
		{"index checksum", mutate(func(b []byte) []byte { b[n-trailerSize-1] ^= 0x40; return b }), ErrChecksum},
		{"index offset", mutate(func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[n-trailerSize:], uint64(n))
			return b
		}), ErrOutOfRange},
		{"block checksum", mutate(func(b []byte) []byte { b[60] ^= 0x10; return b }), ErrChecksum},
		{"truncated tail", good[:n-1], ErrBadMagic},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := readAll(tc.b)
			if !errors.Is(err, tc.is) {
				t.Fatalf("error %v, want %v", err, tc.is)
			}
			if !IsCorrupt(err) {
				t.Fatalf("error %v is not a *CorruptFileError", err)
			}
		})
	}
}

// TestReaderDetectsEveryFlip flips every bit and truncates at every length of a small
// file of each version: every byte of a series file is checked (checksums cover blocks,
// series headers and the index; the trailer and header are validated field by field), so
// the reader must return a *CorruptFileError each time, never decode something else, and
// never panic.
func TestReaderDetectsEveryFlip(t *testing.T) {
	series := randomSeries(rand.New(rand.NewPCG(5, 5)), 3, 40)
	series = append(series, scrapeSeries(rand.New(rand.NewPCG(6, 6)), 1, 3, 20)...)
	sortSeries(series)
	for _, v := range []uint16{Version1, Version2, Version3} {
		good := encodeFile(t, series, FormatVersion(v), BlockPoints(16))
		if err := readAll(good); err != nil {
			t.Fatal(err)
		}
		check := func(what string, b []byte) {
			t.Helper()
			err := readAll(b)
			if err == nil {
				t.Fatalf("v%d: %s: read without error", v, what)
			}
			if !IsCorrupt(err) {
				t.Fatalf("v%d: %s: error %v is not a *CorruptFileError", v, what, err)
			}
		}
		b := make([]byte, len(good))
		for i := range good {
			for bit := range 8 {
				copy(b, good)
				b[i] ^= 1 << bit
				check(fmt.Sprintf("bit %d of byte %d of %d flipped", bit, i, len(good)), b)
			}
		}
		for l := range good {
			check(fmt.Sprintf("truncated to %d of %d bytes", l, len(good)), good[:l])
		}
	}
}

// TestCorruptErrorNamesFile: given a name, the reader puts it in every CorruptFileError,
// from Open and from decoding a series later, with the offset.
func TestCorruptErrorNamesFile(t *testing.T) {
	good := encodeFile(t, randomSeries(rand.New(rand.NewPCG(3, 4)), 4, 50))
	const name = "series/s01/w/run/part-000.tsf"
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] ^= 1 // trailer magic: Open fails
	_, err := Open(bytes.NewReader(bad), int64(len(bad)), FileName(name))
	var ce *CorruptFileError
	if !errors.As(err, &ce) || ce.File != name || !strings.Contains(err.Error(), name) {
		t.Fatalf("open: error %v does not name %s", err, name)
	}
	bad = append(bad[:0], good...)
	bad[20] ^= 1 // inside the first block: Open succeeds, decoding fails
	r, err := Open(bytes.NewReader(bad), int64(len(bad)), FileName(name))
	if err != nil {
		t.Fatal(err)
	}
	it := r.Iterator(nil)
	for it.Next() {
	}
	if !errors.As(it.Err(), &ce) || ce.File != name || !strings.Contains(it.Err().Error(), fmt.Sprintf("%s: block", name)) {
		t.Fatalf("iterate: error %v does not name %s", it.Err(), name)
	}
}

// TestIndexClaimsBoundedByColumns: a v3 index that claims more series than its blocks
// have columns is refused before the series' entries are sized, however many the body
// seems to hold (here 100,000 entries of 6 bytes for one block of one column).
func TestIndexClaimsBoundedByColumns(t *testing.T) {
	good := encodeFile(t, []testSeries{{Key: columnar.SeriesKey{Org: 1}, Ts: []int64{5}, Values: []float64{1}}})
	r, err := Open(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	be := r.v3.blocks[0]
	const n = 100_000
	var body []byte
	body = binary.AppendUvarint(body, uint64(be.length))
	body = binary.AppendUvarint(body, uint64(be.count))
	body = binary.AppendVarint(body, be.minTs)
	body = binary.AppendUvarint(body, uint64(be.maxTs-be.minTs))
	body = binary.AppendUvarint(body, uint64(be.cols))
	body = append(body, 1, 0, 0, 0, 1, 2) // org 1, metric 0, context 0, no tags, block 0
	for range n - 1 {
		body = append(body, 0, 0, 0, 0, 1, 0) // the next context, no tags, block 0 again
	}
	var b []byte
	b = append(b, good[:be.off+int64(be.length)]...)
	indexOff := len(b)
	b = binary.AppendUvarint(b, n)
	b = binary.AppendUvarint(b, 1)
	b = append(b, 0)
	b = binary.AppendUvarint(b, uint64(len(body)))
	b = append(b, body...)
	tr := trailer{indexOff: int64(indexOff), indexLen: int64(len(b) - indexOff), indexCRC: checksum(b[indexOff:]), version: Version3}
	b = tr.Marshal(b)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = Open(bytes.NewReader(b), int64(len(b)))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrOutOfRange) || !strings.Contains(err.Error(), "100000 series in 1 block columns") {
		t.Fatalf("error %v, want the series count refused", err)
	}
	// The file's own bytes are read (the index, 600 KB); the claim sizes nothing.
	if a := after.TotalAlloc - before.TotalAlloc; a > 2*uint64(len(b)) {
		t.Fatalf("opening %d bytes allocated %d", len(b), a)
	}
}
