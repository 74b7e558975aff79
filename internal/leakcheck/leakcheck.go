// Package leakcheck finds the goroutines a test binary leaves running, as goleak does
// (goleak is not among Tailor's dependencies): after the tests, every goroutine but the
// one checking must be gone, apart from a short allow-list of long-lived runtime and
// library goroutines. Goroutines still stopping get a grace period. Use it from
// TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(leakcheck.Main(m)) }
//
// A leak fails the test binary and prints every leaked goroutine's stack.
package leakcheck

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Grace is how long Check waits for goroutines that are still stopping: a kfake broker
// keeps serving for a moment after Close, a closed connection's reader needs a
// scheduler turn to return.
var Grace = 10 * time.Second

// allowed are functions that may be on a goroutine's stack after the tests: they run
// for the life of the process by design, are not started by Tailor, and cannot be
// stopped.
var allowed = []string{
	// signal.Notify's delivery loop (tests of SIGTERM handling).
	"os/signal.signal_recv",
	"os/signal.loop",
	"runtime.ensureSigM",
	// The runtime's finalizer and cleanup goroutines, when they show.
	"runtime.runfinq",
	"runtime.runCleanups",
	// testing's own goroutines, if m.Run left one behind while reporting.
	"testing.(*M).Run",
	"testing.runFuzzing",
}

// Main runs the tests and, if they passed, checks for leaked goroutines. It returns the
// exit code for os.Exit.
func Main(m *testing.M) int {
	code := m.Run()
	if code != 0 {
		return code
	}
	if err := Check(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// Check returns an error listing the goroutines other than the caller's and the
// allowed ones that are still running after Grace, or nil.
func Check() error {
	// Idle keep-alive connections of the default client (a readiness probe's) each hold
	// two goroutines until closed.
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(Grace)
	for {
		leaked := leaks()
		if len(leaked) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("leakcheck: %d goroutines still running %s after the tests:\n\n%s",
				len(leaked), Grace, strings.Join(leaked, "\n\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leaks returns the stacks of the running goroutines that are neither the caller's nor
// allowed.
func leaks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	// The first stack is the caller's own goroutine.
	stacks := strings.Split(strings.TrimSpace(string(buf)), "\n\n")
	var out []string
	for _, s := range stacks[1:] {
		if !isAllowed(s) {
			out = append(out, s)
		}
	}
	return out
}

func isAllowed(stack string) bool {
	for _, f := range allowed {
		if strings.Contains(stack, f) {
			return true
		}
	}
	return false
}
