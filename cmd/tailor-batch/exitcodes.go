package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes, the same for every command (docs/cli.md):
//
//	0  the command did what was asked (and a check found nothing)
//	1  a check found something: differences (diff), a failing org (validate), damage
//	   (verify), a failed demo, game day or load-test check; the summary says what
//	2  the command could not do what was asked: a usage error (a flag out of range, a
//	   missing argument) or a runtime error (a missing store, an unreachable service,
//	   a corrupt segment, a failed run)
//
// so that cron, CI and Kubernetes can tell "the data is wrong" from "the job is broken".
const (
	exitOK    = 0
	exitCheck = 1
	exitError = 2
)

// checkFailed is an error whose message was already printed (a failed check's summary):
// the command ran and its answer is "no". It exits 1.
type checkFailed struct{ msg string }

func (e *checkFailed) Error() string { return e.msg }

// usageError is a command line the command cannot run: a flag out of range or a
// missing argument. It exits 2, like every other error, and main adds a pointer to
// --help.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// exitCode prints err (unless a check's summary already said it) and returns the
// process's exit code for it.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var ce *checkFailed
	if errors.As(err, &ce) {
		return exitCheck
	}
	fmt.Fprintln(stderr, "tailor-batch:", err)
	return exitError
}

// usageHint points a usage error at the command's --help. cobra's own usage errors (an
// unknown command, a required flag not set) come back untyped, before any hook of ours
// runs, so they are known by their words.
func usageHint(w io.Writer, cmd *cobra.Command, err error) {
	var ue *usageError
	cobraUsage := err != nil && (strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "required flag"))
	if (errors.As(err, &ue) || cobraUsage) && cmd != nil {
		fmt.Fprintf(w, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
}

// foundCodes is what exit code 1 means for each command that has a "no" answer; the
// commands not listed never exit 1. diff and validate are the migration checks, verify
// the completeness proof, and demo, loadtest and gameday end with a check of their own.
var foundCodes = map[string]string{
	"diff":     "the series files and the legacy data differ, like diff(1)",
	"validate": "an org fails a threshold (the report says which kind of difference)",
	"verify":   "something does not hold: a gap, an overlap, a missing or damaged part, or data not yet run",
	"demo":     "the end-to-end check failed: a point was lost, duplicated or changed",
	"loadtest": "a check failed at one of the scales",
	"gameday":  "a scenario lost or duplicated a point, or missed an expectation",
}

// exitCodeHelp is the "Exit codes" paragraph of a command's --help.
func exitCodeHelp(name string) string {
	var b strings.Builder
	b.WriteString("Exit codes:\n  0  success")
	if found, ok := foundCodes[name]; ok {
		b.WriteString(", and the check found nothing\n  1  " + found)
	}
	b.WriteString("\n  2  usage error (a flag or argument out of range) or runtime error (a store or data that\n     cannot be read, a failed query or run; see docs/cli.md)")
	return b.String()
}

// addExitCodeHelp appends the exit codes to the long help of every command below root,
// from one table, so that no command's --help can leave them out.
func addExitCodeHelp(root *cobra.Command) {
	for _, c := range root.Commands() {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		long := c.Long
		if long == "" {
			long = c.Short + "."
		}
		c.Long = strings.TrimRight(long, "\n") + "\n\n" + exitCodeHelp(c.Name())
	}
}
