package ingest

import (
	"context"
	"strconv"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
)

// tp names one partition of one topic.
type tp struct {
	topic     string
	partition int32
}

func (k tp) partLabel() string { return strconv.Itoa(int(k.partition)) }

// offset is a Kafka offset that may be unset; the zero value is unset. It stands where
// -1 sentinels used to, so that "none yet" can never be compared as a real offset.
type offset struct {
	at  int64
	set bool
}

func offsetAt(o int64) offset { return offset{at: o, set: true} }

// get returns the offset and whether it is set.
func (o offset) get() (int64, bool) { return o.at, o.set }

// partState is one owned partition: its chain of segments (the open one, the one
// uploading), where the chain goes next, and what is still to commit. Its methods are the
// state transitions; they make no calls to Kafka or the store, so they are the same
// whoever drives them. The Sink calls them under its mutex, from the poll window or a
// group callback (franz-go never runs those two at once), and applies what they ask for
// (pause, rewind, commit) to the client.
type partState struct {
	epoch uint64
	// w is the open segment; rej its rejected records.
	w      *columnar.SegmentWriter
	rej    rejects
	opened time.Time
	// up is the segment being uploaded (nil: none). The open segment starts where it
	// ends, and is not handed to an uploader before it completes.
	up *job
	// full is set when the open segment reached a flush trigger while up was busy:
	// the partition is paused until up completes and the open segment can go.
	full bool
	// paused says whether the client's fetching of the partition is paused. The sink
	// keeps it equal to full || the buffer pool is full (setPausedLocked).
	paused bool
	// next is where the next segment starts (unset: at the first record we see).
	next offset
	// pos is one past the last offset the poll loop has seen (unset: none yet).
	pos offset
	// staleFrom is set after a rewind (see continueFrom): records at or after it come
	// from the fetch position before the rewind and are dropped until the refetch
	// delivers a record before it.
	staleFrom offset
	// commitAt is the stored end offset still to commit. It stays set until a commit of
	// it succeeds, so a failed commit is retried on the next poll.
	commitAt offset
}

func newPartState(epoch uint64) *partState { return &partState{epoch: epoch} }

// accept is the first step for every fetched record, at offset off: it reports whether
// the record belongs in the open segment. Records fetched before a rewind come again
// after the refetch, and records before next are already in a stored segment (one that
// someone else stored first, see continueFrom): both are dropped.
func (p *partState) accept(off int64) bool {
	if from, ok := p.staleFrom.get(); ok {
		if off >= from {
			return false
		}
		p.staleFrom = offset{}
	}
	p.pos = offsetAt(off + 1)
	if next, ok := p.next.get(); ok && off < next {
		return false
	}
	return true
}

// segment returns the open segment, opening one for a record at off (Kafka timestamp
// ts, Unix ms) if none is. A new segment starts where the chain goes next, or at off for
// the partition's first segment.
func (p *partState) segment(k tp, off, ts int64, m *columnar.ShardMap, frameRows int, now time.Time) *columnar.SegmentWriter {
	if p.w != nil {
		return p.w
	}
	start, ok := p.next.get()
	if !ok {
		start = off
	}
	p.w = columnar.NewSegmentWriter(columnar.Header{
		Topic: k.topic, Partition: k.partition, StartOffset: start, StartTimestamp: ts,
	}, m, frameRows)
	p.opened = now
	p.rej.reset()
	return p.w
}

// openBytes is the memory the open segment holds, its rejects included.
func (p *partState) openBytes() int64 {
	if p.w == nil {
		return 0
	}
	return p.w.Bytes() + int64(len(p.rej.buf))
}

// trigger returns the reason the open segment must be flushed after a record, or "":
// its payload count, its bytes, or (drain set) the end offset a drain stops at.
func (p *partState) trigger(payloads int, bytes int64, drain offset) string {
	switch end, ok := drain.get(); {
	case p.w == nil:
		return ""
	case p.w.Records() >= uint64(payloads):
		return "payloads"
	case p.openBytes() >= bytes:
		return "bytes"
	case ok && p.w.EndOffset() >= end:
		return "drain"
	}
	return ""
}

// aged reports whether the open segment reached the flush age.
func (p *partState) aged(now time.Time, age time.Duration) bool {
	return p.w != nil && now.Sub(p.opened) >= age
}

// flush asks for the open segment to be stored: it returns the upload to start, or nil
// when the previous segment is still uploading, in which case the partition is full
// (its fetching pauses) until that upload is reaped.
func (p *partState) flush(parent context.Context, k tp, reason string, now time.Time) *job {
	if p.up == nil {
		return p.startUpload(parent, k, reason, now)
	}
	p.full = true
	return nil
}

// startUpload hands the open segment to a new upload job, which the caller runs; the
// chain's next segment starts where this one ends, and the partition is no longer full.
func (p *partState) startUpload(parent context.Context, k tp, reason string, now time.Time) *job {
	if p.up != nil {
		panic("BUG: sink: second upload of one partition")
	}
	if p.w == nil {
		panic("BUG: sink: upload of no segment")
	}
	j := &job{
		k: k, epoch: p.epoch, w: p.w, rej: p.rej, reason: reason,
		mem: p.openBytes(), done: make(chan struct{}), started: now,
	}
	j.ctx, j.cancel = context.WithCancel(parent)
	p.up = j
	p.w = nil
	p.rej = rejects{}
	p.next = offsetAt(j.w.EndOffset())
	p.full = false
	return j
}

// reap takes the partition's upload if it finished, under the epoch that started it (a
// result of an earlier ownership of the partition never counts), else returns nil.
func (p *partState) reap() *job {
	j := p.up
	if j == nil || !j.finished() || j.epoch != p.epoch {
		return nil
	}
	p.up = nil
	return j
}

// stored records that the chain is stored up to end: end is due to be committed.
func (p *partState) stored(end int64) { p.commitAt = offsetAt(end) }

// continueFrom moves the chain to end, the end of a segment someone else stored with
// the start of ours. The open segment started at our end, so it is wrong either way:
// drop it. If we fetched past end and may rewind (not while the partition is being given
// up), it returns true: the caller sets the fetch position back to end, and records of
// the old position still in flight are dropped (accept) until the refetch arrives.
func (p *partState) continueFrom(end int64, mayRewind bool) (rewind bool) {
	if p.w != nil {
		p.w = nil
		p.rej.reset()
	}
	p.full = false
	p.next = offsetAt(end)
	if pos, ok := p.pos.get(); ok && pos > end && mayRewind {
		p.staleFrom = p.pos
		p.pos = offsetAt(end)
		return true
	}
	return false
}

// commitDue returns the stored end still to commit, if any.
func (p *partState) commitDue() (int64, bool) { return p.commitAt.get() }

// committed records that a commit of off succeeded. A stored end that moved on since
// the commit was sent stays due.
func (p *partState) committed(off int64) {
	if at, ok := p.commitAt.get(); ok && at == off {
		p.commitAt = offset{}
	}
}
