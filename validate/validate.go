// Package validate compares Tailor's output one-to-one with another source of the same
// points (the legacy system's, or a workload's expected points) and reports differences.
package validate

import (
	"math"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/pointdiff"
)

// Point is one point of a sorted stream.
type Point struct {
	Key   columnar.SeriesKey
	Ts    int64
	Value float64
}

// less orders points by (series, ts).
func less(a, b Point) bool {
	if a.Key != b.Key {
		return a.Key.Less(b.Key)
	}
	return a.Ts < b.Ts
}

// Counts is the outcome of a one-to-one diff: the (series, ts) of each kind.
type Counts struct {
	Equal             uint64 `json:"equal"`
	MissingInNew      uint64 `json:"missing_in_new"`
	MissingInLegacy   uint64 `json:"missing_in_legacy"`
	ValueDiffers      uint64 `json:"value_differs"`
	DuplicateInLegacy uint64 `json:"duplicate_in_legacy"`
}

// SameValue compares values by bits, with every NaN equal to every NaN.
func SameValue(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b) || a != a && b != b
}

// Merger joins two streams sorted by (series, ts), each (series, ts) at most once per
// stream: a full outer join in one pass and constant memory. It never reports
// DuplicateInLegacy: its streams are unique by contract.
type Merger struct {
	Counts Counts
	// OnDiff, when not nil, is called for every point that is not Equal.
	OnDiff func(k pointdiff.Kind, newP, legacyP *Point)

	pend    []Point // buffered points of the stream that is ahead
	pendNew bool
}

// AddNew and AddLegacy feed the two streams; points of each must arrive in order.
// Close flushes what is left.
func (m *Merger) AddNew(p Point)    { m.add(p, true) }
func (m *Merger) AddLegacy(p Point) { m.add(p, false) }

func (m *Merger) add(p Point, isNew bool) {
	if len(m.pend) == 0 || m.pendNew == isNew {
		m.pend = append(m.pend, p)
		m.pendNew = isNew
		return
	}
	// Match p against the other stream's buffered points, which are ahead of or at p.
	for len(m.pend) > 0 && less(m.pend[0], p) {
		m.emitOne(m.pend[0], m.pendNew)
		m.pend = m.pend[1:]
	}
	if len(m.pend) > 0 && m.pend[0].Key == p.Key && m.pend[0].Ts == p.Ts {
		o := m.pend[0]
		m.pend = m.pend[1:]
		n, l := &p, &o
		if !isNew {
			n, l = &o, &p
		}
		if SameValue(n.Value, l.Value) {
			m.Counts.Equal++
		} else {
			m.Counts.ValueDiffers++
			if m.OnDiff != nil {
				m.OnDiff(pointdiff.ValueDiffers, n, l)
			}
		}
		return
	}
	if len(m.pend) == 0 {
		m.pend = append(m.pend[:0], p)
		m.pendNew = isNew
		return
	}
	m.emitOne(p, isNew)
}

func (m *Merger) emitOne(p Point, isNew bool) {
	if isNew {
		m.Counts.MissingInLegacy++
		if m.OnDiff != nil {
			m.OnDiff(pointdiff.MissingInLegacy, &p, nil)
		}
		return
	}
	m.Counts.MissingInNew++
	if m.OnDiff != nil {
		m.OnDiff(pointdiff.MissingInNew, nil, &p)
	}
}

// Close reports the points left in the buffer as missing on the other side.
func (m *Merger) Close() Counts {
	for _, p := range m.pend {
		m.emitOne(p, m.pendNew)
	}
	m.pend = nil
	return m.Counts
}
