package columnar

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DefaultSharedShards is the number of shared shards when no shard map is given.
const DefaultSharedShards = 64

// ShardMap assigns each org to a shard. Shards have names: "org-mod-N" for the shared
// shards (org_id mod Shared) and "org-X" for an org with a dedicated shard. An org with a
// dedicated shard of several parts is split by metric hash into "org-X-pK".
//
// A shard map is versioned; every segment records the version it was written with, so a
// changed map never silently re-routes old data (see docs/sink.md, "Shard map").
type ShardMap struct {
	Version   uint32               `yaml:"version"`
	Shared    uint32               `yaml:"shared"`
	Dedicated map[uint32]Dedicated `yaml:"dedicated"`
}

// Dedicated describes an org's own shard.
type Dedicated struct {
	// Parts splits the org by metric hash; 0 or 1 means one shard.
	Parts uint32 `yaml:"parts"`
}

// DefaultShardMap is version 1 with DefaultSharedShards shared shards.
func DefaultShardMap() *ShardMap { return &ShardMap{Version: 1, Shared: DefaultSharedShards} }

// LoadShardMap reads a YAML shard map.
func LoadShardMap(path string) (*ShardMap, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load shard map: %w", err)
	}
	var m ShardMap
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("load shard map %s: %w", path, err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("load shard map %s: %w", path, err)
	}
	return &m, nil
}

// Validate checks the map, naming the offending field.
func (m *ShardMap) Validate() error {
	if m.Version == 0 {
		return fmt.Errorf("shard map: version must be >= 1")
	}
	if m.Shared == 0 || m.Shared > 1<<16 {
		return fmt.Errorf("shard map: shared %d out of range [1, 65536]", m.Shared)
	}
	for org, d := range m.Dedicated {
		if d.Parts > 1024 {
			return fmt.Errorf("shard map: dedicated org %d parts %d is larger than max allowed 1024", org, d.Parts)
		}
	}
	return nil
}

// Shard returns the name of the shard that holds the points of (org, metric).
func (m *ShardMap) Shard(org uint32, metric uint64) string {
	if d, ok := m.Dedicated[org]; ok {
		if d.Parts > 1 {
			return fmt.Sprintf("org-%d-p%d", org, mix64(metric)%uint64(d.Parts))
		}
		return "org-" + strconv.FormatUint(uint64(org), 10)
	}
	return "org-mod-" + strconv.FormatUint(uint64(org%m.Shared), 10)
}

// Shards lists every shard name the map can produce, in sorted order.
func (m *ShardMap) Shards() []string {
	var out []string
	for i := uint32(0); i < m.Shared; i++ {
		out = append(out, "org-mod-"+strconv.FormatUint(uint64(i), 10))
	}
	for org, d := range m.Dedicated {
		if d.Parts > 1 {
			for p := uint32(0); p < d.Parts; p++ {
				out = append(out, fmt.Sprintf("org-%d-p%d", org, p))
			}
		} else {
			out = append(out, "org-"+strconv.FormatUint(uint64(org), 10))
		}
	}
	sort.Strings(out)
	return out
}

// NormalizeShard accepts a shard name or a bare shared-shard number ("5" means
// "org-mod-5") and returns the canonical name.
func NormalizeShard(s string) (string, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return "org-mod-" + strconv.FormatUint(n, 10), nil
	}
	if !validShardName(s) {
		return "", fmt.Errorf("invalid shard %q: want a number, org-mod-N, org-X or org-X-pK", s)
	}
	return s, nil
}

func validShardName(s string) bool {
	if s == "" || len(s) > 64 || !strings.HasPrefix(s, "org-") {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// mix64 is a stable 64-bit finalizer (SplitMix64), used to split a large org by metric.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
