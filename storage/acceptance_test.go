package storage_test

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/storage"
	"github.com/tailor-metrics/tailor/storage/faults"
	"github.com/tailor-metrics/tailor/storage/storetest"
)

func TestLocalAcceptance(t *testing.T) {
	t.Parallel()
	storetest.RunConfig(t, storetest.Config{
		// Past 2 GiB, where int32 offsets overflow. Streamed, checked by hash, deleted;
		// skipped under -short.
		LargeSize: 2<<30 + 1<<20 + 13,
		AfterAbort: func(t *testing.T, s storage.Store) {
			// No temp file of a broken upload may stay behind.
			root := s.(*storage.Local).LocalPath(".")
			filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
					t.Errorf("broken upload left %s", p)
				}
				return nil
			})
		},
	}, func(t *testing.T) storage.Store {
		s, err := storage.OpenLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestMemAcceptance(t *testing.T) {
	t.Parallel()
	storetest.RunConfig(t, storetest.Config{LargeSize: 16<<20 + 1, LargeInShort: true}, func(t *testing.T) storage.Store {
		return storage.NewMem(t.Name())
	})
}

// TestFaultsAcceptance: the fault wrapper with no faults firing is a faithful Store.
func TestFaultsAcceptance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) storage.Store {
		fs := faults.Wrap(storage.NewMem(t.Name()))
		// A rule that matches nothing the suite uses must not change behaviour.
		fs.Inject(faults.Rule{Key: "never/*"})
		return fs
	})
}
