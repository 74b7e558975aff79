// Package promtools finds the Prometheus server and promtool that scripts/prometheus.sh
// builds into the tool cache, for the tests that run them.
package promtools

import (
	"fmt"
	"os"
	"path/filepath"
)

// Path returns the path of tool ("prometheus" or "promtool"): $TAILOR_PROMETHEUS or
// $TAILOR_PROMTOOL, else ${TAILOR_CACHE:-$HOME/.cache/tailor}/bin/<tool>. A missing
// binary is an error that says how to build it: the tests that need it fail rather
// than skip, so CI cannot pass without running them.
func Path(tool string) (string, error) {
	env := map[string]string{"prometheus": "TAILOR_PROMETHEUS", "promtool": "TAILOR_PROMTOOL"}[tool]
	if env == "" {
		return "", fmt.Errorf("unknown tool %q", tool)
	}
	p := os.Getenv(env)
	if p == "" {
		cache := os.Getenv("TAILOR_CACHE")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("%s: no %s, TAILOR_CACHE or home directory: %w", tool, env, err)
			}
			cache = filepath.Join(home, ".cache", "tailor")
		}
		p = filepath.Join(cache, "bin", tool)
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s binary %s not found: run scripts/prometheus.sh (make tools-prom) to build it: %w", tool, p, err)
	}
	return p, nil
}
