package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/storage"
)

// TestInspectSegment: inspect prints a segment's header, footer and frame index, the
// same as columnar reads them, from a local file and from a store key alike.
func TestInspectSegment(t *testing.T) {
	store := validationStore(t, validationPoints())
	root := strings.TrimPrefix(store, "file://")
	files := findFiles(t, root, "*.tseg")
	if len(files) != 1 {
		t.Fatalf("%d segments", len(files))
	}
	key, _ := filepath.Rel(root, files[0])
	st, err := storage.Open(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seg, err := columnar.OpenSegment(context.Background(), st, key, -1)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{files[0]}, {key, "--store", store}} {
		out, err := runCLI(t, append([]string{"inspect", "--json"}, args...)...)
		if err != nil {
			t.Fatalf("inspect %v: %v\n%s", args, err, out)
		}
		var v segmentView
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatal(err)
		}
		h, f := seg.Header, seg.Footer
		if v.Kind != "segment" || v.Bytes != seg.Size || v.Header.Topic != h.Topic || v.Header.Partition != h.Partition || v.Header.StartOffset != h.StartOffset ||
			v.Header.ShardMapVersion != h.ShardMapVersion || v.Footer.EndOffset != f.EndOffset || v.Footer.Rows != f.Rows || v.Footer.Records != f.Records || len(v.Frames) != len(f.Frames) {
			t.Fatalf("inspect %v = %+v, segment %+v %+v", args, v, h, f)
		}
		for i, fr := range f.Frames {
			got := v.Frames[i]
			if got.Offset != fr.Offset || got.Length != fr.Length || got.Rows != fr.Rows || got.Shard != f.Shards[fr.Shard] || got.MinTs != fr.MinTs || got.MaxOffset != fr.MaxOffset {
				t.Fatalf("frame %d: %+v, want %+v", i, got, fr)
			}
		}
	}
	text, err := runCLI(t, "inspect", files[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"header  version 2, shard map version 1, topic import, partition 0, start offset 0", "footer  offsets [0, ", "288 rows, 3 frames in 3 shards", "\nshards\n", "org-mod-2  1 ", "\nframes\n", "2025-11-24T00:00:00Z"} {
		if !strings.Contains(text, want) {
			t.Fatalf("inspect lacks %q:\n%s", want, text)
		}
	}
}

// TestInspectSeriesFile: inspect prints a series file's version, index and blocks, with
// the encodings by their names as the encoder reports them.
func TestInspectSeriesFile(t *testing.T) {
	store := validationStore(t, validationPoints())
	root := strings.TrimPrefix(store, "file://")
	parts := findFiles(t, root, "part-*.tsf")
	if len(parts) == 0 {
		t.Fatal("no parts")
	}
	path := parts[0]
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	r, err := encoder.Open(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := filepath.Rel(root, path)
	for _, args := range [][]string{{path}, {key, "--store", store}} {
		out, err := runCLI(t, append([]string{"inspect", "--json"}, args...)...)
		if err != nil {
			t.Fatalf("inspect %v: %v\n%s", args, err, out)
		}
		var v seriesFileView
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatal(err)
		}
		if v.Kind != "series_file" || v.Version != r.Version() || len(v.Series) != len(r.Index()) || len(v.Orgs) != len(r.OrgRanges()) {
			t.Fatalf("inspect %v: %+v", args, v)
		}
		blocks := 0
		for i, e := range r.Index() {
			s := v.Series[i]
			bi, err := r.BlockInfo(e)
			if err != nil {
				t.Fatal(err)
			}
			if s.Org != e.Key.Org || s.Metric != e.Key.Metric || s.Points != e.Points || s.Offset != e.Offset || len(s.Blocks) != len(bi) {
				t.Fatalf("series %d: %+v, want %+v", i, s, e)
			}
			for j, b := range bi {
				if s.Blocks[j].TsEncoding != b.TsEncoding.String() || s.Blocks[j].ValueEncoding != b.ValueEncoding.String() || s.Blocks[j].ValueBytes != b.ValueBytes {
					t.Fatalf("series %d block %d: %+v, want %+v", i, j, s.Blocks[j], b)
				}
				blocks++
			}
		}
		n := 0
		for _, u := range v.TsEncodings {
			n += u.Blocks
		}
		if n != blocks {
			t.Fatalf("ts encodings count %d blocks, want %d", n, blocks)
		}
	}
	text, err := runCLI(t, "inspect", path, "--max-series", "1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"header  format version ", "index   ", "\nencodings\n", "  ts     ", "  value  ", "series (1 of ", "--max-series 0 lists all", "    block 0 "} {
		if !strings.Contains(text, want) {
			t.Fatalf("inspect lacks %q:\n%s", want, text)
		}
	}
}

// TestInspectDamagedFiles: a damaged file fails naming the byte offset; a file that is
// neither format says what it starts with.
func TestInspectDamagedFiles(t *testing.T) {
	store := validationStore(t, validationPoints())
	root := strings.TrimPrefix(store, "file://")
	dir := t.TempDir()
	part := findFiles(t, root, "part-*.tsf")[0]
	bad := filepath.Join(dir, "bad.tsf")
	copyFile(t, part, bad, func(b []byte) []byte { b[40] ^= 0xff; return b })
	if _, err := runCLI(t, "inspect", bad); err == nil || !strings.Contains(err.Error(), "offset") || !strings.Contains(err.Error(), "bad.tsf") {
		t.Fatalf("damaged series file: %v", err)
	}
	seg := findFiles(t, root, "*.tseg")[0]
	badSeg := filepath.Join(dir, "bad.tseg")
	copyFile(t, seg, badSeg, func(b []byte) []byte { b[len(b)-20] ^= 0xff; return b })
	if _, err := runCLI(t, "inspect", badSeg); err == nil || !strings.Contains(err.Error(), "at byte") {
		t.Fatalf("damaged segment: %v", err)
	}
	csv := filepath.Join(dir, "x.csv")
	writePointsCSV(t, csv, nil)
	if _, err := runCLI(t, "inspect", csv); err == nil || !strings.Contains(err.Error(), `neither a segment ("TSEG") nor a series file ("TLSF"): it starts with "org_"`) {
		t.Fatalf("csv: %v", err)
	}
	if _, err := runCLI(t, "inspect", filepath.Join(dir, "missing.tseg")); err == nil || !strings.Contains(err.Error(), "--store") {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := runCLI(t, "inspect", "--store", store, "segments/none.tseg"); err == nil {
		t.Fatal("missing key: no error")
	}
}
