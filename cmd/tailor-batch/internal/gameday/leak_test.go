package gameday

import (
	"os"
	"testing"

	"github.com/tailor-metrics/tailor/internal/leakcheck"
)

// TestMain fails the tests if they leave goroutines running.
func TestMain(m *testing.M) { os.Exit(leakcheck.Main(m)) }
