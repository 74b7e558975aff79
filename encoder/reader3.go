package encoder

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Reading format v3 files: a series' points are in the blocks its index entry names, one
// column in each, and a block may hold other series' columns too. A Series keeps the
// blocks it read lately (checksummed, header parsed, timestamps decoded once), so that
// going through a file in key order reads and checks each shared block once.

// blockCacheBytes bounds the blocks a Series keeps. A block is dropped once the last
// series with a column in it has been read, so going through a file in key order keeps
// only the blocks still to be used: the writer's share window keeps those to the blocks
// that series close in key order share, each at most about shareBytes. The bound is for
// reads in any other order.
const blockCacheBytes = 8 << 20

// cachedBlock is one verified v3 block.
type cachedBlock struct {
	id      uint32
	raw     []byte
	h       blockHeader
	payload []byte  // timestamps, then the value columns
	ts      []int64 // decoded on first use
	hasTs   bool
}

// blockCache holds a Series' recent blocks of one Reader, evicting the oldest first.
type blockCache struct {
	r     *Reader
	byID  map[uint32]*cachedBlock
	order []*cachedBlock
	bytes int
	spare *cachedBlock // a dropped block's buffers
}

func (c *blockCache) reset(r *Reader) {
	c.r = r
	clear(c.byID)
	c.order = c.order[:0]
	c.bytes = 0
}

// drop forgets block id, keeping its buffers for the next block read.
func (c *blockCache) drop(id uint32) {
	b := c.byID[id]
	if b == nil {
		return
	}
	delete(c.byID, id)
	c.bytes -= len(b.raw)
	i := slices.Index(c.order, b)
	c.order = slices.Delete(c.order, i, i+1)
	c.spare = b
}

// block returns block id of r, reading and verifying it when it is not cached.
func (c *blockCache) block(r *Reader, id uint32) (*cachedBlock, error) {
	if c.r != r {
		c.reset(r)
	}
	if c.byID == nil {
		c.byID = map[uint32]*cachedBlock{}
	}
	if b := c.byID[id]; b != nil {
		return b, nil
	}
	be := &r.v3.blocks[id]
	var b *cachedBlock
	for c.bytes+be.length > blockCacheBytes && len(c.order) > 0 {
		old := c.order[0]
		c.order = c.order[1:]
		delete(c.byID, old.id)
		c.bytes -= len(old.raw)
		if b == nil {
			b = old // reuse its buffers
		}
	}
	if b == nil {
		b, c.spare = c.spare, nil
	}
	if b == nil {
		b = &cachedBlock{}
	}
	b.id, b.hasTs = id, false
	if cap(b.raw) < be.length {
		b.raw = make([]byte, be.length)
	}
	b.raw = b.raw[:be.length]
	if err := readFull(r.r, b.raw, be.off); err != nil {
		return nil, fmt.Errorf("read block %d at %d: %w", id, be.off, err)
	}
	what := func() string { return fmt.Sprintf("block %d", id) }
	n := len(b.raw) - 4
	if got, want := checksum(b.raw[:n]), binary.LittleEndian.Uint32(b.raw[n:]); got != want {
		return nil, corrupt(be.off, what(), ErrChecksum, "crc32c %#08x, stored %#08x", got, want)
	}
	payload, err := b.h.unmarshal3(b.raw, r.version)
	if err != nil {
		return nil, &CorruptFileError{Offset: be.off, What: what(), Err: err}
	}
	if b.h.count != be.count || b.h.minTs != be.minTs || b.h.maxTs != be.maxTs || len(b.h.cols) != be.cols {
		return nil, corrupt(be.off, what(), ErrOutOfRange, "%d points in [%d, %d] in %d columns, index says %d in [%d, %d] in %d",
			b.h.count, b.h.minTs, b.h.maxTs, len(b.h.cols), be.count, be.minTs, be.maxTs, be.cols)
	}
	b.payload = payload
	c.order = append(c.order, b)
	c.byID[id] = b
	c.bytes += len(b.raw)
	return b, nil
}

// timestamps returns the block's decoded timestamps.
func (b *cachedBlock) timestamps(d *blockDecoder, off int64) ([]int64, error) {
	if !b.hasTs {
		var err error
		if b.ts, err = d.decodeTs(b.ts[:0], &b.h, b.payload[:b.h.tsLen]); err != nil {
			return nil, &CorruptFileError{Offset: off, What: fmt.Sprintf("block %d timestamps", b.id), Err: err}
		}
		b.hasTs = true
	}
	return b.ts, nil
}

// readSeries3 decodes series i of a v3 file into dst, keeping the points in [mint, maxt],
// and their values unless noValues.
func (r *Reader) readSeries3(i int, mint, maxt int64, noValues bool, dst *Series) error {
	dst.Reset()
	x := r.v3
	e := &r.entries[i]
	dst.Key = e.Key
	var err error
	if dst.Tags, err = x.tags(i, dst.Tags[:0]); err != nil {
		return err
	}
	refs, cols := x.seriesRefs(i)
	for j, id := range refs {
		be := &x.blocks[id]
		if be.maxTs < mint || be.minTs > maxt {
			continue // outside the range: not even read
		}
		b, err := dst.blocks.block(r, id)
		if err != nil {
			return err
		}
		ts, err := b.timestamps(&dst.dec, be.off)
		if err != nil {
			return err
		}
		c := b.h.cols[cols[j]]
		vals := b.payload[b.h.tsLen+c.off : b.h.tsLen+c.off+c.len]
		n0 := len(dst.Ts)
		dst.Ts = append(dst.Ts, ts...)
		if !noValues {
			if dst.Values, err = dst.dec.decodeColumn(dst.Values, c.enc, vals, b.h.count, r.version); err != nil {
				dst.Ts = dst.Ts[:n0]
				return &CorruptFileError{Offset: be.off, What: fmt.Sprintf("series %v block %d column %d", e.Key, id, cols[j]), Err: err}
			}
		}
		if be.minTs < mint || be.maxTs > maxt {
			trimRange(dst, n0, mint, maxt)
		}
		if x.lastUse[id] == i {
			dst.blocks.drop(id) // no later series needs it
		}
	}
	return nil
}

// tags appends the tags of series i to dst.
func (x *index3) tags(i int, dst []string) ([]string, error) {
	d := newDecbuf(x.body[x.tagStart[i]:])
	n := d.Uvarint()
	for k := uint64(0); k < n && d.Err == nil; k++ {
		dst = append(dst, string(d.Bytes64(d.Uvarint())))
	}
	if d.Err != nil {
		// parseIndex3 walked these bytes already.
		return dst, fmt.Errorf("BUG: tags of series %d: %v", i, d.Err)
	}
	return dst, nil
}

// blockInfo3 lists the blocks of series i, reading and checking each.
func (r *Reader) blockInfo3(i int) ([]BlockInfo, error) {
	var s Series
	refs, cols := r.v3.seriesRefs(i)
	out := make([]BlockInfo, 0, len(refs))
	for j, id := range refs {
		b, err := s.blocks.block(r, id)
		if err != nil {
			return out, err
		}
		be := &r.v3.blocks[id]
		c := b.h.cols[cols[j]]
		out = append(out, BlockInfo{
			Offset: be.off, Length: be.length, Points: be.count, MinTs: be.minTs, MaxTs: be.maxTs,
			TsEncoding: b.h.tsEnc, ValueEncoding: c.enc, TsBytes: b.h.tsLen, ValueBytes: c.len,
			Columns: len(b.h.cols), Column: int(cols[j]),
		})
	}
	return out, nil
}
