package run

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/query"
)

func TestParseBytesAndRunMemory(t *testing.T) {
	for s, want := range map[string]int64{"4GB": 4e9, "512MiB": 512 << 20, " 1.5 gib ": 3 << 29, "100b": 100, "2TB": 2e12} {
		if got, err := ParseBytes(s); err != nil || got != want {
			t.Fatalf("ParseBytes(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "GB", "4", "4XB", "-1GB", "0MB", "1e30TB"} {
		if _, err := ParseBytes(s); err == nil {
			t.Fatalf("ParseBytes(%q) accepted", s)
		}
	}
	duck, points, err := RunMemory(query.Options{MemoryLimit: "64MiB", Threads: 3})
	if err != nil || duck.MemoryLimit != "32768KiB" || duck.Threads != 3 || points != 32<<20 {
		t.Fatalf("RunMemory(64MiB) = %+v, %d, %v", duck, points, err)
	}
	if _, _, err := RunMemory(query.Options{MemoryLimit: "lots"}); err == nil {
		t.Fatal("RunMemory accepted a bad limit")
	}
}

func TestParseBytesUnits(t *testing.T) {
	for s, want := range map[string]int64{
		"4Gi": 4 << 30, "4GiB": 4 << 30, "4G": 4e9, "4gb": 4e9, "4 g": 4e9, "512Mi": 512 << 20,
		"1K": 1000, "1Ki": 1024, "2T": 2e12, "1Ti": 1 << 40, "7B": 7, "7b": 7,
	} {
		if got, err := ParseBytes(s); err != nil || got != want {
			t.Fatalf("ParseBytes(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"4Gx", "4iB", "4i", "0.5B", "4%", "Gi"} {
		if _, err := ParseBytes(s); err == nil {
			t.Fatalf("ParseBytes(%q) accepted", s)
		}
	}
}

func TestParseMemoryLimit(t *testing.T) {
	avail := Memory{Bytes: 10 << 30, Source: "test"}
	f := func(s string, parallel int, want string) {
		t.Helper()
		got, err := ParseMemoryLimit(s, parallel, avail)
		if err != nil || got != want {
			t.Fatalf("ParseMemoryLimit(%q, %d) = %q, %v; want %q", s, parallel, got, err, want)
		}
	}
	f("4Gi", 3, "4Gi") // a size is per run, whatever the parallelism
	f(" 4GB ", 1, "4GB")
	f("60%", 1, "6144MiB") // a share is of all the memory, split over the runs
	f("60%", 2, "3072MiB")
	f("100%", 4, "2560MiB")
	f("12.5 %", 1, "1280MiB")
	for _, s := range []string{"0%", "101%", "-5%", "x%", "%", "lots"} {
		if _, err := ParseMemoryLimit(s, 1, avail); err == nil {
			t.Fatalf("ParseMemoryLimit(%q) accepted", s)
		}
	}
	if _, err := ParseMemoryLimit("60%", 1, Memory{}); err == nil || !strings.Contains(err.Error(), "unknown") {
		t.Fatalf("a share of unknown memory: %v", err)
	}
}

// writeTree creates files (path → content) below a new temp dir and returns it.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestAvailableMemoryReadsCgroups(t *testing.T) {
	const meminfo = "MemTotal:       16384000 kB\nMemFree: 1 kB\n"
	ram := int64(16384000) * 1024
	for _, tc := range []struct {
		name   string
		files  map[string]string
		bytes  int64
		source string
	}{
		{"no cgroup", map[string]string{"proc/meminfo": meminfo}, ram, "physical RAM in /proc/meminfo"},
		{"v2 container", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "2147483648\n"},
			2 << 30, "cgroup v2 memory.max in /sys/fs/cgroup/memory.max"},
		{"v2 unlimited", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "max\n"},
			ram, "physical RAM in /proc/meminfo"},
		{"v2 parent limits", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "0::/kubepods/pod1/c1\n",
			"sys/fs/cgroup/kubepods/pod1/c1/memory.max": "max\n", "sys/fs/cgroup/kubepods/pod1/memory.max": "1073741824\n"},
			1 << 30, "cgroup v2 memory.max in /sys/fs/cgroup/kubepods/pod1/memory.max"},
		{"v1 container", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "5:cpu:/\n4:memory:/docker/abc\n0::/\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "536870912\n"},
			512 << 20, "cgroup v1 memory.limit_in_bytes in /sys/fs/cgroup/memory/memory.limit_in_bytes"},
		{"v1 unlimited", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "4:memory:/\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"},
			ram, "physical RAM in /proc/meminfo"},
		{"v1 own cgroup", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "4:cpuacct,memory:/job/7\n",
			"sys/fs/cgroup/memory/job/7/memory.limit_in_bytes": "3221225472\n", "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"},
			3 << 30, "cgroup v1 memory.limit_in_bytes in /sys/fs/cgroup/memory/job/7/memory.limit_in_bytes"},
		{"nothing", map[string]string{}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := availableMemory(writeTree(t, tc.files))
			if m.Bytes != tc.bytes || m.Source != tc.source {
				t.Fatalf("availableMemory = %d %q, want %d %q", m.Bytes, m.Source, tc.bytes, tc.source)
			}
		})
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{100: "100 B", 2048: "2.0 KiB", 3 << 29: "1.5 GiB", 16384000 * 1024: "15.6 GiB"} {
		if got := FormatBytes(n); got != want {
			t.Fatalf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestAvailableCPUReadsCgroups(t *testing.T) {
	const own = "the processors this process may run on"
	for _, tc := range []struct {
		name   string
		procs  int
		files  map[string]string
		count  float64
		source string
	}{
		{"no cgroup", 8, map[string]string{}, 8, own},
		{"v2 container", 8, map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "200000 100000\n"},
			2, "cgroup v2 cpu.max in /sys/fs/cgroup/cpu.max"},
		{"v2 fraction", 8, map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "150000 100000\n"},
			1.5, "cgroup v2 cpu.max in /sys/fs/cgroup/cpu.max"},
		{"v2 unlimited", 4, map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "max 100000\n"}, 4, own},
		{"v2 quota above the processors", 2, map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "800000 100000\n"}, 2, own},
		{"v2 parent limits", 16, map[string]string{"proc/self/cgroup": "0::/kubepods/pod1/c1\n",
			"sys/fs/cgroup/kubepods/pod1/c1/cpu.max": "max 100000\n", "sys/fs/cgroup/kubepods/pod1/cpu.max": "400000 100000\n"},
			4, "cgroup v2 cpu.max in /sys/fs/cgroup/kubepods/pod1/cpu.max"},
		{"v1 container", 8, map[string]string{"proc/self/cgroup": "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n",
			"sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "300000\n", "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"},
			3, "cgroup v1 cpu.cfs_quota_us / cpu.cfs_period_us in /sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us"},
		{"v1 unlimited", 8, map[string]string{"proc/self/cgroup": "5:cpu:/\n",
			"sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n", "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n"}, 8, own},
		{"malformed", 8, map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "lots\n"}, 8, own},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := availableCPU(writeTree(t, tc.files), tc.procs)
			if c.Count != tc.count || c.Source != tc.source {
				t.Fatalf("availableCPU = %v %q, want %v %q", c.Count, c.Source, tc.count, tc.source)
			}
		})
	}
	if c := (CPU{Count: 1.5}); c.Cores() != 2 {
		t.Fatalf("1.5 CPUs: %d cores, want 2", c.Cores())
	}
	if c := (CPU{Count: 0.5}); c.Cores() != 1 {
		t.Fatalf("0.5 CPUs: %d cores, want 1", c.Cores())
	}
}

func TestChooseSizing(t *testing.T) {
	gib := func(n float64) Memory { return Memory{Bytes: int64(n * (1 << 30)), Source: "test"} }
	f := func(parallel, readers, threads int, cpus float64, mem Memory, want Sizing) {
		t.Helper()
		got := ChooseSizing(parallel, readers, threads, CPU{Count: cpus, Source: "test"}, mem)
		if got.Parallel != want.Parallel || got.Readers != want.Readers || got.Threads != want.Threads || !slices.Equal(got.Chosen, want.Chosen) {
			t.Fatalf("ChooseSizing(%d, %d, %d, %v CPUs, %d bytes) = %d/%d/%d chosen %v, want %d/%d/%d chosen %v", parallel, readers, threads, cpus, mem.Bytes,
				got.Parallel, got.Readers, got.Threads, got.Chosen, want.Parallel, want.Readers, want.Threads, want.Chosen)
		}
	}
	all := []string{"parallel", "readers", "threads"}
	f(0, 0, 0, 2, gib(24), Sizing{Parallel: 2, Readers: 1, Threads: 1, Chosen: all})
	f(0, 0, 0, 16, gib(64), Sizing{Parallel: 16, Readers: 1, Threads: 1, Chosen: all})
	f(0, 0, 0, 1.5, gib(8), Sizing{Parallel: 2, Readers: 1, Threads: 1, Chosen: all})
	// 60% of 2 GiB leaves room for two runs of 512 MiB, not 8.
	f(0, 0, 0, 8, gib(2), Sizing{Parallel: 2, Readers: 4, Threads: 4, Chosen: all})
	f(0, 0, 0, 4, gib(0.5), Sizing{Parallel: 1, Readers: 4, Threads: 4, Chosen: all})
	f(0, 0, 0, 4, Memory{}, Sizing{Parallel: 4, Readers: 1, Threads: 1, Chosen: all})
	// What the caller set stays; the rest follows from it.
	f(1, 0, 0, 8, gib(24), Sizing{Parallel: 1, Readers: 8, Threads: 8, Chosen: []string{"readers", "threads"}})
	f(3, 0, 2, 8, gib(24), Sizing{Parallel: 3, Readers: 2, Threads: 2, Chosen: []string{"readers"}})
	f(16, 4, 1, 2, gib(24), Sizing{Parallel: 16, Readers: 4, Threads: 1})
}
