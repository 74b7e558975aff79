package gameday

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// tb lets the command use storage/s3test (a real versitygw and its fault proxy), whose
// helpers take a testing.TB: it implements the few methods they call. The embedded nil
// interface only satisfies testing.TB's private method; any other method would panic,
// which s3test does not call. Fatal panics with tbFatal, which runOne turns into the
// scenario's error.
type tb struct {
	testing.TB
	dir      string
	mu       sync.Mutex
	cleanups []func()
	n        int
}

type tbFatal string

func (f tbFatal) Error() string { return string(f) }

func newTB(dir string) *tb { return &tb{dir: dir} }

func (t *tb) Helper()                         {}
func (t *tb) Name() string                    { return "gameday" }
func (t *tb) Logf(format string, args ...any) {}
func (t *tb) Errorf(format string, args ...any) {
	panic(tbFatal(fmt.Sprintf(format, args...)))
}
func (t *tb) Fatalf(format string, args ...any) { panic(tbFatal(fmt.Sprintf(format, args...))) }
func (t *tb) Fatal(args ...any)                 { panic(tbFatal(fmt.Sprint(args...))) }
func (t *tb) Cleanup(f func()) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, f)
	t.mu.Unlock()
}

func (t *tb) TempDir() string {
	t.mu.Lock()
	t.n++
	n := t.n
	t.mu.Unlock()
	d := fmt.Sprintf("%s/s3-%d", t.dir, n)
	if err := os.MkdirAll(d, 0o755); err != nil {
		panic(tbFatal(err.Error()))
	}
	return d
}

// done runs the cleanups, last registered first.
func (t *tb) done() {
	t.mu.Lock()
	cs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}
