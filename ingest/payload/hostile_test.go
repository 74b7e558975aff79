package payload

import (
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/snappy"
)

// allocated returns the bytes fn allocates.
func allocated(fn func()) uint64 {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	fn()
	runtime.ReadMemStats(&m1)
	return m1.TotalAlloc - m0.TotalAlloc
}

// TestHostileClaims: a record whose lengths claim more than its bytes hold fails with a
// DecodeError naming the field, before anything is allocated by the claim.
func TestHostileClaims(t *testing.T) {
	huge := binary.AppendUvarint(nil, 1<<62)
	snappyClaim := func(n uint64, tail int) []byte {
		return append(binary.AppendUvarint(nil, n), make([]byte, tail)...)
	}
	rw := func(req []byte) []byte { return snappy.Encode(nil, req) }
	for _, tc := range []struct {
		name   string
		f      Format
		in     []byte
		field  string
		reason string
	}{
		{"snappy claims 2 GiB", RemoteWrite, snappyClaim(1<<31, 8), "snappy", "larger than max allowed"},
		{"snappy claims 60 MiB of 20 bytes", RemoteWrite, snappyClaim(60<<20, 20), "snappy", "more than snappy can expand"},
		{"series length past the end", RemoteWrite, rw(append([]byte{rwTimeseries<<3 | wireBytes}, huge...)), "timeseries[0]", "past the end"},
		{"label length past the end", RemoteWrite, rw(pb(nil).bytes(rwTimeseries, append([]byte{tsLabels<<3 | wireBytes}, huge...))), "timeseries[0].labels[0]", "past the end"},
		{"tag length past the end", Proto, append([]byte{fieldTags<<3 | wireBytes}, huge...), "tags[0]", "past the end"},
		{"packed timestamps past the end", Proto, append([]byte{fieldTimestamps<<3 | wireBytes}, binary.AppendUvarint(nil, 1<<30)...), "timestamps", "past the end"},
		{"packed values past the end", Proto, append([]byte{fieldValues<<3 | wireBytes}, binary.AppendUvarint(nil, 1<<30)...), "values", "past the end"},
		{"metadata past the end", Proto, append([]byte{fieldMetadata<<3 | wireBytes}, huge...), "metadata", "past the end"},
		{"json nesting", JSON, []byte(`{"x":` + strings.Repeat("[", 1<<20)), "", "nesting deeper than 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d Decoder
			var err error
			n := allocated(func() { _, err = d.Decode(tc.f, tc.in, nil) })
			var de *DecodeError
			if !errors.As(err, &de) || de.Field != tc.field || !strings.Contains(de.Reason, tc.reason) {
				t.Fatalf("err = %v, want field %q: %q", err, tc.field, tc.reason)
			}
			if n > 64<<10 {
				t.Fatalf("a %d-byte record allocated %d bytes", len(tc.in), n)
			}
		})
	}
}
