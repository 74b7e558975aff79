// Package payload decodes and encodes the Kafka record values that carry Tailor's
// metric points: the tailor.v1.Payload protobuf message (tailor.proto), one JSON object
// per record, and Prometheus remote-write WriteRequests (snappy block format).
//
// A Decoder turns a record into one or more columnar.Payload values, appending to a
// caller-owned slice and reusing the memory of its spare elements, so a sink that keeps
// one Decoder and one []columnar.Payload per goroutine allocates almost nothing in steady
// state. Malformed input yields a *DecodeError that names the format, the field and the
// byte offset; a decoder never panics on input, never allocates by a count or a length
// the record claims before checking it against the bytes, and allocates in proportion to
// the record (for remote-write, to the decompressed request).
//
// The Append* functions are the matching encoders, used by producers, the demo and tests.
//
// See docs/payloads.md for the formats, the remote-write label mapping and the limits.
package payload

import (
	"fmt"

	"github.com/tailor-metrics/tailor/columnar"
)

// Default limits; see Options.
const (
	// DefaultMaxDecompressedBytes caps a decompressed remote-write request. Kafka's
	// default max.message.bytes is 1 MiB and snappy expands at most about 21x, so
	// real records stay well below it; what it stops is a forged 4 GiB length header.
	DefaultMaxDecompressedBytes = 64 << 20

	// maxInternEntries and maxInternBytes bound the tag intern table of a Decoder.
	// A sink sees the same series again and again, so a few thousand distinct tags
	// cover the steady state; when either bound is hit the table is cleared rather
	// than evicted piecemeal (cheap, and the next records refill it).
	maxInternEntries = 1 << 16
	maxInternBytes   = 8 << 20
	// maxInternTagLen: longer tags are copied, not interned, so one huge tag cannot
	// pin the table's budget.
	maxInternTagLen = 256
)

// Options configures a Decoder. The zero value is usable: zero fields take the defaults
// given below.
type Options struct {
	// OrgLabels are the remote-write label names that carry the org id, in order of
	// precedence: the first one present in a series gives its org (a decimal uint32)
	// and is removed from its tags and context key. Default ["__tenant__", "org_id"].
	OrgLabels []string
	// DefaultOrg is the org of a remote-write series that has none of OrgLabels.
	// Default 0.
	DefaultOrg uint32
	// RequireOrg rejects a remote-write request in which a series has none of
	// OrgLabels, instead of using DefaultOrg. Default false.
	RequireOrg bool
	// MaxDecompressedBytes caps the snappy-decoded size of a remote-write request.
	// Default DefaultMaxDecompressedBytes (64 MiB).
	MaxDecompressedBytes int
}

var defaultOrgLabels = []string{"__tenant__", "org_id"}

func (o *Options) validate() error {
	if o.MaxDecompressedBytes < 0 {
		return fmt.Errorf("MaxDecompressedBytes %d is negative", o.MaxDecompressedBytes)
	}
	for i, l := range o.OrgLabels {
		if l == "" {
			return fmt.Errorf("OrgLabels[%d] is empty", i)
		}
		for _, prev := range o.OrgLabels[:i] {
			if prev == l {
				return fmt.Errorf("OrgLabels[%d] %q is listed twice", i, l)
			}
		}
	}
	return nil
}

// Decoder decodes Kafka record values into columnar payloads.
//
// A Decoder keeps scratch memory between calls (the decompression buffer, label scratch
// and a bounded intern table of tag strings), so keep one per goroutine: it is not safe
// for concurrent use. The zero value decodes with the default Options.
type Decoder struct {
	opts Options

	// snappy-decoded remote-write request, reused.
	rwBuf []byte
	// labels of the time series being decoded, reused.
	labels []label
	// tag scratch for "name:value" and for JSON strings with escapes.
	scratch []byte

	// intern maps tag bytes to a string already handed out, so steady-state decoding
	// does not allocate a string per tag. Strings are immutable, so sharing them
	// between payloads is safe.
	intern      map[string]string
	internBytes int
}

// NewDecoder returns a Decoder with the given options, or an error naming the first
// invalid option.
func NewDecoder(opts Options) (*Decoder, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("payload decoder options: %w", err)
	}
	opts.OrgLabels = append([]string(nil), opts.OrgLabels...)
	return &Decoder{opts: opts}, nil
}

func (d *Decoder) orgLabels() []string {
	if len(d.opts.OrgLabels) == 0 {
		return defaultOrgLabels
	}
	return d.opts.OrgLabels
}

func (d *Decoder) maxDecompressed() int {
	if d.opts.MaxDecompressedBytes == 0 {
		return DefaultMaxDecompressedBytes
	}
	return d.opts.MaxDecompressedBytes
}

// Decode decodes one Kafka record value b in format f and appends the result to dst:
// exactly one payload for Proto and JSON, one payload per time series for RemoteWrite.
// Auto picks JSON or Proto per record (see Auto).
//
// Decode reuses the spare capacity of dst, including the Tags, Timestamps and Values
// slices of the elements between len(dst) and cap(dst), so callers should recycle one
// slice with dst[:0]; in exchange, the caller must not keep references to the slices
// of elements past len(dst), which are overwritten. The appended payloads do not alias
// b: b may be reused as soon as Decode returns. A record is decoded all or nothing: on error Decode returns dst with
// its original length and a *DecodeError (or ErrInvalidFormat for an invalid f).
func (d *Decoder) Decode(f Format, b []byte, dst []columnar.Payload) ([]columnar.Payload, error) {
	if f == Auto {
		f = detect(b)
	}
	n := len(dst)
	var err error
	switch f {
	case Proto:
		if len(b) == 0 {
			return dst, errEmpty(f)
		}
		var p *columnar.Payload
		dst, p = grow(dst)
		err = d.decodeProto(b, p)
	case JSON:
		if len(b) == 0 {
			return dst, errEmpty(f)
		}
		var p *columnar.Payload
		dst, p = grow(dst)
		err = d.decodeJSON(b, p)
	case RemoteWrite:
		if len(b) == 0 {
			return dst, errEmpty(f)
		}
		dst, err = d.decodeRemoteWrite(b, dst)
	default:
		return dst, fmt.Errorf("decode: %w %d", ErrInvalidFormat, uint8(f))
	}
	if err != nil {
		return dst[:n], err
	}
	return dst, nil
}

// errEmpty rejects a zero-length record. An empty protobuf message is technically valid
// (all fields zero), but an empty Kafka value is a tombstone or a producer bug, never a
// payload for org 0, metric 0.
func errEmpty(f Format) error {
	return &DecodeError{Format: f, Reason: "empty record"}
}

// grow extends dst by one element, reusing the spare element's slices when there is
// capacity, and returns a pointer to the reset element.
func grow(dst []columnar.Payload) ([]columnar.Payload, *columnar.Payload) {
	if len(dst) < cap(dst) {
		dst = dst[:len(dst)+1]
	} else {
		dst = append(dst, columnar.Payload{})
	}
	p := &dst[len(dst)-1]
	p.Reset()
	return dst, p
}

// internTag returns b as a string, sharing the string with earlier calls for the same
// bytes when it can.
func (d *Decoder) internTag(b []byte) string {
	if len(b) > maxInternTagLen {
		return string(b)
	}
	if s, ok := d.intern[string(b)]; ok { // no allocation: the compiler special-cases m[string(b)]
		return s
	}
	if d.intern == nil || len(d.intern) >= maxInternEntries || d.internBytes >= maxInternBytes {
		if d.intern == nil {
			d.intern = make(map[string]string)
		} else {
			clear(d.intern)
		}
		d.internBytes = 0
	}
	s := string(b)
	d.intern[s] = s
	d.internBytes += len(s)
	return s
}

// fnv1a64 continues an FNV-1a 64-bit hash over s. Start from fnvOffset64.
func fnv1a64(h uint64, s []byte) uint64 {
	for _, c := range s {
		h ^= uint64(c)
		h *= fnvPrime64
	}
	return h
}

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)
