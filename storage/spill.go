package storage

import (
	"errors"
	"fmt"
	"os"
)

// SpillFile creates a temporary file in dir (the system's temp directory if "") named
// by pattern, as os.CreateTemp does, and unlinks it at once: the open file keeps its
// data, and a process that is killed leaves nothing behind in the directory. The point
// store and the encoder's spool spill through it.
func SpillFile(dir, pattern string) (*os.File, error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		return nil, errors.Join(fmt.Errorf("unlink %s: %w", f.Name(), err), f.Close())
	}
	return f, nil
}
