package query

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
)

// DefaultWindowSize is the legacy extract's window.
const DefaultWindowSize = 4 * time.Hour

// Window is an epoch-aligned run window.
type Window struct {
	From time.Time
	Size time.Duration
}

// TsRange is the window as a columnar ts range [From, From+Size).
func (w Window) TsRange() columnar.Window {
	return columnar.Window{From: w.From.UnixMilli(), To: w.From.Add(w.Size).UnixMilli()}
}

// Name is the window's path element: 20251124T0400Z-4h.
func (w Window) Name() string {
	return w.From.UTC().Format("20060102T1504Z") + "-" + formatDuration(w.Size)
}

func formatDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}

// ParseWindowName parses a Name back into a Window.
func ParseWindowName(s string) (Window, error) {
	i := strings.IndexByte(s, '-')
	if i < 0 {
		return Window{}, fmt.Errorf("window name %q: want 20060102T1504Z-4h", s)
	}
	from, err := time.Parse("20060102T1504Z", s[:i])
	if err != nil {
		return Window{}, fmt.Errorf("window name %q: %w", s, err)
	}
	d, err := time.ParseDuration(s[i+1:])
	if err != nil || d <= 0 {
		return Window{}, fmt.Errorf("window name %q: bad duration", s)
	}
	return Window{From: from.UTC(), Size: d}, nil
}

// WindowOf returns the window of size that holds ts (Unix ms), aligned to the epoch.
func WindowOf(ts int64, size time.Duration) Window {
	ms := size.Milliseconds()
	start := ts - ((ts%ms)+ms)%ms // floor for negative ts too
	return Window{From: time.UnixMilli(start).UTC(), Size: size}
}

// ParseWindow parses FROM/DURATION (FROM as RFC 3339 or Unix ms, DURATION like 4h) or a
// bare FROM with defaultSize. FROM must be aligned to the duration.
func ParseWindow(s string, defaultSize time.Duration) (Window, error) {
	from, dur, hasDur := strings.Cut(s, "/")
	size := defaultSize
	if hasDur {
		d, err := time.ParseDuration(dur)
		if err != nil || d <= 0 || d%time.Second != 0 {
			return Window{}, fmt.Errorf("window %q: duration %q: want a positive whole number of seconds such as 4h", s, dur)
		}
		size = d
	}
	var t time.Time
	if ms, err := strconv.ParseInt(from, 10, 64); err == nil {
		t = time.UnixMilli(ms).UTC()
	} else if t, err = time.Parse(time.RFC3339, from); err != nil {
		if t, err = time.Parse("2006-01-02T15:04Z07:00", from); err != nil {
			return Window{}, fmt.Errorf("window %q: start %q: want RFC 3339 (2025-11-24T04:00:00Z) or Unix ms", s, from)
		}
	}
	w := Window{From: t.UTC(), Size: size}
	if aligned := WindowOf(t.UnixMilli(), size); !aligned.From.Equal(w.From) {
		return Window{}, fmt.Errorf("window %q: start is not aligned to %s; the window holding it starts at %s", s, size, aligned.From.Format(time.RFC3339))
	}
	return w, nil
}
