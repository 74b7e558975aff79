package columnar

import (
	"errors"
	"fmt"
)

// ErrCorrupt is wrapped by every CorruptSegmentError, so callers can branch with errors.Is.
var ErrCorrupt = errors.New("corrupt segment")

// CorruptSegmentError names the segment, the byte offset and what was wrong. Corrupt input halts
// a run unless the user opts to skip corrupt frames.
type CorruptSegmentError struct {
	Key    string
	Offset uint64
	Reason string
}

func (e *CorruptSegmentError) Error() string {
	return fmt.Sprintf("corrupt segment %s at byte %d: %s", e.Key, e.Offset, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptSegmentError) Unwrap() error { return ErrCorrupt }

func corrupt(key string, off uint64, format string, args ...any) error {
	return &CorruptSegmentError{Key: key, Offset: off, Reason: fmt.Sprintf(format, args...)}
}
