package s3test

import (
	"os"
	"path/filepath"
	"syscall"
)

// setXattrProbe checks that dir's file system keeps user xattrs, as versitygw's posix
// backend expects.
func setXattrProbe(dir string) error {
	p := filepath.Join(dir, ".xattr-probe")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		return err
	}
	defer os.Remove(p)
	return syscall.Setxattr(p, "user.tailor.probe", []byte("1"), 0)
}
