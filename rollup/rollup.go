// Package rollup produces rollup files: the downsampled series of a run at one
// resolution, with per bucket the count, sum, min, max, first and last value and, for
// counters, the increase with resets handled. A rollup file holds one encoder series file
// per aggregate ("section"), whose series carry one point per bucket (ts = the bucket's
// start); so it is built on the series format's public Writer and Reader and compresses
// as series files do. See docs/format/rollup.md.
package rollup

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Kind is one aggregate of a bucket, the kind of one section of a rollup file.
type Kind uint8

// The aggregates. The numbers are the format's section kinds: never reuse one.
const (
	Count    Kind = 1 // points in the bucket, NaN values included
	Sum      Kind = 2 // sum of the non-NaN values, in ts order
	Min      Kind = 3 // smallest non-NaN value
	Max      Kind = 4 // largest non-NaN value
	First    Kind = 5 // non-NaN value with the smallest ts
	Last     Kind = 6 // non-NaN value with the largest ts
	Increase Kind = 7 // counters only: the rise over the bucket's non-NaN values, resets handled
)

var kindNames = [...]string{Count: "count", Sum: "sum", Min: "min", Max: "max", First: "first", Last: "last", Increase: "increase"}

// Kinds lists every kind in section order.
var Kinds = []Kind{Count, Sum, Min, Max, First, Last, Increase}

// IsValid reports whether k is a known kind.
func (k Kind) IsValid() bool { return int(k) < len(kindNames) && kindNames[k] != "" }

func (k Kind) String() string {
	if !k.IsValid() {
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
	return kindNames[k]
}

// Bucket is one resolution step of one series: the aggregates of its points with ts in
// [Start, Start+resolution). A bucket holds at least one point. When every value is NaN,
// Sum, Min, Max, First, Last and Increase are NaN.
type Bucket struct {
	Start    int64
	Count    uint64
	Sum      float64
	Min      float64
	Max      float64
	First    float64
	Last     float64
	Increase float64 // 0 for a series that is not a counter
}

// value returns the aggregate of kind k.
func (b *Bucket) value(k Kind) float64 {
	switch k {
	case Count:
		return float64(b.Count)
	case Sum:
		return b.Sum
	case Min:
		return b.Min
	case Max:
		return b.Max
	case First:
		return b.First
	case Last:
		return b.Last
	case Increase:
		return b.Increase
	}
	panic(fmt.Sprintf("BUG: rollup kind %d", k))
}

func (b *Bucket) set(k Kind, v float64) {
	switch k {
	case Count:
		b.Count = uint64(v)
	case Sum:
		b.Sum = v
	case Min:
		b.Min = v
	case Max:
		b.Max = v
	case First:
		b.First = v
	case Last:
		b.Last = v
	case Increase:
		b.Increase = v
	}
}

// BucketStart is the start of the epoch-aligned bucket of size res (ms) that holds ts.
func BucketStart(ts, res int64) int64 { return ts - ((ts%res)+res)%res }

// Aggregate appends to dst the buckets at resolution res (ms) of one series, whose ts
// strictly increase. For a counter, Increase adds, over each pair of consecutive non-NaN
// values inside a bucket, the difference, or the later value where it is smaller (a
// reset: the counter restarted from zero). The pair across a bucket's start belongs to
// neither bucket, so a bucket's increase does not depend on its neighbours (and so not
// on which run or compaction wrote it); First and Last let a reader add the rise
// between buckets.
func Aggregate(dst []Bucket, ts []int64, vals []float64, res int64, counter bool) []Bucket {
	var b *Bucket
	var prev float64
	seen := false // a non-NaN value is in b
	for i, t := range ts {
		start := BucketStart(t, res)
		if b == nil || b.Start != start {
			if b != nil && !seen {
				b.nanAll()
			}
			dst = append(dst, Bucket{Start: start})
			b = &dst[len(dst)-1]
			seen = false
		}
		b.Count++
		v := vals[i]
		if math.IsNaN(v) {
			continue
		}
		if !seen {
			b.Sum, b.Min, b.Max, b.First = v, v, v, v
			seen = true
		} else {
			b.Sum += v
			if v < b.Min {
				b.Min = v
			}
			if v > b.Max {
				b.Max = v
			}
			if counter {
				if v >= prev {
					b.Increase += v - prev
				} else {
					b.Increase += v
				}
			}
		}
		b.Last, prev = v, v
	}
	if b != nil && !seen {
		b.nanAll()
	}
	return dst
}

func (b *Bucket) nanAll() {
	nan := math.NaN()
	b.Sum, b.Min, b.Max, b.First, b.Last, b.Increase = nan, nan, nan, nan, nan, nan
}

// IsCounter reports whether a series with tags is a counter under counterTags: it
// carries one of them ("k:v"), or its Prometheus name (the tag __name__) ends in _total.
func IsCounter(tags, counterTags []string) bool {
	for _, t := range tags {
		if strings.HasPrefix(t, "__name__:") && strings.HasSuffix(t, "_total") {
			return true
		}
		for _, c := range counterTags {
			if t == c {
				return true
			}
		}
	}
	return false
}

// DefaultCounterTags mark counters when a config names none.
var DefaultCounterTags = []string{"type:counter"}

// ParseResolution parses a resolution such as 5m, 1h or 1d (days: d, weeks: w): a
// positive whole number of seconds.
func ParseResolution(s string) (time.Duration, error) {
	bad := fmt.Errorf("rollup resolution %q: want a positive whole number of seconds such as 5m, 1h or 1d", s)
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			k, err := strconv.Atoi(n)
			if err != nil || k <= 0 || k > 1<<20 {
				return 0, bad
			}
			return time.Duration(k) * unit, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d%time.Second != 0 {
		return 0, bad
	}
	return d, nil
}

// Name is the resolution's name in keys and views: 5m, 1h, 1d.
func Name(res int64) string {
	d := time.Duration(res) * time.Millisecond
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}
