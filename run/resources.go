package run

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
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

// DefaultMemoryLimit is a run's memory limit when the user sets none: 60% of the
// memory this process may use (AvailableMemory: the container's cgroup limit, else
// physical RAM), split between parallel runs. It leaves the rest to the Go side (reader
// buffers, the encoder's part buffer) and to DuckDB's allocations outside its limit.
// "" if unknown.
func DefaultMemoryLimit(parallel int) string {
	limit, err := ParseMemoryLimit("60%", parallel, AvailableMemory())
	if err != nil {
		return ""
	}
	return limit
}

// Memory is how much memory this process may use, and where that figure comes from.
type Memory struct {
	// Bytes is 0 when no source could be read.
	Bytes int64
	// Source names the figure: "physical RAM in /proc/meminfo", or the cgroup file that
	// limits it, e.g. "cgroup v2 memory.max in /sys/fs/cgroup/memory.max".
	Source string
}

func (m Memory) String() string {
	if m.Bytes <= 0 {
		return "unknown"
	}
	return FormatBytes(m.Bytes) + " (" + m.Source + ")"
}

// AvailableMemory is the smaller of physical RAM and the memory limit of this process's
// cgroup (v2 memory.max or v1 memory.limit_in_bytes, of its own cgroup and of every
// parent up to the root), so that inside a container it is the container's limit.
func AvailableMemory() Memory { return availableMemory("/") }

// availableMemory reads the files below root ("/" but in tests).
func availableMemory(root string) Memory {
	var m Memory
	take := func(n int64, source string) {
		if n > 0 && (m.Bytes == 0 || n < m.Bytes) {
			m = Memory{Bytes: n, Source: source}
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "proc/meminfo")); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				take(kb*1024, "physical RAM in /proc/meminfo")
				break
			}
		}
	}
	for _, f := range cgroupLimitFiles(root) {
		b, err := os.ReadFile(filepath.Join(root, f.path))
		if err != nil {
			continue
		}
		// "max" (v2) and a huge page-rounded number (v1, 2^63 rounded down) both mean
		// no limit: neither parses as a limit below physical RAM.
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			take(n, f.version+" "+filepath.Base(f.path)+" in /"+f.path)
		}
	}
	return m
}

type cgroupFile struct{ version, path string }

// cgroupLimitFiles lists the memory limit files that bound this process, relative to
// root: for cgroup v2 the memory.max of its cgroup and of each parent, for v1 the
// memory.limit_in_bytes of its memory cgroup and parents (cgroupDirs).
func cgroupLimitFiles(root string) []cgroupFile {
	var out []cgroupFile
	for _, d := range cgroupDirs(root, "memory") {
		name := "memory.max"
		if d.version == "cgroup v1" {
			name = "memory.limit_in_bytes"
		}
		out = append(out, cgroupFile{d.version, path.Join(d.path, name)})
	}
	return out
}

// cgroupDirs lists the cgroup directories that bound this process for a controller,
// relative to root, innermost first: for cgroup v2 its cgroup (from /proc/self/cgroup's
// "0::" line) and each parent, under /sys/fs/cgroup and /sys/fs/cgroup/unified (hybrid
// hosts); for v1 its cgroup of that controller and each parent, under
// /sys/fs/cgroup/<controller> (for "cpu" also /sys/fs/cgroup/cpu,cpuacct, where some
// hosts mount it). In a container with its own cgroup namespace the process's cgroup is
// "/", so the directories at the mount's top are the container's.
func cgroupDirs(root, controller string) []cgroupFile {
	var out []cgroupFile
	add := func(version, mount, cg string) {
		cg = path.Clean("/" + cg)
		for {
			out = append(out, cgroupFile{version, strings.TrimPrefix(path.Join(mount, cg), "/")})
			if cg == "/" {
				return
			}
			cg = path.Dir(cg)
		}
	}
	v2, v1 := "/", "/"
	if b, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			parts := strings.SplitN(line, ":", 3)
			if len(parts) != 3 {
				continue
			}
			switch {
			case parts[0] == "0" && parts[1] == "":
				v2 = parts[2]
			case slices.Contains(strings.Split(parts[1], ","), controller):
				v1 = parts[2]
			}
		}
	}
	add("cgroup v2", "/sys/fs/cgroup", v2)
	add("cgroup v2", "/sys/fs/cgroup/unified", v2) // hybrid hierarchies
	add("cgroup v1", "/sys/fs/cgroup/"+controller, v1)
	if controller == "cpu" {
		add("cgroup v1", "/sys/fs/cgroup/cpu,cpuacct", v1)
	}
	return out
}

// CPU is how many processors this process may use, and where that figure comes from.
type CPU struct {
	// Count may be fractional: a cgroup quota of 1.5 CPUs' time is 1.5.
	Count float64
	// Source names the figure: "the processors this process may run on", or the cgroup
	// file that limits it, e.g. "cgroup v2 cpu.max in /sys/fs/cgroup/cpu.max".
	Source string
}

// Cores is Count rounded up: the goroutines and threads worth running at once.
func (c CPU) Cores() int { return max(1, int(math.Ceil(c.Count-1e-9))) }

func (c CPU) String() string {
	return strconv.FormatFloat(c.Count, 'f', -1, 64) + " CPUs (" + c.Source + ")"
}

// AvailableCPU is the smaller of the processors this process may run on (its affinity,
// runtime.NumCPU, and GOMAXPROCS when set lower) and the CPU quota of its cgroup (v2
// cpu.max, or v1 cpu.cfs_quota_us over cpu.cfs_period_us, of its own cgroup and of every
// parent), so that inside a container limited to 2 CPUs it is 2 whatever the host has.
func AvailableCPU() CPU { return availableCPU("/", min(runtime.NumCPU(), runtime.GOMAXPROCS(0))) }

// availableCPU reads the files below root ("/" but in tests); procs is what the
// scheduler allows.
func availableCPU(root string, procs int) CPU {
	c := CPU{Count: float64(max(procs, 1)), Source: "the processors this process may run on"}
	take := func(quota, period float64, source string) {
		if quota > 0 && period > 0 && quota/period < c.Count {
			c = CPU{Count: quota / period, Source: source}
		}
	}
	for _, d := range cgroupDirs(root, "cpu") {
		if d.version == "cgroup v2" {
			f := path.Join(d.path, "cpu.max")
			b, err := os.ReadFile(filepath.Join(root, f))
			if err != nil {
				continue
			}
			// "max 100000" is no limit; "150000 100000" is 1.5 CPUs.
			if q, p, ok := strings.Cut(strings.TrimSpace(string(b)), " "); ok {
				quota, err1 := strconv.ParseFloat(q, 64)
				period, err2 := strconv.ParseFloat(p, 64)
				if err1 == nil && err2 == nil {
					take(quota, period, d.version+" cpu.max in /"+f)
				}
			}
			continue
		}
		qf, pf := path.Join(d.path, "cpu.cfs_quota_us"), path.Join(d.path, "cpu.cfs_period_us")
		qb, err1 := os.ReadFile(filepath.Join(root, qf))
		pb, err2 := os.ReadFile(filepath.Join(root, pf))
		if err1 != nil || err2 != nil {
			continue
		}
		// A quota of -1 is no limit, and fails take's quota > 0.
		quota, err1 := strconv.ParseFloat(strings.TrimSpace(string(qb)), 64)
		period, err2 := strconv.ParseFloat(strings.TrimSpace(string(pb)), 64)
		if err1 == nil && err2 == nil {
			take(quota, period, d.version+" cpu.cfs_quota_us / cpu.cfs_period_us in /"+qf)
		}
	}
	return c
}

// minRunMemory is the least memory a run is given when the defaults choose how many run
// at once: below it DuckDB's threads and the readers' buffers take most of a run's limit.
const minRunMemory = 512 << 20

// Sizing is how a run --all uses the machine: runs at once, readers per run and DuckDB
// threads per run, with the processors and memory they were chosen from.
type Sizing struct {
	Parallel int    `json:"parallel"`
	Readers  int    `json:"readers"`
	Threads  int    `json:"threads"`
	CPU      CPU    `json:"-"`
	Memory   Memory `json:"-"`
	// Chosen names the figures the defaults chose (those not set by the caller).
	Chosen []string `json:"chosen,omitempty"`
}

// ChooseSizing fills in the counts left at 0 from the machine. A run decodes with its
// readers and sorts with DuckDB's threads, but merges and encodes its series on one
// goroutine, which is most of its CPU, so the cores are kept busy by runs side by side:
// as many runs as cores (fewer when 60% of the memory split between them would leave a
// run less than minRunMemory), and each run the cores left to it for reading and
// sorting. More runs than cores measured no faster on make bench-run; more DuckDB
// threads than cores measured slower (docs/run.md, "Sizing").
func ChooseSizing(parallel, readers, threads int, cpu CPU, mem Memory) Sizing {
	s := Sizing{Parallel: parallel, Readers: readers, Threads: threads, CPU: cpu, Memory: mem}
	cores := cpu.Cores()
	if s.Parallel <= 0 {
		s.Parallel = cores
		if mem.Bytes > 0 {
			s.Parallel = max(1, min(s.Parallel, int(mem.Bytes*6/10/minRunMemory)))
		}
		s.Chosen = append(s.Chosen, "parallel")
	}
	per := max(1, cores/s.Parallel)
	if s.Readers <= 0 {
		s.Readers = per
		s.Chosen = append(s.Chosen, "readers")
	}
	if s.Threads <= 0 {
		s.Threads = per
		s.Chosen = append(s.Chosen, "threads")
	}
	return s
}

// memTotal is the memory this process may use in bytes; 0 if unknown.
func memTotal() int64 { return AvailableMemory().Bytes }

// ParseMemoryLimit reads a --memory-limit value into the size string of one run's limit
// (Options.MemoryLimit): a size as ParseBytes takes it, which is per run, or a share of
// avail such as 60%, which is for all parallel runs together and split between them.
func ParseMemoryLimit(s string, parallel int, avail Memory) (string, error) {
	t := strings.TrimSpace(s)
	pct, ok := strings.CutSuffix(t, "%")
	if !ok {
		if _, err := ParseBytes(t); err != nil {
			return "", err
		}
		return t, nil
	}
	p, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
	if err != nil || !(p > 0 && p <= 100) {
		return "", fmt.Errorf("share %q: want a percentage of memory in (0%%, 100%%], such as 60%%", s)
	}
	if avail.Bytes <= 0 {
		return "", fmt.Errorf("share %q: this machine's memory is unknown; give a size such as 4GiB", s)
	}
	per := int64(float64(avail.Bytes) * p / 100 / float64(max(parallel, 1)))
	return strconv.FormatInt(max(per>>20, 64), 10) + "MiB", nil
}

// FormatBytes prints n in binary units with one decimal, e.g. 15.6 GiB.
func FormatBytes(n int64) string {
	const unit = 1 << 10
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTP"[exp]) + "iB"
}

// ParseBytes reads a size: a number and a unit, in any case and with or without a
// space. B is bytes; K, M, G and T, alone or followed by B, are powers of 1000 (as in
// DuckDB's memory_limit and Kubernetes' quantities); Ki, Mi, Gi and Ti, alone or
// followed by B, are powers of 1024. A bare number is refused: "4" is more likely a
// slip for 4 GB than four bytes.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.LastIndexAny(t, "0123456789.") + 1
	num, unit := strings.TrimSpace(t[:i]), strings.ToLower(strings.TrimSpace(t[i:]))
	if u, ok := strings.CutSuffix(unit, "b"); ok && u != "" {
		unit = u
	}
	mult := map[string]float64{
		"b": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12,
		"ki": 1 << 10, "mi": 1 << 20, "gi": 1 << 30, "ti": 1 << 40,
	}[unit]
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || mult == 0 || v <= 0 || v*mult >= math.MaxInt64 || v*mult < 1 {
		return 0, fmt.Errorf("size %q: want a positive number and a unit, such as 4GB, 4G, 4GiB, 4Gi or 512MiB", s)
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
