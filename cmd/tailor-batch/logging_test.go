package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// TestLogFlagsOnEveryCommand: -v, --log-level and --log-format are the root's, so every
// command takes them.
func TestLogFlagsOnEveryCommand(t *testing.T) {
	root := newRoot()
	for _, c := range root.Commands() {
		if c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		for _, args := range [][]string{{"-v"}, {"--verbose", "--log-level", "debug", "--log-format", "json"}, {"--log-level=error"}} {
			if err := c.ParseFlags(args); err != nil {
				t.Fatalf("%s %v: %v", c.Name(), args, err)
			}
		}
	}
}

func TestLogLevels(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want slog.Level
	}{
		{nil, slog.LevelWarn},
		{[]string{"-v"}, slog.LevelInfo},
		{[]string{"--log-level", "debug"}, slog.LevelDebug},
		{[]string{"-v", "--log-level", "error"}, slog.LevelError},
		{[]string{"--log-level", "INFO"}, slog.LevelInfo},
	} {
		root := newRoot()
		if err := root.ParseFlags(tc.args); err != nil {
			t.Fatal(err)
		}
		lf := &logFlags{fl: root.PersistentFlags()}
		lf.verbose, _ = root.PersistentFlags().GetBool("verbose")
		lf.level, _ = root.PersistentFlags().GetString("log-level")
		lf.format, _ = root.PersistentFlags().GetString("log-format")
		lvl, _, err := lf.handlerOptions()
		if err != nil || lvl != tc.want {
			t.Fatalf("%v: level %v, %v; want %v", tc.args, lvl, err, tc.want)
		}
	}
}

// TestRunLogsEachShardRun: -v logs one line per shard run, as JSON with --log-format
// json, through the one logger the root builds.
func TestRunLogsEachShardRun(t *testing.T) {
	store := smallStore(t)
	var out, errOut bytes.Buffer
	if err := runCLIio(t, nil, &out, &errOut, "run", "--store", store, "--all", "-v", "--log-format", "json", "--temp-dir", t.TempDir()); err != nil {
		t.Fatal(err)
	}
	var shards []string
	for _, line := range strings.Split(strings.TrimSpace(errOut.String()), "\n") {
		var l struct {
			Level, Msg, Shard string
			Points            uint64 `json:"points_out"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if l.Msg == "shard run published" && l.Level == "INFO" && l.Points == 50 {
			shards = append(shards, l.Shard)
		}
	}
	// Runs side by side (the default --parallel is one per CPU) finish in any order.
	slices.Sort(shards)
	if strings.Join(shards, ",") != "org-mod-3,org-mod-5" {
		t.Fatalf("logged runs %v, want org-mod-3 and org-mod-5:\n%s", shards, errOut.String())
	}
	// Without -v, nothing is logged.
	errOut.Reset()
	if err := runCLIio(t, nil, &out, &errOut, "run", "--store", store, "--all", "--temp-dir", t.TempDir()); err != nil || errOut.Len() != 0 {
		t.Fatalf("run without -v logged %q (%v)", errOut.String(), err)
	}
}

// TestConsoleClearsProgressForLogs: a log line never lands in the middle of the
// progress line: the console clears it first, and the bar draws again afterwards.
func TestConsoleClearsProgressForLogs(t *testing.T) {
	var b bytes.Buffer
	con := newConsole(&b)
	log := newLogger(con, slog.LevelInfo, "text")
	con.drawLine("[###] 1/3 runs")
	log.Warn("store retry", "attempt", 2)
	con.drawLine("[######] 2/3 runs")
	con.clearLine()
	con.clearLine() // nothing on screen: writes nothing
	got := b.String()
	want := "\r\033[K[###] 1/3 runs\r\033[Ktime="
	if !strings.HasPrefix(got, want) || !strings.Contains(got, "level=WARN msg=\"store retry\" attempt=2\n\r\033[K[######] 2/3 runs\r\033[K") || !strings.HasSuffix(got, "2/3 runs\r\033[K") {
		t.Fatalf("console wrote %q", got)
	}
}
