package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
)

// tmpPrefix marks files that are still being written; List never shows them.
const tmpPrefix = ".tmp-"

// Local is a Store over a local directory.
//
// Durable write order, for every Create and Put: write a temp file in the target's
// directory, fsync it, then link (Create) or rename (Put) it into place, then fsync the
// directory. A crash at any point leaves either no object or the whole object, plus at
// most a stray temp file that List ignores.
type Local struct {
	root string
	seq  atomic.Uint64
}

var _ Store = (*Local)(nil)
var _ LocalFiler = (*Local)(nil)

// OpenLocal opens (and creates if needed) a local directory store.
func OpenLocal(root string) (*Local, error) {
	if root == "" {
		return nil, errors.New("open local store: empty path")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open local store %q: %w", root, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("open local store: %w", err)
	}
	return &Local{root: abs}, nil
}

// URL implements Store.
func (l *Local) URL() string { return "file://" + l.root }

// Close implements Store.
func (l *Local) Close() error { return nil }

// LocalPath implements LocalFiler.
func (l *Local) LocalPath(key string) string { return filepath.Join(l.root, filepath.FromSlash(key)) }

func (l *Local) writeTemp(ctx context.Context, key string, r io.Reader) (tmp, final string, err error) {
	if err := validKey(key); err != nil {
		return "", "", err
	}
	final = l.LocalPath(key)
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("create %s: %w", key, err)
	}
	// The temp path lives in its own variable: the error returns below zero the named
	// result tmp before the deferred cleanup runs.
	path := filepath.Join(dir, fmt.Sprintf("%s%d-%d-%s", tmpPrefix, os.Getpid(), l.seq.Add(1), filepath.Base(final)))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return "", "", fmt.Errorf("create %s: %w", key, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %s: %w", path, cerr)
		}
		if err != nil {
			os.Remove(path)
			tmp = ""
		}
	}()
	if _, err = io.Copy(f, ctxReader{ctx, r}); err != nil {
		return "", "", fmt.Errorf("write %s: %w", key, err)
	}
	if err = f.Sync(); err != nil {
		return "", "", fmt.Errorf("fsync %s: %w", key, err)
	}
	return path, final, nil
}

// Create implements Store. The temp file is hard-linked into place, which fails if the
// target exists, so the conditional create is atomic across processes too.
func (l *Local) Create(ctx context.Context, key string, r io.Reader) error {
	tmp, final, err := l.writeTemp(ctx, key, r)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", key, ErrExists)
		}
		return fmt.Errorf("create %s: %w", key, err)
	}
	return syncDir(filepath.Dir(final))
}

// Put implements Store.
func (l *Local) Put(ctx context.Context, key string, r io.Reader) error {
	tmp, final, err := l.writeTemp(ctx, key, r)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("put %s: %w", key, err)
	}
	return syncDir(filepath.Dir(final))
}

func syncDir(dir string) error {
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
