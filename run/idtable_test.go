package run

import (
	"fmt"
	"slices"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
)

// TestIDTableTags: a series keeps the tags of its latest payload whatever order the
// payloads are met in, the tags are copied, and a series met first through its tags
// keeps the id Assign then finds.
func TestIDTableTags(t *testing.T) {
	k := columnar.SeriesKey{Org: 3, Metric: 4}
	provs := []columnar.Provenance{{RecordTs: 5}, {RecordTs: 9}, {RecordTs: 9, Partition: 1}, {RecordTs: 7, Topic: 9}}
	for _, order := range [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {2, 0, 3, 1}} {
		var g IDTable
		for _, i := range order {
			tags := []string{fmt.Sprint("p", i)}
			g.Tags(k, provs[i], tags)
			tags[0] = "overwritten"
		}
		sids, gids := make([]uint32, 1), make([]uint32, 1)
		if err := g.Assign([]columnar.SeriesKey{k}, provs[:1], sids, gids); err != nil {
			t.Fatal(err)
		}
		key, tags := g.Series(sids[0])
		if sids[0] != 0 || key != k || !slices.Equal(tags, []string{"p2"}) {
			t.Fatalf("order %v: sid %d, key %+v, tags %v; want sid 0 and the tags of p2", order, sids[0], key, tags)
		}
	}
}
