package payload

import (
	"errors"
	"strconv"
)

// DecodeError reports a malformed record. The sink writes Error() next to the raw bytes
// in the rejects area, so the message names the format, the field and the byte offset:
//
//	json: field values[3] at byte 57: invalid number
//	proto: field timestamps[2] at byte 12: truncated varint
//	remote-write: field timeseries[2].labels at byte 40 of the decompressed request: duplicate label name "job"
//
// Every error Decoder.Decode returns for bad input bytes is a *DecodeError; anything
// else (an invalid Format argument) is a caller bug. Use errors.As to tell them apart.
type DecodeError struct {
	// Format is the format the record was decoded as (never Auto: Auto is resolved
	// first).
	Format Format
	// Field is the path of the offending field, such as "values[3]",
	// "timeseries[2].samples[0]" or "snappy". Empty when the error is not inside a
	// field (a JSON syntax error between fields, trailing bytes).
	Field string
	// Offset is the byte offset of the offending token in the record. For
	// RemoteWrite, when Decompressed is set, it is an offset in the snappy-decoded
	// WriteRequest instead.
	Offset int
	// Decompressed reports that Offset counts bytes of the decompressed remote-write
	// request rather than of the raw record.
	Decompressed bool
	// Reason says what is wrong, in lowercase words.
	Reason string
	// Err is the underlying cause, if any (for example snappy.ErrCorrupt or
	// strconv.ErrRange).
	Err error
}

// Error returns "<format>: field <field> at byte <offset>: <reason>".
func (e *DecodeError) Error() string {
	b := make([]byte, 0, 64+len(e.Field)+len(e.Reason))
	b = append(b, e.Format.String()...)
	b = append(b, ": "...)
	if e.Field != "" {
		b = append(b, "field "...)
		b = append(b, e.Field...)
		b = append(b, ' ')
	}
	b = append(b, "at byte "...)
	b = strconv.AppendInt(b, int64(e.Offset), 10)
	if e.Decompressed {
		b = append(b, " of the decompressed request"...)
	}
	b = append(b, ": "...)
	b = append(b, e.Reason...)
	if e.Err != nil {
		b = append(b, ": "...)
		b = append(b, e.Err.Error()...)
	}
	return string(b)
}

// Unwrap returns the underlying cause.
func (e *DecodeError) Unwrap() error { return e.Err }

// IsDecodeError reports whether err is (or wraps) a *DecodeError, that is, whether the
// record itself is malformed and belongs in the rejects area rather than halting the job.
func IsDecodeError(err error) bool {
	var de *DecodeError
	return errors.As(err, &de)
}

// Errors returned for bad arguments rather than bad input.
var (
	// ErrInvalidFormat is returned by Decode for a Format that is not IsValid.
	ErrInvalidFormat = errors.New("invalid payload format")
)
