package main

import (
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/run"
)

// Flag checks live here, in one place: a value out of range is a usage error (exit 2)
// that names the flag and the range, before the command does any work. The packages
// default a zero or negative count to something, which is right for a library and wrong
// for a command line: "--parallel 0" is a slip, not a wish for the default.

// intLimit is the smallest value an integer flag takes, and what the flag counts.
type intLimit struct {
	flag string
	min  int64
	what string
}

// intLimits are the integer flags of each command that have a lower bound.
var intLimits = map[string][]intLimit{
	"run": {
		{"parallel", 1, "shard runs at once"}, {"readers", 1, "byte ranges decoded at once per run"},
		{"split-bytes", 1, "bytes per reader's range"}, {"part-bytes", 1, "bytes per series file"},
		{"threads", 0, "DuckDB threads per run, 0 for the default"},
	},
	"sink": {
		{"flush-payloads", 1, "payloads per segment"}, {"flush-bytes", 1, "bytes per segment"},
		{"buffer-bytes", 1 << 20, "bytes of segment buffers"}, {"uploads", 1, "uploads at once"},
	},
	"import": {{"flush-payloads", 1, "records per segment"}, {"flush-bytes", 1, "bytes per segment"}, {"partition", 0, "pseudo-partition"}},
	"demo": {
		{"parallel", 1, "shard runs at once"}, {"series", 1, "series"}, {"points-per-series", 1, "points per series"},
		{"points-per-payload", 1, "points per payload"}, {"partitions", 1, "Kafka partitions"},
		{"flush-payloads", 1, "payloads per segment"}, {"malformed", 0, "malformed records"},
	},
	"loadtest": {{"parallel", 1, "shard runs at once"}, {"scale", 2, "the second run's multiple of the first"}, {"base-series", 1, "series at scale 1"}},
	"diff":     {{"top", 0, "metrics listed"}},
	"validate": {{"top", 0, "metrics per org"}},
	"inspect":  {{"max-series", 0, "series listed, 0 for all"}},
	"verify":   {{"readers", 1, "byte ranges decoded at once per deep run"}},
	"compact":  {{"parallel", 1, "shards compacted at once"}, {"part-bytes", 1, "bytes per series file"}},
}

// checkFlagLimits checks the integer flags of cmd against intLimits.
func checkFlagLimits(cmd *cobra.Command) error {
	for _, l := range intLimits[cmd.Name()] {
		f := cmd.Flags().Lookup(l.flag)
		if f == nil {
			return fmt.Errorf("BUG: %s has no flag --%s to check", cmd.Name(), l.flag)
		}
		if !f.Changed {
			// A default below the range means "chosen at run time" (run --parallel 0:
			// from the machine); only what the user typed can be a slip.
			continue
		}
		v, err := strconv.ParseInt(f.Value.String(), 10, 64)
		if err != nil {
			return fmt.Errorf("BUG: --%s is not an integer flag: %w", l.flag, err)
		}
		if v < l.min {
			return usageErrorf("--%s %d is out of range: want %d or more (%s)", l.flag, v, l.min, l.what)
		}
	}
	return nil
}

// checkShard returns the canonical name of the shard a flag names, or a usage error
// when the shard map cannot produce it (org-mod-99 with 64 shared shards): such a run
// would find no data and exit 0, which hides the slip.
func checkShard(flag, s string, m *columnar.ShardMap) (string, error) {
	name, err := columnar.NormalizeShard(s)
	if err != nil {
		return "", usageErrorf("%s: %w", flag, err)
	}
	shards := m.Shards()
	if _, ok := slices.BinarySearch(shards, name); ok {
		return name, nil
	}
	return "", usageErrorf("%s %s is out of range: the shard map has %s (give the map the sink used with --shard-map)", flag, name, describeShards(m))
}

// describeShards names the shards of m, as ranges where it can.
func describeShards(m *columnar.ShardMap) string {
	d := fmt.Sprintf("%d shared shards, org-mod-0 to org-mod-%d", m.Shared, m.Shared-1)
	var orgs []uint32
	for org := range m.Dedicated {
		orgs = append(orgs, org)
	}
	slices.Sort(orgs)
	var ded []string
	for i, org := range orgs {
		if i == 8 {
			ded = append(ded, fmt.Sprintf("and %d more", len(orgs)-i))
			break
		}
		if p := m.Dedicated[org].Parts; p > 1 {
			ded = append(ded, fmt.Sprintf("org-%d-p0 to org-%d-p%d", org, org, p-1))
		} else {
			ded = append(ded, fmt.Sprintf("org-%d", org))
		}
	}
	if len(ded) == 0 {
		return d + ", and no dedicated shards"
	}
	return d + ", and dedicated shards " + strings.Join(ded, ", ")
}

// memoryLimit resolves --memory-limit to one run's limit (run.ParseMemoryLimit: a size
// per run, or a share of this process's memory for all runs together), "" keeping the
// default. A limit that adds up to more than the machine or the container can give is
// allowed, since the user may know better, but it is warned about, naming both figures.
func memoryLimit(log *slog.Logger, s string, parallel int) (string, error) {
	avail := run.AvailableMemory()
	if s == "" {
		return run.DefaultMemoryLimit(parallel), nil
	}
	limit, err := run.ParseMemoryLimit(s, parallel, avail)
	if err != nil {
		return "", usageErrorf("--memory-limit: %w", err)
	}
	n, err := run.ParseBytes(limit)
	if err != nil {
		return "", fmt.Errorf("BUG: memory limit %q: %w", limit, err)
	}
	if total := n * int64(max(parallel, 1)); avail.Bytes > 0 && total > avail.Bytes {
		log.Warn(fmt.Sprintf("--memory-limit %s: %s per run × --parallel %d = %s is more than the %s of %s (%s); the runs may be killed for lack of memory",
			s, run.FormatBytes(n), max(parallel, 1), run.FormatBytes(total), run.FormatBytes(avail.Bytes), memoryPlace(avail), avail.Source),
			"memory_limit_bytes", total, "available_bytes", avail.Bytes)
	}
	return limit, nil
}

// memoryPlace names what the available memory is, for messages.
func memoryPlace(m run.Memory) string {
	if strings.HasPrefix(m.Source, "cgroup") {
		return "this container's memory limit"
	}
	return "this machine's memory"
}
