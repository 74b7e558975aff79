package columnar

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Decbuf decodes little-endian fields with a sticky error, as tsdb's encoding.Decbuf
// does: after the first failure every read returns zero, so a decoder checks Err once at
// the end. Segment footers and series files both decode with it.
type Decbuf struct {
	B   []byte
	Err error
	// Short and Bad, when set, are wrapped by the errors of input that ends too soon
	// and of a malformed varint, so that callers can tell them apart with errors.Is.
	Short, Bad error
}

// setErr keeps the first error, wrapping sentinel when there is one.
func (d *Decbuf) setErr(sentinel error, format string, args ...any) {
	if d.Err == nil {
		msg := fmt.Sprintf(format, args...)
		if sentinel != nil {
			d.Err = fmt.Errorf("%s: %w", msg, sentinel)
		} else {
			d.Err = errors.New(msg)
		}
	}
	d.B = nil
}

func (d *Decbuf) fail(need int) { d.setErr(d.Short, "need %d bytes, have %d", need, len(d.B)) }

// U8 reads one byte.
func (d *Decbuf) U8() byte {
	if len(d.B) < 1 {
		d.fail(1)
		return 0
	}
	v := d.B[0]
	d.B = d.B[1:]
	return v
}

// U16 reads a little-endian uint16.
func (d *Decbuf) U16() uint16 {
	if len(d.B) < 2 {
		d.fail(2)
		return 0
	}
	v := binary.LittleEndian.Uint16(d.B)
	d.B = d.B[2:]
	return v
}

// U32 reads a little-endian uint32.
func (d *Decbuf) U32() uint32 {
	if len(d.B) < 4 {
		d.fail(4)
		return 0
	}
	v := binary.LittleEndian.Uint32(d.B)
	d.B = d.B[4:]
	return v
}

// u64 reads a little-endian uint64.
func (d *Decbuf) u64() uint64 {
	if len(d.B) < 8 {
		d.fail(8)
		return 0
	}
	v := binary.LittleEndian.Uint64(d.B)
	d.B = d.B[8:]
	return v
}

// Uvarint reads an unsigned varint.
func (d *Decbuf) Uvarint() uint64 {
	if d.Err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.B)
	if n <= 0 {
		if n == 0 {
			d.fail(len(d.B) + 1)
		} else {
			d.setErr(d.Bad, "uvarint overflows 64 bits")
		}
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Varint reads a zigzag-encoded signed varint.
func (d *Decbuf) Varint() int64 {
	u := d.Uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

// Bytes reads n bytes, capped so that appending to them cannot overwrite what follows.
func (d *Decbuf) Bytes(n int) []byte {
	if n < 0 || len(d.B) < n {
		d.fail(n)
		return nil
	}
	v := d.B[:n:n]
	d.B = d.B[n:]
	return v
}

// Bytes64 is Bytes for a length read from the input.
func (d *Decbuf) Bytes64(n uint64) []byte {
	if n > uint64(len(d.B)) {
		d.fail(int(min(n, math.MaxInt32)))
		return nil
	}
	return d.Bytes(int(n))
}
