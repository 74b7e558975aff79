package storage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
)

// Mem is an in-memory Store for tests. It keeps the semantics of the real stores,
// including their one layout limit: a key cannot also be a "directory" of another key
// ("a" beside "a/b"), so a layout that would break on the local or the S3 store breaks
// here too.
type Mem struct {
	mu   sync.RWMutex
	objs map[string][]byte
	dirs map[string]int // "a" and "a/b" for key "a/b/c": how many keys lie below
	name string
}

var _ Store = (*Mem)(nil)

// NewMem returns an empty in-memory store; name only shows in URL().
func NewMem(name string) *Mem {
	return &Mem{objs: map[string][]byte{}, dirs: map[string]int{}, name: name}
}

// URL implements Store.
func (m *Mem) URL() string { return "mem://" + m.name }

// Close implements Store.
func (m *Mem) Close() error { return nil }

// Create implements Store.
func (m *Mem) Create(ctx context.Context, key string, r io.Reader) error {
	return m.write(ctx, "create", key, r, true)
}

// Put implements Store.
func (m *Mem) Put(ctx context.Context, key string, r io.Reader) error {
	return m.write(ctx, "put", key, r, false)
}

func (m *Mem) write(ctx context.Context, op, key string, r io.Reader, conditional bool) error {
	if err := validKey(key); err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, ctxReader{ctx, r}); err != nil {
		return fmt.Errorf("%s %s: %w", op, key, err)
	}
	b := buf.Bytes()
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[key]; ok {
		if conditional {
			return fmt.Errorf("%s %s: %w", op, key, ErrExists)
		}
		m.objs[key] = b
		return nil
	}
	if m.dirs[key] > 0 {
		return fmt.Errorf("%s %s: key is also a directory of other keys", op, key)
	}
	for dir := range parentDirs(key) {
		if _, ok := m.objs[dir]; ok {
			return fmt.Errorf("%s %s: key %q is an object, so it cannot be a directory", op, key, dir)
		}
	}
	for dir := range parentDirs(key) {
		m.dirs[dir]++
	}
	m.objs[key] = b
	return nil
}

// parentDirs yields "a" and "a/b" for "a/b/c".
func parentDirs(key string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for i := 0; i < len(key); i++ {
			if key[i] == '/' && !yield(key[:i]) {
				return
			}
		}
	}
}

// GetRange implements Store.
func (m *Mem) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := validKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", key, off)
	}
	m.mu.RLock()
	b, ok := m.objs[key]
	m.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("get %s: %w", key, ErrNotExist)
	}
	size := int64(len(b))
	start := min(off, size)
	end := size
	if length >= 0 && length < size-start {
		end = start + length
	}
	return io.NopCloser(bytes.NewReader(b[start:end])), nil
}

// Stat implements Store.
func (m *Mem) Stat(ctx context.Context, key string) (Attrs, error) {
	if err := validKey(key); err != nil {
		return Attrs{}, err
	}
	if err := ctx.Err(); err != nil {
		return Attrs{}, err
	}
	m.mu.RLock()
	b, ok := m.objs[key]
	m.mu.RUnlock()
	if !ok {
		return Attrs{}, fmt.Errorf("stat %s: %w", key, ErrNotExist)
	}
	return Attrs{Key: key, Size: int64(len(b))}, nil
}

// List implements Store. It lists a snapshot taken when it starts.
func (m *Mem) List(ctx context.Context, prefix string, fn func(Attrs) error) error {
	m.mu.RLock()
	var attrs []Attrs
	for k, b := range m.objs {
		if strings.HasPrefix(k, prefix) {
			attrs = append(attrs, Attrs{Key: k, Size: int64(len(b))})
		}
	}
	m.mu.RUnlock()
	sort.Slice(attrs, func(i, j int) bool { return attrs[i].Key < attrs[j].Key })
	for _, a := range attrs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements Store.
func (m *Mem) Delete(_ context.Context, key string) error {
	if err := validKey(key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[key]; !ok {
		return nil
	}
	delete(m.objs, key)
	for dir := range parentDirs(key) {
		if m.dirs[dir]--; m.dirs[dir] == 0 {
			delete(m.dirs, dir)
		}
	}
	return nil
}
