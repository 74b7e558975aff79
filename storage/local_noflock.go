//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package storage

import (
	"os"
	"time"
)

// staleTempAge: without flock a cleaner cannot tell a live writer from a dead one, so it
// waits until no write can plausibly still be running.
const staleTempAge = 24 * time.Hour

func lockTemp(*os.File) error { return nil }

func removeIfAbandoned(path string) { os.Remove(path) }
