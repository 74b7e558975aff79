package run

import (
	"bytes"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
)

// TestPointStore writes groups from four goroutines (some larger than a chunk) under
// memory bounds from none to all, reads every reference back and checks the bytes, the
// counts, that memory stayed near its bound and that no file is ever visible in the temp
// directory (a killed run leaves nothing).
func TestPointStore(t *testing.T) {
	for _, memory := range []int64{0, 3 << 20, 1 << 30} {
		dir := t.TempDir()
		s := NewPointStore(dir, memory)
		type group struct {
			ref  uint64
			data []byte
		}
		var mu sync.Mutex
		var groups []group
		var total int64
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), uint64(memory)))
				pw := s.Writer()
				for i := range 300 {
					n := 1 + rng.IntN(100)
					if i%97 == 0 {
						n = pointChunk/columnar.RunPointBytes + rng.IntN(1000) // a chunk of its own
					}
					dst, err := pw.Reserve(n * columnar.RunPointBytes)
					if err != nil {
						t.Error(err)
						return
					}
					for j := range dst {
						dst[j] = byte(rng.Uint32())
					}
					used := rng.IntN(n+1) * columnar.RunPointBytes // window filtering keeps a prefix
					g := group{ref: pw.Commit(used), data: bytes.Clone(dst[:used])}
					mu.Lock()
					groups, total = append(groups, g), total+int64(used)
					mu.Unlock()
				}
				if err := pw.Close(); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		for i, g := range groups {
			got, err := s.Points(g.ref, len(g.data))
			if err != nil || !bytes.Equal(got, g.data) {
				t.Fatalf("memory %d: group %d: %d bytes, err %v; bytes differ: %v", memory, i, len(got), err, !bytes.Equal(got, g.data))
			}
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("memory %d: the spill file is visible in the temp directory: a killed run would leave it", memory)
		}
		st := s.Stats()
		if st.Bytes != total || (memory < total) != (st.SpilledBytes > 0) {
			t.Fatalf("memory %d: stats %+v, want %d bytes, spilled iff over the bound", memory, st, total)
		}
		// Besides the bound: a chunk per writer, and the chunk that tipped it over.
		if slack := int64(5 * (pointChunk + 1000*columnar.RunPointBytes)); memory < total && st.PeakMemory > memory+slack {
			t.Fatalf("memory %d: peak %d over the bound plus %d", memory, st.PeakMemory, slack)
		}
		if _, err := s.Points(uint64(len(groups)+1000)<<32, 16); err == nil {
			t.Fatal("a reference past the store was read")
		}
		if _, err := s.Points(groups[0].ref, len(groups[0].data)+pointChunk+1); err == nil {
			t.Fatal("a read past its chunk succeeded")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("memory %d: %d files left in the temp directory", memory, len(ents))
		}
		if _, err := s.Writer().Reserve(16); err == nil {
			t.Fatal("write after close succeeded")
		}
	}
}
