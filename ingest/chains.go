package ingest

import (
	"fmt"
	"sort"

	"github.com/tailor-metrics/tailor/columnar"
)

// CheckChains verifies, from segment footers alone, that the segments of every partition
// form one chain: the first starts at the partition's first offset (from, default 0),
// each next one starts exactly where the previous one ended, and the last ends at the
// partition's end offset. So every offset is stored exactly once: no gap, no overlap.
func CheckChains(segs []*columnar.Segment, from, ends map[string]map[int32]int64) error {
	type tpk struct {
		topic string
		part  int32
	}
	byTP := map[tpk][]*columnar.Segment{}
	for _, s := range segs {
		k := tpk{s.Header.Topic, s.Header.Partition}
		byTP[k] = append(byTP[k], s)
	}
	for topic, parts := range ends {
		for p, end := range parts {
			chain := byTP[tpk{topic, p}]
			sort.Slice(chain, func(i, j int) bool { return chain[i].Header.StartOffset < chain[j].Header.StartOffset })
			next := from[topic][p]
			for _, s := range chain {
				switch {
				case s.Header.StartOffset > next:
					return fmt.Errorf("%s-%d: gap: offsets [%d, %d) are in no segment (next is %s)", topic, p, next, s.Header.StartOffset, s.Key)
				case s.Header.StartOffset < next:
					return fmt.Errorf("%s-%d: overlap: %s starts at %d, before %d", topic, p, s.Key, s.Header.StartOffset, next)
				case s.Footer.EndOffset <= s.Header.StartOffset:
					return fmt.Errorf("%s-%d: %s covers no offsets", topic, p, s.Key)
				}
				next = s.Footer.EndOffset
			}
			if next != end && !(len(chain) == 0 && end == from[topic][p]) {
				return fmt.Errorf("%s-%d: segments end at %d, partition ends at %d", topic, p, next, end)
			}
		}
	}
	return nil
}
