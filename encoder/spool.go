package encoder

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// Spool collects series handed to it in any order, encodes each into a record at once
// (v3: a loose record, its blocks encoded but not yet shared), and writes them out as
// series files in key order, the bytes a Writer given the same series writes. A run's sort orders series by a
// dense id given in the order the readers met them, which is not key order; records are
// some 20 times smaller than the rows the sort holds, so reordering them is cheap. The
// records stay in memory up to a bound and go to a temporary file beyond it, so the
// spool's memory does not grow with the run. Not safe for concurrent use.
type Spool struct {
	cfg cfg
	enc blockEncoder
	dir string
	max int // bytes of records held in memory before they go to the file

	// The records not in the file yet: chunks of about spoolChunk bytes, each holding
	// whole records. Record offsets count the file's bytes, then the chunks' in order.
	chunks  [][]byte
	starts  []int64 // each chunk's first offset, after the file's fileLn bytes
	memLn   int64   // bytes in chunks
	scratch []byte
	file    *os.File
	fileLn  int64
	recs    []IndexEntry // Offset is the position in the spool
	points  int64
	err     error
}

// spoolChunk is the size of the spool's memory chunks: records go into pooled chunks
// instead of one growing buffer, so a large run copies nothing and later runs fault in
// no fresh pages.
const spoolChunk = 1 << 20

// NewSpool returns a spool that keeps up to memBytes of records in memory and spills the
// rest to a temporary file in dir ("" for the system's). opts are the Writer's.
func NewSpool(dir string, memBytes int, opts ...Opt) *Spool {
	c := defaultCfg()
	for _, o := range opts {
		o.apply(&c)
	}
	s := &Spool{cfg: c, dir: dir, max: memBytes}
	if err := c.validate(); err != nil {
		s.err = fmt.Errorf("new spool: %w", err)
	}
	s.enc.version = c.version
	return s
}

// SpoolStats are a spool's totals.
type SpoolStats struct {
	Series, Points int64
	// Bytes is the size of the records; Spilled how many of them went to the file.
	Bytes, Spilled int64
}

// Stats returns the totals so far.
func (s *Spool) Stats() SpoolStats {
	return SpoolStats{Series: int64(len(s.recs)), Points: s.points, Bytes: s.fileLn + s.memLn, Spilled: s.fileLn}
}

// Add encodes one whole series, with the rules of Writer.Append except order: keys may
// come in any order, but each only once (WriteSorted checks). Add does not retain its
// arguments.
func (s *Spool) Add(key columnar.SeriesKey, tags []string, ts []int64, values []float64) error {
	if s.err != nil {
		return s.err
	}
	if err := checkSeries(key, ts, values); err != nil {
		return err
	}
	var e IndexEntry
	if s.cfg.version >= Version3 {
		// A loose record: the writer places its blocks, sharing them with the other
		// series that have the same timestamps.
		s.scratch, e = s.enc.appendLoose(s.scratch[:0], s.cfg.blockPoints, key, tags, ts, values)
	} else {
		s.scratch, e = s.enc.appendRecord(s.scratch[:0], s.cfg.blockPoints, key, tags, ts, values)
	}
	e.Offset = s.fileLn + s.memLn
	s.recs = append(s.recs, e)
	s.points += e.Points
	s.place(s.scratch)
	if s.memLn >= int64(s.max) {
		return s.spill()
	}
	return nil
}

// place appends rec to the last chunk, or to a new one when it does not fit.
func (s *Spool) place(rec []byte) {
	n := len(s.chunks)
	if n == 0 || cap(s.chunks[n-1])-len(s.chunks[n-1]) < len(rec) {
		var c []byte
		if len(rec) <= spoolChunk {
			c = spoolChunks.Get()
		}
		if c == nil {
			c = make([]byte, 0, max(spoolChunk, len(rec)))
		}
		s.chunks = append(s.chunks, c)
		s.starts = append(s.starts, s.memLn)
		n++
	}
	s.chunks[n-1] = append(s.chunks[n-1], rec...)
	s.memLn += int64(len(rec))
}

// releaseChunks returns the chunks to the pool.
func (s *Spool) releaseChunks() {
	for _, c := range s.chunks {
		if cap(c) == spoolChunk {
			spoolChunks.Put(c)
		}
	}
	s.chunks, s.starts, s.memLn = s.chunks[:0], s.starts[:0], 0
}

// spill appends the records held in memory to the temporary file.
func (s *Spool) spill() error {
	if s.file == nil {
		f, err := storage.SpillFile(s.dir, "tailor-spool-*")
		if err != nil {
			s.err = fmt.Errorf("spool: %w", err)
			return s.err
		}
		s.file = f
	}
	for _, c := range s.chunks {
		if _, err := s.file.Write(c); err != nil {
			s.err = fmt.Errorf("spool: write %s: %w", s.file.Name(), err)
			return s.err
		}
	}
	s.fileLn += s.memLn
	s.releaseChunks()
	return nil
}

// WriteSorted writes the series in key order as series files of about partBytes each
// (a file ends after the first series that takes it to partBytes), handing each whole
// file to part with its series and point counts. Nothing is handed over when there are
// no series. The file's bytes are valid only during the call.
func (s *Spool) WriteSorted(partBytes int64, part func(file []byte, series, points int64) error) error {
	if s.err != nil {
		return s.err
	}
	slices.SortFunc(s.recs, func(a, b IndexEntry) int { return a.Key.Compare(b.Key) })
	// The whole output or one part, plus its index: sized once, so the buffer does not
	// double its way up through fresh memory.
	out := bytes.NewBuffer(partBufs.Get())
	defer func() { partBufs.Put(out.Bytes()) }()
	out.Grow(int(min(s.fileLn+s.memLn, partBytes)) + len(s.recs)*indexEntrySize + 64<<10)
	var (
		w       *Writer
		scratch []byte // for records read from the file; never a slice of a chunk
	)
	finish := func() error {
		if err := w.Close(); err != nil {
			return err
		}
		st := w.Stats()
		err := part(out.Bytes(), st.Series, st.Points)
		w = nil
		out.Reset()
		return err
	}
	for i := range s.recs {
		e := s.recs[i]
		if i > 0 && !s.recs[i-1].Key.Less(e.Key) {
			return fmt.Errorf("spool: series %v added twice", e.Key)
		}
		rec, err := s.record(e, &scratch)
		if err != nil {
			return err
		}
		if w == nil {
			w = NewWriter(out, FormatVersion(s.cfg.version), BlockPoints(s.cfg.blockPoints), FlushBytes(s.cfg.flushBytes))
		}
		if err := w.AppendRecord(e, rec); err != nil {
			return err
		}
		if w.Stats().Bytes >= partBytes {
			if err := finish(); err != nil {
				return err
			}
		}
	}
	if w != nil {
		return finish()
	}
	return nil
}

// record returns the bytes of the record e, read into *scratch when it is in the file.
func (s *Spool) record(e IndexEntry, scratch *[]byte) ([]byte, error) {
	if e.Offset >= s.fileLn {
		off := e.Offset - s.fileLn
		// The last chunk starting at or before off: a binary search, since WriteSorted
		// looks up every record and a large spool holds dozens of chunks.
		if i, found := slices.BinarySearch(s.starts, off); found || i > 0 {
			if !found {
				i--
			}
			if c, o := s.chunks[i], off-s.starts[i]; o+e.Length <= int64(len(c)) {
				return c[o : o+e.Length], nil
			}
		}
		return nil, fmt.Errorf("BUG: spool record at %d past its %d bytes", e.Offset, s.fileLn+s.memLn)
	}
	buf := slices.Grow((*scratch)[:0], int(e.Length))[:e.Length]
	*scratch = buf
	if _, err := s.file.ReadAt(buf, e.Offset); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("spool: read %s at byte %d: %w", s.file.Name(), e.Offset, err)
	}
	return buf, nil
}

// Close closes the temporary file, unlinked since it was made. The spool cannot be used
// after.
func (s *Spool) Close() error {
	s.err = fmt.Errorf("spool: %w", ErrClosed)
	s.releaseChunks()
	s.recs = nil
	if s.file == nil {
		return nil
	}
	name := s.file.Name()
	err := s.file.Close()
	s.file = nil
	if err != nil {
		return fmt.Errorf("spool: close %s: %w", name, err)
	}
	return nil
}

// spoolChunks holds spool chunks: what two runs of a few million points hold.
var spoolChunks = columnar.BufferPool{Max: 32}

// partBufs holds the buffers part files are built in, unless a part of hundreds of MiB
// made one larger than is worth keeping idle.
var partBufs = columnar.BufferPool{Max: 2, MaxCap: 32 * spoolChunk}
