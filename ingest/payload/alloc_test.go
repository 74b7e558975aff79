//go:build !race

// The race detector's instrumentation changes what a decode allocates (slices.Grow's
// append of a made slice, for one, allocates the new slice twice), so these figures hold
// for normal builds, which is what they pin.

package payload

import (
	"bytes"
	"strings"
	"testing"

	"github.com/klauspost/compress/snappy"
)

// TestDenseRecordsAllocateInProportion: records packed with the smallest elements each
// format allows (empty tags, one-byte timestamps, series of one label) allocate in
// proportion to their bytes (for remote-write, to the decompressed request), never by a
// count they claim.
func TestDenseRecordsAllocateInProportion(t *testing.T) {
	const n = 1 << 20
	series := pb(nil).bytes(rwTimeseries, pb(nil).bytes(tsLabels, pb(nil).str(labelName, "__name__").str(labelValue, "x")))
	for _, tc := range []struct {
		name   string
		f      Format
		in     []byte
		size   int // what allocation is proportional to
		factor int
	}{
		{"proto empty tags", Proto, bytes.Repeat([]byte{fieldTags<<3 | wireBytes, 0}, n/2), n, 48},
		{"proto unpacked timestamps", Proto, bytes.Repeat([]byte{fieldTimestamps<<3 | wireVarint, 0}, n/2), n, 24},
		{"proto packed timestamps", Proto, append([]byte{fieldTimestamps<<3 | wireBytes, 0x80, 0x80, 0x40}, make([]byte, n)...), n, 9},
		{"json empty tags", JSON, []byte(`{"tags":[` + strings.Repeat(`"",`, n/3) + `""]}`), n, 32},
		{"json timestamps", JSON, []byte(`{"timestamps":[` + strings.Repeat(`0,`, n/2) + `0]}`), n, 24},
		{"remote-write series of one label", RemoteWrite, snappy.Encode(nil, bytes.Repeat(series, n/len(series))), n, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d Decoder
			got := allocated(func() { _, _ = d.Decode(tc.f, tc.in, nil) })
			t.Logf("%d bytes (%d decoded) allocated %d bytes, %.1f times", len(tc.in), tc.size, got, float64(got)/float64(tc.size))
			if got > uint64(tc.factor*tc.size) {
				t.Fatalf("allocated %d bytes for %d, more than %d times", got, tc.size, tc.factor)
			}
		})
	}
}
