package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailor-metrics/tailor/storage/s3test"
)

// readerCommands are the commands that read a store, each on store, with legacy data
// (a CSV file) where it needs one.
func readerCommands(store, legacy, outDir string) map[string][]string {
	return map[string][]string{
		"cat":      {"cat", "--store", store},
		"run":      {"run", "--store", store, "--all"},
		"sql":      {"sql", "--store", store, "SELECT count(*) FROM points"},
		"diff":     {"diff", "--new", store, "--legacy", legacy},
		"validate": {"validate", "--new", store, "--legacy", legacy, "--out-dir", outDir},
		"verify":   {"verify", "--store", store},
		"ls":       {"ls", "--store", store},
	}
}

// TestReadersRefuseMissingStore: every command that reads a store fails when the store
// does not exist (a file:// URL, a plain path) or holds no Tailor data (an empty
// directory), with an error that names the store and the flag and says what to do, and
// it never creates the store. diff and validate on an empty store fail instead of
// reporting every legacy point missing in new; cat, diff and validate on a store with
// segments but no series files say that they read series files.
func TestReadersRefuseMissingStore(t *testing.T) {
	dir := t.TempDir()
	legacy := filepath.Join(dir, "legacy.csv")
	writePointsCSV(t, legacy, validationPoints()[:10])
	missing := filepath.Join(dir, "no", "store")
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	segOnly := filepath.Join(dir, "segments-only")
	if out, err := runCLI(t, "import", "--store", segOnly, "--csv", legacy); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name, store, shows, says string
		only                     []string // commands that fail; nil: all
	}{
		{"missing file URL", "file://" + missing, "file://" + missing, "does not exist", nil},
		{"missing path", missing, "file://" + missing, "does not exist", nil},
		{"empty directory", empty, "file://" + empty, "holds no Tailor data", nil},
		{"no series files", segOnly, "file://" + segOnly, "no keys under series/", []string{"cat", "diff", "validate"}},
	} {
		for name, args := range readerCommands(tc.store, legacy, filepath.Join(dir, "report")) {
			if tc.only != nil && !strings.Contains(strings.Join(tc.only, " "), name) {
				continue
			}
			out, err := runCLI(t, args...)
			if err == nil {
				t.Errorf("%s: %s succeeded:\n%s", tc.name, name, out)
				continue
			}
			if code := exitCode(err, &bytes.Buffer{}); code != exitError {
				t.Errorf("%s: %s exits %d, want %d (could not do what was asked)", tc.name, name, code, exitError)
			}
			flag := "--store"
			if name == "diff" || name == "validate" {
				flag = "--new"
			}
			for _, want := range []string{tc.shows, tc.says, "check " + flag} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s: %s: the error does not say %q: %v", tc.name, name, want, err)
				}
			}
			if strings.Contains(out, "missing_in_new") {
				t.Errorf("%s: %s reported a diff:\n%s", tc.name, name, out)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "no")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: a reader created the store: %v", tc.name, err)
		}
	}
	// The writers create a store that does not exist.
	if out, err := runCLI(t, "import", "--store", "file://"+missing, "--csv", legacy); err != nil {
		t.Fatalf("import into a new store: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "run", "--store", missing, "--all"); err != nil {
		t.Fatalf("run after import: %v\n%s", err, out)
	}
}

// TestReadersRefuseEmptyS3Prefix: on S3, a prefix with no segments/ or series/ keys is
// no store, whatever else the bucket holds.
func TestReadersRefuseEmptyS3Prefix(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	dir := t.TempDir()
	legacy := filepath.Join(dir, "legacy.csv")
	writePointsCSV(t, legacy, validationPoints()[:10])
	// Data under a neighbouring prefix does not count.
	if out, err := runCLI(t, "import", "--store", srv.URL("data"), "--csv", legacy); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	store := srv.URL("dat")
	for name, args := range readerCommands(store, legacy, filepath.Join(dir, "report")) {
		_, err := runCLI(t, args...)
		if err == nil || !strings.Contains(err.Error(), "holds no Tailor data") || !strings.Contains(err.Error(), "s3://"+srv.Bucket+"/dat?") {
			t.Errorf("%s on an empty prefix: %v", name, err)
		}
	}
}

// TestStoreTimeout: a command on an S3 store that does not answer fails after about
// --store-timeout, logging each retry at warn level while it waits, and the error says
// which flag sets the wait. Against a closed port and a fault proxy that never answers.
func TestStoreTimeout(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	hung := s3test.StartFaultProxy(t, srv.Endpoint)
	hung.Add(s3test.ProxyRule{Kind: s3test.Slow, Delay: time.Hour})
	for _, tc := range []struct{ name, store string }{
		{"closed port", "s3://" + srv.Bucket + "/p?endpoint=http://" + closedAddr},
		{"hung server", srv.URLVia(hung.URL, "p")},
	} {
		for _, args := range [][]string{{"cat", "--store", tc.store}, {"run", "--store", tc.store, "--all"}} {
			start := time.Now()
			out, err := runCLI(t, append(args, "--store-timeout", "2s")...)
			d := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), "store unreachable") || !strings.Contains(err.Error(), "--store-timeout") {
				t.Fatalf("%s: %s: got %v, want an unreachable store naming --store-timeout", tc.name, args[0], err)
			}
			if d > 15*time.Second {
				t.Fatalf("%s: %s took %s with --store-timeout 2s", tc.name, args[0], d)
			}
			if !strings.Contains(out, `level=WARN msg="store request failed; retrying"`) || !strings.Contains(out, "next_delay=") {
				t.Fatalf("%s: %s logged no retry while it waited:\n%s", tc.name, args[0], out)
			}
		}
	}
}

// TestStoreTimeoutFlag: a wait of zero or less is a mistake, not "forever" or "never".
func TestStoreTimeoutFlag(t *testing.T) {
	for _, v := range []string{"0s", "-1m"} {
		if _, err := runCLI(t, "cat", "--store", t.TempDir(), "--store-timeout", v); err == nil || !strings.Contains(err.Error(), "--store-timeout") {
			t.Errorf("--store-timeout %s: %v", v, err)
		}
	}
}

// TestNoCredentials: with no AWS credentials anywhere (HOME and every AWS_ variable
// emptied), a command says so and names the chain, instead of "access denied (403 )".
func TestNoCredentials(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	s3test.NoRoleMetadata(t)
	_, err := runCLI(t, "cat", "--store", "s3://bkt/p?endpoint=http://"+closedAddr, "--store-timeout", "10s")
	if err == nil || !strings.Contains(err.Error(), "no AWS credentials found (tried") || strings.Contains(err.Error(), "access denied") {
		t.Fatalf("got %v, want no AWS credentials found", err)
	}
}

// TestNoSecretInMessages: whatever a user puts in a store URL, no command prints a
// credential in its error or its output.
func TestNoSecretInMessages(t *testing.T) {
	const secret = "S3CR3T-do-not-print"
	srv := s3test.Start(t)
	srv.Setenv(t)
	dir := t.TempDir()
	legacy := filepath.Join(dir, "legacy.csv")
	writePointsCSV(t, legacy, validationPoints()[:10])
	good := validationStore(t, validationPoints())
	urls := []string{
		"s3://AKIA:" + secret + "@bkt/p",
		"s3://u:" + secret + "@bkt%zz/p",
		"s3://bkt/p?aws_secret_access_key=" + secret,
		"s3://bkt/p?endpoint=http://u:" + secret + "@127.0.0.1:1",
		"s3://bkt/p?endpoint=%zz" + secret,
		"s3://bkt/p?region=x#" + secret,
		"file://u:" + secret + "@localhost/x",
		"ftp://u:" + secret + "@x/y",
	}
	for _, u := range urls {
		for _, args := range [][]string{
			{"cat", "--store", u},
			{"run", "--store", u, "--all"},
			{"sql", "--store", u, "SELECT 1"},
			{"verify", "--store", u},
			{"import", "--store", u, "--csv", legacy},
			{"sink", "--store", u, "--brokers", "127.0.0.1:1", "--topics", "t"},
			{"diff", "--new", u, "--legacy", legacy},
			{"diff", "--new", good, "--legacy", u},
			{"validate", "--new", u, "--legacy", legacy, "--out-dir", filepath.Join(dir, "r")},
			{"validate", "--new", good, "--legacy", u, "--out-dir", filepath.Join(dir, "r")},
		} {
			out, err := runCLI(t, args...)
			if err == nil {
				t.Errorf("%q: no error", args)
				continue
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(out, secret) {
				t.Errorf("%q shows the secret:\nerror: %v\noutput: %s", args, err, out)
			}
		}
	}
}
