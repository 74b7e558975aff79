// Package benchproc holds what the make bench-* programs share: timing a whole command
// in a child process, the machine's load, and the goal's verdict.
package benchproc

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Result is what one child process cost: wall seconds, CPU seconds (user+system: on a
// shared machine it shows what the work cost, whatever the other load) and peak RSS.
type Result struct {
	Secs float64
	CPU  float64
	RSS  int64
}

// Run runs a command, its stderr passed through, and returns its stdout and its cost.
func Run(name string, args ...string) ([]byte, Result, error) {
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	start := time.Now()
	out, err := cmd.Output()
	r := Result{Secs: time.Since(start).Seconds()}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.RSS = int64(ru.Maxrss) * 1024
			r.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		}
	}
	return out, r, err
}

// Loadavg is the machine's 1, 5 and 15 minute load averages, for the figures' context.
func Loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// Verdict says whether a goal was met.
func Verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}
