package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Commits: completed uploads are reaped into stored ends, and stored ends are
// committed. Both run where this member owns its partitions (the poll window, or a
// revoke callback through settle), so a commit is never sent for a partition that has
// moved.

// reapLocked collects the completed uploads of ks (nil: every partition) and marks
// their ends to commit. mayRewind is false while the partitions are being given up
// (settle): an existing segment then moves the chain on without a rewind.
func (s *Sink) reapLocked(ks []tp, mayRewind bool) {
	s.eachLocked(ks, func(k tp, st *partState) {
		j := st.reap()
		if j == nil {
			return
		}
		if j.fatal != nil && s.fatal == nil {
			s.fatal = j.fatal
		}
		if j.err != nil || j.fatal != nil {
			return // cancelled or failed: never committed
		}
		if j.existing {
			s.stats.SegmentsExisting++
			s.metrics.existing.Inc()
			if j.end != j.w.EndOffset() {
				if st.continueFrom(j.end, mayRewind) {
					s.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{k.topic: {k.partition: {Epoch: -1, Offset: j.end}}})
				}
				s.setPausedLocked(k, st)
			}
			s.opt.Logger.Info("segment already stored", "key", j.w.Key(), "end", j.end)
		} else {
			s.stats.Segments++
			s.stats.Bytes += j.size
			s.metrics.flushes.WithLabelValues(j.reason).Inc()
			s.metrics.flushBytes.Observe(float64(j.size))
			s.opt.Logger.Debug("segment stored", "key", j.w.Key(), "end", j.end, "bytes", j.size, "reason", j.reason)
		}
		st.stored(j.end)
		if st.full {
			s.runUpload(st.startUpload(s.upCtx, k, "payloads", time.Now()))
			s.setPausedLocked(k, st)
		}
	})
}

// eachLocked calls fn for the owned partitions among ks (nil: every owned partition).
func (s *Sink) eachLocked(ks []tp, fn func(tp, *partState)) {
	if ks == nil {
		for k, st := range s.parts {
			fn(k, st)
		}
		return
	}
	for _, k := range ks {
		if st := s.parts[k]; st != nil {
			fn(k, st)
		}
	}
}

// due is a stored end to commit, with the ownership epoch it was stored under.
type due struct {
	epoch  uint64
	offset int64
}

// commit commits the stored ends of ks (nil: every owned partition) that are not
// committed yet. Callers own ks: the poll window or the revoke callback. s.mu is held to
// read what is due and to record what was committed, never across the request. A
// failed commit is counted, logged and retried on the next call; meanwhile the segment
// is stored, and if this member dies first, the next owner finds it by its key and
// skips it.
func (s *Sink) commit(ks []tp) {
	pending := map[tp]due{}
	offsets := map[string]map[int32]kgo.EpochOffset{}
	s.mu.Lock()
	s.eachLocked(ks, func(k tp, st *partState) {
		off, ok := st.commitDue()
		if !ok {
			return
		}
		pending[k] = due{st.epoch, off}
		if offsets[k.topic] == nil {
			offsets[k.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[k.topic][k.partition] = kgo.EpochOffset{Epoch: -1, Offset: off}
	})
	s.mu.Unlock()
	if len(pending) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opt.SessionTimeout)
	defer cancel()
	var (
		errs []error
		done []tp
	)
	s.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			errs = append(errs, err)
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil {
					errs = append(errs, fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, perr))
					continue
				}
				done = append(done, tp{t.Topic, p.Partition})
			}
		}
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range done {
		// The partition is still ours (we own it for the whole call), but check the epoch
		// all the same: a stored end of another ownership must stay due.
		if st, d := s.parts[k], pending[k]; st != nil && st.epoch == d.epoch {
			st.committed(d.offset)
		}
	}
	s.stats.Commits++
	if err := errors.Join(errs...); err != nil {
		s.stats.CommitErrors++
		s.metrics.commitErrors.Inc()
		s.opt.Logger.Warn("commit failed; retrying on the next poll", "err", err)
	}
}
