package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// The hostile-segment runs happen in child processes (this test binary again), so that
// each one runs under its own GOMEMLIMIT and its peak RSS is its own.
const (
	hostileStoreEnv = "TAILOR_TEST_HOSTILE_STORE"
	hostileArgsEnv  = "TAILOR_TEST_HOSTILE_ARGS" // the command's arguments, one a line
)

// hostileCommands are what runs on each hostile segment: run, and the paths that skip
// corrupt data (run and sql), which must skip it cleanly too.
var hostileCommands = [][]string{
	{"run", "--all", "--readers", "2"},
	{"run", "--all", "--readers", "2", "--skip-corrupt"},
	{"sql", "--skip-corrupt", "select count(*) from points"},
}

// TestRunHostileSegments: run on segments whose counts or lengths lie (the hostile
// fixtures of columnar/testdata/hostile: a footer that claims 4 billion rows, a raw
// length of 256 MiB for 71 bytes, zstd that expands to 255 MiB behind a claim of 130
// bytes) ends under a 256 MiB GOMEMLIMIT with a clean error that names the segment, the
// offset and the lie; run --skip-corrupt and sql --skip-corrupt skip the lie and name it.
// No crash, and a peak RSS far below what the lies claim.
func TestRunHostileSegments(t *testing.T) {
	if dir := os.Getenv(hostileStoreEnv); dir != "" {
		// The child: run the command, and print the outcome for the parent.
		args := append(strings.Split(os.Getenv(hostileArgsEnv), "\n"), "--store", "file://"+dir)
		if args[0] == "run" {
			args = append(args, "--temp-dir", filepath.Join(dir, "..", "tmp"))
		}
		out, err := runCLI(t, args...)
		fmt.Printf("output: %s\nerror: %v\n", out, err)
		return
	}
	fixture, err := os.ReadFile("../../columnar/testdata/segment-v1.tseg")
	if err != nil {
		t.Fatal(err)
	}
	// The fixture itself, for the RSS each command takes here.
	var base []hostileRun
	for _, args := range hostileCommands {
		r := runHostile(t, fixture, args)
		if !strings.Contains(r.out, "error: <nil>") {
			t.Fatalf("%v on the fixture: %s", args, r.out)
		}
		base = append(base, r)
	}
	for _, tc := range []struct{ name, what string }{
		{"counts", "bad footer: frame 0 at offset 45: 4294967295 rows, more than max allowed 1048576"},
		{"rows-past-raw", "bad footer: frame 0 at offset 45: 1048576 rows in 1048576 groups need at least"},
		{"raw-length", "bad footer: frame 0 at offset 45: raw length 268435456 is more than 71 compressed bytes can hold"},
		{"zstd-bomb", "at byte 45: frame: decompresses to more than the 130 bytes the footer says"},
		{"zstd-bomb-tail", "at byte 45: frame: decompresses to more than the 92 bytes the footer says"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := os.ReadFile("../../columnar/testdata/hostile/" + tc.name + ".tseg")
			if err != nil {
				t.Fatal(err)
			}
			key := columnar.SegmentKey("metrics", 2, 100, 1763942400000)
			for i, args := range hostileCommands {
				r := runHostile(t, b, args)
				skip := slices.Contains(args, "--skip-corrupt")
				switch {
				case !skip && (!strings.Contains(r.out, "corrupt segment "+key+" ") || !strings.Contains(r.out, tc.what) || strings.Contains(r.out, "error: <nil>")):
					t.Fatalf("%v: want a corrupt segment error with %q:\n%s", args, tc.what, r.out)
				case skip && (!strings.Contains(r.out, "error: <nil>") || !strings.Contains(r.out, "corrupt")):
					t.Fatalf("%v: want the corrupt data skipped and named:\n%s", args, r.out)
				}
				// 64 MiB above the fixture's own: a few frame buffers, nothing of the
				// gigabytes the lies claim.
				if r.maxRSS > base[i].maxRSS+64<<20 {
					t.Fatalf("%v: peak RSS %d MiB, on the fixture %d MiB", args, r.maxRSS>>20, base[i].maxRSS>>20)
				}
				t.Logf("%v: peak RSS %d MiB (fixture %d MiB)", args, r.maxRSS>>20, base[i].maxRSS>>20)
			}
		})
	}
}

type hostileRun struct {
	out    string
	maxRSS int64
}

// runHostile stores segment b in a new store and runs the command args on it in a child
// process under GOMEMLIMIT=256MiB.
func runHostile(t *testing.T, b []byte, args []string) hostileRun {
	t.Helper()
	dir := t.TempDir()
	st, err := storage.OpenLocal(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(context.Background(), columnar.SegmentKey("metrics", 2, 100, 1763942400000), bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunHostileSegments$")
	cmd.Env = append(os.Environ(), hostileStoreEnv+"="+filepath.Join(dir, "store"), hostileArgsEnv+"="+strings.Join(args, "\n"), "GOMEMLIMIT=256MiB")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "fatal error") || strings.Contains(string(out), "panic") {
		t.Fatalf("child run: %v\n%s", err, out)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return hostileRun{out: string(out), maxRSS: ru.Maxrss << 10}
}
