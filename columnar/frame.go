package columnar

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"
)

// A frame's raw (decompressed) payload holds whole groups: one group is the points of one
// payload (one Kafka record, one series). Columns are stored group-wise, then row-wise,
// 8-byte columns first so every array is 8-aligned in the decompressed buffer:
//
//	groups u32 | rows u32
//	metric u64×G | context u64×G | record_ts i64×G | offset i64×G
//	ts i64×R     (per group: first absolute, then deltas from the previous ts)
//	value u64×R  (per group: first raw bits, then XOR with the previous value's bits)
//	org u32×G | count u32×G
//	tags: per group u16 n, then n × (u16 len, bytes)
//
// Deltas and XORs turn regular series into runs of equal or zero bytes, which zstd
// compresses well, and both undo in one pass at decode time.

// frameBuilder accumulates the groups of one shard until they form a frame.
type frameBuilder struct {
	metric, context   []uint64
	recordTs, offsets []int64
	org, count        []uint32
	tags              []byte
	// chunks hold the rows: ts deltas and value XORs; chunks[cur] is the one filling.
	chunks []rowChunk
	cur    int
	nrows  int

	minTs, maxTs             int64
	minOffset, maxOffset     int64
	minRecordTs, maxRecordTs int64
}

// A frame's rows are held in chunks rather than in one slice per column, so that adding
// rows never copies the rows already held. Slices that double copied every row once more
// on average, a tenth of the sink's CPU: with many shards a segment's frames rarely
// fill, so their columns kept growing until the segment was stored. Chunks double from
// minRowChunk rows to rowChunkRows, so a shard with few rows holds little more than it
// needs; a builder keeps its chunks across frames, and a writer done with its segment
// gives the full-size ones back to rowChunks for the next segment.
const (
	minRowChunk  = 256
	rowChunkRows = 2048
)

// rowChunk holds the same number of rows in both columns: ts deltas (as uint64) and
// value XORs.
type rowChunk struct{ ts, vals []uint64 }

var rowChunks = sync.Pool{New: func() any {
	return &rowChunk{ts: make([]uint64, 0, rowChunkRows), vals: make([]uint64, 0, rowChunkRows)}
}}

func (b *frameBuilder) rows() int   { return b.nrows }
func (b *frameBuilder) groups() int { return len(b.org) }

func (b *frameBuilder) reset() {
	b.metric, b.context = b.metric[:0], b.context[:0]
	b.recordTs, b.offsets = b.recordTs[:0], b.offsets[:0]
	b.org, b.count = b.org[:0], b.count[:0]
	b.tags = b.tags[:0]
	for i := range b.chunks {
		c := &b.chunks[i]
		c.ts, c.vals = c.ts[:0], c.vals[:0]
	}
	b.cur, b.nrows = 0, 0
}

// release resets b and gives its full-size chunks back to the pool; b stays usable.
func (b *frameBuilder) release() {
	b.reset()
	for i := range b.chunks {
		if c := b.chunks[i]; cap(c.ts) == rowChunkRows {
			rowChunks.Put(&c)
		}
	}
	b.chunks = nil
}

// room returns the chunk that the next row goes to, adding one when every chunk is full.
func (b *frameBuilder) room() *rowChunk {
	for b.cur < len(b.chunks) {
		if c := &b.chunks[b.cur]; len(c.ts) < cap(c.ts) {
			return c
		}
		b.cur++
	}
	n := minRowChunk
	if k := len(b.chunks); k > 0 {
		n = min(2*cap(b.chunks[k-1].ts), rowChunkRows)
	}
	var c rowChunk
	if n == rowChunkRows {
		c = *rowChunks.Get().(*rowChunk)
		c.ts, c.vals = c.ts[:0], c.vals[:0]
	} else {
		c = rowChunk{ts: make([]uint64, 0, n), vals: make([]uint64, 0, n)}
	}
	b.chunks = append(b.chunks, c)
	return &b.chunks[len(b.chunks)-1]
}

// add appends one group. ts must be strictly increasing (the writer normalizes payloads).
func (b *frameBuilder) add(k SeriesKey, src Source, tags []string, ts []int64, vals []float64) {
	if b.groups() == 0 {
		b.minTs, b.maxTs = math.MaxInt64, math.MinInt64
		b.minOffset, b.maxOffset = math.MaxInt64, math.MinInt64
		b.minRecordTs, b.maxRecordTs = math.MaxInt64, math.MinInt64
	}
	b.org = append(b.org, k.Org)
	b.metric = append(b.metric, k.Metric)
	b.context = append(b.context, k.Context)
	b.recordTs = append(b.recordTs, src.Timestamp)
	b.offsets = append(b.offsets, src.Offset)
	b.count = append(b.count, uint32(len(ts)))
	b.tags = binary.LittleEndian.AppendUint16(b.tags, uint16(len(tags)))
	for _, t := range tags {
		b.tags = binary.LittleEndian.AppendUint16(b.tags, uint16(len(t)))
		b.tags = append(b.tags, t...)
	}
	b.minTs, b.maxTs = min(b.minTs, ts[0]), max(b.maxTs, ts[len(ts)-1])
	b.minOffset, b.maxOffset = min(b.minOffset, src.Offset), max(b.maxOffset, src.Offset)
	b.minRecordTs, b.maxRecordTs = min(b.minRecordTs, src.Timestamp), max(b.maxRecordTs, src.Timestamp)
	prevT, prevV := int64(0), uint64(0)
	for len(ts) > 0 {
		c := b.room()
		at := len(c.ts)
		n := min(len(ts), cap(c.ts)-at)
		c.ts, c.vals = c.ts[:at+n], c.vals[:at+n]
		dts, dvals, vs := c.ts[at:], c.vals[at:], vals[:n]
		for i, t := range ts[:n] {
			v := math.Float64bits(vs[i])
			dts[i] = uint64(t - prevT)
			dvals[i] = v ^ prevV
			prevT, prevV = t, v
		}
		b.nrows += n
		ts, vals = ts[n:], vals[n:]
	}
}

// frameRawHeader is the raw payload's groups and rows counts.
const frameRawHeader = 8

// rawSize is the size of the marshalled raw payload.
func (b *frameBuilder) rawSize() int {
	return frameRawHeader + groupRawBytes*b.groups() + rowRawBytes*b.rows() + len(b.tags)
}

// marshal appends the raw frame payload without its ts and value sections to dst:
// version 2 stores those with codecs of their own (framecodec.go).
func (b *frameBuilder) marshal(dst []byte) []byte {
	le := binary.LittleEndian
	dst = slices.Grow(dst, b.rawSize()-rowRawBytes*b.rows())
	dst = le.AppendUint32(dst, uint32(b.groups()))
	dst = le.AppendUint32(dst, uint32(b.rows()))
	for _, col := range [...][]uint64{b.metric, b.context} {
		for _, v := range col {
			dst = le.AppendUint64(dst, v)
		}
	}
	for _, col := range [...][]int64{b.recordTs, b.offsets} {
		for _, v := range col {
			dst = le.AppendUint64(dst, uint64(v))
		}
	}
	for _, col := range [...][]uint32{b.org, b.count} {
		for _, v := range col {
			dst = le.AppendUint32(dst, v)
		}
	}
	return append(dst, b.tags...)
}

// Columns is a decoded batch of points in column form. Slices are reused across Reset.
type Columns struct {
	Org       []uint32
	Metric    []uint64
	Context   []uint64
	Ts        []int64
	Value     []float64
	RecordTs  []int64
	Topic     []uint16
	Partition []int32
	Offset    []int64
}

// Len is the number of rows.
func (c *Columns) Len() int { return len(c.Ts) }

// grow makes room for n more rows in every column.
func (c *Columns) grow(n int) {
	c.Org, c.Metric, c.Context = slices.Grow(c.Org, n), slices.Grow(c.Metric, n), slices.Grow(c.Context, n)
	c.Ts, c.Value, c.RecordTs = slices.Grow(c.Ts, n), slices.Grow(c.Value, n), slices.Grow(c.RecordTs, n)
	c.Topic, c.Partition, c.Offset = slices.Grow(c.Topic, n), slices.Grow(c.Partition, n), slices.Grow(c.Offset, n)
}

// Reset empties c, keeping capacity.
func (c *Columns) Reset() {
	c.Org, c.Metric, c.Context = c.Org[:0], c.Metric[:0], c.Context[:0]
	c.Ts, c.Value, c.RecordTs = c.Ts[:0], c.Value[:0], c.RecordTs[:0]
	c.Topic, c.Partition, c.Offset = c.Topic[:0], c.Partition[:0], c.Offset[:0]
}

// frameView is a validated raw frame payload: its sections, ready to decode row ranges.
type frameView struct {
	groups, rows                       int
	metric, context, recordTs, offsets []byte
	ts, vals, org, count, tags         []byte
}

// parseFrame validates the raw payload's section sizes and group counts.
func parseFrame(raw []byte) (frameView, error) {
	var v frameView
	if len(raw) < 8 {
		return v, fmt.Errorf("frame payload %d bytes, need 8", len(raw))
	}
	le := binary.LittleEndian
	g, r := uint64(le.Uint32(raw)), uint64(le.Uint32(raw[4:]))
	fixed := 8 + 40*g + 16*r
	if fixed > uint64(len(raw)) {
		return v, fmt.Errorf("frame payload: %d groups and %d rows need %d bytes, have %d", g, r, fixed, len(raw))
	}
	v.groups, v.rows = int(g), int(r)
	p := raw[8:]
	cut := func(n int) []byte { s := p[:n]; p = p[n:]; return s }
	G, R := v.groups, v.rows
	v.metric, v.context, v.recordTs, v.offsets = cut(8*G), cut(8*G), cut(8*G), cut(8*G)
	v.ts, v.vals = cut(8*R), cut(8*R)
	v.org, v.count = cut(4*G), cut(4*G)
	v.tags = p
	var sum uint64
	for i := 0; i < G; i++ {
		c := uint64(le.Uint32(v.count[4*i:]))
		if c == 0 {
			return v, fmt.Errorf("frame payload: group %d has no rows", i)
		}
		sum += c
	}
	if sum != r {
		return v, fmt.Errorf("frame payload: group counts sum to %d, header says %d rows", sum, r)
	}
	return v, nil
}

// appendRows decodes all rows of the frame into c, stamping topic and partition.
//
// Hot path: the columns are extended once for the whole frame (no append per row), and
// each group decodes into sub-slices whose lengths are checked once, so the inner loops
// carry no bounds checks.
func (v *frameView) appendRows(c *Columns, topic uint16, partition int32) {
	le := binary.LittleEndian
	n0 := c.Len()
	c.extend(v.rows)
	row := 0
	for g := 0; g < v.groups; g++ {
		n := int(le.Uint32(v.count[4*g:]))
		lo, hi := n0+row, n0+row+n
		ts, vals := c.Ts[lo:hi], c.Value[lo:hi]
		tsb := v.ts[8*row : 8*(row+n)]
		vb := v.vals[8*row : 8*(row+n)]
		t, x := int64(0), uint64(0)
		for i := range ts {
			t += int64(le.Uint64(tsb[8*i:]))
			x ^= le.Uint64(vb[8*i:])
			ts[i] = t
			vals[i] = math.Float64frombits(x)
		}
		fill(c.Org[lo:hi], le.Uint32(v.org[4*g:]))
		fill(c.Metric[lo:hi], le.Uint64(v.metric[8*g:]))
		fill(c.Context[lo:hi], le.Uint64(v.context[8*g:]))
		fill(c.RecordTs[lo:hi], int64(le.Uint64(v.recordTs[8*g:])))
		fill(c.Topic[lo:hi], topic)
		fill(c.Partition[lo:hi], partition)
		fill(c.Offset[lo:hi], int64(le.Uint64(v.offsets[8*g:])))
		row += n
	}
}

// checkIncreasing verifies that the ts of every group strictly increase, as the format
// promises (the writer sorts and collapses each payload): keyed reads hand each group
// on as one sorted run.
func (v *frameView) checkIncreasing() error {
	le := binary.LittleEndian
	row := 0
	for g := 0; g < v.groups; g++ {
		n := int(le.Uint32(v.count[4*g:]))
		tsb := v.ts[8*row : 8*(row+n)]
		t := int64(0)
		for i := 0; i < n; i++ {
			next := t + int64(le.Uint64(tsb[8*i:]))
			if i > 0 && next <= t {
				return fmt.Errorf("frame: group %d: ts %d after %d at its point %d, not strictly increasing", g, next, t, i)
			}
			t = next
		}
		row += n
	}
	return nil
}

func fill[T any](s []T, v T) {
	for i := range s {
		s[i] = v
	}
}

// extend lengthens every column by n rows, growing capacity only if needed.
func (c *Columns) extend(n int) {
	if cap(c.Ts)-len(c.Ts) < n || cap(c.Org)-len(c.Org) < n || cap(c.Topic)-len(c.Topic) < n ||
		cap(c.Partition)-len(c.Partition) < n || cap(c.Metric)-len(c.Metric) < n || cap(c.Context)-len(c.Context) < n ||
		cap(c.Value)-len(c.Value) < n || cap(c.RecordTs)-len(c.RecordTs) < n || cap(c.Offset)-len(c.Offset) < n {
		c.grow(n)
	}
	m := len(c.Ts) + n
	c.Org, c.Metric, c.Context = c.Org[:m], c.Metric[:m], c.Context[:m]
	c.Ts, c.Value, c.RecordTs = c.Ts[:m], c.Value[:m], c.RecordTs[:m]
	c.Topic, c.Partition, c.Offset = c.Topic[:m], c.Partition[:m], c.Offset[:m]
}

// groupTags decodes the tags of every group, calling fn for each group that has tags.
func (v *frameView) groupTags(topic uint16, partition int32, fn func(k SeriesKey, p Provenance, tags []string)) error {
	le := binary.LittleEndian
	p := v.tags
	var tags []string
	for g := 0; g < v.groups; g++ {
		if len(p) < 2 {
			return fmt.Errorf("frame tags: group %d: truncated", g)
		}
		n := int(le.Uint16(p))
		p = p[2:]
		tags = tags[:0]
		for i := 0; i < n; i++ {
			if len(p) < 2 || len(p) < 2+int(le.Uint16(p)) {
				return fmt.Errorf("frame tags: group %d tag %d: truncated", g, i)
			}
			l := int(le.Uint16(p))
			tags = append(tags, string(p[2:2+l]))
			p = p[2+l:]
		}
		if n > 0 {
			k := SeriesKey{Org: le.Uint32(v.org[4*g:]), Metric: le.Uint64(v.metric[8*g:]), Context: le.Uint64(v.context[8*g:])}
			fn(k, Provenance{RecordTs: int64(le.Uint64(v.recordTs[8*g:])), Offset: int64(le.Uint64(v.offsets[8*g:])), Partition: partition, Topic: topic}, tags)
		}
	}
	if len(p) != 0 {
		return fmt.Errorf("frame tags: %d trailing bytes", len(p))
	}
	return nil
}
