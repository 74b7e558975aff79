package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err     error
		want    int
		printed string
	}{
		{nil, 0, ""},
		{&checkFailed{"validate: an org is above the threshold"}, 1, ""},
		{fmt.Errorf("wrapped: %w", &checkFailed{"x"}), 1, ""},
		{usageErrorf("--parallel 0 is out of range"), 2, "tailor-batch: --parallel 0 is out of range\n"},
		{errors.New("open store: no such directory"), 2, "tailor-batch: open store: no such directory\n"},
	} {
		var b bytes.Buffer
		if got := exitCode(tc.err, &b); got != tc.want || b.String() != tc.printed {
			t.Fatalf("exitCode(%v) = %d, printed %q; want %d, %q", tc.err, got, b.String(), tc.want, tc.printed)
		}
	}
}

// TestHelpNamesExitCodes: every command's --help states its exit codes, and 1 only for
// the commands whose answer can be "no".
func TestHelpNamesExitCodes(t *testing.T) {
	root := newRoot()
	n := 0
	for _, c := range root.Commands() {
		if c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		n++
		out, err := runCLI(t, c.Name(), "--help")
		if err != nil {
			t.Fatalf("%s --help: %v", c.Name(), err)
		}
		if !strings.Contains(out, "Exit codes:\n  0  success") || !strings.Contains(out, "\n  2  usage error") {
			t.Fatalf("%s --help lacks the exit codes:\n%s", c.Name(), out)
		}
		_, found := foundCodes[c.Name()]
		if has := strings.Contains(out, "\n  1  "); has != found {
			t.Fatalf("%s --help: exit code 1 listed %v, want %v:\n%s", c.Name(), has, found, out)
		}
	}
	if n < 14 {
		t.Fatalf("checked %d commands", n)
	}
}

// TestUsageHint: a usage error points to the command's --help, and so do cobra's own;
// other errors do not.
func TestUsageHint(t *testing.T) {
	root := newRoot()
	run, _, _ := root.Find([]string{"run"})
	var b bytes.Buffer
	usageHint(&b, run, usageErrorf("--parallel 0 is out of range"))
	if b.String() != "Run 'tailor-batch run --help' for usage.\n" {
		t.Fatalf("usage error: %q", b.String())
	}
	b.Reset()
	usageHint(&b, run, errors.New(`required flag(s) "store" not set`))
	if !strings.Contains(b.String(), "--help") {
		t.Fatalf("cobra's usage error: %q", b.String())
	}
	b.Reset()
	for _, err := range []error{errors.New("open store: boom"), &checkFailed{"diff: differences"}, nil} {
		if usageHint(&b, run, err); b.Len() != 0 {
			t.Fatalf("%v: %q", err, b.String())
		}
	}
}
