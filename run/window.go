package run

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
func (w Window) TsRange() columnar.TimeRange {
	return columnar.TimeRange{From: w.From.UnixMilli(), To: w.From.Add(w.Size).UnixMilli()}
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

// ParseWindow parses FROM/DURATION (FROM as RFC 3339 or Unix ms, DURATION like 4h), a
// bare FROM with defaultSize, or a window's Name as the tool prints it
// (20251124T0400Z-4h). FROM must be aligned to the duration.
func ParseWindow(s string, defaultSize time.Duration) (Window, error) {
	if !strings.Contains(s, "/") && strings.Contains(s, "Z-") {
		w, err := ParseWindowName(s)
		if err != nil {
			return Window{}, fmt.Errorf("window %q: want a name such as 20251124T0400Z-4h, FROM/DURATION or FROM: %w", s, err)
		}
		return alignedWindow(s, w)
	}
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
	return alignedWindow(s, Window{From: t.UTC(), Size: size})
}

// alignedWindow returns w if its start is aligned to its size, and an error naming the
// window that holds its start otherwise.
func alignedWindow(s string, w Window) (Window, error) {
	if w.Size%time.Second != 0 {
		return Window{}, fmt.Errorf("window %q: duration %s: want a positive whole number of seconds such as 4h", s, w.Size)
	}
	if aligned := WindowOf(w.From.UnixMilli(), w.Size); !aligned.From.Equal(w.From) {
		return Window{}, fmt.Errorf("window %q: start is not aligned to %s; the window holding it starts at %s (%s)", s, w.Size, aligned.From.Format(time.RFC3339), aligned.Name())
	}
	return w, nil
}

// DefaultFlushAge is the sink's default flush age (ingest), the longest a segment stays
// open: a segment that started up to this long before a window can hold its points.
const DefaultFlushAge = 10 * time.Minute

// Arrival assigns every point to exactly one output, from its own ts and the start of
// the segment that holds it (the Kafka record timestamp at the segment's first offset,
// which names the segment's hour). See docs/run.md, "Late data".
//
// A segment that started at s is read by the runs of the windows W with
//
//	W.start − FlushAge ≤ s < W.end + Lateness
//
// and its points with ts in one of those windows go to that window's output. Its other
// points go to the late output of Owner(s), the window of s − Lateness: points whose
// window was already closed when they arrived (late), and points more than FlushAge
// ahead of their arrival (early, a producer's clock running fast). Owner(s) is always
// one of the windows that read the segment, so every point is written by exactly one run.
//
// The rule applies only when Closed is set. The zero Arrival leaves windows open: every
// segment may hold points of every window, each point goes to its own window whenever it
// arrives, and a run's inputs (so its run id) change when more arrive. Open is the
// default, since imports and replays stamp arbitrary arrival times; a sink deployment
// that wants windows to close sets a lateness.
type Arrival struct {
	Size     time.Duration
	Closed   bool
	Lateness time.Duration
	FlushAge time.Duration
}

// DefaultArrival is the default: 4 h windows that stay open.
func DefaultArrival() Arrival {
	return Arrival{Size: DefaultWindowSize, FlushAge: DefaultFlushAge}
}

// Bounded reports whether windows close Lateness after their end.
func (a Arrival) Bounded() bool { return a.Closed }

func (a Arrival) validate() error {
	if a.Size <= 0 || a.Size%time.Millisecond != 0 {
		return fmt.Errorf("window size %s: want a positive whole number of milliseconds", a.Size)
	}
	if a.Lateness < 0 || a.FlushAge < 0 {
		return fmt.Errorf("lateness %s and flush age %s must not be negative", a.Lateness, a.FlushAge)
	}
	if a.Lateness%time.Millisecond != 0 || a.FlushAge%time.Millisecond != 0 {
		return fmt.Errorf("lateness %s and flush age %s must be whole milliseconds", a.Lateness, a.FlushAge)
	}
	return nil
}

// Reads reports whether the run of w reads a segment that started at segStart (Unix ms).
func (a Arrival) Reads(w Window, segStart int64) bool {
	if !a.Bounded() {
		return true
	}
	lo, hi := a.startRange(w)
	return segStart >= lo && segStart < hi
}

// Owner is the window whose late output takes a segment's points that no window reading
// it holds (none when !Bounded: OnTime is then all time).
func (a Arrival) Owner(segStart int64) Window {
	return WindowOf(segStart-a.Lateness.Milliseconds(), a.Size)
}

// OnTime is the ts range [first.start, last.end) of the windows that read a segment that
// started at segStart: its points inside go to their own window's output, the others to
// Owner's late output.
func (a Arrival) OnTime(segStart int64) columnar.TimeRange {
	if !a.Bounded() {
		return columnar.AllTime
	}
	first := a.Owner(segStart)
	last := WindowOf(segStart+a.FlushAge.Milliseconds(), a.Size)
	return columnar.TimeRange{From: first.From.UnixMilli(), To: last.From.Add(last.Size).UnixMilli()}
}

// startRange is the range of segment start times [lo, hi) (Unix ms) the run of w reads.
func (a Arrival) startRange(w Window) (lo, hi int64) {
	return w.From.Add(-a.FlushAge).UnixMilli(), w.From.Add(w.Size + a.Lateness).UnixMilli()
}
