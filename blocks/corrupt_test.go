package blocks

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/storage"
)

// TestCorruptBlocksFail damages an exported block in many ways and checks that reading
// it ends in an error that names the block, never a panic and never a silent success
// with other samples.
func TestCorruptBlocksFail(t *testing.T) {
	series := testSeries(t)[:4]
	src := t.TempDir()
	st, err := storage.OpenLocal(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Export(context.Background(), &sliceSource{s: series}, st, ExportOptions{TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	bs, _, err := List(context.Background(), st)
	if err != nil || len(bs) == 0 {
		t.Fatal(len(bs), err)
	}
	want := pointsOf(t, mustOpen(t, st))
	rng := rand.New(rand.NewPCG(9, 9))
	damages := 0
	for i := 0; i < 300; i++ {
		dir := t.TempDir()
		if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
			t.Fatal(err)
		}
		blk := bs[rng.IntN(len(bs))]
		file := []string{"index", "chunks/000001", "meta.json", "tombstones"}[rng.IntN(4)]
		p := filepath.Join(dir, filepath.FromSlash(blk.Dir), filepath.FromSlash(file))
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		switch rng.IntN(3) {
		case 0: // truncate
			b = b[:rng.IntN(len(b))]
		case 1: // flip a byte
			if len(b) > 0 {
				b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
			}
		case 2: // overwrite a run
			if len(b) > 8 {
				o := rng.IntN(len(b) - 8)
				for k := 0; k < 8; k++ {
					b[o+k] = byte(rng.Uint32())
				}
			}
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		dst, _ := storage.OpenLocal(dir)
		got, err := readAllPoints(dst)
		if err != nil {
			damages++
			if !strings.Contains(err.Error(), blk.Meta.ULID) && !strings.Contains(err.Error(), "meta.json") {
				t.Errorf("%s of %s: error %q does not name the block", file, blk.Dir, err)
			}
			continue
		}
		// A damage the formats cannot see (no checksum covers it) may change values;
		// the checksummed parts (index sections, chunks) must not.
		if file == "index" || file == "chunks/000001" {
			for p, w := range want {
				if g, ok := got[p]; ok && g != w {
					t.Errorf("%s of %s damaged: point %+v read as %x, want %x or an error", file, blk.Dir, p, g, w)
					break
				}
			}
		}
	}
	if damages == 0 {
		t.Error("no damage was noticed")
	}
}

func mustOpen(t *testing.T, st storage.Store) *Reader {
	t.Helper()
	r, err := Open(context.Background(), st, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// readAllPoints reads every point of st's blocks.
func readAllPoints(st storage.Store) (pts map[point]uint64, err error) {
	r, err := Open(context.Background(), st, ReadOptions{})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	pts = map[point]uint64{}
	for r.Next() {
		s := r.At()
		for i, ts := range s.Ts {
			pts[point{s.Key, ts}] = math.Float64bits(s.Values[i])
		}
	}
	return pts, r.Err()
}
