package columnar

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// The column codecs of version-2 frames (docs/format/segment.md, "Frame bodies").
//
// Version 1 handed a frame's ts deltas and value XORs to zstd with the rest of the frame.
// That was half of the sink's CPU: with agents' jittery clocks the deltas, and with noisy
// gauges the XORs, are close to noise in their low bytes, and zstd's fastest level spent
// about 30 ns a point on each column. Version 2 codes both columns with 4 bits a row that
// say which of the row's bytes are stored, and the bytes: a few ns a point and no state.
// The writer then hands the codes (and the value bytes, where a probe says it pays) to
// s2, which finds what repeats (regular series, repeated values) at a few ns more, and
// zstd keeps only the series keys and tags.
//
// Both codecs write a control section of one nibble a row (the low nibble first; an odd
// row count leaves the last high nibble zero) and a data section of the bytes.

// nibbleBytes is the size of the control section of rows rows.
func nibbleBytes(rows int) int { return (rows + 1) / 2 }

// sectionBytes bounds the ts and value sections of a frame of rows rows: two control
// sections, and at most 8 bytes a row in each data section.
func sectionBytes(rows int) int { return 2*nibbleBytes(rows) + rowRawBytes*rows }

// nibbleSlack is the room an encoder needs past the bytes it writes: it stores every row
// with one 8-byte write.
const nibbleSlack = 8

// nibbleEncoder appends rows to a control section (sized and zeroed by the caller) and
// a data section (with room for 8 bytes a row still to add, plus nibbleSlack).
type nibbleEncoder struct {
	ctrl []byte
	data []byte
	row  int
}

// put stores the low n bytes of x at data[p:] and code c for row, and returns the new end
// of data.
func put(ctrl, data []byte, p, row int, c uint8, x uint64, n int) int {
	binary.LittleEndian.PutUint64(data[p:], x)
	ctrl[row>>1] |= c << (4 * (row & 1))
	return p + n
}

// A nibbleCode is what a code stores: n bytes, which go to bytes [lo, lo+n) of the value.
type nibbleCode struct {
	mask uint64 // byteMask[n]
	lo   uint8  // in bytes
	n    uint8
}

// A nibbleCodec is one codec's 16 codes: what each stores, and for each control byte the
// bytes its two rows hold, or -1 if either code is invalid.
type nibbleCodec struct {
	name  string // in errors: "ts", "values"
	codes [16]nibbleCode
	pairs [256]int16
}

// newNibbleCodec builds the tables of a codec whose code c stores window[c]; the codes
// from valid on are invalid.
func newNibbleCodec(name string, windows [16]xorWindow, valid int) *nibbleCodec {
	c := &nibbleCodec{name: name}
	for i, w := range windows {
		c.codes[i] = nibbleCode{mask: byteMask[w.n&15], lo: w.lo, n: w.n}
	}
	for b := range c.pairs {
		lo, hi := b&15, b>>4
		if lo >= valid || hi >= valid {
			c.pairs[b] = -1
			continue
		}
		c.pairs[b] = int16(c.codes[lo].n) + int16(c.codes[hi].n)
	}
	return c
}

// decode checks the control section against the data section, then decodes rows values
// from them into dst, 8 bytes little-endian a row. The checks: the sections' sizes, that
// every code is valid, that an odd row count leaves the last high nibble zero, and that
// the codes' bytes add up to the data section exactly; decodeNibbles then loads without
// checks.
func (c *nibbleCodec) decode(dst []byte, rows int, ctrl, data []byte) error {
	if len(ctrl) != nibbleBytes(rows) {
		return fmt.Errorf("%s: %d control bytes for %d rows", c.name, len(ctrl), rows)
	}
	if rows&1 == 1 && ctrl[rows>>1]>>4 != 0 {
		return fmt.Errorf("%s: unused control nibble %d, want 0", c.name, ctrl[rows>>1]>>4)
	}
	total := 0
	for i, b := range ctrl {
		n := c.pairs[b]
		if n < 0 {
			return fmt.Errorf("%s: rows %d and %d: bad codes %d and %d", c.name, 2*i, 2*i+1, b&15, b>>4)
		}
		total += int(n)
	}
	if total != len(data) {
		return fmt.Errorf("%s: codes hold %d bytes, the section has %d", c.name, total, len(data))
	}
	if len(dst) != 8*rows {
		return fmt.Errorf("%s: %d decoded bytes for %d rows", c.name, len(dst), rows)
	}
	decodeNibbles(dst, rows, ctrl, data, &c.codes)
	return nil
}

// load returns the n bytes at data[p:] as the low bytes of a uint64 (mask keeps them);
// nibbleCodec.decode made sure they are there.
func load(data []byte, p int, mask uint64) uint64 {
	if p+8 <= len(data) {
		return binary.LittleEndian.Uint64(data[p:]) & mask
	}
	var tmp [8]byte
	copy(tmp[:], data[p:])
	return binary.LittleEndian.Uint64(tmp[:]) & mask
}

// The ts codec. Version 1's ts section holds, per group, the first ts and then the deltas
// to the previous ts. Version 2 stores each as a zigzag-coded difference: the first ts
// from the previous group's first ts (0 before the first group), the first delta from the
// previous group's first delta, and every later delta from the delta before it, so a
// regular series stores no bytes and a jittery one about its jitter. The code is the
// number of bytes stored, 0 to 8; codes 9 to 15 are invalid.

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// byteMask[n] keeps the low n bytes of a uint64.
var byteMask = func() (t [16]uint64) {
	for n := range 9 {
		t[n] = uint64(1)<<(8*n) - 1 // a shift by 64 gives 0: all ones for n = 8
	}
	return t
}()

// tsEncoder codes version 1's ts section values, group by group.
type tsEncoder struct {
	nibbleEncoder
	counts          []uint32 // rows of each group
	g, i            int      // the group and the row within it of the next value
	first, d1, prev uint64   // the previous group's first ts and first delta; the previous delta
}

// tsCodec: code c stores c bytes at the bottom.
var tsCodec = func() *nibbleCodec {
	var w [16]xorWindow
	for c := range 9 {
		w[c] = xorWindow{0, uint8(c)}
	}
	return newNibbleCodec("ts", w, 9)
}()

func (e *tsEncoder) add(xs []uint64) {
	ctrl, data, p, row := e.ctrl, e.data[:cap(e.data)], len(e.data), e.row
	for len(xs) > 0 {
		for e.i == int(e.counts[e.g]) {
			e.g, e.i = e.g+1, 0
		}
		run := xs[:min(len(xs), int(e.counts[e.g])-e.i)]
		xs = xs[len(run):]
		for ; e.i < 2 && len(run) > 0; e.i++ {
			x := run[0]
			run = run[1:]
			var y uint64
			if e.i == 0 {
				y, e.first = zigzag(int64(x-e.first)), x
			} else {
				y, e.d1, e.prev = zigzag(int64(x-e.d1)), x, x
			}
			n := (64 - bits.LeadingZeros64(y) + 7) >> 3
			p = put(ctrl, data, p, row, uint8(n), y, n)
			row++
		}
		prev := e.prev
		for _, x := range run {
			y := zigzag(int64(x - prev))
			prev = x
			n := (64 - bits.LeadingZeros64(y) + 7) >> 3
			p = put(ctrl, data, p, row, uint8(n), y, n)
			row++
		}
		e.prev = prev
		e.i += len(run)
	}
	e.data, e.row = data[:p], row
}

// decodeTs decodes the ts section of a frame whose groups have counts rows each into dst,
// 8 bytes little-endian a row as version 1 stores them. It checks the counts as it goes,
// since it walks them: none is zero and they sum to the row count.
func decodeTs(dst []byte, rows int, counts, ctrl, data []byte) error {
	// First every row's zigzag-coded difference, then the sums group by group: two
	// simple passes over the frame, which stays in cache, run faster than one that
	// carries the groups' sums through the variable-length loads.
	if err := tsCodec.decode(dst, rows, ctrl, data); err != nil {
		return err
	}
	le := binary.LittleEndian
	var first, d1 uint64
	row := 0
	for g := 0; 4*g+4 <= len(counts); g++ {
		n := int(le.Uint32(counts[4*g:]))
		if n == 0 {
			return fmt.Errorf("ts: group %d has no rows", g)
		}
		if n > rows-row {
			return fmt.Errorf("ts: group %d has %d rows, %d of the frame's %d left", g, n, rows-row, rows)
		}
		out := dst[8*row : 8*(row+n)]
		row += n
		first += uint64(unzigzag(le.Uint64(out)))
		le.PutUint64(out, first)
		if n == 1 {
			continue
		}
		d1 += uint64(unzigzag(le.Uint64(out[8:])))
		le.PutUint64(out[8:], d1)
		prev := d1
		for i := 16; i+8 <= len(out); i += 8 {
			prev += uint64(unzigzag(le.Uint64(out[i:])))
			le.PutUint64(out[i:], prev)
		}
	}
	if row != rows {
		return fmt.Errorf("ts: groups hold %d rows, the frame %d", row, rows)
	}
	return nil
}

// decodeNibbles decodes rows values from sections that nibbleCodec.decode accepted into dst, 8
// bytes little-endian a row. Rows go two at a time, one control byte: the second row's
// bytes start where the first's end, and both loads issue together instead of waiting
// on each other's length. A control byte of two empty codes (code 0 in both codecs: a
// regular series' ts, a value equal to the one before) loads nothing.
func decodeNibbles(dst []byte, rows int, ctrl, data []byte, codes *[16]nibbleCode) {
	le := binary.LittleEndian
	p := 0
	for k := 0; 2*k+2 <= rows; k++ {
		b := ctrl[k]
		out := dst[16*k : 16*k+16]
		if b == 0 && codes[0].n == 0 {
			le.PutUint64(out, 0)
			le.PutUint64(out[8:], 0)
			continue
		}
		c0, c1 := &codes[b&15], &codes[b>>4]
		var x0, x1 uint64
		if p+16 <= len(data) {
			x0 = le.Uint64(data[p:]) & c0.mask
			x1 = le.Uint64(data[p+int(c0.n):]) & c1.mask
		} else {
			x0 = load(data, p, c0.mask)
			x1 = load(data, p+int(c0.n), c1.mask)
		}
		le.PutUint64(out, x0<<(8*c0.lo))
		le.PutUint64(out[8:], x1<<(8*c1.lo))
		p += int(c0.n) + int(c1.n)
	}
	if rows&1 == 1 {
		c := &codes[ctrl[rows>>1]&15]
		le.PutUint64(dst[8*(rows-1):], load(data, p, c.mask)<<(8*c.lo))
	}
}

// The value codec. Each XOR (version 1's value section: per group the first value's bits,
// then each value's bits XOR the previous value's) is stored as its bytes in the smallest
// of 15 fixed byte windows that holds its non-zero bytes. The windows are those the XORs
// of real series fall in: the low bytes of full-precision floats ([0,7), [0,6)) and the
// high bytes of integers and short decimals ([5,7), [6,7), [6,8)).

// xorWindow is the byte range [lo, lo+n) of a XOR that a code stores.
type xorWindow struct{ lo, n uint8 }

// xorWindows[c] is code c's window; code 0 is a XOR of zero, which stores no bytes.
var xorWindows = [16]xorWindow{
	{0, 0},
	{0, 8}, {0, 7}, {0, 6}, {0, 5},
	{3, 5}, {3, 4},
	{4, 4}, {4, 3}, {4, 2},
	{5, 3}, {5, 2}, {5, 1},
	{6, 2}, {6, 1},
	{7, 1},
}

// xorCode[lo][hi] is the code of the smallest window holding bytes [lo, hi) of a XOR. A
// XOR of zero has 8 trailing and 8 leading zero bytes: xorCode[8][0] is code 0.
var xorCode = func() (t [9][9]uint8) {
	for lo := 0; lo < 8; lo++ {
		for hi := lo + 1; hi <= 8; hi++ {
			best := 1 // [0, 8) holds everything
			for c := 2; c < len(xorWindows); c++ {
				w := xorWindows[c]
				if int(w.lo) <= lo && int(w.lo+w.n) >= hi && w.n < xorWindows[best].n {
					best = c
				}
			}
			t[lo][hi] = uint8(best)
		}
	}
	return t
}()

// xorEncoder codes version 1's value section values.
type xorEncoder struct{ nibbleEncoder }

func (e *xorEncoder) add(xs []uint64) {
	ctrl, data, p, row := e.ctrl, e.data[:cap(e.data)], len(e.data), e.row
	for _, x := range xs {
		c := xorCode[bits.TrailingZeros64(x)>>3][8-bits.LeadingZeros64(x)>>3]
		w := xorWindows[c&15]
		p = put(ctrl, data, p, row, c, x>>(8*w.lo), int(w.n))
		row++
	}
	e.data, e.row = data[:p], row
}

var xorCodec = newNibbleCodec("values", xorWindows, len(xorWindows))

// decodeXORs decodes rows XORs from ctrl and data into dst, 8 bytes little-endian each,
// as version 1 stores them.
func decodeXORs(dst []byte, rows int, ctrl, data []byte) error {
	return xorCodec.decode(dst, rows, ctrl, data)
}
