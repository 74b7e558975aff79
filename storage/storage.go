// Package storage is Tailor's object store: one small interface with a local-directory
// implementation (file://, the embedded default) and an S3 implementation (s3://).
//
// Keys are slash-separated and never contain "." or ".." elements. No key is also a
// "directory" of another key (no "a" beside "a/b"): S3 gateways over POSIX directories
// cannot store that, so Tailor's key layout avoids it.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// Attrs describes one stored object.
type Attrs struct {
	Key  string
	Size int64
}

// Store is an object store. Implementations are safe for concurrent use.
//
// Every write is atomic: readers see either no object or the whole object, never a prefix.
type Store interface {
	// Create stores the bytes of r under key only if key does not exist yet. It returns an
	// error wrapping ErrExists, and stores nothing, if the key exists. Of several
	// concurrent Creates of one key exactly one succeeds.
	Create(ctx context.Context, key string, r io.Reader) error
	// Put stores the bytes of r under key, replacing any existing object.
	Put(ctx context.Context, key string, r io.Reader) error
	// GetRange returns length bytes of key starting at off; length < 0 reads to the end.
	// A range past the end of the object is cut at the end. The caller closes the reader.
	GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error)
	// Stat returns the attributes of key, or an error wrapping ErrNotExist.
	Stat(ctx context.Context, key string) (Attrs, error)
	// List calls fn for every object whose key starts with prefix, in lexical key order.
	// An error from fn stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(Attrs) error) error
	// Delete removes key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// URL is the store's location, without credentials.
	URL() string
	// Close releases the store's resources.
	Close() error
}

// LocalFiler is implemented by stores whose objects are plain local files, so readers can
// mmap them instead of copying through GetRange.
type LocalFiler interface {
	// LocalPath returns the file that holds key.
	LocalPath(key string) string
}

// Options configure the stores that Open and OpenWith open. Zero values mean defaults;
// each store reads only its own part.
type Options struct {
	// Create lets opening create a store that does not exist yet: a local directory,
	// with its missing parents. Only writers set it (the sink, import, the demo's own
	// store). Without it, opening a local directory that does not exist fails with a
	// *NoStoreError, so that a mistyped --store of a reader fails loudly instead of
	// creating an empty store and reading nothing from it. S3 stores are never created
	// (buckets are made outside Tailor); a reader checks an S3 prefix with CheckData.
	Create bool
	// S3 configures s3:// stores.
	S3 S3Options
}

// Open opens the store that rawURL names for reading, with default options: file:///path
// (or a plain path) for an existing local directory, s3://bucket/prefix for S3 (see
// docs/storage.md). It never creates anything; writers use OpenWith with Create.
func Open(ctx context.Context, rawURL string) (Store, error) {
	return OpenWith(ctx, rawURL, Options{})
}

// OpenWith opens the store that rawURL names, with options o. A URL that does not parse,
// or has parameters its store does not know, is an error; error messages show the URL
// through Redact.
func OpenWith(ctx context.Context, rawURL string, o Options) (Store, error) {
	if rawURL == "" {
		return nil, errors.New("open store: empty URL; want file:///some/dir or s3://bucket/prefix")
	}
	if !strings.Contains(rawURL, "://") {
		if scheme, _, ok := strings.Cut(rawURL, ":"); ok && (scheme == "s3" || scheme == "file") {
			// "s3:/bucket" or "file:dir" would otherwise be taken as a local path.
			return nil, fmt.Errorf("open store %s: malformed URL: want %s://…", Redact(rawURL), scheme)
		}
		return openLocal(rawURL, o.Create)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the whole URL, password included: name it redacted and keep
		// only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		var ee url.EscapeError
		if errors.As(err, &ee) {
			err = errors.New("invalid %-escape")
		}
		return nil, fmt.Errorf("open store %s: malformed URL: %w", Redact(rawURL), err)
	}
	switch u.Scheme {
	case "file":
		if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawFragment != "" {
			return nil, fmt.Errorf("open store %s: a file:// URL takes no user, parameters or fragment", Redact(rawURL))
		}
		return openLocal(localPathFromURL(u), o.Create)
	case "s3":
		return openS3URL(ctx, u, o.S3)
	}
	return nil, fmt.Errorf("open store %s: unknown scheme %q (want file:// or s3://)", Redact(rawURL), u.Scheme)
}

func localPathFromURL(u *url.URL) string {
	if u.Host != "" && u.Host != "localhost" {
		// file://relative/dir is a common slip; treat host+path as a relative path.
		return u.Host + u.Path
	}
	return u.Path
}

// Tailor's top-level key prefixes: what CheckData looks for.
const (
	SegmentsPrefix = "segments/"
	SeriesPrefix   = "series/"
)

// errFound stops a CheckData listing at its first key.
var errFound = errors.New("found")

// CheckData checks that st holds at least one key under one of prefixes (SegmentsPrefix,
// SeriesPrefix): what a reader needs before it reads. A store without any (an empty
// directory, an S3 prefix with nothing under it, a mistyped prefix) gives a *NoStoreError
// that names the store and the prefixes, so a reader fails loudly instead of reporting
// nothing. It lists at most one key per prefix.
func CheckData(ctx context.Context, st Store, prefixes ...string) error {
	for _, p := range prefixes {
		err := st.List(ctx, p, func(Attrs) error { return errFound })
		if errors.Is(err, errFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("check %s for data: %w", st.URL(), err)
		}
	}
	return &NoStoreError{URL: st.URL(), Prefixes: prefixes}
}

// ReadAll reads a whole object.
func ReadAll(ctx context.Context, s Store, key string) ([]byte, error) {
	rc, err := s.GetRange(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return b, nil
}

// ReadRange reads exactly length bytes of key at off into dst[:0] grown as needed.
func ReadRange(ctx context.Context, s Store, key string, off, length int64, dst []byte) ([]byte, error) {
	rc, err := s.GetRange(ctx, key, off, length)
	if err != nil {
		return dst, err
	}
	defer rc.Close()
	if int64(cap(dst)) < length {
		dst = make([]byte, length)
	}
	dst = dst[:length]
	if _, err := io.ReadFull(rc, dst); err != nil {
		return dst, fmt.Errorf("read %s [%d, %d): %w", key, off, off+length, err)
	}
	return dst, nil
}

func validKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return fmt.Errorf("invalid key %q", key)
	}
	for _, el := range strings.Split(key, "/") {
		if el == "" || el == "." || el == ".." {
			return fmt.Errorf("invalid key %q: empty, . or .. element", key)
		}
	}
	return nil
}
