package ingest

import (
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailor-metrics/tailor/columnar"
)

// Flow control: records into open segments, flush triggers, the buffer pool and the
// pauses that keep it bounded. Everything here runs in the poll window with s.mu held,
// and calls the client only for its local state (pausing, resuming, committed offsets),
// never over the network.

// processLocked adds the fetched records to their partitions' open segments.
func (s *Sink) processLocked(fetches kgo.Fetches) error {
	var perr error
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		k := tp{fp.Topic, fp.Partition}
		st := s.parts[k]
		if st == nil || perr != nil {
			return // not ours any more; the new owner consumes it
		}
		s.metrics.lag.WithLabelValues(fp.Topic, k.partLabel()).Set(float64(fp.HighWatermark - 1 - lastOffset(fp)))
		for _, r := range fp.Records {
			if err := s.addLocked(k, st, r); err != nil {
				perr = err
				return
			}
		}
	})
	return perr
}

func lastOffset(fp kgo.FetchTopicPartition) int64 {
	if n := len(fp.Records); n > 0 {
		return fp.Records[n-1].Offset
	}
	return fp.HighWatermark - 1
}

func (s *Sink) addLocked(k tp, st *partState, r *kgo.Record) error {
	if !st.accept(r.Offset) {
		return nil
	}
	w := st.segment(k, r.Offset, r.Timestamp.UnixMilli(), s.opt.ShardMap, s.opt.FrameRows, time.Now())
	s.stats.Records++
	s.metrics.records.Inc()
	var err error
	s.decoded, err = s.dec.Decode(s.opt.Format, r.Value, s.decoded[:0])
	for i := range s.decoded {
		if err != nil {
			break
		}
		err = columnar.CheckPayload(&s.decoded[i])
	}
	src := columnar.Source{Topic: k.topic, Partition: k.partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli()}
	if err != nil {
		s.stats.Rejected++
		s.metrics.rejects.Inc()
		st.rej.add(src, r.Value, err)
		if err := w.Skip(r.Offset, true); err != nil {
			return fmt.Errorf("sink: %w", err)
		}
	} else {
		if err := w.Add(src, s.decoded); err != nil {
			return fmt.Errorf("sink: %w", err)
		}
		var points uint64
		for i := range s.decoded {
			points += uint64(len(s.decoded[i].Timestamps))
		}
		s.stats.Payloads += uint64(len(s.decoded))
		s.stats.Points += points
		s.metrics.payloads.Add(float64(len(s.decoded)))
		s.metrics.points.Add(float64(points))
	}
	var drain offset
	if s.ends != nil {
		drain = offsetAt(s.ends[k])
	}
	if reason := st.trigger(s.opt.FlushPayloads, s.opt.FlushBytes, drain); reason != "" {
		s.flushLocked(k, st, reason)
	}
	return nil
}

// flushLocked hands the open segment to an uploader, or, while the partition's previous
// segment is still uploading, marks it full and pauses the partition.
func (s *Sink) flushLocked(k tp, st *partState, reason string) {
	if j := st.flush(s.upCtx, k, reason, time.Now()); j != nil {
		s.runUpload(j)
	}
	s.setPausedLocked(k, st)
}

// flushDueLocked flushes the segments that reached their age. An idle partition flushes
// too: its age is checked on every poll, and polls return at least once a second.
func (s *Sink) flushDueLocked(now time.Time) {
	for k, st := range s.parts {
		if st.aged(now, s.opt.FlushAge) {
			s.flushLocked(k, st, "age")
		}
	}
}

// memoryLocked is the memory held by open and uploading segments.
func (s *Sink) memoryLocked() (open, total int64) {
	for _, st := range s.parts {
		open += st.openBytes()
	}
	return open, open + s.upMem.Load()
}

// balanceMemoryLocked keeps the buffer pool bounded. When it is full, fetching pauses
// for every partition and the largest open segments are flushed early (reason
// "memory"), since with many partitions no single one may reach its own trigger. Fetching
// resumes once uploads bring the pool under three quarters, so it does not flap.
func (s *Sink) balanceMemoryLocked() {
	open, total := s.memoryLocked()
	s.metrics.bufferBytes.Set(float64(total))
	limit := s.opt.BufferBytes
	switch {
	case !s.memFull && total >= limit:
		s.memFull = true
		s.stats.MemoryPauses++
		s.metrics.memoryPauses.Inc()
		s.opt.Logger.Info("buffer pool full: pausing fetches", "bytes", total, "limit", limit)
		// Flush the largest open segments until those left open hold at most half.
		ks := make([]tp, 0, len(s.parts))
		for k, st := range s.parts {
			if st.w != nil && st.up == nil {
				ks = append(ks, k)
			}
		}
		slices.SortFunc(ks, func(a, b tp) int {
			return int(s.parts[b].w.Bytes() - s.parts[a].w.Bytes())
		})
		for _, k := range ks {
			if open <= limit/2 {
				break
			}
			st := s.parts[k]
			open -= st.openBytes()
			s.runUpload(st.startUpload(s.upCtx, k, "memory", time.Now()))
		}
	case s.memFull && total < limit/4*3:
		s.memFull = false
		s.opt.Logger.Info("buffer pool has room: resuming fetches", "bytes", total, "limit", limit)
	}
	paused := 0
	for k, st := range s.parts {
		s.setPausedLocked(k, st)
		if st.paused {
			paused++
		}
	}
	s.metrics.paused.Set(float64(paused))
}

// setPausedLocked pauses or resumes fetching the partition so that it is paused exactly
// while the buffer pool is full or the partition is (its next segment waits for an
// upload). Every transition that may change either calls it.
func (s *Sink) setPausedLocked(k tp, st *partState) {
	pause := s.memFull || st.full
	if st.paused == pause {
		return
	}
	st.paused = pause
	m := map[string][]int32{k.topic: {k.partition}}
	if pause {
		s.cl.PauseFetchPartitions(m)
	} else {
		s.cl.ResumeFetchPartitions(m)
	}
}

// drainedLocked reports whether every partition reached its StopAtEnd target.
func (s *Sink) drainedLocked() bool {
	committed := s.cl.CommittedOffsets()
	for k, end := range s.ends {
		if end <= 0 {
			continue
		}
		if eo, ok := committed[k.topic][k.partition]; !ok || eo.Offset < end {
			return false
		}
	}
	return true
}
