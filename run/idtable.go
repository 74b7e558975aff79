package run

import (
	"fmt"
	"math"
	"sync"

	"github.com/tailor-metrics/tailor/columnar"
)

// IDTable numbers what keyed readers meet: each series gets a dense id (sid) in the
// order it is first met, and each group (one payload: one Kafka record of one series) an
// id (gid) that names its provenance, so the sort carries 4 bytes of arrival instead of
// 22. It also keeps each series' tags, those of its latest payload (Tags). It holds 24
// bytes per group and a map entry and a seriesEntry per series. The zero value is ready.
type IDTable struct {
	mu     sync.Mutex
	sids   map[columnar.SeriesKey]uint32
	series []seriesEntry         // by sid
	provs  []columnar.Provenance // by gid
}

// seriesEntry is what the table keeps of one series.
type seriesEntry struct {
	key     columnar.SeriesKey
	tags    []string
	tagProv columnar.Provenance // the arrival the tags came with
	hasTags bool
}

// sid returns k's series id, giving it the next one if k is new. t.mu must be held.
func (t *IDTable) sid(k columnar.SeriesKey) uint32 {
	if t.sids == nil {
		t.sids = map[columnar.SeriesKey]uint32{}
	}
	sid, ok := t.sids[k]
	if !ok {
		sid = uint32(len(t.series))
		t.sids[k] = sid
		t.series = append(t.series, seriesEntry{key: k})
	}
	return sid
}

// Assign is a GroupFunc.
func (t *IDTable) Assign(keys []columnar.SeriesKey, provs []columnar.Provenance, sids, gids []uint32) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if uint64(len(t.provs))+uint64(len(provs)) > math.MaxUint32 {
		return fmt.Errorf("more than %d payloads in one run: split the shard (more shards, or org-X-pK shards) or shorten the window", uint64(math.MaxUint32))
	}
	for i, k := range keys {
		sids[i], gids[i] = t.sid(k), uint32(len(t.provs))
		t.provs = append(t.provs, provs[i])
	}
	return nil
}

// Tags keeps tags as the series' tags if p is its latest payload with tags so far (the
// arrival rule of points, so the result does not depend on the order splits are read
// in). It is a ReadOptions.Tags, safe for concurrent use; it copies tags.
func (t *IDTable) Tags(k columnar.SeriesKey, p columnar.Provenance, tags []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := &t.series[t.sid(k)]
	if e.hasTags && !p.After(e.tagProv) {
		return
	}
	e.tags, e.tagProv, e.hasTags = append([]string(nil), tags...), p, true
}

// Key returns the series key of sid. Key, Series, columnar.Provenance and Later are safe while
// readers still assign ids: the table is append-only, and they lock it.
func (t *IDTable) Key(sid uint32) columnar.SeriesKey {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.series[sid].key
}

// Series returns the series key and tags of sid.
func (t *IDTable) Series(sid uint32) (columnar.SeriesKey, []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := &t.series[sid]
	return e.key, e.tags
}

// Provenance returns where group gid came from.
func (t *IDTable) Provenance(gid uint32) columnar.Provenance {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.provs[gid]
}

// Later reports whether group a arrived after group b.
func (t *IDTable) Later(a, b uint32) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.provs[a].After(t.provs[b])
}
