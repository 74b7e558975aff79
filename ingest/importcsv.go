package ingest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// ImportOptions configures ImportCSV.
type ImportOptions struct {
	Store    storage.Store
	ShardMap *columnar.ShardMap
	// Topic and Partition name the pseudo-partition the rows are appended to (default
	// "import", 0). Rows get the offsets after the partition's existing segments, so a
	// later import of the same points wins over an earlier one, as in Kafka. Topic must
	// be a valid Kafka topic name (columnar.CheckTopic), Partition not negative.
	Topic     string
	Partition int32
	// RecordTime is the record timestamp (Unix ms) stamped on every row (default 0):
	// rows of one import tie on it, so the row number decides the latest arrival.
	RecordTime int64
	// FlushPayloads and FlushBytes cut segments as the sink does (defaults as the sink).
	FlushPayloads int
	FlushBytes    int64
	// MaxGroupRows caps how many consecutive rows of one series form one record.
	MaxGroupRows int
}

// ImportStats summarizes an import.
type ImportStats struct {
	Rows, Records uint64
	// Segments counts the segments this call stored; SegmentsExisting those that an
	// earlier, unfinished import of the same rows had stored already (Resumed).
	Segments, SegmentsExisting uint64
	// Keys are the keys of the import's segments, in offset order: stored now or before.
	Keys []string
	// Resumed reports that this call finished an unfinished import (see ImportCSV).
	Resumed                bool
	FirstOffset, EndOffset int64
}

// importJournal is what an import keeps in the store while it stores segments
// (JournalKey): where its offsets start and how it cuts segments, so that a re-run after
// a failure cuts the same segments at the same offsets. It is removed when the import
// completes.
type importJournal struct {
	File          string `json:"file"`
	Topic         string `json:"topic"`
	Partition     int32  `json:"partition"`
	Base          int64  `json:"base"`
	RecordTime    int64  `json:"record_time"`
	FlushPayloads int    `json:"flush_payloads"`
	FlushBytes    int64  `json:"flush_bytes"`
	MaxGroupRows  int    `json:"max_group_rows"`
}

// JournalKey is the key of the journal an unfinished import into (topic, partition)
// leaves in the store.
func JournalKey(topic string, partition int32) string {
	return fmt.Sprintf("imports/%s-%d.json", topic, partition)
}

// ImportCSV reads points in arrival order from r (header columnar.CSVHeader; ts in Unix
// ms; value as text, NaN, +Inf, -Inf and -0 accepted) and writes them as segments,
// exactly as the sink would: consecutive rows of one series form one record whose offset
// is the row number (counted from the partition's end), so a later row for the same
// series and ts replaces an earlier one.
//
// A failed import never stores a row twice when it is run again:
//   - When r is an io.ReadSeeker (a file), every row is checked before anything is
//     stored: a malformed row fails the import naming its line, and nothing is stored.
//   - Otherwise, and when storing fails (the store, a cancelled context), the segments
//     stored so far stay, and the error names them. The import leaves a journal
//     (JournalKey) in the store; the next import into the same topic and partition
//     resumes it: it cuts the same segments at the same offsets, checks that those
//     already stored hold exactly its rows (byte for byte), stores the rest and removes
//     the journal. Resuming with rows that differ from what is stored fails, naming the
//     segment.
//
// Two imports into the same topic and partition must not run at the same time.
func ImportCSV(ctx context.Context, name string, r io.Reader, opt ImportOptions) (stats ImportStats, err error) {
	if opt.Topic == "" {
		opt.Topic = "import"
	}
	if err := columnar.CheckTopic(opt.Topic); err != nil {
		return stats, fmt.Errorf("import %s: %w", name, err)
	}
	if opt.Partition < 0 {
		return stats, fmt.Errorf("import %s: partition %d is negative", name, opt.Partition)
	}
	if opt.ShardMap == nil {
		opt.ShardMap = columnar.DefaultShardMap()
	}
	if opt.FlushPayloads <= 0 {
		opt.FlushPayloads = 100_000
	}
	if opt.FlushBytes <= 0 {
		opt.FlushBytes = 64 << 20
	}
	if opt.MaxGroupRows <= 0 {
		opt.MaxGroupRows = 8192
	}
	imp := &importer{opt: opt, name: name, stats: &stats}
	if err := imp.start(ctx); err != nil {
		return stats, err
	}
	defer func() {
		if err != nil {
			err = imp.failed(err)
		}
	}()
	if rs, ok := r.(io.ReadSeeker); ok {
		if err := checkCSV(name, rs); err != nil {
			return stats, err
		}
	}
	rows, err := newCSVRows(name, r)
	if err != nil {
		return stats, err
	}
	for rows.Next() {
		if err := imp.add(ctx, rows.k, rows.ts, rows.v); err != nil {
			return stats, err
		}
	}
	if err := rows.Err(); err != nil {
		return stats, err
	}
	return stats, imp.finish(ctx)
}

// checkCSV reads every row of rs, then rewinds it.
func checkCSV(name string, rs io.ReadSeeker) error {
	start, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("import %s: %w", name, err)
	}
	rows, err := newCSVRows(name, rs)
	if err != nil {
		return err
	}
	for rows.Next() {
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if _, err := rs.Seek(start, io.SeekStart); err != nil {
		return fmt.Errorf("import %s: %w", name, err)
	}
	return nil
}

// csvRows reads the point rows of a CSV file: Next, then the row's k, ts and v; Err
// after the loop. A malformed row stops it with an error naming its line.
type csvRows struct {
	name string
	br   *bufio.Reader
	line int
	err  error

	k  columnar.SeriesKey
	ts int64
	v  float64
}

func newCSVRows(name string, r io.Reader) (*csvRows, error) {
	c := &csvRows{name: name, br: bufio.NewReaderSize(r, 1<<20), line: 1}
	line, err := c.br.ReadSlice('\n')
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("import %s: %w", name, err)
	}
	if h := string(bytes.TrimRight(line, "\r\n")); h != columnar.CSVHeader {
		return nil, fmt.Errorf("import %s line 1: header %q, want %q", name, h, columnar.CSVHeader)
	}
	return c, nil
}

// Next reads the next row, skipping empty lines.
func (c *csvRows) Next() bool {
	for c.err == nil {
		line, err := c.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			c.err = fmt.Errorf("import %s line %d: line longer than %d bytes", c.name, c.line+1, c.br.Size())
			return false
		}
		if err != nil && err != io.EOF {
			c.err = fmt.Errorf("import %s line %d: %w", c.name, c.line+1, err)
			return false
		}
		if len(line) == 0 {
			return false // io.EOF
		}
		c.line++
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			continue
		}
		k, ts, v, perr := columnar.ParseCSVPoint(line)
		if perr == nil && (ts < columnar.MinTs || ts > columnar.MaxTs) {
			perr = fmt.Errorf("ts %d is outside years 1-9999 (Unix ms expected)", ts)
		}
		if perr != nil {
			c.err = fmt.Errorf("import %s line %d: %w", c.name, c.line, perr)
			return false
		}
		c.k, c.ts, c.v = k, ts, v
		return true
	}
	return false
}

// Err is the error that stopped Next, if any.
func (c *csvRows) Err() error { return c.err }

// importer turns rows into records and records into segments.
type importer struct {
	opt   ImportOptions
	name  string
	stats *ImportStats

	journal  bool  // written to the store
	priorEnd int64 // where the partition's segments ended when the import started
	w        *columnar.SegmentWriter
	pl       []columnar.Payload
	groupAt  int64
}

// start finds where the import's offsets begin: after the partition's segments, or
// where the unfinished import it resumes began.
func (imp *importer) start(ctx context.Context) error {
	opt := &imp.opt
	end, err := partitionEnd(ctx, opt.Store, opt.Topic, opt.Partition)
	if err != nil {
		return err
	}
	imp.priorEnd = end
	base := end
	j, err := readJournal(ctx, opt.Store, JournalKey(opt.Topic, opt.Partition))
	if err != nil {
		return fmt.Errorf("import %s: %w", imp.name, err)
	}
	if j != nil {
		// Cut the segments exactly as the unfinished import did.
		base, imp.journal, imp.stats.Resumed = j.Base, true, true
		opt.RecordTime, opt.FlushPayloads, opt.FlushBytes, opt.MaxGroupRows = j.RecordTime, j.FlushPayloads, j.FlushBytes, j.MaxGroupRows
	}
	imp.stats.FirstOffset, imp.stats.EndOffset = base, base
	imp.pl = []columnar.Payload{{}}
	return nil
}

// add appends one row: to the open record if it continues its series, else to a new one.
func (imp *importer) add(ctx context.Context, k columnar.SeriesKey, ts int64, v float64) error {
	p := &imp.pl[0]
	// The row number, counted from where the import's offsets start.
	row := imp.stats.FirstOffset + int64(imp.stats.Rows) + 1
	imp.stats.Rows++
	if len(p.Timestamps) > 0 && (p.SeriesKey != k || len(p.Timestamps) >= imp.opt.MaxGroupRows) {
		if err := imp.flushRecord(ctx); err != nil {
			return err
		}
	}
	if len(p.Timestamps) == 0 {
		p.SeriesKey, imp.groupAt = k, row
	}
	p.Timestamps = append(p.Timestamps, ts)
	p.Values = append(p.Values, v)
	return nil
}

// flushRecord adds the open record to the open segment, and stores the segment when it is
// full.
func (imp *importer) flushRecord(ctx context.Context) error {
	opt := &imp.opt
	p := &imp.pl[0]
	if len(p.Timestamps) == 0 {
		return nil
	}
	if imp.w == nil {
		imp.w = columnar.NewSegmentWriter(columnar.Header{Topic: opt.Topic, Partition: opt.Partition, StartOffset: imp.stats.EndOffset, StartTimestamp: opt.RecordTime}, opt.ShardMap, 0)
	}
	if err := imp.w.Add(columnar.Source{Topic: opt.Topic, Partition: opt.Partition, Offset: imp.groupAt, Timestamp: opt.RecordTime}, imp.pl); err != nil {
		return fmt.Errorf("import %s: %w", imp.name, err)
	}
	imp.stats.Records++
	p.Reset()
	if imp.w.Records() >= uint64(opt.FlushPayloads) || imp.w.Bytes() >= opt.FlushBytes {
		return imp.flushSegment(ctx)
	}
	return nil
}

// flushSegment stores the open segment. The journal goes to the store before the
// import's first segment does, so that a failure after it can always be resumed.
func (imp *importer) flushSegment(ctx context.Context) error {
	w, opt := imp.w, &imp.opt
	if !imp.journal {
		j := importJournal{File: imp.name, Topic: opt.Topic, Partition: opt.Partition, Base: imp.stats.FirstOffset,
			RecordTime: opt.RecordTime, FlushPayloads: opt.FlushPayloads, FlushBytes: opt.FlushBytes, MaxGroupRows: opt.MaxGroupRows}
		b, err := json.Marshal(j)
		if err != nil {
			return fmt.Errorf("BUG: marshal import journal: %w", err)
		}
		key := JournalKey(opt.Topic, opt.Partition)
		if err := opt.Store.Create(ctx, key, bytes.NewReader(b)); err != nil {
			if errors.Is(err, storage.ErrExists) {
				return fmt.Errorf("import %s: %s appeared while this import ran: another import into %s-%d is running", imp.name, key, opt.Topic, opt.Partition)
			}
			return fmt.Errorf("import %s: write journal: %w", imp.name, err)
		}
		imp.journal = true
	}
	end := w.EndOffset()
	_, err := createSegment(ctx, opt.Store, w)
	switch {
	case err == nil:
		imp.stats.Segments++
	case errors.Is(err, storage.ErrExists) && imp.stats.Resumed:
		same, serr := sameSegment(ctx, opt.Store, w)
		if serr != nil {
			return fmt.Errorf("import %s: %w", imp.name, serr)
		}
		if !same {
			return fmt.Errorf("import %s: segment %s of the unfinished import does not hold the same rows as this input (offsets %d..%d): resume it with the input it was started with", imp.name, w.Key(), w.Header().StartOffset, end)
		}
		imp.stats.SegmentsExisting++
	case errors.Is(err, storage.ErrExists):
		return fmt.Errorf("import %s: segment %s already exists: another import into %s-%d is running", imp.name, w.Key(), opt.Topic, opt.Partition)
	default:
		return fmt.Errorf("import %s: %w", imp.name, err)
	}
	imp.stats.Keys = append(imp.stats.Keys, w.Key())
	imp.stats.EndOffset = end
	imp.w = nil
	return nil
}

// finish stores what is open and removes the journal.
func (imp *importer) finish(ctx context.Context) error {
	if err := imp.flushRecord(ctx); err != nil {
		return err
	}
	if imp.w != nil {
		if err := imp.flushSegment(ctx); err != nil {
			return err
		}
	}
	opt := &imp.opt
	if imp.stats.Resumed && imp.priorEnd > imp.stats.EndOffset {
		return fmt.Errorf("import %s: the unfinished import stored offsets up to %d of %s-%d, this input ends at %d: resume it with the input it was started with",
			imp.name, imp.priorEnd, opt.Topic, opt.Partition, imp.stats.EndOffset)
	}
	if imp.journal {
		if err := opt.Store.Delete(ctx, JournalKey(opt.Topic, opt.Partition)); err != nil {
			return fmt.Errorf("import %s: remove journal: %w", imp.name, err)
		}
	}
	return nil
}

// failed completes err with what the failed import left in the store.
func (imp *importer) failed(err error) error {
	opt, s := &imp.opt, imp.stats
	if len(s.Keys) == 0 && !imp.journal {
		return fmt.Errorf("%w; nothing was stored", err)
	}
	var b strings.Builder
	// What an unfinished import this one resumed had stored past what this one met.
	earlier := ""
	if s.Resumed && imp.priorEnd > s.EndOffset {
		earlier = fmt.Sprintf("the unfinished import's segments of %s-%d hold offsets %d..%d", opt.Topic, opt.Partition, s.EndOffset, imp.priorEnd)
	}
	switch len(s.Keys) {
	case 0:
		if earlier == "" {
			b.WriteString("no segment was stored")
		}
	case 1:
		fmt.Fprintf(&b, "1 segment of %s-%d holds offsets %d..%d", opt.Topic, opt.Partition, s.FirstOffset, s.EndOffset)
	default:
		fmt.Fprintf(&b, "%d segments of %s-%d hold offsets %d..%d", len(s.Keys), opt.Topic, opt.Partition, s.FirstOffset, s.EndOffset)
	}
	const show = 10
	for i, k := range s.Keys {
		if i == show {
			fmt.Fprintf(&b, " … and %d more", len(s.Keys)-show)
			break
		}
		sep := ", "
		if i == 0 {
			sep = ": "
		}
		b.WriteString(sep + k)
	}
	if earlier != "" {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(earlier)
	}
	return fmt.Errorf("%w; %s; re-run the import with the same (or fixed) input to finish it: it resumes after them (journal %s) and stores no row twice",
		err, b.String(), JournalKey(opt.Topic, opt.Partition))
}

// readJournal reads the journal at key, or returns nil if there is none.
func readJournal(ctx context.Context, st storage.Store, key string) (*importJournal, error) {
	b, err := storage.ReadAll(ctx, st, key)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	var j importJournal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("read journal %s: %w", key, err)
	}
	if j.Base < 0 || j.FlushPayloads <= 0 || j.FlushBytes <= 0 || j.MaxGroupRows <= 0 {
		return nil, fmt.Errorf("read journal %s: invalid settings %s", key, strconv.Quote(string(b)))
	}
	return &j, nil
}

// sameSegment reports whether the segment stored under w's key has exactly w's bytes.
func sameSegment(ctx context.Context, st storage.Store, w *columnar.SegmentWriter) (bool, error) {
	ours := sha256.New()
	n, err := w.WriteTo(ours)
	if err != nil {
		return false, err
	}
	rc, err := st.GetRange(ctx, w.Key(), 0, -1)
	if err != nil {
		return false, fmt.Errorf("read existing segment: %w", err)
	}
	defer rc.Close()
	theirs := sha256.New()
	m, err := io.Copy(theirs, rc)
	if err != nil {
		return false, fmt.Errorf("read existing segment %s: %w", w.Key(), err)
	}
	return n == m && bytes.Equal(ours.Sum(nil), theirs.Sum(nil)), nil
}

// partitionEnd is the end offset of the last segment of (topic, partition) in the store.
func partitionEnd(ctx context.Context, st storage.Store, topic string, partition int32) (int64, error) {
	var end int64
	err := st.List(ctx, "segments/", func(a storage.Attrs) error {
		t, p, _, err := columnar.ParseSegmentKey(a.Key)
		if err != nil || t != topic || p != partition {
			return nil
		}
		seg, err := columnar.OpenSegment(ctx, st, a.Key, a.Size)
		if err != nil {
			return err
		}
		end = max(end, seg.Footer.EndOffset)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("find end of %s-%d: %w", topic, partition, err)
	}
	return end, nil
}
