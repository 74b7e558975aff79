package columnar

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// Keyed rows are what a compute run sorts: one row per group (payload) inside the window,
// carrying the group's series and first ts folded into one narrow sort key, the id of
// the group, and where its points are in the run's PointStore. A group's points are
// already in strictly increasing ts order (the segment writer sorts each payload,
// docs/format/segment.md), so the sort orders groups, not points: about 100 times fewer
// rows than points, of 24 bytes each. The streaming encoder merges the groups of a series
// (run.KeyedStream). The run numbers series and groups as the reader meets them
// (GroupFunc) and keeps what it needs of each group (its series key and arrival) itself.
// See docs/run.md.

// Column names of the keyed schemas.
const (
	ColKey   = "k"
	ColGroup = "gid"
	ColCount = "n"
	ColRef   = "ref"
)

// RunPointBytes is the size of one point in the PointStore: its ts and its value's bits,
// each a little-endian 8-byte word.
const RunPointBytes = 16

// KeyedSchema is the Arrow schema of keyed rows with a narrow layout: k is
// sid<<32 | (first ts - Base); n is the number of points and ref their PointStore
// reference.
var KeyedSchema = arrow.NewSchema([]arrow.Field{
	{Name: ColKey, Type: arrow.PrimitiveTypes.Uint64},
	{Name: ColGroup, Type: arrow.PrimitiveTypes.Uint32},
	{Name: ColCount, Type: arrow.PrimitiveTypes.Uint32},
	{Name: ColRef, Type: arrow.PrimitiveTypes.Uint64},
}, nil)

// KeyedWideSchema is the Arrow schema of keyed rows with a wide layout: k is the sid and
// ts, the group's first ts, has its own column.
var KeyedWideSchema = arrow.NewSchema([]arrow.Field{
	{Name: ColKey, Type: arrow.PrimitiveTypes.Uint64},
	{Name: ColTs, Type: arrow.PrimitiveTypes.Int64},
	{Name: ColGroup, Type: arrow.PrimitiveTypes.Uint32},
	{Name: ColCount, Type: arrow.PrimitiveTypes.Uint32},
	{Name: ColRef, Type: arrow.PrimitiveTypes.Uint64},
}, nil)

// narrowSpan is the widest ts span (in ms, about 49.7 days) a narrow key holds: its low
// 32 bits, leaving 32 for the series id.
const narrowSpan = 1 << 32

// KeyLayout says how keyed rows carry (sid, ts).
type KeyLayout struct {
	// Wide: k is the sid and ts travels in its own column. Otherwise k is
	// sid<<32 | (ts - Base), which needs every ts in [Base, Base+2^32).
	Wide bool
	Base int64
}

// LayoutFor returns the narrow layout for points in win if its span fits 32 bits, and the
// wide one otherwise (open-ended windows, such as a late output's).
func LayoutFor(win TimeRange) KeyLayout {
	if win.From != math.MinInt64 && win.To != math.MaxInt64 && uint64(win.To-win.From) <= narrowSpan {
		return KeyLayout{Base: win.From}
	}
	return KeyLayout{Wide: true}
}

// Schema returns the layout's Arrow schema.
func (l KeyLayout) Schema() *arrow.Schema {
	if l.Wide {
		return KeyedWideSchema
	}
	return KeyedSchema
}

// rowBytes is the size of one row across the layout's columns.
func (l KeyLayout) rowBytes() int64 {
	if l.Wide {
		return 8 + 8 + 4 + 4 + 8
	}
	return 8 + 4 + 4 + 8
}

// Split returns the sid and ts of a row with key k and, for a wide layout, ts column
// value ts.
func (l KeyLayout) Split(k uint64, ts int64) (sid uint32, t int64) {
	if l.Wide {
		return uint32(k), ts
	}
	return uint32(k >> 32), l.Base + int64(k&(narrowSpan-1))
}

// Provenance is where a group came from, reduced to what ranks arrivals: the latest
// arrival of a (series, ts) has the greatest (RecordTs, Topic, Partition, Offset), Topic
// being the topic's id from Topics (docs/dedup.md).
type Provenance struct {
	RecordTs  int64
	Offset    int64
	Partition int32
	Topic     uint16
}

// After reports whether p arrived after o.
func (p Provenance) After(o Provenance) bool {
	if p.RecordTs != o.RecordTs {
		return p.RecordTs > o.RecordTs
	}
	if p.Topic != o.Topic {
		return p.Topic > o.Topic
	}
	if p.Partition != o.Partition {
		return p.Partition > o.Partition
	}
	return p.Offset > o.Offset
}

// GroupFunc numbers the groups of one frame for a keyed read: for group i, with series
// keys[i] and provenance provs[i], it sets sids[i] to the series' id and gids[i] to the
// group's own id. It is called once per decoded frame from reader goroutines, so it must
// be safe for concurrent use; the slices are valid only during the call. An error (ids
// running out, say) fails the read.
type GroupFunc func(keys []SeriesKey, provs []Provenance, sids, gids []uint32) error

// PointSink keeps the points of keyed rows while a run sorts the groups (run.PointStore).
// Each reader goroutine writes through a PointWriter of its own.
type PointSink interface {
	Writer() PointWriter
}

// PointWriter stores the points of one reader goroutine. Not safe for concurrent use.
type PointWriter interface {
	// Reserve returns a buffer for at least n bytes of points (RunPointBytes each).
	Reserve(n int) ([]byte, error)
	// Commit keeps the first used bytes of the last Reserve and returns their reference,
	// as the ref column of a keyed row holds it.
	Commit(used int) uint64
	// Close hands the writer's last buffer to the sink.
	Close() error
}

// Keyed is a decoded batch of keyed rows, one per group: Count[i] points at Ref[i] in
// the PointStore. Ts (the first ts of each row) is filled only for a wide layout.
type Keyed struct {
	Key   []uint64
	Ts    []int64
	Gid   []uint32
	Count []uint32
	Ref   []uint64
}

// Len is the number of rows.
func (c *Keyed) Len() int { return len(c.Key) }

// Reset empties c, keeping capacity.
func (c *Keyed) Reset() {
	c.Key, c.Ts, c.Gid, c.Count, c.Ref = c.Key[:0], c.Ts[:0], c.Gid[:0], c.Count[:0], c.Ref[:0]
}

func (c *Keyed) grow(n int, wide bool) {
	c.Key, c.Gid, c.Count, c.Ref = slices.Grow(c.Key, n), slices.Grow(c.Gid, n), slices.Grow(c.Count, n), slices.Grow(c.Ref, n)
	if wide {
		c.Ts = slices.Grow(c.Ts, n)
	}
}

// groupScratch holds a frame's group keys and ids for GroupFunc, reused per decoder.
type groupScratch struct {
	keys       []SeriesKey
	provs      []Provenance
	sids, gids []uint32
}

// decodeFrameKeyed is DecodeFrame for keyed rows: it numbers the frame's groups with
// opt.Groups, stores the points of each group inside opt.Window with opt.Points and
// appends a row for the group to c, in opt.Layout.
func (d *FrameDecoder) decodeFrameKeyed(sp *Split, f FrameInfo, b []byte, opt DecodeOptions, c *Keyed, st *FrameStats) error {
	if opt.Groups == nil || opt.Points == nil {
		return errors.New("BUG: keyed decode without Groups or Points")
	}
	v, ok, err := d.open(sp, f, b, &opt, st)
	if !ok {
		return err
	}
	t := time.Now()
	defer func() { st.Timers.Decode += time.Since(t) }()
	g := &d.groups
	v.groupIDs(g, opt.Topic, sp.Seg.Header.Partition)
	if err := opt.Groups(g.keys, g.provs, g.sids, g.gids); err != nil {
		return fmt.Errorf("segment %s frame at byte %d: %w", sp.Seg.Key, f.Offset, err)
	}
	win := opt.window()
	kept, err := v.appendKeyed(c, opt.Layout, win, win.covers(f.MinTs, f.MaxTs), g.sids, g.gids, opt.Points)
	if err != nil {
		return fmt.Errorf("segment %s frame at byte %d: %w", sp.Seg.Key, f.Offset, err)
	}
	st.RowsIn += uint64(v.rows)
	st.RowsOut += uint64(kept)
	st.OutOfWindow += uint64(v.rows - kept)
	return nil
}

// groupIDs fills g with the frame's group keys and provenances, sized for the ids.
func (v *frameView) groupIDs(g *groupScratch, topic uint16, partition int32) {
	le := binary.LittleEndian
	n := v.groups
	g.keys, g.provs = slices.Grow(g.keys[:0], n)[:n], slices.Grow(g.provs[:0], n)[:n]
	g.sids, g.gids = slices.Grow(g.sids[:0], n)[:n], slices.Grow(g.gids[:0], n)[:n]
	for i := range n {
		g.keys[i] = SeriesKey{Org: le.Uint32(v.org[4*i:]), Metric: le.Uint64(v.metric[8*i:]), Context: le.Uint64(v.context[8*i:])}
		g.provs[i] = Provenance{RecordTs: int64(le.Uint64(v.recordTs[8*i:])), Offset: int64(le.Uint64(v.offsets[8*i:])), Partition: partition, Topic: topic}
	}
}

// appendKeyed stores the frame's points inside win (all of them when covered) with pw,
// appends a row to c for each group that keeps any, and returns how many points it kept.
func (v *frameView) appendKeyed(c *Keyed, l KeyLayout, win TimeRange, covered bool, sids, gids []uint32, pw PointWriter) (int, error) {
	le := binary.LittleEndian
	if cap(c.Key)-len(c.Key) < v.groups || cap(c.Gid)-len(c.Gid) < v.groups || cap(c.Count)-len(c.Count) < v.groups ||
		cap(c.Ref)-len(c.Ref) < v.groups || (l.Wide && cap(c.Ts)-len(c.Ts) < v.groups) {
		c.grow(v.groups, l.Wide)
	}
	kept, row := 0, 0
	for g := 0; g < v.groups; g++ {
		n := int(le.Uint32(v.count[4*g:]))
		tsb := v.ts[8*row : 8*(row+n)]
		vb := v.vals[8*row : 8*(row+n)]
		row += n
		dst, err := pw.Reserve(n * RunPointBytes)
		if err != nil {
			return kept, err
		}
		t, x := int64(0), uint64(0)
		w := 0
		if covered {
			for i := 0; i < n; i++ {
				t += int64(le.Uint64(tsb[8*i:]))
				x ^= le.Uint64(vb[8*i:])
				p := dst[RunPointBytes*i : RunPointBytes*i+RunPointBytes]
				le.PutUint64(p, uint64(t))
				le.PutUint64(p[8:], x)
			}
			w = n
		} else {
			for i := 0; i < n; i++ {
				t += int64(le.Uint64(tsb[8*i:]))
				x ^= le.Uint64(vb[8*i:])
				if !win.Contains(t) {
					continue
				}
				p := dst[RunPointBytes*w : RunPointBytes*w+RunPointBytes]
				le.PutUint64(p, uint64(t))
				le.PutUint64(p[8:], x)
				w++
			}
		}
		if w == 0 {
			continue
		}
		first := int64(le.Uint64(dst))
		if l.Wide {
			c.Key = append(c.Key, uint64(sids[g]))
			c.Ts = append(c.Ts, first)
		} else {
			c.Key = append(c.Key, uint64(sids[g])<<32|uint64(first-l.Base))
		}
		c.Gid = append(c.Gid, gids[g])
		c.Count = append(c.Count, uint32(w))
		c.Ref = append(c.Ref, pw.Commit(w*RunPointBytes))
		kept += w
	}
	return kept, nil
}

// RunPoint returns point j of a keyed row's pts: its ts and its value's bits.
func RunPoint(pts []byte, j int) (ts int64, bits uint64) {
	p := pts[RunPointBytes*j : RunPointBytes*j+RunPointBytes]
	return int64(binary.LittleEndian.Uint64(p)), binary.LittleEndian.Uint64(p[8:])
}
