package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tailor-metrics/tailor/internal/leakcheck"
	"github.com/tailor-metrics/tailor/storage"
)

// TestOpenForReadNeverCreates: opening a local store without Create (every reader)
// never creates it, and says which store and directory are missing; with Create (the
// writers) it makes the directory.
func TestOpenForReadNeverCreates(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	missing := filepath.Join(dir, "no", "such", "store")
	for _, u := range []string{missing, "file://" + missing} {
		_, err := storage.Open(ctx, u)
		var nse *storage.NoStoreError
		if !errors.Is(err, storage.ErrNoStore) || !errors.As(err, &nse) || nse.Dir != missing {
			t.Fatalf("open %s: got %v, want a NoStoreError for %s", u, err, missing)
		}
		if !strings.Contains(err.Error(), "file://"+missing) {
			t.Errorf("open %s: the error does not name the store: %v", u, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "no")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("open %s for reading created a directory: %v", u, err)
		}
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := storage.Open(ctx, file); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("open a file as a store: %v", err)
	}
	st, err := storage.OpenWith(ctx, "file://"+missing, storage.Options{Create: true})
	if err != nil {
		t.Fatalf("open with Create: %v", err)
	}
	st.Close()
	if fi, err := os.Stat(missing); err != nil || !fi.IsDir() {
		t.Fatalf("open with Create did not create %s: %v", missing, err)
	}
	// Now it exists, but holds nothing a reader could read.
	st, err = storage.Open(ctx, missing)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = storage.CheckData(ctx, st, storage.SegmentsPrefix, storage.SeriesPrefix)
	var nse *storage.NoStoreError
	if !errors.As(err, &nse) || !errors.Is(err, storage.ErrNoStore) || nse.Dir != "" ||
		!strings.Contains(err.Error(), "no keys under segments/ or series/") || !strings.Contains(err.Error(), "file://"+missing) {
		t.Fatalf("empty store: got %v, want a NoStoreError naming it and the prefixes", err)
	}
}

// TestCheckData: any key under one of the prefixes is enough; keys elsewhere are not.
func TestCheckData(t *testing.T) {
	ctx := context.Background()
	for name, st := range map[string]storage.Store{"local": mustOpenLocal(t, t.TempDir()), "mem": storage.NewMem("t")} {
		if err := st.Put(ctx, "rejects/x", strings.NewReader("r")); err != nil {
			t.Fatal(err)
		}
		if err := storage.CheckData(ctx, st, storage.SeriesPrefix); !errors.Is(err, storage.ErrNoStore) {
			t.Fatalf("%s: rejects only, want series: got %v", name, err)
		}
		if err := st.Put(ctx, "series/s/w/r/part-0.tsf", strings.NewReader("s")); err != nil {
			t.Fatal(err)
		}
		if err := storage.CheckData(ctx, st, storage.SegmentsPrefix); !errors.Is(err, storage.ErrNoStore) {
			t.Fatalf("%s: series only, want segments: got %v", name, err)
		}
		if err := storage.CheckData(ctx, st, storage.SegmentsPrefix, storage.SeriesPrefix); err != nil {
			t.Fatalf("%s: series present: %v", name, err)
		}
	}
}

func mustOpenLocal(t *testing.T, dir string) *storage.Local {
	t.Helper()
	st, err := storage.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// blockingReader yields head, then blocks until release is closed, then yields tail.
type blockingReader struct {
	head, tail []byte
	release    chan struct{}
	started    chan struct{}
	state      int
}

func newBlockingReader(head, tail string) *blockingReader {
	return &blockingReader{head: []byte(head), tail: []byte(tail), release: make(chan struct{}), started: make(chan struct{})}
}

func (b *blockingReader) Read(p []byte) (int, error) {
	switch b.state {
	case 0:
		b.state++
		return copy(p, b.head), nil
	case 1:
		close(b.started)
		<-b.release
		b.state++
		return copy(p, b.tail), nil
	}
	return 0, io.EOF
}

// tempFiles returns the temp files in dir (none when dir does not exist yet).
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestLocalTempNamesUnique: two stores over one directory in one process are two
// processes with the same PID (every container's PID 1). Writing the same key at the same
// time, their temp files must not collide: with PID-and-counter names both would pick
// .tmp-<pid>-1-k and the second write would fail with "file exists".
func TestLocalTempNamesUnique(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := mustOpenLocal(t, dir), mustOpenLocal(t, dir)
	slow := newBlockingReader("first ", "writer")
	done := make(chan error, 1)
	go func() { done <- a.Put(ctx, "d/k", slow) }()
	<-slow.started // a's temp file exists and is half written
	if err := b.Put(ctx, "d/k", strings.NewReader("second writer")); err != nil {
		t.Fatalf("second writer of the same key: %v", err)
	}
	close(slow.release)
	if err := <-done; err != nil {
		t.Fatalf("first writer: %v", err)
	}
	got, err := storage.ReadAll(ctx, a, "d/k")
	if err != nil || string(got) != "first writer" {
		t.Fatalf("read back %q, %v; want the last Put", got, err)
	}
	if left := tempFiles(t, filepath.Join(dir, "d")); len(left) != 0 {
		t.Fatalf("temp files left: %q", left)
	}
}

// The helper process of TestLocalStaleTempCleaned: it starts a write into its store and
// blocks in the middle, until the test kills it.
func TestMain(m *testing.M) {
	if dir := os.Getenv("TAILOR_TEST_KILLED_WRITER"); dir != "" {
		st, err := storage.OpenLocal(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		r := newBlockingReader("half of a segment", "never")
		st.Create(context.Background(), "segments/ab/k", r) // blocks forever
		os.Exit(3)
	}
	os.Exit(leakcheck.Main(m))
}

// TestLocalStaleTempCleaned: a writer killed in the middle of a write leaves its temp
// file. It must not block the next write of the same key, and the next write into its
// directory removes it, once it is older than a minute and its lock died with its
// writer; a live writer's temp file, however old, stays.
func TestLocalStaleTempCleaned(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	segDir := filepath.Join(dir, "segments", "ab")

	// A real writer, killed mid-write.
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "TAILOR_TEST_KILLED_WRITER="+dir)
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if left := tempFiles(t, segDir); len(left) == 1 {
			break
		}
		if time.Now().After(deadline) {
			child.Process.Kill()
			t.Fatal("the helper writer never started its write")
		}
		time.Sleep(10 * time.Millisecond)
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	killed := tempFiles(t, segDir)[0]

	// The name a writer with this process's PID and its first counter would have left
	// (before temp names were unique, the next write of k here would fail on it).
	samePID := fmt.Sprintf(".tmp-%d-1-k", os.Getpid())
	if err := os.WriteFile(filepath.Join(segDir, samePID), []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A live writer of another key in the same directory, whose write has been going on
	// for a long time.
	live := mustOpenLocal(t, dir)
	slow := newBlockingReader("live ", "writer")
	liveDone := make(chan error, 1)
	go func() { liveDone <- live.Create(ctx, "segments/ab/live", slow) }()
	<-slow.started
	var liveTemp string
	for _, n := range tempFiles(t, segDir) {
		if n != killed && n != samePID {
			liveTemp = n
		}
	}
	if liveTemp == "" {
		t.Fatal("the live writer's temp file is not there")
	}
	// Age all three past the minute a cleaner waits.
	old := time.Now().Add(-2 * time.Minute)
	for _, n := range []string{killed, samePID, liveTemp} {
		if err := os.Chtimes(filepath.Join(segDir, n), old, old); err != nil {
			t.Fatal(err)
		}
	}

	st := mustOpenLocal(t, dir)
	if err := st.Create(ctx, "segments/ab/k", strings.NewReader("whole segment")); err != nil {
		t.Fatalf("the write after a killed writer: %v", err)
	}
	if got, err := storage.ReadAll(ctx, st, "segments/ab/k"); err != nil || string(got) != "whole segment" {
		t.Fatalf("read back %q, %v", got, err)
	}
	left := tempFiles(t, segDir)
	if len(left) != 1 || left[0] != liveTemp {
		t.Fatalf("temp files after the next write: %q, want only the live writer's %q", left, liveTemp)
	}
	close(slow.release)
	if err := <-liveDone; err != nil {
		t.Fatalf("the live writer: %v", err)
	}
	if got, err := storage.ReadAll(ctx, st, "segments/ab/live"); err != nil || !bytes.Equal(got, []byte("live writer")) {
		t.Fatalf("the live writer's object: %q, %v", got, err)
	}
	if left := tempFiles(t, segDir); len(left) != 0 {
		t.Fatalf("temp files left at the end: %q", left)
	}
}
