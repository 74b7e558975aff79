package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/storage"
)

func newInspectCmd() *cobra.Command {
	var (
		storeURL  string
		jsonOut   bool
		maxSeries int
	)
	cmd := &cobra.Command{
		Use:   "inspect FILE|KEY [--store URL] [--json] [--max-series N]",
		Short: "Print a segment's header and footer, or a series file's header, index and blocks",
		Long: `Reads one file, a local FILE or, with --store, the object KEY of a store, and prints
what it holds, from its first bytes: a segment (TSEG) or a series file (TLSF, the parts
and late outputs of runs).

A segment: its header (topic, partition, start offset and record time, shard map
version), its footer (end offset, records, rejected and collapsed records, rows) and
every frame of the footer's index (byte offset and length, raw length, shard, rows,
groups, ts range, Kafka offset range and record time range), with totals per shard.

A series file: its format version, the index (series and points per org), how many
blocks and bytes each timestamp and value encoding took, and the first --max-series
series with their index entries, tags and blocks (encoding, points, bytes of
timestamps and values). Encodings print by name, so new ones show without changes.

Nothing is decoded beyond what is printed; a damaged file fails naming the byte offset.
--json prints everything as one JSON object, every series included.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			src, err := openInspected(ctx, args[0], storeURL)
			if err != nil {
				return err
			}
			defer src.close()
			var v interface{ print(io.Writer, int) }
			switch src.magic {
			case columnar.SegmentMagic:
				v, err = inspectSegment(ctx, src)
			case encoder.Magic:
				v, err = inspectSeriesFile(src)
			default:
				return fmt.Errorf("inspect %s: neither a segment (%q) nor a series file (%q): it starts with %q", src.name, columnar.SegmentMagic, encoder.Magic, src.magic)
			}
			if err != nil {
				return fmt.Errorf("inspect %s: %w", src.name, err)
			}
			if jsonOut {
				return writeJSON(cmd.OutOrStdout(), v)
			}
			v.print(cmd.OutOrStdout(), maxSeries)
			return nil
		},
	}
	cmd.Flags().StringVar(&storeURL, "store", "", "read KEY from this store (default: the argument is a local file)")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object, every series included")
	cmd.Flags().IntVar(&maxSeries, "max-series", 20, "series of a series file to list with their blocks (0: all)")
	return cmd
}

// inspected is the file inspect reads: a key of a store (a local file is a key of the
// store of its directory) and its first bytes.
type inspected struct {
	name  string
	st    storage.Store
	key   string
	size  int64
	magic string
	file  *os.File // a local file, read through ReadAt
}

func (s *inspected) close() {
	if s.file != nil {
		s.file.Close()
	}
	s.st.Close()
}

func openInspected(ctx context.Context, arg, storeURL string) (*inspected, error) {
	s := &inspected{name: arg}
	var err error
	if storeURL != "" {
		if s.st, err = openStore(ctx, storeURL, "--store"); err != nil {
			return nil, err
		}
		s.key = strings.TrimPrefix(arg, "/")
	} else {
		abs, err := filepath.Abs(arg)
		if err != nil {
			return nil, fmt.Errorf("inspect %s: %w", arg, err)
		}
		if s.file, err = os.Open(abs); err != nil {
			return nil, fmt.Errorf("inspect: %w (give a local file, or a key with --store)", err)
		}
		// A reader's open of the file's directory creates nothing.
		if s.st, err = storage.Open(ctx, filepath.Dir(abs)); err != nil {
			s.file.Close()
			return nil, fmt.Errorf("inspect %s: %w", arg, err)
		}
		s.key = filepath.Base(abs)
	}
	a, err := s.st.Stat(ctx, s.key)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("inspect %s: %w", arg, err)
	}
	s.size = a.Size
	head, err := storage.ReadRange(ctx, s.st, s.key, 0, min(4, s.size), nil)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("inspect %s: %w", arg, err)
	}
	s.magic = string(head)
	return s, nil
}

// segmentView is a segment's header and footer as inspect prints them.
type segmentView struct {
	Kind   string `json:"kind"`
	Key    string `json:"key"`
	Bytes  int64  `json:"bytes"`
	Header struct {
		Version         uint16 `json:"version"`
		ShardMapVersion uint32 `json:"shard_map_version"`
		Topic           string `json:"topic"`
		Partition       int32  `json:"partition"`
		StartOffset     int64  `json:"start_offset"`
		StartTimestamp  int64  `json:"start_timestamp_ms"`
	} `json:"header"`
	Footer struct {
		EndOffset int64    `json:"end_offset"`
		Records   uint64   `json:"records"`
		Rejected  uint64   `json:"rejected"`
		Collapsed uint64   `json:"collapsed"`
		Rows      uint64   `json:"rows"`
		Shards    []string `json:"shards"`
	} `json:"footer"`
	Frames []frameView `json:"frames"`
}

type frameView struct {
	Offset      uint64 `json:"offset"`
	Length      uint32 `json:"length"`
	RawLength   uint32 `json:"raw_length"`
	Shard       string `json:"shard"`
	Rows        uint32 `json:"rows"`
	Groups      uint32 `json:"groups"`
	MinTs       int64  `json:"min_ts"`
	MaxTs       int64  `json:"max_ts"`
	MinOffset   int64  `json:"min_offset"`
	MaxOffset   int64  `json:"max_offset"`
	MinRecordTs int64  `json:"min_record_ts"`
	MaxRecordTs int64  `json:"max_record_ts"`
}

func inspectSegment(ctx context.Context, src *inspected) (*segmentView, error) {
	seg, err := columnar.OpenSegment(ctx, src.st, src.key, src.size)
	if err != nil {
		return nil, err
	}
	v := &segmentView{Kind: "segment", Key: src.name, Bytes: src.size}
	h, f := seg.Header, seg.Footer
	v.Header.Version, v.Header.ShardMapVersion, v.Header.Topic, v.Header.Partition = h.Version, h.ShardMapVersion, h.Topic, h.Partition
	v.Header.StartOffset, v.Header.StartTimestamp = h.StartOffset, h.StartTimestamp
	v.Footer.EndOffset, v.Footer.Records, v.Footer.Rejected, v.Footer.Collapsed, v.Footer.Rows, v.Footer.Shards = f.EndOffset, f.Records, f.Rejected, f.Collapsed, f.Rows, f.Shards
	v.Frames = make([]frameView, 0, len(f.Frames))
	for _, fr := range f.Frames {
		shard := fmt.Sprintf("shard #%d (not in the footer)", fr.Shard)
		if int(fr.Shard) < len(f.Shards) {
			shard = f.Shards[fr.Shard]
		}
		v.Frames = append(v.Frames, frameView{
			Offset: fr.Offset, Length: fr.Length, RawLength: fr.RawLength, Shard: shard, Rows: fr.Rows, Groups: fr.Groups,
			MinTs: fr.MinTs, MaxTs: fr.MaxTs, MinOffset: fr.MinOffset, MaxOffset: fr.MaxOffset, MinRecordTs: fr.MinRecordTs, MaxRecordTs: fr.MaxRecordTs,
		})
	}
	return v, nil
}

// msTime prints Unix ms as UTC RFC 3339 with milliseconds when it has them.
func msTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.999Z07:00")
}

func (v *segmentView) print(w io.Writer, _ int) {
	h, f := v.Header, v.Footer
	fmt.Fprintf(w, "segment %s (%d bytes)\n", v.Key, v.Bytes)
	fmt.Fprintf(w, "header  version %d, shard map version %d, topic %s, partition %d, start offset %d, start record time %s\n",
		h.Version, h.ShardMapVersion, h.Topic, h.Partition, h.StartOffset, msTime(h.StartTimestamp))
	fmt.Fprintf(w, "footer  offsets [%d, %d) (%d), %d records, %d rejected, %d collapsed, %d rows, %d frames in %d shards\n",
		h.StartOffset, f.EndOffset, f.EndOffset-h.StartOffset, f.Records, f.Rejected, f.Collapsed, f.Rows, len(v.Frames), len(f.Shards))

	type shardTotal struct {
		frames       int
		rows, groups uint64
		bytes, raw   uint64
		minTs, maxTs int64
	}
	totals := map[string]*shardTotal{}
	for _, fr := range v.Frames {
		t := totals[fr.Shard]
		if t == nil {
			t = &shardTotal{minTs: math.MaxInt64, maxTs: math.MinInt64}
			totals[fr.Shard] = t
		}
		t.frames++
		t.rows += uint64(fr.Rows)
		t.groups += uint64(fr.Groups)
		t.bytes += uint64(fr.Length)
		t.raw += uint64(fr.RawLength)
		t.minTs, t.maxTs = min(t.minTs, fr.MinTs), max(t.maxTs, fr.MaxTs)
	}
	shards := make([]string, 0, len(totals))
	for s := range totals {
		shards = append(shards, s)
	}
	sort.Strings(shards)
	fmt.Fprintln(w, "\nshards")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  SHARD\tFRAMES\tROWS\tGROUPS\tBYTES\tRAW BYTES\tTS FROM\tTS TO")
	for _, s := range shards {
		t := totals[s]
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", s, t.frames, t.rows, t.groups, t.bytes, t.raw, msTime(t.minTs), msTime(t.maxTs))
	}
	tw.Flush()
	fmt.Fprintln(w, "\nframes")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tOFFSET\tLENGTH\tRAW\tSHARD\tROWS\tGROUPS\tTS FROM\tTS TO\tKAFKA OFFSETS\tRECORD TIMES")
	for i, fr := range v.Frames {
		fmt.Fprintf(tw, "  %d\t%d\t%d\t%d\t%s\t%d\t%d\t%s\t%s\t%d..%d\t%s..%s\n", i, fr.Offset, fr.Length, fr.RawLength, fr.Shard, fr.Rows, fr.Groups,
			msTime(fr.MinTs), msTime(fr.MaxTs), fr.MinOffset, fr.MaxOffset, msTime(fr.MinRecordTs), msTime(fr.MaxRecordTs))
	}
	tw.Flush()
}

// seriesFileView is a series file's header, index and blocks as inspect prints them.
type seriesFileView struct {
	Kind    string `json:"kind"`
	Key     string `json:"key"`
	Bytes   int64  `json:"bytes"`
	Version uint16 `json:"version"`
	Points  int64  `json:"points"`
	MinTs   int64  `json:"min_ts"`
	MaxTs   int64  `json:"max_ts"`
	Orgs    []struct {
		Org    uint32 `json:"org_id"`
		Series int    `json:"series"`
		Points int64  `json:"points"`
	} `json:"orgs"`
	// Encodings count blocks and payload bytes per encoding, by the encoding's name.
	TsEncodings    map[string]*encodingUse `json:"ts_encodings"`
	ValueEncodings map[string]*encodingUse `json:"value_encodings"`
	Series         []seriesView            `json:"series"`
}

type encodingUse struct {
	Blocks int   `json:"blocks"`
	Points int   `json:"points"`
	Bytes  int64 `json:"bytes"`
}

type seriesView struct {
	Org     uint32      `json:"org_id"`
	Metric  uint64      `json:"metric_id"`
	Context uint64      `json:"context_key"`
	Tags    []string    `json:"tags"`
	Offset  int64       `json:"offset"`
	Length  int64       `json:"length"`
	Points  int64       `json:"points"`
	MinTs   int64       `json:"min_ts"`
	MaxTs   int64       `json:"max_ts"`
	Blocks  []blockView `json:"blocks"`
}

type blockView struct {
	Offset        int64  `json:"offset"`
	Length        int    `json:"length"`
	Points        int    `json:"points"`
	MinTs         int64  `json:"min_ts"`
	MaxTs         int64  `json:"max_ts"`
	TsEncoding    string `json:"ts_encoding"`
	TsBytes       int    `json:"ts_bytes"`
	ValueEncoding string `json:"value_encoding"`
	ValueBytes    int    `json:"value_bytes"`
}

func inspectSeriesFile(src *inspected) (*seriesFileView, error) {
	var (
		r   *encoder.Reader
		err error
	)
	if src.file != nil {
		r, err = encoder.Open(src.file, src.size)
	} else {
		// One GET: inspect reads every series record for its blocks anyway.
		r, err = encoder.OpenStored(context.Background(), src.st, src.key)
	}
	if err != nil {
		return nil, err
	}
	v := &seriesFileView{Kind: "series_file", Key: src.name, Bytes: src.size, Version: r.Version(), MinTs: math.MaxInt64, MaxTs: math.MinInt64,
		TsEncodings: map[string]*encodingUse{}, ValueEncodings: map[string]*encodingUse{}}
	for _, o := range r.OrgRanges() {
		var pts int64
		for _, e := range r.OrgSeries(o.Org) {
			pts += e.Points
		}
		v.Orgs = append(v.Orgs, struct {
			Org    uint32 `json:"org_id"`
			Series int    `json:"series"`
			Points int64  `json:"points"`
		}{o.Org, o.Count, pts})
	}
	use := func(m map[string]*encodingUse, name string, points, bytes int) {
		u := m[name]
		if u == nil {
			u = &encodingUse{}
			m[name] = u
		}
		u.Blocks++
		u.Points += points
		u.Bytes += int64(bytes)
	}
	var s encoder.Series
	for _, e := range r.Index() {
		v.Points += e.Points
		v.MinTs, v.MaxTs = min(v.MinTs, e.MinTs), max(v.MaxTs, e.MaxTs)
		blocks, err := r.BlockInfo(e)
		if err != nil {
			return nil, err
		}
		// An empty ts range decodes no block but reads the tags and checks every
		// block's checksum.
		if err := r.ReadSeriesRange(e, math.MaxInt64, math.MinInt64, &s); err != nil {
			return nil, err
		}
		sv := seriesView{Org: e.Key.Org, Metric: e.Key.Metric, Context: e.Key.Context, Tags: append([]string{}, s.Tags...),
			Offset: e.Offset, Length: e.Length, Points: e.Points, MinTs: e.MinTs, MaxTs: e.MaxTs}
		for _, b := range blocks {
			ts, val := b.TsEncoding.String(), b.ValueEncoding.String()
			use(v.TsEncodings, ts, b.Points, b.TsBytes)
			use(v.ValueEncodings, val, b.Points, b.ValueBytes)
			sv.Blocks = append(sv.Blocks, blockView{Offset: b.Offset, Length: b.Length, Points: b.Points, MinTs: b.MinTs, MaxTs: b.MaxTs,
				TsEncoding: ts, TsBytes: b.TsBytes, ValueEncoding: val, ValueBytes: b.ValueBytes})
		}
		v.Series = append(v.Series, sv)
	}
	if len(v.Series) == 0 {
		v.MinTs, v.MaxTs = 0, 0
	}
	return v, nil
}

func (v *seriesFileView) print(w io.Writer, maxSeries int) {
	fmt.Fprintf(w, "series file %s (%d bytes)\n", v.Key, v.Bytes)
	fmt.Fprintf(w, "header  format version %d\n", v.Version)
	fmt.Fprintf(w, "index   %d series in %d orgs, %d points", len(v.Series), len(v.Orgs), v.Points)
	if len(v.Series) > 0 {
		fmt.Fprintf(w, ", ts %s to %s, %.2f bytes/point", msTime(v.MinTs), msTime(v.MaxTs), float64(v.Bytes)/float64(max(v.Points, 1)))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  ORG\tSERIES\tPOINTS")
	for _, o := range v.Orgs {
		fmt.Fprintf(tw, "  %d\t%d\t%d\n", o.Org, o.Series, o.Points)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nencodings")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  OF\tENCODING\tBLOCKS\tPOINTS\tBYTES\tBYTES/POINT")
	for _, part := range []struct {
		of string
		m  map[string]*encodingUse
	}{{"ts", v.TsEncodings}, {"value", v.ValueEncodings}} {
		names := make([]string, 0, len(part.m))
		for n := range part.m {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			u := part.m[n]
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%.3f\n", part.of, n, u.Blocks, u.Points, u.Bytes, float64(u.Bytes)/float64(max(u.Points, 1)))
		}
	}
	tw.Flush()
	n := len(v.Series)
	if maxSeries > 0 {
		n = min(n, maxSeries)
	}
	fmt.Fprintf(w, "\nseries (%d of %d", n, len(v.Series))
	if n < len(v.Series) {
		fmt.Fprint(w, "; --max-series 0 lists all")
	}
	fmt.Fprintln(w, ")")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  ORG/METRIC/CONTEXT\tOFFSET\tLENGTH\tPOINTS\tTS FROM\tTS TO\tTS ENCODING\tTS BYTES\tVALUE ENCODING\tVALUE BYTES")
	for _, s := range v.Series[:n] {
		fmt.Fprintf(tw, "  %d/%d/%d\t%d\t%d\t%d\t%s\t%s\t\t\t\t\n", s.Org, s.Metric, s.Context, s.Offset, s.Length, s.Points, msTime(s.MinTs), msTime(s.MaxTs))
		if len(s.Tags) > 0 {
			fmt.Fprintf(tw, "    tags %s\t\t\t\t\t\t\t\t\t\n", strings.Join(s.Tags, ","))
		}
		for i, b := range s.Blocks {
			fmt.Fprintf(tw, "    block %d\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t%s\t%d\n", i, b.Offset, b.Length, b.Points, msTime(b.MinTs), msTime(b.MaxTs), b.TsEncoding, b.TsBytes, b.ValueEncoding, b.ValueBytes)
		}
	}
	tw.Flush()
}
