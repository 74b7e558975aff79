package ingest

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The consumer group's callbacks. franz-go runs them on its group goroutine, never
// while the poll loop is between a poll and AllowRebalance (BlockRebalanceOnPoll), so
// a callback and the poll loop never change partition state at the same time.

func (s *Sink) assigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, ps := range m {
		for _, p := range ps {
			s.epoch++
			s.parts[tp{topic, p}] = newPartState(s.epoch)
			s.opt.Logger.Info("partition assigned", "topic", topic, "partition", p, "epoch", s.epoch)
		}
	}
	s.metrics.partitions.Set(float64(len(s.parts)))
}

// revoked runs while we still own the partitions: store what is open and commit it, so
// the next owner does not consume it again. An upload that does not finish within half
// the rebalance timeout is abandoned uncommitted: the next owner re-consumes from the
// last committed offset, and if our late upload lands after all, finds it by its key.
func (s *Sink) revoked(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
	s.mu.Lock()
	var ks []tp
	for topic, ps := range m {
		for _, p := range ps {
			if s.parts[tp{topic, p}] != nil {
				ks = append(ks, tp{topic, p})
			}
		}
	}
	stopping := s.stopping
	s.mu.Unlock()
	if !stopping {
		ctx, cancel := context.WithTimeout(ctx, s.opt.RebalanceTimeout/2)
		defer cancel()
		s.settle(ctx, ks, "revoke")
	}
	s.mu.Lock()
	s.dropLocked(ks, "revoked")
	s.mu.Unlock()
}

// lost runs when partitions were taken away without a clean revoke: we may no longer
// commit for them, so abandon their uploads and drop their state.
func (s *Sink) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	var ks []tp
	for topic, ps := range m {
		for _, p := range ps {
			ks = append(ks, tp{topic, p})
		}
	}
	s.mu.Lock()
	s.dropLocked(ks, "lost")
	s.mu.Unlock()
}

// dropLocked forgets partitions, abandoning their uploads uncommitted.
func (s *Sink) dropLocked(ks []tp, why string) {
	for _, k := range ks {
		st := s.parts[k]
		if st == nil {
			continue
		}
		if st.up != nil {
			st.up.cancel()
			s.stats.Abandoned++
			s.metrics.abandoned.Inc()
			s.opt.Logger.Warn("abandoning upload uncommitted", "topic", k.topic, "partition", k.partition,
				"key", st.up.w.Key(), "why", why)
		}
		if st.paused {
			s.cl.ResumeFetchPartitions(map[string][]int32{k.topic: {k.partition}})
		}
		delete(s.parts, k)
		s.metrics.lag.DeleteLabelValues(k.topic, k.partLabel())
		s.opt.Logger.Info("partition released", "topic", k.topic, "partition", k.partition, "why", why)
	}
	s.metrics.partitions.Set(float64(len(s.parts)))
}

// abandonAllLocked forgets every partition, uncommitted, for good: the revoke callback
// of the final rebalance has nothing left to do.
func (s *Sink) abandonAllLocked(why string) {
	s.stopping = true
	ks := make([]tp, 0, len(s.parts))
	for k := range s.parts {
		ks = append(ks, k)
	}
	s.dropLocked(ks, why)
}

// settle stores the open segments of ks and waits, until ctx ends, for their uploads;
// it commits what completes. We must own ks: the poll window (stop) or the revoke
// callback. The partitions are being given up, so their chains end here: an existing
// segment moves the chain on but never rewinds the fetch position. The mutex is held
// only to change state, never while waiting for an upload or a commit.
func (s *Sink) settle(ctx context.Context, ks []tp, reason string) {
	for {
		var wait []<-chan struct{}
		s.mu.Lock()
		s.eachLocked(ks, func(k tp, st *partState) {
			if st.up == nil && st.w != nil && s.fatal == nil {
				s.runUpload(st.startUpload(s.upCtx, k, reason, time.Now()))
				s.setPausedLocked(k, st)
			}
			if st.up != nil {
				wait = append(wait, st.up.done)
			}
		})
		s.mu.Unlock()
		if len(wait) == 0 {
			s.commit(ks) // a commit that failed before may still be due
			return
		}
		select {
		case <-wait[0]:
		case <-ctx.Done():
		}
		s.mu.Lock()
		s.reapLocked(ks, false)
		s.mu.Unlock()
		s.commit(ks)
		if ctx.Err() != nil {
			return
		}
	}
}
