package run

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// Deletes (docs/lifecycle.md, "Deletes"). `tailor-batch delete` records a tombstone;
// readers hide the points it names at once; compaction and `delete --apply` rewrite the
// runs that hold them without them, and drop the segments that hold them once every
// window that reads those segments is published.

// TombstonePrefix is where tombstones live: tombstones/<id>.json.
const TombstonePrefix = "tombstones/"

// Tombstone is one recorded delete: the points of Org (of Metric, when set) with ts in
// [From, To).
type Tombstone struct {
	ID     string  `json:"id"`
	Org    uint32  `json:"org"`
	Metric *uint64 `json:"metric,omitempty"`
	From   int64   `json:"from"`
	To     int64   `json:"to"`
	// Created is when the delete was recorded (wall clock, for people).
	Created time.Time `json:"created"`
	Reason  string    `json:"reason,omitempty"`
	// Applied is set once no published run and no stored segment holds a point of the
	// tombstone any more; verify then checks that this holds.
	Applied *Applied `json:"applied,omitempty"`
}

// Applied records when a tombstone's points were all gone from the store.
type Applied struct {
	At time.Time `json:"at"`
	// Runs and Segments count what the apply that finished rewrote and dropped.
	Runs     int `json:"runs"`
	Segments int `json:"segments"`
}

// TombstoneID is the id of a delete: a hash of what it deletes, so that recording the
// same delete twice is one tombstone.
func TombstoneID(org uint32, metric *uint64, from, to int64) string {
	h := sha256.New()
	var b [8]byte
	binary.LittleEndian.PutUint32(b[:4], org)
	h.Write(b[:4])
	if metric != nil {
		binary.LittleEndian.PutUint64(b[:], *metric)
		h.Write([]byte{1})
		h.Write(b[:])
	} else {
		h.Write([]byte{0})
	}
	binary.LittleEndian.PutUint64(b[:], uint64(from))
	h.Write(b[:])
	binary.LittleEndian.PutUint64(b[:], uint64(to))
	h.Write(b[:])
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func tombstoneKey(id string) string { return TombstonePrefix + id + ".json" }

func (t *Tombstone) String() string {
	what := fmt.Sprintf("org %d", t.Org)
	if t.Metric != nil {
		what += fmt.Sprintf(" metric %d", *t.Metric)
	}
	return fmt.Sprintf("tombstone %s (%s, ts in [%s, %s))", t.ID, what, FormatTs(t.From), FormatTs(t.To))
}

// FormatTs prints a ts (Unix ms) as RFC 3339, and the open ends of a range as -inf and
// +inf.
func FormatTs(ms int64) string {
	switch ms {
	case math.MinInt64:
		return "-inf"
	case math.MaxInt64:
		return "+inf"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
}

// RecordTombstone stores t (its ID is computed from what it deletes) unless the same
// delete is recorded already; it returns the stored tombstone and whether this call
// created it.
func RecordTombstone(ctx context.Context, st storage.Store, t Tombstone) (*Tombstone, bool, error) {
	if t.From >= t.To {
		return nil, false, fmt.Errorf("record delete: from %s is not before to %s", FormatTs(t.From), FormatTs(t.To))
	}
	t.ID = TombstoneID(t.Org, t.Metric, t.From, t.To)
	t.Applied = nil
	b, err := json.MarshalIndent(&t, "", "  ")
	if err != nil {
		return nil, false, fmt.Errorf("BUG: marshal tombstone: %w", err)
	}
	err = st.Create(ctx, tombstoneKey(t.ID), bytes.NewReader(append(b, '\n')))
	if errors.Is(err, storage.ErrExists) {
		var old Tombstone
		if err := getJSON(ctx, st, tombstoneKey(t.ID), &old); err != nil {
			return nil, false, fmt.Errorf("read recorded delete: %w", err)
		}
		return &old, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("record delete: %w", err)
	}
	return &t, true, nil
}

// LoadTombstones reads every tombstone of st, sorted by id.
func LoadTombstones(ctx context.Context, st storage.Store) (Tombstones, error) {
	var out Tombstones
	err := st.List(ctx, TombstonePrefix, func(a storage.Attrs) error {
		if !strings.HasSuffix(a.Key, ".json") {
			return nil
		}
		var t Tombstone
		if err := getJSON(ctx, st, a.Key, &t); err != nil {
			return fmt.Errorf("read tombstone: %w", err)
		}
		if t.ID != strings.TrimSuffix(strings.TrimPrefix(a.Key, TombstonePrefix), ".json") || t.From >= t.To {
			return fmt.Errorf("read tombstone %s: id %q or range [%d, %d) does not match its key", a.Key, t.ID, t.From, t.To)
		}
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// markApplied records that t's points are gone.
func markApplied(ctx context.Context, st storage.Store, t Tombstone, a Applied) error {
	t.Applied = &a
	if err := putJSON(ctx, st, tombstoneKey(t.ID), &t); err != nil {
		return fmt.Errorf("mark %s applied: %w", t.ID, err)
	}
	return nil
}

// Tombstones is a set of deletes.
type Tombstones []Tombstone

// tsRange is [from, to).
type tsRange struct{ from, to int64 }

// ranges returns the ts ranges of series k that ts deletes, sorted and merged; nil when
// none applies. dst is reused.
func (ts Tombstones) ranges(k columnar.SeriesKey, dst []tsRange) []tsRange {
	dst = dst[:0]
	for i := range ts {
		t := &ts[i]
		if t.Org == k.Org && (t.Metric == nil || *t.Metric == k.Metric) {
			dst = append(dst, tsRange{t.From, t.To})
		}
	}
	if len(dst) < 2 {
		return dst
	}
	sort.Slice(dst, func(i, j int) bool { return dst[i].from < dst[j].from })
	out := dst[:1]
	for _, r := range dst[1:] {
		last := &out[len(out)-1]
		if r.from <= last.to {
			last.to = max(last.to, r.to)
			continue
		}
		out = append(out, r)
	}
	return out
}

// deleted reports whether ts is inside one of rs (sorted, merged).
func deleted(rs []tsRange, ts int64) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].to > ts })
	return i < len(rs) && rs[i].from <= ts
}

// mayHold reports whether a file whose series of org lie in [minTs, maxTs] may hold a
// point t deletes (index-level check: the org, the metric when keys are given).
func (t *Tombstone) mayHold(k columnar.SeriesKey, minTs, maxTs int64) bool {
	return t.Org == k.Org && (t.Metric == nil || *t.Metric == k.Metric) && minTs < t.To && maxTs >= t.From
}

// filterPoints removes the points of ts/vals inside rs in place and returns what is
// left and how many went.
func filterPoints(rs []tsRange, ts []int64, vals []float64) ([]int64, []float64, int) {
	if len(rs) == 0 {
		return ts, vals, 0
	}
	n := 0
	for i, t := range ts {
		if deleted(rs, t) {
			continue
		}
		ts[n], vals[n] = t, vals[i]
		n++
	}
	return ts[:n], vals[:n], len(ts) - n
}

// ids returns the tombstones' ids, sorted.
func (ts Tombstones) ids() []string {
	out := make([]string, len(ts))
	for i := range ts {
		out[i] = ts[i].ID
	}
	sort.Strings(out)
	return out
}

// tombstonedRunID is the run id of a run of id that left out the points of the
// tombstones ids: its own, as its output differs from what the inputs give.
func tombstonedRunID(id string, ids []string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00tombstones", id)
	for _, t := range ids {
		fmt.Fprintf(h, "\x00%s", t)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Deletes reports whether ts deletes the point of series k at t.
func (ts Tombstones) Deletes(k columnar.SeriesKey, t int64) bool {
	for i := range ts {
		x := &ts[i]
		if x.Org == k.Org && (x.Metric == nil || *x.Metric == k.Metric) && t >= x.From && t < x.To {
			return true
		}
	}
	return false
}
