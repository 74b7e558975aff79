// Package encoder writes and reads Tailor series files: per-series, time-sorted,
// compressed point files, the output of a compute run.
//
// A file (format v3) is a header, blocks, an index and a fixed-size trailer. A block
// holds one timestamp column and a value column for each series that carries exactly
// those timestamps (the series of one scrape target share blocks); every column names its
// encoding in a tag byte, chosen per block among several, and every block carries a
// crc32c. The index, compressed, holds the keys, tags and blocks of every series. A reader
// reads the trailer and index from the end of the file, then the blocks of the series it
// wants. Formats v1 and v2 (one record per series) are still read and can still be
// written. The byte layout, every encoding, the writer's choices and what a reader must
// reject are in docs/format/series.md.
//
// Writer encodes series handed to it one at a time, in key order. A run gets series in
// the order of its sort instead; Spool encodes them at once and writes them out in key
// order, byte for byte what a Writer would write. Reader finds series by key or org,
// iterates them, and decodes back to Arrow.
package encoder

import (
	"fmt"
	"io"

	"github.com/tailor-metrics/tailor/columnar"
)

// Opt configures a Writer.
type Opt interface{ apply(*cfg) }

type opt struct{ fn func(*cfg) }

func (o opt) apply(c *cfg) { o.fn(c) }

type cfg struct {
	blockPoints int
	version     uint16
	flushBytes  int
}

const (
	defaultBlockPoints = 8192
	defaultFlushBytes  = 256 << 10
)

func defaultCfg() cfg {
	return cfg{
		blockPoints: defaultBlockPoints,
		version:     CurrentVersion,
		flushBytes:  defaultFlushBytes,
	}
}

func (c *cfg) validate() error {
	if c.blockPoints < 1 || c.blockPoints > MaxBlockPoints {
		return fmt.Errorf("block points %d is outside the allowed 1..%d", c.blockPoints, MaxBlockPoints)
	}
	if !supportedVersion(c.version) {
		return fmt.Errorf("format version %d is outside the supported %d..%d", c.version, Version1, CurrentVersion)
	}
	if c.flushBytes < 1 {
		return fmt.Errorf("flush bytes %d is smaller than min allowed 1", c.flushBytes)
	}
	return nil
}

// BlockPoints sets the most points a block holds, overriding the default 8192. Smaller
// blocks let readers skip more data on time-range reads; larger ones compress slightly
// better. It must be in 1..MaxBlockPoints.
func BlockPoints(n int) Opt { return opt{func(c *cfg) { c.blockPoints = n }} }

// FormatVersion sets the format version written, overriding the default CurrentVersion.
// Write an older version while some readers of the output are not upgraded yet.
func FormatVersion(v uint16) Opt { return opt{func(c *cfg) { c.version = v }} }

// FlushBytes sets how many encoded bytes the writer buffers before writing them to the
// underlying io.Writer, overriding the default 256KiB.
func FlushBytes(n int) Opt { return opt{func(c *cfg) { c.flushBytes = n }} }

// Stats are a Writer's running totals.
type Stats struct {
	Series int64 // series appended
	Points int64 // points appended
	// Bytes is the bytes encoded so far (v3: the blocks still open at their estimated
	// size); the file size once Close has returned.
	Bytes int64
}

// Writer writes one series file. Append series in strictly increasing key order, then
// Close. A Writer is not safe for concurrent use. After an error every later call
// returns the same error.
type Writer struct {
	w   io.Writer
	cfg cfg
	err error

	started bool
	closed  bool
	written int64 // bytes handed to w
	buf     []byte

	entries []IndexEntry
	orgs    []OrgRange
	stats   Stats

	enc     blockEncoder
	share   sharer // format v3: the blocks being shared
	scratch []byte // a v3 series' loose record
}

// NewWriter returns a Writer that writes a series file to w. An invalid option is
// reported by the first Append or Close. The Writer buffers; it never closes w.
func NewWriter(w io.Writer, opts ...Opt) *Writer {
	c := defaultCfg()
	for _, o := range opts {
		o.apply(&c)
	}
	wr := &Writer{w: w, cfg: c}
	if err := c.validate(); err != nil {
		wr.err = fmt.Errorf("new series writer: %w", err)
	}
	wr.enc.version = c.version
	return wr
}

// Version returns the format version the Writer writes.
func (w *Writer) Version() uint16 { return w.cfg.version }

// Stats returns the running totals.
func (w *Writer) Stats() Stats { return w.stats }

// Append writes one whole series: its key, tags ("k:v" metadata, stored verbatim) and
// points. Keys must strictly increase from call to call and timestamps strictly increase
// within the series; ts and values must have the same, non-zero length. Append does not
// retain any of its arguments.
func (w *Writer) Append(key columnar.SeriesKey, tags []string, ts []int64, values []float64) error {
	if err := w.check(key); err != nil {
		return err
	}
	if err := checkSeries(key, ts, values); err != nil {
		return err
	}
	w.begin()
	var e IndexEntry
	if w.cfg.version >= Version3 {
		w.scratch, e = w.enc.appendLoose(w.scratch[:0], w.cfg.blockPoints, key, tags, ts, values)
		if err := w.addLoose(e, w.scratch); err != nil {
			w.err = err
			return err
		}
		return w.added(e)
	}
	start := len(w.buf)
	w.buf, e = w.enc.appendRecord(w.buf, w.cfg.blockPoints, key, tags, ts, values)
	e.Offset = w.written + int64(start)
	return w.added(e)
}

// AppendRecord appends a series encoded apart from the file by a Spool made with the
// same options, with its index entry; the key order rule of Append applies. rec is not
// retained.
func (w *Writer) AppendRecord(e IndexEntry, rec []byte) error {
	if err := w.check(e.Key); err != nil {
		return err
	}
	if int64(len(rec)) != e.Length {
		return fmt.Errorf("append record of series %v: %d bytes, entry says %d", e.Key, len(rec), e.Length)
	}
	w.begin()
	if w.cfg.version >= Version3 {
		if err := w.addLoose(e, rec); err != nil {
			w.err = err
			return err
		}
		return w.added(e)
	}
	e.Offset = w.written + int64(len(w.buf))
	w.buf = append(w.buf, rec...)
	return w.added(e)
}

// check returns the error that stops appending series key.
func (w *Writer) check(key columnar.SeriesKey) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return fmt.Errorf("append series %v: %w", key, ErrClosed)
	}
	if n := len(w.entries); n > 0 && !w.entries[n-1].Key.Less(key) {
		return fmt.Errorf("append series %v after %v: keys must strictly increase: %w", key, w.entries[n-1].Key, ErrOutOfOrder)
	}
	return nil
}

// checkSeries validates the points of one series.
func checkSeries(key columnar.SeriesKey, ts []int64, values []float64) error {
	if len(ts) != len(values) {
		return fmt.Errorf("append series %v: %d timestamps but %d values", key, len(ts), len(values))
	}
	if len(ts) == 0 {
		return fmt.Errorf("append series %v: no points", key)
	}
	for i := 1; i < len(ts); i++ {
		if ts[i] <= ts[i-1] {
			return fmt.Errorf("append series %v: timestamp %d at index %d is not after %d at index %d: %w",
				key, ts[i], i, ts[i-1], i-1, ErrOutOfOrder)
		}
	}
	return nil
}

// begin writes the file header before the first record.
func (w *Writer) begin() {
	if !w.started {
		w.buf = appendFileHeader(w.buf, w.cfg.version)
		w.started = true
	}
}

// added indexes the record just put in w.buf and flushes once enough is buffered.
func (w *Writer) added(e IndexEntry) error {
	w.entries = append(w.entries, e)
	w.stats.Series++
	w.stats.Points += e.Points
	w.stats.Bytes = w.written + int64(len(w.buf)) + int64(w.share.openBytes)
	if len(w.buf) >= w.cfg.flushBytes {
		return w.flush()
	}
	return nil
}

// appendRecord appends the record of one validated series (header, then blocks of at
// most blockPoints points) to dst and returns its index entry, Offset left to the caller.
func (e *blockEncoder) appendRecord(dst []byte, blockPoints int, key columnar.SeriesKey, tags []string, ts []int64, values []float64) ([]byte, IndexEntry) {
	start := len(dst)
	dst = appendSeriesHeader(dst, key, tags)
	for i := 0; i < len(ts); i += blockPoints {
		j := min(i+blockPoints, len(ts))
		dst = e.appendBlock(dst, ts[i:j], values[i:j])
	}
	return dst, IndexEntry{Key: key, Length: int64(len(dst) - start), Points: int64(len(ts)), MinTs: ts[0], MaxTs: ts[len(ts)-1]}
}

func (w *Writer) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	n, err := w.w.Write(w.buf)
	w.written += int64(n)
	if err == nil && n < len(w.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = fmt.Errorf("write series file at offset %d: %w", w.written, err)
		return w.err
	}
	w.buf = w.buf[:0]
	return nil
}

// Close writes the index and the trailer and flushes. It does not close the underlying
// io.Writer. Calling Close again returns the first Close's result.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return nil
	}
	w.closed = true
	w.begin()
	if w.cfg.version >= Version3 {
		if err := w.writeOpenBlocks(); err != nil {
			return fmt.Errorf("close series writer: %w", err)
		}
	}
	indexOff := w.written + int64(len(w.buf))
	start := len(w.buf)
	if w.cfg.version >= Version3 {
		w.buf = w.share.appendIndex(w.buf, w.entries)
	} else {
		w.orgs = buildOrgRanges(w.orgs[:0], w.entries)
		w.buf = appendIndex(w.buf, w.entries, w.orgs)
	}
	t := trailer{
		indexOff: indexOff,
		indexLen: int64(len(w.buf) - start),
		indexCRC: checksum(w.buf[start:]),
		version:  w.cfg.version,
	}
	w.buf = t.Marshal(w.buf)
	w.stats.Bytes = w.written + int64(len(w.buf))
	if err := w.flush(); err != nil {
		return fmt.Errorf("close series writer: %w", err)
	}
	return nil
}
