package storage

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// Range is a byte range [Off, Off+Len) of an object.
type Range struct {
	Off, Len int64
}

// End returns one past the range's last byte.
func (r Range) End() int64 { return r.Off + r.Len }

// RangeGroup is one request that serves several ranges: the span from the first range's
// start to the last range's end, gaps included.
type RangeGroup struct {
	Range
	// Members are indexes into the ranges passed to CoalesceRanges.
	Members []int
}

// MaxCoalescedRequest caps the span of one coalesced request, so that a long run of
// neighbouring ranges still becomes several requests that can be fetched in parallel.
// 8 MiB is in the range of part sizes S3 serves at full speed per connection.
const MaxCoalescedRequest = 8 << 20

// rangeReadConcurrency is how many coalesced requests ReadRanges has in flight.
const rangeReadConcurrency = 4

// CoalesceRanges plans requests for ranges: ranges sorted by offset are merged into one
// group while the gap between the group's end and the next range is at most maxGap bytes
// and the group spans at most maxRequest bytes (maxRequest ≤ 0 means
// MaxCoalescedRequest). A single range longer than maxRequest is a group of its own.
// Overlapping ranges are allowed. Empty ranges are kept and cost nothing.
func CoalesceRanges(ranges []Range, maxGap, maxRequest int64) []RangeGroup {
	if maxRequest <= 0 {
		maxRequest = MaxCoalescedRequest
	}
	order := make([]int, 0, len(ranges))
	for i := range ranges {
		order = append(order, i)
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch ra, rb := ranges[a], ranges[b]; {
		case ra.Off < rb.Off:
			return -1
		case ra.Off > rb.Off:
			return 1
		}
		return 0
	})
	var groups []RangeGroup
	for _, i := range order {
		r := ranges[i]
		if n := len(groups); n > 0 {
			g := &groups[n-1]
			end := max(g.End(), r.End())
			if r.Off-g.End() <= maxGap && end-g.Off <= maxRequest {
				g.Len = end - g.Off
				g.Members = append(g.Members, i)
				continue
			}
		}
		groups = append(groups, RangeGroup{Range: r, Members: []int{i}})
	}
	return groups
}

// ReadRanges reads ranges of key and returns their bytes, out[i] for ranges[i].
// Neighbouring ranges (gap ≤ maxGap) are fetched with one ranged GET (see
// CoalesceRanges), and up to 4 requests run at once. The slices of one request share a
// buffer. A range that reaches past the end of the object is an error: callers plan
// ranges from footers that name exact sizes.
func ReadRanges(ctx context.Context, s Store, key string, ranges []Range, maxGap int64) ([][]byte, error) {
	for i, r := range ranges {
		if r.Off < 0 || r.Len < 0 {
			return nil, fmt.Errorf("read ranges %s: range %d [%d, +%d) is negative", key, i, r.Off, r.Len)
		}
	}
	groups := CoalesceRanges(ranges, maxGap, 0)
	out := make([][]byte, len(ranges))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg   sync.WaitGroup
		once sync.Once
		ferr error
		sem  = make(chan struct{}, rangeReadConcurrency)
	)
	for _, g := range groups {
		if g.Len == 0 {
			for _, i := range g.Members {
				out[i] = []byte{}
			}
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			buf, err := ReadRange(ctx, s, key, g.Off, g.Len, nil)
			if err != nil {
				once.Do(func() { ferr = err; cancel(err) })
				return
			}
			for _, i := range g.Members {
				r := ranges[i]
				out[i] = buf[r.Off-g.Off : r.End()-g.Off : r.End()-g.Off]
			}
		}()
	}
	wg.Wait()
	if ferr != nil {
		return nil, ferr
	}
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	return out, nil
}
