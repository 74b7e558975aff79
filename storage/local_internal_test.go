package storage

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestLocalFsyncsNewDirectories: a write that creates directories fsyncs the parent of
// each one it created (so their entries survive a crash) and the directory of the object.
// Not parallel: it swaps syncDir.
func TestLocalFsyncsNewDirectories(t *testing.T) {
	var mu sync.Mutex
	var synced []string
	syncDir = func(dir string) error {
		mu.Lock()
		synced = append(synced, dir)
		mu.Unlock()
		return fsyncDir(dir)
	}
	t.Cleanup(func() { syncDir = fsyncDir })

	parent := t.TempDir()
	root := filepath.Join(parent, "new", "store")
	l, err := OpenLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{parent, filepath.Join(parent, "new")}; !slices.Equal(synced, want) {
		t.Fatalf("opening created %s and fsynced %q, want the parents %q", root, synced, want)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		key  string
		want []string // relative to root
	}{
		{"a/b/c/k", []string{".", "a", "a/b", "a/b/c"}}, // three new directories, then the object's
		{"a/b/c/k2", []string{"a/b/c"}},                 // nothing new
		{"a/x/k", []string{"a", "a/x"}},                 // one new directory
	} {
		synced = nil
		if err := l.Create(ctx, tc.key, strings.NewReader("v")); err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, w := range tc.want {
			want = append(want, filepath.Join(root, w))
		}
		if !slices.Equal(synced, want) {
			t.Errorf("create %s fsynced %q, want %q", tc.key, synced, want)
		}
	}
}
