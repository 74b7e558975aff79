package payload

import (
	"fmt"
)

// Format is the wire format of a Kafka record's value.
//
// The zero value is Auto. Formats are part of configuration (one per topic), so their
// names are frozen: see ParseFormat.
type Format uint8

// Formats.
const (
	// Auto picks Proto or JSON per record: JSON when the first byte that is not JSON
	// whitespace is '{', Proto otherwise. No valid Tailor protobuf payload starts with
	// '{' or with a whitespace byte (see docs/payloads.md), so the choice is never
	// ambiguous. Remote-write is never detected: a snappy block has no magic number and
	// can in principle look like a protobuf payload, so RemoteWrite must be chosen
	// explicitly.
	Auto Format = iota
	// Proto is one tailor.v1.Payload protobuf message per record (tailor.proto).
	Proto
	// JSON is one JSON object per record.
	JSON
	// RemoteWrite is one snappy-compressed (block format) Prometheus remote-write
	// WriteRequest per record. One record decodes to one payload per time series.
	RemoteWrite

	numFormats
)

var formatNames = [numFormats]string{
	Auto:        "auto",
	Proto:       "proto",
	JSON:        "json",
	RemoteWrite: "remote-write",
}

// IsValid reports whether f is one of the defined formats.
func (f Format) IsValid() bool { return f < numFormats }

// String returns the name ParseFormat accepts, or "Format(N)" for an invalid f.
func (f Format) String() string {
	if f.IsValid() {
		return formatNames[f]
	}
	return fmt.Sprintf("Format(%d)", uint8(f))
}

// ParseFormat parses a format name: "auto", "proto", "json" or "remote-write". Names
// are case-sensitive.
func ParseFormat(s string) (Format, error) {
	for f, name := range formatNames {
		if s == name {
			return Format(f), nil
		}
	}
	return 0, fmt.Errorf("unknown payload format %q (want auto, proto, json or remote-write)", s)
}

// MarshalText implements encoding.TextMarshaler, so a Format reads and writes as its
// name in YAML and JSON configuration.
func (f Format) MarshalText() ([]byte, error) {
	if !f.IsValid() {
		return nil, fmt.Errorf("invalid payload format %d", uint8(f))
	}
	return []byte(formatNames[f]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseFormat.
func (f *Format) UnmarshalText(b []byte) error {
	v, err := ParseFormat(string(b))
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// isJSONSpace reports whether c is JSON insignificant whitespace (RFC 8259).
func isJSONSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// detect resolves Auto for one record.
func detect(b []byte) Format {
	for _, c := range b {
		if isJSONSpace(c) {
			continue
		}
		if c == '{' {
			return JSON
		}
		return Proto
	}
	return Proto
}
