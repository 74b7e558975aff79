//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package storage

import (
	"os"
	"syscall"
	"time"
)

// staleTempAge is how old a temp file must be before a cleaner looks at it. A writer
// locks its temp file right after creating it; the age only covers that moment, the
// lock does the rest.
const staleTempAge = time.Minute

// lockTemp takes the writer's lock on its temp file. flock locks belong to the open
// file, so the kernel drops them when the writer closes it or dies.
func lockTemp(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
}

// removeIfAbandoned removes the temp file at path if no process holds its lock.
func removeIfAbandoned(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return // a live writer holds it
	}
	os.Remove(path)
}
