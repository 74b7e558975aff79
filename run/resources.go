package run

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tailor-metrics/tailor/query"
)

// Resources is what a process used over a span of time.
type Resources struct {
	// PeakRSSBytes is the process's peak resident set since it started (getrusage), which
	// includes DuckDB's memory: Go's own accounting does not see cgo allocations.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// CPUSeconds is user+system CPU time of the whole process over the span (Go and
	// DuckDB threads); GCCPUSeconds is the Go runtime's estimate of its GC work.
	CPUSeconds   float64 `json:"cpu_seconds"`
	GCCPUSeconds float64 `json:"gc_cpu_seconds"`
	// GCShare is GCCPUSeconds / CPUSeconds.
	GCShare float64 `json:"gc_share"`
}

// MeasureResources starts measuring; the returned function gives the use since then.
func MeasureResources() func() Resources {
	cpu0, gc0 := processCPU(), gcCPU()
	return func() Resources {
		r := Resources{CPUSeconds: processCPU() - cpu0, GCCPUSeconds: gcCPU() - gc0, PeakRSSBytes: peakRSS()}
		if r.CPUSeconds > 0 {
			r.GCShare = r.GCCPUSeconds / r.CPUSeconds
		}
		return r
	}
}

func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return int64(ru.Maxrss) * 1024 // kilobytes on Linux
}

func gcCPU() float64 {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64 {
		return 0
	}
	return s[0].Value.Float64()
}

// DefaultMemoryLimit is DuckDB's memory limit when the user sets none: 60% of the
// memory this process may use (the cgroup's limit in a container, else physical RAM),
// split between parallel runs. It leaves the rest to the Go side (reader buffers, the
// encoder's part buffer) and to DuckDB's allocations outside its limit. "" if unknown.
func DefaultMemoryLimit(parallel int) string {
	total := memTotal()
	if total <= 0 {
		return ""
	}
	per := total * 6 / 10 / int64(max(parallel, 1))
	return strconv.FormatInt(max(per>>20, 64), 10) + "MiB"
}

// memTotal is min(physical RAM, cgroup v2 memory.max), in bytes; 0 if unknown.
func memTotal() int64 {
	var total int64
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				total = kb * 1024
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if lim, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && lim > 0 && (total == 0 || lim < total) {
			total = lim
		}
	}
	return total
}

// ParseBytes reads a size as DuckDB's memory_limit takes it: a number and a unit, B, KB,
// MB, GB or TB (powers of 1000) or KiB, MiB, GiB or TiB (powers of 1024), in any case
// and with or without a space.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.LastIndexAny(t, "0123456789.") + 1
	num, unit := strings.TrimSpace(t[:i]), strings.ToLower(strings.TrimSpace(t[i:]))
	mult := map[string]float64{
		"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	}[unit]
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || mult == 0 || v <= 0 || v*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q: want a positive number and a unit, such as 4GB or 512MiB", s)
	}
	return int64(v * mult), nil
}

// RunMemory splits a run's memory limit (Options.MemoryLimit) between the two places a
// run keeps data: DuckDB, which gets half as its memory_limit (it sorts one 24-byte row
// per group), and the run's point stores, which keep the other half of the points in
// memory before spilling them to the temp directory. Without a limit, DuckDB keeps its
// default and the point stores get a quarter of the machine's memory (1 GiB if unknown).
func RunMemory(o query.Options) (duck query.Options, points int64, err error) {
	if o.MemoryLimit == "" {
		if total := memTotal(); total > 0 {
			return o, total / 4, nil
		}
		return o, 1 << 30, nil
	}
	n, err := ParseBytes(o.MemoryLimit)
	if err != nil {
		return o, 0, fmt.Errorf("memory limit: %w", err)
	}
	duck = o
	duck.MemoryLimit = strconv.FormatInt(max(n/2>>10, 1), 10) + "KiB"
	return duck, n - n/2, nil
}
