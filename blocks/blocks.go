// Package blocks writes and reads Prometheus TSDB blocks: the format of Prometheus'
// own storage and of the buckets of Thanos and Mimir. Export writes series files as
// standard, compacted blocks for PromQL; Open reads a directory or a bucket prefix of
// blocks as legacy data for diff and validate, mapping each series to Tailor's
// (org, metric, context) by the remote-write rule and de-duplicating overlapping
// blocks as Thanos does.
//
// Only Prometheus' small format packages are used (tsdb/index, tsdb/chunks,
// tsdb/chunkenc, tsdb/tombstones, model/labels), never the tsdb package itself,
// which pulls in every service-discovery SDK. See docs/prometheus.md.
package blocks

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// File names inside a block directory (Prometheus tsdb/block.go).
const (
	metaFile       = "meta.json"
	indexFile      = "index"
	chunksDir      = "chunks"
	tombstonesFile = "tombstones"
	// deletionMarkFile marks a block that a Thanos or Mimir compactor is deleting:
	// readers skip it (Thanos pkg/block/metadata/markers.go).
	deletionMarkFile = "deletion-mark.json"
)

// DefaultBlockDuration is the range of an exported block: Prometheus' smallest block
// range, what Prometheus, Thanos sidecars and Mimir's block-builder all write; their
// compactors merge such blocks into larger ones.
const DefaultBlockDuration = 2 * time.Hour

// Meta is a block's meta.json: Prometheus' BlockMeta (tsdb/block.go) with Thanos'
// extension (pkg/block/metadata), which Mimir reads too.
type Meta struct {
	ULID       string     `json:"ulid"`
	MinTime    int64      `json:"minTime"`
	MaxTime    int64      `json:"maxTime"`
	Stats      Stats      `json:"stats,omitempty"`
	Compaction Compaction `json:"compaction"`
	Version    int        `json:"version"`
	Thanos     *Thanos    `json:"thanos,omitempty"`
}

// Stats are a block's counts.
type Stats struct {
	NumSamples          uint64 `json:"numSamples,omitempty"`
	NumFloatSamples     uint64 `json:"numFloatSamples,omitempty"`
	NumHistogramSamples uint64 `json:"numHistogramSamples,omitempty"`
	NumSeries           uint64 `json:"numSeries,omitempty"`
	NumChunks           uint64 `json:"numChunks,omitempty"`
	NumTombstones       uint64 `json:"numTombstones,omitempty"`
}

// Compaction says how a block was made.
type Compaction struct {
	Level   int      `json:"level"`
	Sources []string `json:"sources,omitempty"`
}

// Thanos is the "thanos" section of meta.json.
type Thanos struct {
	Version    int               `json:"version,omitempty"`
	Labels     map[string]string `json:"labels"`
	Downsample struct {
		Resolution int64 `json:"resolution"`
	} `json:"downsample"`
	Source string `json:"source,omitempty"`
}

// metaVersion is the meta.json version Prometheus writes (tsdb/block.go metaVersion1).
const metaVersion = 1

func parseMeta(b []byte) (*Meta, error) {
	var m Meta
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	if m.Version != metaVersion {
		return nil, fmt.Errorf("meta.json version %d, want %d", m.Version, metaVersion)
	}
	if _, err := parseULID(m.ULID); err != nil {
		return nil, fmt.Errorf("meta.json ulid %q: %w", m.ULID, err)
	}
	if m.MaxTime < m.MinTime {
		return nil, fmt.Errorf("meta.json maxTime %d before minTime %d", m.MaxTime, m.MinTime)
	}
	return &m, nil
}

// A ULID (github.com/ulid/spec) names every block: 48 bits of Unix milliseconds and 80
// bits of entropy, in Crockford's base32, 26 characters. Written here (30 lines) rather
// than imported, to keep the product's dependencies to those in docs.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// makeULID returns the ULID of ms and entropy (10 bytes; nil draws random ones).
func makeULID(ms int64, entropy []byte) string {
	var id [16]byte
	if ms < 0 {
		ms = 0
	}
	binary.BigEndian.PutUint64(id[:8], uint64(ms)<<16)
	if entropy == nil {
		rand.Read(id[6:])
	} else {
		copy(id[6:], entropy)
	}
	// 128 bits as 26 base32 digits: the first digit holds the top 3 bits.
	hi, lo := binary.BigEndian.Uint64(id[:8]), binary.BigEndian.Uint64(id[8:])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// parseULID checks s is a ULID and returns its time in Unix ms.
func parseULID(s string) (int64, error) {
	if len(s) != 26 {
		return 0, errors.New("not 26 characters")
	}
	if s[0] > '7' {
		return 0, errors.New("overflows 128 bits")
	}
	var hi, lo uint64
	for i := 0; i < 26; i++ {
		d := strings.IndexByte(crockford, upper(s[i]))
		if d < 0 {
			return 0, fmt.Errorf("invalid character %q", s[i])
		}
		hi = hi<<5 | lo>>59
		lo = lo<<5 | uint64(d)
	}
	return int64(hi >> 16), nil
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// IsULID reports whether s is a well-formed ULID (a block directory name).
func IsULID(s string) bool {
	_, err := parseULID(s)
	return err == nil
}
