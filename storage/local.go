package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// tmpPrefix marks files that are still being written; List never shows them.
const tmpPrefix = ".tmp-"

// Local is a Store over a local directory.
//
// Durable write order, for every Create and Put: create the target's directory if
// needed (fsyncing the parent of each directory created), write a temp file in it, fsync
// the temp file, then link (Create) or rename (Put) it into place, then fsync the
// directory. A crash at any point leaves either no object or the whole object, plus at
// most a stray temp file that List ignores and a later write into its directory removes.
//
// Temp files are named .tmp-<id>-<n>-<name>, where id is random per Local and n counts
// its writes: unique across processes even where every process has the same PID (each
// container's PID 1), so a temp file left by a killed writer never blocks a later one.
// A writer holds an flock on its temp file until it is in place; the first write of a
// Local into a directory removes the temp files there that are older than a minute and
// that no process holds locked (see docs/storage.md).
type Local struct {
	root    string
	tempID  string
	seq     atomic.Uint64
	cleaned sync.Map // directories whose stale temp files this Local has removed
}

var _ Store = (*Local)(nil)
var _ LocalFiler = (*Local)(nil)

// OpenLocal opens a local directory store for writing: the directory and its missing
// parents are created, each fsynced into its parent. Readers open stores with Open,
// which never creates one.
func OpenLocal(root string) (*Local, error) { return openLocal(root, true) }

// openLocal opens root; without create, a missing directory is a *NoStoreError.
func openLocal(root string, create bool) (*Local, error) {
	if root == "" {
		return nil, errors.New("open local store: empty path")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open local store %q: %w", root, err)
	}
	u := "file://" + abs
	if create {
		if err := mkdirAllSync(abs); err != nil {
			return nil, fmt.Errorf("open local store %s: %w", u, err)
		}
	} else {
		fi, err := os.Stat(abs)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, &NoStoreError{URL: u, Dir: abs}
		case err != nil:
			return nil, fmt.Errorf("open local store %s: %w", u, err)
		case !fi.IsDir():
			return nil, fmt.Errorf("open local store %s: %s is not a directory", u, abs)
		}
	}
	var id [8]byte
	rand.Read(id[:]) // never fails (crypto/rand)
	return &Local{root: abs, tempID: hex.EncodeToString(id[:])}, nil
}

// URL implements Store.
func (l *Local) URL() string { return "file://" + l.root }

// Close implements Store.
func (l *Local) Close() error { return nil }

// LocalPath implements LocalFiler.
func (l *Local) LocalPath(key string) string { return filepath.Join(l.root, filepath.FromSlash(key)) }

// mkdirAllSync creates dir and its missing parents, as os.MkdirAll does, and fsyncs the
// parent of each directory it creates: a file fsynced into a directory whose own entry
// was never made durable can vanish with the directory in a crash.
func mkdirAllSync(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAllSync(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if fi, serr := os.Stat(dir); !errors.Is(err, fs.ErrExist) || serr != nil || !fi.IsDir() {
			return err
		}
		// Another writer made it at the same moment and fsyncs the parent too, but
		// maybe not yet: fsync it here as well, so our file never depends on its timing.
	}
	return syncDir(parent)
}

// tempFile is a fully written and fsynced temp file. It stays open, and so locked,
// until it is in place: a cleaner never removes a temp file that a live writer holds.
type tempFile struct {
	f           *os.File
	path, final string
}

// discard closes the temp file and removes its name.
func (t *tempFile) discard() {
	t.f.Close()
	os.Remove(t.path)
}

// maxTempBase bounds the part of a temp file's name taken from the object's name, so that
// the temp name of any object whose own name fits stays within file name limits.
const maxTempBase = 64

func (l *Local) writeTemp(ctx context.Context, key string, r io.Reader) (_ *tempFile, err error) {
	if err := validKey(key); err != nil {
		return nil, err
	}
	final := l.LocalPath(key)
	dir := filepath.Dir(final)
	if err := mkdirAllSync(dir); err != nil {
		return nil, fmt.Errorf("create %s: %w", key, err)
	}
	l.cleanOnce(dir)
	base := filepath.Base(final)
	base = base[:min(len(base), maxTempBase)]
	path := filepath.Join(dir, fmt.Sprintf("%s%s-%d-%s", tmpPrefix, l.tempID, l.seq.Add(1), base))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", key, err)
	}
	t := &tempFile{f: f, path: path, final: final}
	defer func() {
		if err != nil {
			t.discard()
		}
	}()
	if err := lockTemp(f); err != nil {
		return nil, fmt.Errorf("create %s: lock %s: %w", key, path, err)
	}
	if _, err := io.Copy(f, ctxReader{ctx, r}); err != nil {
		return nil, fmt.Errorf("write %s: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("fsync %s: %w", key, err)
	}
	return t, nil
}

// cleanOnce removes, on this Local's first write into dir, the temp files there that
// writers left behind: older than staleTempAge and not locked by any process (a killed
// writer's lock died with it). Cleaning is best effort; it never fails a write.
func (l *Local) cleanOnce(dir string) {
	if _, done := l.cleaned.LoadOrStore(dir, struct{}{}); done {
		return
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), tmpPrefix) || !e.Type().IsRegular() {
			continue
		}
		if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < staleTempAge {
			continue
		}
		removeIfAbandoned(filepath.Join(dir, e.Name()))
	}
}

// Create implements Store. The temp file is hard-linked into place, which fails if the
// target exists, so the conditional create is atomic across processes too.
func (l *Local) Create(ctx context.Context, key string, r io.Reader) error {
	tmp, err := l.writeTemp(ctx, key, r)
	if err != nil {
		return err
	}
	defer tmp.discard()
	if err := os.Link(tmp.path, tmp.final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", key, ErrExists)
		}
		return fmt.Errorf("create %s: %w", key, err)
	}
	return syncDir(filepath.Dir(tmp.final))
}

// Put implements Store.
func (l *Local) Put(ctx context.Context, key string, r io.Reader) error {
	tmp, err := l.writeTemp(ctx, key, r)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.path, tmp.final); err != nil {
		tmp.discard()
		return fmt.Errorf("put %s: %w", key, err)
	}
	// The fsync above reported any write error; the close only drops the lock.
	tmp.f.Close()
	return syncDir(filepath.Dir(tmp.final))
}

// syncDir fsyncs a directory, making the entries created in it durable. A variable so
// that a test can see which directories a write fsyncs.
var syncDir = fsyncDir

func fsyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}

// GetRange implements Store.
func (l *Local) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := validKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(l.LocalPath(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("get %s: %w", key, ErrNotExist)
		}
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if off < 0 {
		f.Close()
		return nil, fmt.Errorf("get %s: negative offset %d", key, off)
	}
	if length < 0 {
		length = 1<<63 - 1 - off
	}
	return &sectionCloser{io.NewSectionReader(f, off, length), f}, nil
}

type sectionCloser struct {
	*io.SectionReader
	f *os.File
}

func (s *sectionCloser) Close() error { return s.f.Close() }

// Stat implements Store.
func (l *Local) Stat(_ context.Context, key string) (Attrs, error) {
	if err := validKey(key); err != nil {
		return Attrs{}, err
	}
	fi, err := os.Stat(l.LocalPath(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Attrs{}, fmt.Errorf("stat %s: %w", key, ErrNotExist)
		}
		return Attrs{}, fmt.Errorf("stat %s: %w", key, err)
	}
	if fi.IsDir() {
		return Attrs{}, fmt.Errorf("stat %s: %w", key, ErrNotExist)
	}
	return Attrs{Key: key, Size: fi.Size()}, nil
}

// List implements Store. It walks only the directories that can hold keys with prefix.
func (l *Local) List(ctx context.Context, prefix string, fn func(Attrs) error) error {
	// Start at the deepest directory fully named by prefix.
	startRel := ""
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		startRel = prefix[:i]
	}
	return l.walk(ctx, startRel, prefix, fn)
}

func (l *Local) walk(ctx context.Context, rel, prefix string, fn func(Attrs) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Join(l.root, filepath.FromSlash(rel))
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	// Lexical key order: a directory "a" lists its keys as "a/...", which sort after the
	// key "a" and before "a0"; sort entries by their key form to keep the order exact.
	names := make([]string, 0, len(ents))
	isDir := make(map[string]bool, len(ents))
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, tmpPrefix) {
			continue
		}
		if e.IsDir() {
			isDir[n+"/"] = true
			n += "/"
		}
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		key := n
		if rel != "" {
			key = rel + "/" + n
		}
		if isDir[n] {
			// Descend only if the directory can hold matching keys.
			if strings.HasPrefix(key, prefix) || strings.HasPrefix(prefix, key) {
				if err := l.walk(ctx, strings.TrimSuffix(key, "/"), prefix, fn); err != nil {
					return err
				}
			}
			continue
		}
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		info, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted while listing
			}
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		if err := fn(Attrs{Key: key, Size: info.Size()}); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements Store.
func (l *Local) Delete(_ context.Context, key string) error {
	if err := validKey(key); err != nil {
		return err
	}
	if err := os.Remove(l.LocalPath(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// ctxReader stops a copy when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// WriteTo lets io.Copy hand the source's own buffers to the destination when the source
// has them (bytes.Reader, bytes.Buffer): one copy less per byte. The context is checked
// before every write.
func (c ctxReader) WriteTo(w io.Writer) (int64, error) {
	if wt, ok := c.r.(io.WriterTo); ok {
		return wt.WriteTo(ctxWriter{c.ctx, w})
	}
	return io.Copy(w, struct{ io.Reader }{c})
}

// ctxWriter is the writing side of ctxReader.WriteTo.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
