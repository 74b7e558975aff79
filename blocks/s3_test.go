package blocks

import (
	"context"
	"testing"

	"github.com/tailor-metrics/tailor/storage"
	"github.com/tailor-metrics/tailor/storage/s3test"
)

// TestExportReadS3 exports to a bucket prefix on a real S3 API (versitygw) and reads
// the blocks back from it, through the download path: the same points, bit for bit,
// as the same export on a local directory.
func TestExportReadS3(t *testing.T) {
	series := testSeries(t)
	srv := s3test.Start(t)
	st := srv.Open(t, "blocks", storage.S3Options{})
	ctx := context.Background()
	stats, err := Export(ctx, &sliceSource{s: series}, st, ExportOptions{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Blocks != 8 {
		t.Errorf("stats %+v", stats)
	}
	r, err := Open(ctx, st, ReadOptions{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	got := pointsOf(t, r)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	want := pointsOf(t, &sliceSource{s: series})
	if len(got) != len(want) {
		t.Fatalf("read %d points from S3, want %d", len(got), len(want))
	}
	for p, w := range want {
		if got[p] != w {
			t.Fatalf("point %+v: %x, want %x", p, got[p], w)
		}
	}
	// The same content: the same ULIDs, nothing written again.
	again, err := Export(ctx, &sliceSource{s: series}, st, ExportOptions{TempDir: t.TempDir()})
	if err != nil || again.Blocks != 0 || again.BlocksExisting != 8 {
		t.Errorf("second export to S3: %+v, %v", again, err)
	}
}
