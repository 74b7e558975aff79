package encoder

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
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
				t.Fatalf("error %v is not a *CorruptError", err)
			}
		})
	}
}

// TestReaderDetectsEveryFlip flips every bit and truncates at every length of a small
// file of each version: every byte of a series file is checked (checksums cover blocks,
// series headers and the index; the trailer and header are validated field by field), so
// the reader must return a *CorruptError each time, never decode something else, and
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
				t.Fatalf("v%d: %s: error %v is not a *CorruptError", v, what, err)
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

// TestCorruptErrorNamesFile: given a name, the reader puts it in every CorruptError,
// from Open and from decoding a series later, with the offset.
func TestCorruptErrorNamesFile(t *testing.T) {
	good := encodeFile(t, randomSeries(rand.New(rand.NewPCG(3, 4)), 4, 50))
	const name = "series/s01/w/run/part-000.tsf"
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] ^= 1 // trailer magic: Open fails
	_, err := Open(bytes.NewReader(bad), int64(len(bad)), FileName(name))
	var ce *CorruptError
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
