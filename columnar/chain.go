package columnar

import "sort"

// Chain is one partition's segments in offset order, with every gap and overlap
// between them. A segment holds the records [Header.StartOffset, Footer.EndOffset) of
// its partition, so the segments of a partition that lost nothing and stored nothing
// twice form one chain: each starts exactly where the previous one ended.
type Chain struct {
	Topic     string
	Partition int32
	Segments  []*Segment
	// From is the first segment's start, To the furthest end.
	From, To int64
	Gaps     []OffsetRange // offsets in no segment, between From and To
	Overlaps []OffsetRange // offsets in two segments
}

// OffsetRange is the offsets [From, To) between the segments Prev and Next.
type OffsetRange struct {
	From, To   int64
	Prev, Next string
}

// Chains returns the chain of every (topic, partition) that segs hold, sorted by topic
// and partition.
func Chains(segs []*Segment) []Chain {
	type tp struct {
		topic string
		part  int32
	}
	by := map[tp][]*Segment{}
	for _, s := range segs {
		k := tp{s.Header.Topic, s.Header.Partition}
		by[k] = append(by[k], s)
	}
	out := make([]Chain, 0, len(by))
	for k, ss := range by {
		sort.Slice(ss, func(i, j int) bool {
			a, b := ss[i].Header.StartOffset, ss[j].Header.StartOffset
			return a < b || a == b && ss[i].Footer.EndOffset < ss[j].Footer.EndOffset
		})
		c := Chain{Topic: k.topic, Partition: k.part, Segments: ss, From: ss[0].Header.StartOffset, To: ss[0].Footer.EndOffset}
		prev := ss[0]
		for _, s := range ss[1:] {
			start, end := s.Header.StartOffset, s.Footer.EndOffset
			switch {
			case start > c.To:
				c.Gaps = append(c.Gaps, OffsetRange{From: c.To, To: start, Prev: prev.Key, Next: s.Key})
			case start < c.To:
				c.Overlaps = append(c.Overlaps, OffsetRange{From: start, To: min(c.To, end), Prev: prev.Key, Next: s.Key})
			}
			if end > c.To {
				c.To, prev = end, s
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Topic < out[j].Topic || out[i].Topic == out[j].Topic && out[i].Partition < out[j].Partition
	})
	return out
}
