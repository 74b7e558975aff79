package faults_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tailor-metrics/tailor/storage"
	"github.com/tailor-metrics/tailor/storage/faults"
)

// TestLateWriteLandsAfterTheCallerGaveUp: a Late write is deaf to its caller's context,
// as a request already on the wire is: cancelling the caller neither ends the delay nor
// the write, which lands when the delay is over. WaitIdle waits for it, Succeeded counts
// it. The bubble's clock makes the delay exact.
func TestLateWriteLandsAfterTheCallerGaveUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bg := context.Background()
		fs := faults.Wrap(storage.NewMem("t"))
		f := fs.Inject(faults.Rule{Ops: faults.OpCreate, Delay: time.Second, Late: true, Times: 1})
		ctx, cancel := context.WithCancel(bg)
		start := time.Now()
		errc := make(chan error, 1)
		go func() { errc <- fs.Create(ctx, "k", strings.NewReader("zombie")) }()
		if err := f.Wait(bg, 1); err != nil {
			t.Fatal(err)
		}
		cancel()
		synctest.Wait()
		select {
		case err := <-errc:
			t.Fatalf("the late write returned when its caller gave up: %v", err)
		default:
		}
		if _, err := fs.Inner().Stat(bg, "k"); !errors.Is(err, storage.ErrNotExist) {
			t.Fatalf("the late write landed before its delay: %v", err)
		}
		if err := f.WaitIdle(bg); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("late write: %v", err)
		}
		if d := time.Since(start); d != time.Second {
			t.Fatalf("the late write returned after %s, want its 1s delay", d)
		}
		b, err := storage.ReadAll(bg, fs.Inner(), "k")
		if err != nil || string(b) != "zombie" {
			t.Fatalf("stored %q, %v; want the late write's body", b, err)
		}
		if f.Succeeded() != 1 || f.Hits() != 1 {
			t.Fatalf("succeeded %d, hits %d; want 1, 1", f.Succeeded(), f.Hits())
		}
		// Times: 1 — the next create is not late, and a failing rule never succeeds.
		if err := fs.Create(bg, "k2", strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
		g := fs.Inject(faults.Rule{Ops: faults.OpCreate, Times: 1})
		if err := fs.Create(bg, "k3", strings.NewReader("x")); err == nil {
			t.Fatal("the failing rule let the create through")
		}
		if g.Succeeded() != 0 {
			t.Fatalf("a failed call counted as succeeded: %d", g.Succeeded())
		}
	})
}

// TestDoRunsBeforeTheCall: the hook runs when the rule acts, before the call reaches
// the store, and only for the calls the rule acts on.
func TestDoRunsBeforeTheCall(t *testing.T) {
	ctx := context.Background()
	fs := faults.Wrap(storage.NewMem("t"))
	var seen []string
	fs.Inject(faults.Rule{Ops: faults.OpPut, Key: "a/*", Times: 1, PassThrough: true, Do: func(op faults.Op, key string) {
		if _, err := fs.Inner().Stat(ctx, key); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("%s %s reached the store before the hook: %v", op, key, err)
		}
		seen = append(seen, op.String()+" "+key)
	}})
	for _, k := range []string{"b", "a/1", "a/2"} {
		if err := fs.Put(ctx, k, strings.NewReader(k)); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 1 || seen[0] != "put a/1" {
		t.Fatalf("hook saw %q, want only the first put under a/", seen)
	}
}

// TestWaitEndsWithItsContext: Wait for hits that never come returns the context's error.
func TestWaitEndsWithItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := faults.Wrap(storage.NewMem("t"))
		f := fs.Inject(faults.Rule{Ops: faults.OpDelete})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := f.Wait(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait with no hit: %v", err)
		}
	})
}
