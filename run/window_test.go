package run

import (
	"strings"
	"testing"
	"time"
)

// TestParseWindowTakesNames: the window names the tool prints (ls, run reports, output
// keys) are accepted wherever a window is, and name the same window as FROM/DURATION.
func TestParseWindowTakesNames(t *testing.T) {
	f := func(s string, want string) {
		t.Helper()
		w, err := ParseWindow(s, DefaultWindowSize)
		if err != nil {
			t.Fatalf("ParseWindow(%q): %v", s, err)
		}
		if w.Name() != want {
			t.Fatalf("ParseWindow(%q) = %s, want %s", s, w.Name(), want)
		}
	}
	f("20251124T0400Z-4h", "20251124T0400Z-4h")
	f("2025-11-24T04:00:00Z/4h", "20251124T0400Z-4h")
	f("2025-11-24T04:00:00Z", "20251124T0400Z-4h")
	f("20251124T0430Z-30m", "20251124T0430Z-30m")
	f("20251124T0000Z-24h", "20251124T0000Z-24h")
	w := WindowOf(time.Date(2025, 11, 24, 5, 0, 0, 0, time.UTC).UnixMilli(), 2*time.Hour)
	f(w.Name(), "20251124T0400Z-2h")

	for s, want := range map[string]string{
		"20251124T0500Z-4h":  "not aligned to 4h0m0s; the window holding it starts at 2025-11-24T04:00:00Z (20251124T0400Z-4h)",
		"20251124T0400Z-0h":  "want a name such as 20251124T0400Z-4h",
		"20251124T0400Z-4x":  "want a name such as 20251124T0400Z-4h",
		"2025112T0400Z-4h":   "want a name such as 20251124T0400Z-4h",
		"20251124T0400Z-1ms": "whole number of seconds",
	} {
		if _, err := ParseWindow(s, DefaultWindowSize); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("ParseWindow(%q) = %v, want an error with %q", s, err, want)
		}
	}
}
