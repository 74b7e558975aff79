package encoder

import (
	"encoding/binary"
)

// bitWriter appends bits MSB-first to a byte slice. It keeps up to 64 pending bits in an
// accumulator and spills 8 bytes at a time, so the hot path is a shift and an OR.
// See docs/format/series.md, "Bit streams".
type bitWriter struct {
	b   []byte
	acc uint64 // pending bits, right-aligned
	n   uint   // number of pending bits, 0..63
}

func (w *bitWriter) reset(dst []byte) {
	w.b = dst
	w.acc = 0
	w.n = 0
}

// writeBits appends the low nb bits of v; nb is 0..64 and v must have no higher bits set.
func (w *bitWriter) writeBits(v uint64, nb uint) {
	free := 64 - w.n
	if nb < free {
		// Fast path: fits in the accumulator. Go defines x<<64 == 0, so nb == 0 is fine.
		w.acc = w.acc<<nb | v
		w.n += nb
		return
	}
	rem := nb - free
	w.acc = w.acc<<free | v>>rem
	w.b = binary.BigEndian.AppendUint64(w.b, w.acc)
	w.acc = v & (1<<rem - 1)
	w.n = rem
}

// finish pads the last byte with zero bits and returns the stream.
func (w *bitWriter) finish() []byte {
	if w.n > 0 {
		v := w.acc << (64 - w.n)
		for i := uint(0); i < w.n; i += 8 {
			w.b = append(w.b, byte(v>>56))
			v <<= 8
		}
	}
	w.acc, w.n = 0, 0
	return w.b
}

// bitReader reads an MSB-first bit stream. Reading past the end never panics: it returns
// zeros and sets a sticky overflow flag that the caller checks once after its loop (the
// Prometheus Decbuf habit). Loops are bounded by a validated point count, so a hostile
// stream cannot make them spin.
type bitReader struct {
	src  []byte
	pos  int    // next byte of src to load into acc
	acc  uint64 // buffered bits, left-aligned: the MSB is the next bit
	n    uint   // number of valid bits in acc
	over bool   // read past the end
}

func (r *bitReader) reset(src []byte) {
	*r = bitReader{src: src}
}

// refill tops acc up to at least 56 valid bits when the input allows it.
func (r *bitReader) refill() {
	if r.pos+8 <= len(r.src) {
		// Fast path: load 8 bytes and keep the whole ones that fit. The low bits of a
		// partially kept byte land in acc too; they are the right bits, and the next
		// refill ORs the same values on top of them, so they do no harm.
		v := binary.BigEndian.Uint64(r.src[r.pos:])
		r.acc |= v >> r.n
		k := (64 - r.n) >> 3
		r.pos += int(k)
		r.n += k << 3
		return
	}
	for r.n <= 56 && r.pos < len(r.src) {
		r.acc |= uint64(r.src[r.pos]) << (56 - r.n)
		r.pos++
		r.n += 8
	}
}

// readBits returns the next nb bits (nb is 1..56) right-aligned.
func (r *bitReader) readBits(nb uint) uint64 {
	if r.n < nb {
		r.refill()
		if r.n < nb {
			r.over = true
			r.acc, r.n = 0, 64 // keep returning zeros without touching src again
			return 0
		}
	}
	v := r.acc >> (64 - nb)
	r.acc <<= nb
	r.n -= nb
	return v
}

// readBits64 returns the next nb bits for any nb in 0..64.
func (r *bitReader) readBits64(nb uint) uint64 {
	if nb <= 56 {
		if nb == 0 {
			return 0
		}
		return r.readBits(nb)
	}
	hi := r.readBits(nb - 32)
	return hi<<32 | r.readBits(32)
}

func (r *bitReader) readBit() bool {
	if r.n == 0 {
		r.refill()
		if r.n == 0 {
			r.over = true
			r.acc, r.n = 0, 64
			return false
		}
	}
	b := r.acc>>63 != 0
	r.acc <<= 1
	r.n--
	return b
}

// leadingOnes reads up to max one-bits, stopping after the first zero bit, and returns
// how many ones it read. It decodes the unary bucket prefixes of the timestamp codecs.
func (r *bitReader) leadingOnes(max int) int {
	i := 0
	for ; i < max; i++ {
		if !r.readBit() {
			break
		}
	}
	return i
}
