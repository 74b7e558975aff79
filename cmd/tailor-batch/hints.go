package main

import (
	"errors"
	"fmt"

	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/run"
)

// withFlags names the flags that fix err, for the errors of the libraries that say what
// to change but not how: libraries take structs and never name a flag (docs/cli.md).
func withFlags(err error) error {
	var (
		res   *run.ResourceError
		worse *run.WorseRunError
		col   *query.MissingColumnError
	)
	switch {
	case errors.As(err, &res):
		return fmt.Errorf("%w (--memory-limit, --threads, --temp-dir)", err)
	case errors.As(err, &worse):
		return fmt.Errorf("%w (--accept-degraded serves it)", err)
	case errors.As(err, &col):
		return fmt.Errorf("%w (--legacy-column %s=NAME)", err, col.For)
	}
	return err
}

// verifyRemedy is what to do about a verify problem, as a command line, or "".
func verifyRemedy(p run.Problem) string {
	switch {
	case p.Kind == run.RuleDiffers:
		return " (pass the run's --window-size, --lateness and --flush-age)"
	case p.Kind == run.NotRun && p.RunID == "":
		return fmt.Sprintf(" (tailor-batch run --shard %s --window %s)", p.Shard, p.Window)
	case p.Kind == run.DeletedRemains:
		return " (tailor-batch delete --apply --recheck)"
	}
	return ""
}
