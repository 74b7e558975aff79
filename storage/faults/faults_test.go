package faults_test

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tailor-metrics/tailor/storage"
	"github.com/tailor-metrics/tailor/storage/faults"
)

func TestFailNthByKeyPattern(t *testing.T) {
	ctx := context.Background()
	fs := faults.Wrap(storage.NewMem("t"))
	f := fs.FailNth(faults.OpCreate, "segments/*/*/*.tseg", 3, nil)
	keys := []string{"segments/ab/2026010100/m-0-1.tseg", "other/x", "segments/cd/2026010100/m-0-2.tseg",
		"segments/ef/2026010100/m-0-3.tseg", "segments/01/2026010100/m-0-4.tseg"}
	var failed []string
	for _, k := range keys {
		if err := fs.Create(ctx, k, strings.NewReader(k)); err != nil {
			if !storage.IsRetryable(err) {
				t.Fatalf("injected default error is not retryable: %v", err)
			}
			failed = append(failed, k)
		}
	}
	if len(failed) != 1 || failed[0] != keys[3] {
		t.Fatalf("failed %q, want only the third segment create %q", failed, keys[3])
	}
	if f.Hits() != 1 || f.Matched() != 4 || fs.Calls(faults.OpCreate) != 5 || fs.Failed(faults.OpAll) != 1 {
		t.Fatalf("hits %d matched %d calls %d failed %d", f.Hits(), f.Matched(), fs.Calls(faults.OpCreate), fs.Failed(faults.OpAll))
	}
	if _, err := fs.Stat(ctx, keys[3]); !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("a failed create stored something: %v", err)
	}
}

// TestSlowDownWindow runs in a synctest bubble: its clock moves only when every
// goroutine in it waits, so a loaded machine that pauses the test between the first hit
// and the check cannot end the window early, and the sleep past its end is exact.
func TestSlowDownWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		fs := faults.Wrap(storage.NewMem("t"))
		f := fs.SlowDownFor(faults.OpRead, 50*time.Millisecond)
		if err := fs.Put(ctx, "k", strings.NewReader("v")); err != nil {
			t.Fatalf("writes are not in the rule: %v", err)
		}
		if _, err := fs.Stat(ctx, "k"); !storage.IsRetryable(err) {
			t.Fatalf("stat at the start of the window: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
		if _, err := fs.Stat(ctx, "k"); !storage.IsRetryable(err) {
			t.Fatalf("stat at the last instant of the window: %v", err)
		}
		time.Sleep(time.Nanosecond)
		if _, err := fs.Stat(ctx, "k"); err != nil {
			t.Fatalf("stat after the window: %v", err)
		}
		if f.Hits() != 2 {
			t.Fatalf("hits %d, want 2", f.Hits())
		}
		f.Remove()
	})
}

func TestMidStreamUploadLeavesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	local, err := storage.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	fs := faults.Wrap(local)
	boom := errors.New("disk on fire")
	fs.Inject(faults.Rule{Ops: faults.OpWrite, MidStream: true, AfterBytes: 1000, Err: boom, Times: 1})
	err = fs.Create(ctx, "a/b", strings.NewReader(strings.Repeat("x", 5000)))
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the injected error", err)
	}
	ents, _ := os.ReadDir(dir + "/a")
	if len(ents) != 0 {
		t.Fatalf("broken upload left files: %v", ents)
	}
	// Times: 1 — the next upload goes through.
	if err := fs.Create(ctx, "a/b", strings.NewReader("ok")); err != nil {
		t.Fatal(err)
	}
}

func TestMidStreamRead(t *testing.T) {
	ctx := context.Background()
	fs := faults.Wrap(storage.NewMem("t"))
	if err := fs.Put(ctx, "k", strings.NewReader(strings.Repeat("y", 100))); err != nil {
		t.Fatal(err)
	}
	fs.Inject(faults.Rule{Ops: faults.OpGet, MidStream: true, AfterBytes: 10})
	rc, err := fs.GetRange(ctx, "k", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if len(b) != 10 || !storage.IsRetryable(err) {
		t.Fatalf("read %d bytes, err %v; want 10 then a retryable error", len(b), err)
	}
}

// TestDelayPassThrough runs in a synctest bubble, so the delay is measured exactly and
// the 5ms deadline always fires before the 30ms delay ends.
func TestDelayPassThrough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		fs := faults.Wrap(storage.NewMem("t"))
		fs.Inject(faults.Rule{Ops: faults.OpList, Delay: 30 * time.Millisecond, PassThrough: true})
		start := time.Now()
		if err := fs.List(ctx, "", func(storage.Attrs) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 30*time.Millisecond {
			t.Fatalf("list took %s, want the 30ms delay", d)
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
		defer cancel()
		start = time.Now()
		if err := fs.List(cctx, "", func(storage.Attrs) error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("delay ignores the context: %v", err)
		}
		if d := time.Since(start); d != 5*time.Millisecond {
			t.Fatalf("cancelled list took %s, want the 5ms deadline", d)
		}
	})
	if got := (faults.OpCreate | faults.OpGet).String(); got != "create|get" {
		t.Fatalf("Op.String: %q", got)
	}
}
