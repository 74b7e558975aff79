package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailor-metrics/tailor/run"
	"go.yaml.in/yaml/v3"
)

// containerArgs walks a decoded manifest and returns the args of every container.
func containerArgs(v any) [][]string {
	var out [][]string
	switch x := v.(type) {
	case map[string]any:
		if cs, ok := x["containers"].([]any); ok {
			for _, c := range cs {
				var args []string
				for _, a := range c.(map[string]any)["args"].([]any) {
					args = append(args, a.(string))
				}
				out = append(out, args)
			}
		}
		for _, e := range x {
			out = append(out, containerArgs(e)...)
		}
	case []any:
		for _, e := range x {
			out = append(out, containerArgs(e)...)
		}
	}
	return out
}

// TestDeployArgsAreValidFlags: every container in deploy/ runs a tailor-batch command
// with flags that exist and values that parse (deploy/deploy_test.go checks the
// Kubernetes side).
func TestDeployArgsAreValidFlags(t *testing.T) {
	files, err := filepath.Glob("../../deploy/*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("manifests: %v %v", files, err)
	}
	var n int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		for {
			var doc any
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			for _, args := range containerArgs(doc) {
				n++
				root := newRoot()
				cmd, rest, err := root.Find(args)
				if err != nil || cmd == root {
					t.Fatalf("%s: %q: no such command (%v)", f, args, err)
				}
				if err := cmd.ParseFlags(rest); err != nil {
					t.Fatalf("%s: %q: %v", f, args, err)
				}
				if cmd.Name() == "run" {
					lat, _ := cmd.Flags().GetString("lateness")
					d, err := time.ParseDuration(lat)
					if err != nil {
						t.Fatalf("%s: --lateness %q: %v", f, lat, err)
					}
					w, _ := cmd.Flags().GetString("window")
					size, _ := cmd.Flags().GetDuration("window-size")
					if _, err := resolveWindow(w, run.Arrival{Size: size, Closed: true, Lateness: d}, time.Now()); err != nil {
						t.Fatalf("%s: --window %q: %v", f, w, err)
					}
				}
			}
		}
	}
	if n < 3 {
		t.Fatalf("found %d containers, want the sink, the job and the cronjob", n)
	}
}

func TestLastClosedWindow(t *testing.T) {
	a := run.Arrival{Size: 4 * time.Hour, Closed: true, Lateness: time.Hour, FlushAge: 10 * time.Minute}
	f := func(now, want string) {
		t.Helper()
		tm, _ := time.Parse(time.RFC3339, now)
		w, err := resolveWindow("last-closed", a, tm)
		if err != nil {
			t.Fatal(err)
		}
		if got := w.From.Format(time.RFC3339); got != want {
			t.Fatalf("at %s: last closed window starts %s, want %s", now, got, want)
		}
	}
	f("2025-11-24T05:10:00Z", "2025-11-24T00:00:00Z") // 04:00 + 1h + 10m: just closed
	f("2025-11-24T05:09:59Z", "2025-11-23T20:00:00Z")
	f("2025-11-24T09:14:00Z", "2025-11-24T04:00:00Z")
	if _, err := resolveWindow("last-closed", run.Arrival{Size: time.Hour}, time.Now()); err == nil {
		t.Fatal("last-closed without a lateness should fail")
	}
}

func TestShardFromEnv(t *testing.T) {
	t.Setenv("IDX", "5")
	if s, err := shardFromEnv("IDX", ""); err != nil || s != "5" {
		t.Fatalf("got %q %v", s, err)
	}
	if s, err := shardFromEnv("IDX", "org-1,org-2,org-3,org-4,org-5,org-42-p1"); err != nil || s != "org-42-p1" {
		t.Fatalf("got %q %v", s, err)
	}
	if _, err := shardFromEnv("IDX", "org-1"); err == nil {
		t.Fatal("an index past the list should fail")
	}
	if _, err := shardFromEnv("NOT_SET_ANYWHERE", ""); err == nil {
		t.Fatal("an unset variable should fail")
	}
}
