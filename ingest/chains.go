package ingest

import (
	"fmt"

	"github.com/tailor-metrics/tailor/columnar"
)

// CheckChains verifies, from segment footers alone, that the segments of every partition
// form one chain: the first starts at the partition's first offset (from, default 0),
// each next one starts exactly where the previous one ended, and the last ends at the
// partition's end offset. So every offset is stored exactly once: no gap, no overlap.
func CheckChains(segs []*columnar.Segment, from, ends map[string]map[int32]int64) error {
	chains := map[string]map[int32]columnar.Chain{}
	for _, c := range columnar.Chains(segs) {
		if chains[c.Topic] == nil {
			chains[c.Topic] = map[int32]columnar.Chain{}
		}
		chains[c.Topic][c.Partition] = c
	}
	for topic, parts := range ends {
		for p, end := range parts {
			first := from[topic][p]
			c, ok := chains[topic][p]
			switch {
			case !ok && end == first:
				continue
			case !ok:
				return fmt.Errorf("%s-%d: gap: offsets [%d, %d) are in no segment", topic, p, first, end)
			case c.From > first:
				return fmt.Errorf("%s-%d: gap: offsets [%d, %d) are in no segment (next is %s)", topic, p, first, c.From, c.Segments[0].Key)
			case c.From < first:
				return fmt.Errorf("%s-%d: overlap: %s starts at %d, before %d", topic, p, c.Segments[0].Key, c.From, first)
			case len(c.Gaps) > 0:
				g := c.Gaps[0]
				return fmt.Errorf("%s-%d: gap: offsets [%d, %d) are in no segment (next is %s)", topic, p, g.From, g.To, g.Next)
			case len(c.Overlaps) > 0:
				o := c.Overlaps[0]
				return fmt.Errorf("%s-%d: overlap: %s starts at %d, before %d", topic, p, o.Next, o.From, o.To)
			case c.To != end:
				return fmt.Errorf("%s-%d: segments end at %d, partition ends at %d", topic, p, c.To, end)
			}
			for _, s := range c.Segments {
				if s.Footer.EndOffset <= s.Header.StartOffset {
					return fmt.Errorf("%s-%d: %s covers no offsets", topic, p, s.Key)
				}
			}
		}
	}
	return nil
}
