package loadtest

import (
	"bufio"
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tailor-metrics/tailor/storage"
)

// StageMeasure is what one stage cost.
type StageMeasure struct {
	Wall, CPU float64 // seconds; CPU is user+system of the whole process
	// PeakRSS is the process's peak resident memory during the stage (bytes); see
	// peakReset.
	PeakRSS int64
	// OutBytes is what the stage wrote: Kafka record bytes (produce), segment bytes
	// (sink), series-file bytes (run).
	OutBytes int64
	Requests Requests
}

// Requests are object-store requests by price class.
type Requests struct {
	Put, Get, List int64 // Put: Create and Put; Get: GetRange and Stat (HEAD)
}

func (r Requests) sub(o Requests) Requests {
	return Requests{r.Put - o.Put, r.Get - o.Get, r.List - o.List}
}

// meter measures stages.
type meter struct {
	st     *countingStore
	stages map[string]*StageMeasure
	// peakResets says whether the kernel let us reset the peak RSS between stages.
	peakResets bool
}

func newMeter(st *countingStore) *meter {
	return &meter{st: st, stages: map[string]*StageMeasure{}}
}

// stage is a pipeline.Options.Stage hook.
func (m *meter) stage(name string) func() {
	m.peakResets = peakReset()
	start, cpu0, req0 := time.Now(), cpuSeconds(), m.st.snapshot()
	return func() {
		s := &StageMeasure{Wall: time.Since(start).Seconds(), CPU: cpuSeconds() - cpu0, PeakRSS: peakRSS(), Requests: m.st.snapshot().sub(req0)}
		m.stages[name] = s
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// peakReset resets the kernel's peak-RSS mark (VmHWM) of this process, so each stage's
// peak is its own; DuckDB's memory is C memory the Go runtime does not see, so RSS is
// the only honest figure. It reports false where the kernel does not allow it; peaks are
// then running maxima over the process.
func peakReset() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// peakRSS returns VmHWM from /proc/self/status, in bytes (0 if unknown).
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// countingStore counts requests by price class. It deliberately hides the local
// store's LocalPath, so runs read segments with ranged GETs as they would on S3 and the
// count is the one S3 would bill.
type countingStore struct {
	storage.Store
	put, get, list atomic.Int64
}

func (c *countingStore) snapshot() Requests {
	return Requests{c.put.Load(), c.get.Load(), c.list.Load()}
}

func (c *countingStore) Create(ctx context.Context, key string, r io.Reader) error {
	c.put.Add(1)
	return c.Store.Create(ctx, key, r)
}

func (c *countingStore) Put(ctx context.Context, key string, r io.Reader) error {
	c.put.Add(1)
	return c.Store.Put(ctx, key, r)
}

func (c *countingStore) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	c.get.Add(1)
	return c.Store.GetRange(ctx, key, off, n)
}

func (c *countingStore) Stat(ctx context.Context, key string) (storage.Attrs, error) {
	c.get.Add(1)
	return c.Store.Stat(ctx, key)
}

// List is billed per 1,000 keys returned (one LIST request per page).
func (c *countingStore) List(ctx context.Context, prefix string, fn func(storage.Attrs) error) error {
	n := 0
	err := c.Store.List(ctx, prefix, func(a storage.Attrs) error {
		n++
		return fn(a)
	})
	c.list.Add(int64(n/1000 + 1))
	return err
}
