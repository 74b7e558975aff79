package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
)

// fill adds the records [from, to) to p's open segment as the poll loop does: each
// passes accept first; it returns the offsets accepted.
func fill(t *testing.T, p *partState, from, to int64) []int64 {
	t.Helper()
	var got []int64
	for off := from; off < to; off++ {
		if !p.accept(off) {
			continue
		}
		w := p.segment(tp{"m", 0}, off, 1763942400000+off, columnar.DefaultShardMap(), 0, time.Unix(0, 0))
		if err := w.Skip(off, false); err != nil {
			t.Fatal(err)
		}
		got = append(got, off)
	}
	return got
}

// finish completes j as an uploader would, ending the chain at end (existing: someone
// else's segment).
func finish(j *job, end int64, existing bool) {
	j.end, j.existing = end, existing
	close(j.done)
}

// TestPartitionChain walks one partition through the transitions the sink drives: a
// segment fills, uploads, is reaped and committed; the next one fills while the first
// uploads, and a flush meanwhile makes the partition full; an existing segment of
// another end drops the open one and rewinds, and the records fetched before the rewind
// are dropped until the refetch arrives.
func TestPartitionChain(t *testing.T) {
	ctx := context.Background()
	k := tp{"m", 0}
	p := newPartState(1)
	if _, ok := p.commitDue(); ok {
		t.Fatal("a new partition has a commit due")
	}
	if got := fill(t, p, 5, 10); len(got) != 5 || p.w.Header().StartOffset != 5 {
		t.Fatalf("first segment: accepted %v, start %d; want 5..9 from 5", got, p.w.Header().StartOffset)
	}
	if r := p.trigger(5, 1<<30, offset{}); r != "payloads" {
		t.Fatalf("trigger at 5 payloads of 5: %q", r)
	}
	if r := p.trigger(6, 1<<30, offsetAt(10)); r != "drain" {
		t.Fatalf("trigger at the drain's end: %q", r)
	}
	if r := p.trigger(6, 1<<30, offsetAt(11)); r != "" {
		t.Fatalf("trigger before any limit: %q", r)
	}
	j1 := p.flush(ctx, k, "payloads", time.Now())
	if j1 == nil || p.w != nil || p.up != j1 || j1.w.EndOffset() != 10 {
		t.Fatalf("flush with no upload busy: job %v, open %v", j1, p.w)
	}
	if next, _ := p.next.get(); next != 10 {
		t.Fatalf("next segment starts at %d, want 10", next)
	}
	// The next segment fills while the first uploads; a flush now must wait.
	fill(t, p, 10, 14)
	if p.w.Header().StartOffset != 10 {
		t.Fatalf("second segment starts at %d, want 10", p.w.Header().StartOffset)
	}
	if j := p.flush(ctx, k, "payloads", time.Now()); j != nil || !p.full {
		t.Fatalf("flush while uploading: job %v, full %v; want none and full", j, p.full)
	}
	if p.reap() != nil {
		t.Fatal("reaped an upload still running")
	}
	finish(j1, 10, false)
	if j := p.reap(); j != j1 || p.up != nil {
		t.Fatalf("reap: %v, want the finished upload", j)
	}
	p.stored(10)
	if off, ok := p.commitDue(); !ok || off != 10 {
		t.Fatalf("commit due %d %v, want 10", off, ok)
	}
	// The full partition hands its segment over at once; it is no longer full.
	j2 := p.startUpload(ctx, k, "payloads", time.Now())
	if p.full || j2.w.Header().StartOffset != 10 || j2.w.EndOffset() != 14 {
		t.Fatalf("second upload [%d, %d), full %v", j2.w.Header().StartOffset, j2.w.EndOffset(), p.full)
	}
	// A commit of 10 that returns after the chain was stored up to 20 leaves 20 due.
	finish(j2, 20, true) // someone else stored [10, 20)
	if p.reap() != j2 {
		t.Fatal("second upload not reaped")
	}
	p.stored(20)
	p.committed(10)
	if off, ok := p.commitDue(); !ok || off != 20 {
		t.Fatalf("after a commit of an older end: due %d %v, want 20", off, ok)
	}
	p.committed(20)
	if _, ok := p.commitDue(); ok {
		t.Fatal("commit still due after it succeeded")
	}

	// We fetched up to 14 and opened a segment at 14; the existing one ends at 20, so
	// the open segment goes, and since we had not fetched past 20 there is no rewind.
	fill(t, p, 14, 16)
	if rewind := p.continueFrom(20, true); rewind {
		t.Fatal("rewind although nothing past the existing end was fetched")
	}
	if p.w != nil {
		t.Fatal("continueFrom kept the open segment")
	}
	// Records the existing segment holds are dropped; the chain goes on at 20.
	if got := fill(t, p, 16, 22); len(got) != 2 || got[0] != 20 || p.w.Header().StartOffset != 20 {
		t.Fatalf("after the existing segment: accepted %v, start %d; want 20, 21 from 20", got, p.w.Header().StartOffset)
	}

	// Fetched past an existing end: rewind to it, and drop what the old fetch position
	// still delivers (offsets 22..29) until the refetch delivers 25 again.
	fill(t, p, 22, 30)
	if !p.continueFrom(25, true) {
		t.Fatal("no rewind although the fetch position is past the existing end")
	}
	if got := fill(t, p, 30, 32); len(got) != 0 {
		t.Fatalf("records of the old fetch position accepted: %v", got)
	}
	if got := fill(t, p, 25, 27); len(got) != 2 || p.w.Header().StartOffset != 25 {
		t.Fatalf("refetch: accepted %v; want 25, 26 in a segment from 25", got)
	}
	if _, ok := p.staleFrom.get(); ok {
		t.Fatal("the refetch did not end the rewind")
	}

	// While the partition is given up (settle), an existing end never rewinds.
	fill(t, p, 27, 40)
	if p.continueFrom(30, false) {
		t.Fatal("rewind while settling")
	}
	if next, _ := p.next.get(); next != 30 {
		t.Fatalf("next %d after settling, want 30", next)
	}
}

// TestPartitionReapOtherEpoch: an upload started under an earlier ownership of the
// partition never counts for the current one.
func TestPartitionReapOtherEpoch(t *testing.T) {
	p := newPartState(1)
	fill(t, p, 0, 3)
	j := p.startUpload(context.Background(), tp{"m", 0}, "age", time.Now())
	finish(j, 3, false)
	p.epoch = 2
	if p.reap() != nil {
		t.Fatal("reaped an upload of another epoch")
	}
}

// TestOffsetUnset: the zero offset is unset, whatever its value; offset 0 is a real one.
func TestOffsetUnset(t *testing.T) {
	if _, ok := (offset{}).get(); ok {
		t.Fatal("zero offset is set")
	}
	if o, ok := offsetAt(0).get(); !ok || o != 0 {
		t.Fatalf("offsetAt(0) = %d, %v", o, ok)
	}
}
