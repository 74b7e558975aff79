package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/spf13/pflag"
)

// logFlags are the root's persistent logging flags: every command takes them, and the
// root builds the one logger from them (newLogger) before any command runs.
type logFlags struct {
	verbose bool
	level   string
	format  string
	fl      *pflag.FlagSet
}

func addLogFlags(fl *pflag.FlagSet) *logFlags {
	f := &logFlags{fl: fl}
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "log more: --log-level info (the sink's partition assignments, each shard run's result)")
	fl.StringVar(&f.level, "log-level", "warn", "log level: debug, info, warn or error (overrides -v)")
	fl.StringVar(&f.format, "log-format", "text", "log format on standard error: text or json (one JSON object a line)")
	return f
}

// handlerOptions checks the flags and returns the level and format they ask for.
func (f *logFlags) handlerOptions() (slog.Level, string, error) {
	lvl := slog.LevelWarn
	if f.verbose {
		lvl = slog.LevelInfo
	}
	if f.fl.Changed("log-level") || !f.verbose {
		if err := lvl.UnmarshalText([]byte(strings.TrimSpace(f.level))); err != nil {
			return 0, "", usageErrorf("--log-level %q: want debug, info, warn or error", f.level)
		}
	}
	switch format := strings.ToLower(strings.TrimSpace(f.format)); format {
	case "text", "json":
		return lvl, format, nil
	}
	return 0, "", usageErrorf("--log-format %q: want text or json", f.format)
}

// newLogger is the one place a command's logger is built: slog at lvl, as text or JSON
// lines, written through con so that log lines never land in the middle of a progress
// line.
func newLogger(con *console, lvl slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(con, opts))
	}
	return slog.New(slog.NewTextHandler(con, opts))
}

type loggerKey struct{}

type consoleKey struct{}

// withLogging returns ctx carrying the command's logger and console.
func withLogging(ctx context.Context, log *slog.Logger, con *console) context.Context {
	return context.WithValue(context.WithValue(ctx, loggerKey{}, log), consoleKey{}, con)
}

// loggerFrom returns the logger the root built, or a warn-level text logger on standard
// error when ctx has none (a command run without the root, as some tests do).
func loggerFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return newLogger(consoleFrom(ctx), slog.LevelWarn, "text")
}

// consoleFrom returns the command's console (standard error without the root).
func consoleFrom(ctx context.Context) *console {
	if c, ok := ctx.Value(consoleKey{}).(*console); ok {
		return c
	}
	return newConsole(os.Stderr)
}

// console is standard error, shared by the logger and the progress bar: a log line first
// clears a progress line that is on screen, and the bar draws again on its next tick.
type console struct {
	mu   sync.Mutex
	w    io.Writer
	line bool // a progress line is on screen
}

func newConsole(w io.Writer) *console { return &console{w: w} }

// Write writes p (whole log lines) below any progress line, which it clears first.
func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearLocked()
	return c.w.Write(p)
}

// drawLine replaces the progress line with s (no newline).
func (c *console) drawLine(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprint(c.w, "\r\033[K"+s)
	c.line = true
}

// clearLine removes the progress line, leaving the cursor at the start of an empty line.
func (c *console) clearLine() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearLocked()
}

func (c *console) clearLocked() {
	if c.line {
		fmt.Fprint(c.w, "\r\033[K")
		c.line = false
	}
}

// terminal reports whether the console is a terminal, where a progress line can be
// redrawn in place. A writer may say so itself (IsTerminal), as tests' fake terminals do.
func (c *console) terminal() bool {
	switch w := c.w.(type) {
	case interface{ IsTerminal() bool }:
		return w.IsTerminal()
	case *os.File:
		fi, err := w.Stat()
		return err == nil && fi.Mode()&os.ModeCharDevice != 0
	}
	return false
}
