package encoder

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers branch on these with errors.Is; every decoding error is also a
// *CorruptFileError that carries the file offset.
var (
	// ErrBadMagic means the bytes are not a series file (or its trailer is damaged).
	ErrBadMagic = errors.New("bad magic")
	// ErrUnsupportedVersion means the file was written by a newer (or unknown) format version.
	ErrUnsupportedVersion = errors.New("unsupported version")
	// ErrChecksum means a block, series header or index failed its crc32c check.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrTruncated means a structure claims more bytes than are left.
	ErrTruncated = errors.New("truncated")
	// ErrOutOfRange means a field holds a value the format does not allow: an index entry
	// pointing outside the data region, an unknown encoding tag, a count above a limit,
	// keys out of order.
	ErrOutOfRange = errors.New("value out of range")
	// ErrNotFound is returned by lookups of a series key the file does not hold.
	ErrNotFound = errors.New("series not found")

	// ErrOutOfOrder is returned by the writer when series keys or timestamps are not
	// strictly increasing. The wrapping error names the key and the index.
	ErrOutOfOrder = errors.New("out of order")
	// ErrClosed is returned when a closed Writer, KeyedStream or Spool is used.
	ErrClosed = errors.New("closed")
)

// CorruptFileError reports bad input bytes: where in the file (Offset, an absolute byte
// offset when known, else the offset of the enclosing structure) and what was wrong.
// Corrupt input halts a job: it is never retryable.
type CorruptFileError struct {
	File   string // the file's name or key, when Open was given one (FileName)
	Offset int64  // absolute file offset of the structure that failed
	What   string // the structure, e.g. "block header", "index entry 12"
	Err    error  // one of the sentinels above, possibly wrapped with details
}

func (e *CorruptFileError) Error() string {
	if e.File != "" {
		return fmt.Sprintf("series file %s: %s at offset %d: %v", e.File, e.What, e.Offset, e.Err)
	}
	return fmt.Sprintf("series file: %s at offset %d: %v", e.What, e.Offset, e.Err)
}

func (e *CorruptFileError) Unwrap() error { return e.Err }

// corrupt builds a *CorruptFileError; format and args describe the detail and are wrapped
// around sentinel so errors.Is keeps working.
func corrupt(off int64, what string, sentinel error, format string, args ...any) error {
	err := sentinel
	if format != "" {
		err = fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), sentinel)
	}
	return &CorruptFileError{Offset: off, What: what, Err: err}
}

// named sets the file name of the CorruptFileError in err, if there is one without a name.
func named(err error, file string) error {
	var ce *CorruptFileError
	if file != "" && errors.As(err, &ce) && ce.File == "" {
		ce.File = file
	}
	return err
}

// IsCorrupt reports whether err was caused by bad input bytes (as opposed to an I/O
// error from the underlying reader, which may be worth retrying).
func IsCorrupt(err error) bool {
	var ce *CorruptFileError
	return errors.As(err, &ce)
}
