package encoder

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
)

// FuzzCounts rewrites the frozen fixtures with one claimed count or length replaced by
// the fuzzer's value, every checksum recomputed afterwards, so that the reader's checks
// of claims against the bytes are reached instead of its checksums. The targets are every
// count and length of the trailer, the index (v3: its header and its body, written plain
// for the purpose), the series headers (v1, v2) and the block headers, and the block
// references of the v3 index. Invariants: the reader either decodes the file or returns a
// *CorruptFileError; it never panics; and it allocates little whatever a field claims
// (maxClaimAlloc).
//
//	go test ./encoder/ -run '^$' -fuzz '^FuzzCounts$' -fuzztime 60s
func FuzzCounts(f *testing.F) {
	files := countFixtures(f)
	for i, cf := range files {
		n := cf.fields()
		for j := 0; j < n; j += max(1, n/8) {
			for _, v := range []uint64{0, 1, 1 << 20, 1 << 40, 1<<64 - 1} {
				f.Add(uint8(i), uint16(j), v)
			}
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, idx uint16, val uint64) {
		cf := files[int(which)%len(files)]
		requireBoundedRead(t, cf.build(int(idx)%cf.fields(), val))
	})
}

// maxClaimAlloc bounds what reading one rewritten fixture (a few KiB) may allocate:
// blocks of up to MaxBlockPoints decoded, the scratch of a zstd stage, and change.
const maxClaimAlloc = 16 << 20

// requireBoundedRead reads b as FuzzOpen does and checks the allocation bound.
func requireBoundedRead(t *testing.T, b []byte) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := readAll(b)
	runtime.ReadMemStats(&after)
	if err != nil && !IsCorrupt(err) {
		t.Fatalf("error %v is not a *CorruptFileError", err)
	}
	if a := after.TotalAlloc - before.TotalAlloc; a > maxClaimAlloc {
		t.Fatalf("reading %d bytes allocated %d bytes (error %v)", len(b), a, err)
	}
}

// claimWriter writes a file with its claims: each count or length goes through claim,
// which writes the fuzzer's value instead of the true one for the chosen field.
type claimWriter struct {
	b      []byte
	n      int // claims written so far
	target int // the claim to replace, or -1
	val    uint64
}

func (w *claimWriter) claim(v uint64) uint64 {
	if w.n == w.target {
		v = w.val
	}
	w.n++
	return v
}

func (w *claimWriter) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, w.claim(v)) }
func (w *claimWriter) u64(v uint64)     { w.b = binary.LittleEndian.AppendUint64(w.b, w.claim(v)) }

// crc appends the checksum of b[start:].
func (w *claimWriter) crc(start int) {
	w.b = binary.LittleEndian.AppendUint32(w.b, checksum(w.b[start:]))
}

// trailer appends the trailer of an index at indexOff.
func (w *claimWriter) trailer(indexOff int, version uint16) {
	crc := checksum(w.b[indexOff:])
	n := len(w.b) - indexOff
	w.u64(uint64(indexOff))
	w.u64(uint64(n))
	w.b = binary.LittleEndian.AppendUint32(w.b, crc)
	w.b = binary.LittleEndian.AppendUint16(w.b, version)
	w.b = binary.LittleEndian.AppendUint16(w.b, 0)
	w.b = append(w.b, Magic...)
}

// countFile is a fixture taken apart, to be written again with one claim changed.
type countFile struct {
	version uint16
	write   func(w *claimWriter)
}

// fields is how many claims the file has.
func (c *countFile) fields() int {
	w := claimWriter{target: -1}
	c.write(&w)
	return w.n
}

func (c *countFile) build(target int, val uint64) []byte {
	w := claimWriter{target: target, val: val}
	w.b = appendFileHeader(nil, c.version)
	c.write(&w)
	return w.b
}

// countFixtures takes apart every frozen fixture that holds series.
func countFixtures(tb testing.TB) []*countFile {
	paths, _ := filepath.Glob(filepath.Join(fixtureRoot, "v*", "*.tsf"))
	var out []*countFile
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		r, err := Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			tb.Fatalf("%s: %v", p, err)
		}
		if len(r.Index()) == 0 {
			continue
		}
		var cf *countFile
		if r.Version() >= Version3 {
			cf = apartV3(tb, r)
		} else {
			cf = apartV2(tb, b, r)
		}
		// Written again unchanged, the file is what it was (v3: but for its index body,
		// now plain), so the claims alone differ in the rewritten files.
		if again := cf.build(-1, 0); r.Version() < Version3 && !bytes.Equal(again, b) {
			tb.Fatalf("%s: taken apart and written again, the file differs", p)
		} else if err := readAll(again); err != nil {
			tb.Fatalf("%s written again: %v", p, err)
		}
		out = append(out, cf)
	}
	if len(out) == 0 {
		tb.Fatal("no fixtures")
	}
	return out
}

type rawBlock2 struct {
	count, span   uint64
	minTs         int64
	tsEnc, valEnc byte
	ts, vals      []byte
}

// apartV2 takes a v1 or v2 file apart: series headers and blocks, then the index.
func apartV2(tb testing.TB, b []byte, r *Reader) *countFile {
	type rec struct {
		e      IndexEntry
		tags   []string
		blocks []rawBlock2
	}
	var recs []rec
	for _, e := range r.Index() {
		raw := b[e.Offset : e.Offset+e.Length]
		_, tags, rest, err := parseSeriesHeader(raw, e.Offset, nil)
		if err != nil {
			tb.Fatal(err)
		}
		x := rec{e: e, tags: tags}
		for len(rest) > 0 {
			var h blockHeader
			p, err := h.Unmarshal(rest, r.Version())
			if err != nil {
				tb.Fatal(err)
			}
			x.blocks = append(x.blocks, rawBlock2{count: uint64(h.count), span: uint64(h.maxTs - h.minTs), minTs: h.minTs,
				tsEnc: byte(h.tsEnc), valEnc: byte(h.valEnc), ts: p[:h.tsLen], vals: p[h.tsLen : h.tsLen+h.valLen]})
			rest = p[h.tsLen+h.valLen+4:]
		}
		recs = append(recs, x)
	}
	orgs := r.OrgRanges()
	return &countFile{version: r.Version(), write: func(w *claimWriter) {
		offs := make([]int, len(recs))
		lens := make([]int, len(recs))
		for i, x := range recs {
			offs[i] = len(w.b)
			w.b = appendKey(w.b, x.e.Key)
			w.uvarint(uint64(len(x.tags)))
			for _, t := range x.tags {
				w.uvarint(uint64(len(t)))
				w.b = append(w.b, t...)
			}
			w.crc(offs[i])
			for _, bl := range x.blocks {
				start := len(w.b)
				w.uvarint(bl.count)
				w.b = binary.AppendVarint(w.b, bl.minTs)
				w.uvarint(bl.span)
				w.b = append(w.b, bl.tsEnc, bl.valEnc)
				w.uvarint(uint64(len(bl.ts)))
				w.uvarint(uint64(len(bl.vals)))
				w.b = append(append(w.b, bl.ts...), bl.vals...)
				w.crc(start)
			}
			lens[i] = len(w.b) - offs[i]
		}
		indexOff := len(w.b)
		w.u64(uint64(len(recs)))
		w.u64(uint64(len(orgs)))
		for i, x := range recs {
			w.b = appendKey(w.b, x.e.Key)
			w.u64(uint64(offs[i]))
			w.u64(uint64(lens[i]))
			w.u64(uint64(x.e.Points))
			w.b = binary.LittleEndian.AppendUint64(w.b, uint64(x.e.MinTs))
			w.b = binary.LittleEndian.AppendUint64(w.b, uint64(x.e.MaxTs))
		}
		for _, o := range orgs {
			w.b = binary.LittleEndian.AppendUint32(w.b, o.Org)
			w.u64(uint64(o.First))
			w.u64(uint64(o.Count))
		}
		w.trailer(indexOff, r.Version())
	}}
}

// apartV3 takes a v3 file apart: blocks and their columns, then the index's blocks and
// series.
func apartV3(tb testing.TB, r *Reader) *countFile {
	x := r.v3
	var s Series
	type rawBlock3 struct {
		h    blockHeader
		ts   []byte
		cols [][]byte
	}
	blocks := make([]rawBlock3, len(x.blocks))
	for id := range x.blocks {
		cb, err := s.blocks.block(r, uint32(id))
		if err != nil {
			tb.Fatal(err)
		}
		rb := rawBlock3{h: cb.h, ts: bytes.Clone(cb.payload[:cb.h.tsLen])}
		rb.h.cols = append([]column(nil), cb.h.cols...)
		for _, c := range cb.h.cols {
			rb.cols = append(rb.cols, bytes.Clone(cb.payload[cb.h.tsLen+c.off:cb.h.tsLen+c.off+c.len]))
		}
		blocks[id] = rb
	}
	type rawSeries3 struct {
		key  columnar.SeriesKey
		tags []string
		refs []uint32
	}
	series := make([]rawSeries3, len(r.entries))
	for i, e := range r.entries {
		tags, err := x.tags(i, nil)
		if err != nil {
			tb.Fatal(err)
		}
		refs, _ := x.seriesRefs(i)
		series[i] = rawSeries3{key: e.Key, tags: tags, refs: append([]uint32(nil), refs...)}
	}
	return &countFile{version: r.Version(), write: func(w *claimWriter) {
		lens := make([]int, len(blocks))
		for i, bl := range blocks {
			start := len(w.b)
			w.uvarint(uint64(bl.h.count))
			w.b = binary.AppendVarint(w.b, bl.h.minTs)
			w.uvarint(uint64(bl.h.maxTs - bl.h.minTs))
			w.b = append(w.b, byte(bl.h.tsEnc))
			w.uvarint(uint64(len(bl.ts)))
			w.uvarint(uint64(len(bl.cols)))
			for j, c := range bl.h.cols {
				w.b = append(w.b, byte(c.enc))
				w.uvarint(uint64(len(bl.cols[j])))
			}
			w.b = append(w.b, bl.ts...)
			for _, c := range bl.cols {
				w.b = append(w.b, c...)
			}
			w.crc(start)
			lens[i] = len(w.b) - start
		}
		// The body is written apart, then its header with its length; the claims are
		// numbered in the order they are written either way.
		body := claimWriter{n: w.n + 3, target: w.target, val: w.val}
		var prevTs int64
		for i, bl := range blocks {
			body.uvarint(uint64(lens[i]))
			body.uvarint(uint64(bl.h.count))
			body.b = binary.AppendVarint(body.b, bl.h.minTs-prevTs)
			body.uvarint(uint64(bl.h.maxTs - bl.h.minTs))
			body.uvarint(uint64(len(bl.cols)))
			prevTs = bl.h.minTs
		}
		prevRef := int64(-1)
		for i, sr := range series {
			var prev columnar.SeriesKey
			if i > 0 {
				prev = series[i-1].key
			}
			body.b = appendKeyDelta(body.b, prev, sr.key, i == 0)
			body.uvarint(uint64(len(sr.tags)))
			for _, t := range sr.tags {
				body.uvarint(uint64(len(t)))
				body.b = append(body.b, t...)
			}
			body.uvarint(uint64(len(sr.refs)))
			for _, ref := range sr.refs {
				body.b = binary.AppendVarint(body.b, int64(body.claim(uint64(int64(ref)-prevRef))))
				prevRef = int64(ref)
			}
		}
		indexOff := len(w.b)
		w.uvarint(uint64(len(series)))
		w.uvarint(uint64(len(blocks)))
		w.b = append(w.b, 0)
		w.uvarint(uint64(len(body.b)))
		w.b = append(w.b, body.b...)
		w.n = body.n
		w.trailer(indexOff, r.Version())
	}}
}
