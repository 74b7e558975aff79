// Package ingest is Tailor's state side: a Kafka consumer group that decodes metric
// payloads and writes them to object storage as segments, committing offsets only after
// a segment is stored.
//
// Exactly once, step by step:
//  1. A segment covers one contiguous offset range [start, end) of one partition. Its
//     start is where the previous segment of the partition ended, so every owner of a
//     partition cuts the same chain of start offsets, and the key (derived from topic,
//     partition and start only) is the same whoever writes it.
//  2. The segment is created once (conditional create). If the key exists, another
//     owner (or our own earlier life) stored it first: we read its end offset from its
//     footer and continue the chain from there, dropping what it already holds.
//  3. Offsets are committed only after the create succeeded, and only while this
//     member still owns the partition under the same ownership epoch, because the
//     broker accepts commits from members that no longer own a partition.
//
// See docs/sink.md.
package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/ingest/payload"
	"github.com/tailor-metrics/tailor/storage"
)

// Options configures a Sink. Zero fields take the documented defaults.
type Options struct {
	Brokers []string
	// Topics to consume; TopicRegex treats them as regular expressions.
	Topics     []string
	TopicRegex bool
	// Group is the consumer group (default "tailor-sink").
	Group string
	// InstanceID enables static membership: a restarted worker with the same id gets
	// its partitions back at once instead of after a rebalance.
	InstanceID string
	// Format of the payloads (default payload.Auto).
	Format payload.Format
	// Flush triggers, per partition: payloads (default 100,000), bytes (default 64 MiB),
	// age of the open segment (default 10 min).
	FlushPayloads int
	FlushBytes    int64
	FlushAge      time.Duration
	// FrameRows caps the rows of one frame (default columnar.DefaultFrameRows).
	FrameRows int
	// SessionTimeout and RebalanceTimeout tune failure detection (defaults 6 s and 10 s;
	// kfake refuses session timeouts under 6 s).
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	// StopAtEnd makes Run return once every partition has been stored and committed up
	// to the end offsets it saw when it started: a drain, for backfills and the demo.
	StopAtEnd bool
	Store     storage.Store
	ShardMap  *columnar.ShardMap
	// Registerer receives the sink's metrics (nil: none).
	Registerer prometheus.Registerer
	// Logger (nil: discard).
	Logger *slog.Logger
	// KafkaOpts are extra franz-go options (tests use them for fault injection).
	KafkaOpts []kgo.Opt
}

func (o *Options) defaults() error {
	if len(o.Brokers) == 0 {
		return errors.New("sink: no brokers; pass --brokers host:port")
	}
	if len(o.Topics) == 0 {
		return errors.New("sink: no topics; pass --topics name[,name]")
	}
	if o.Store == nil {
		return errors.New("sink: no store")
	}
	if o.Group == "" {
		o.Group = "tailor-sink"
	}
	if o.FlushPayloads <= 0 {
		o.FlushPayloads = 100_000
	}
	if o.FlushBytes <= 0 {
		o.FlushBytes = 64 << 20
	}
	if o.FlushAge <= 0 {
		o.FlushAge = 10 * time.Minute
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = 6 * time.Second
	}
	if o.RebalanceTimeout <= 0 {
		o.RebalanceTimeout = 10 * time.Second
	}
	if o.ShardMap == nil {
		o.ShardMap = columnar.DefaultShardMap()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

type tp struct {
	topic     string
	partition int32
}

// partState is one owned partition. All fields are guarded by Sink.mu.
type partState struct {
	epoch uint64
	w     *columnar.SegmentWriter
	// rejects collects the rejected records of the open segment.
	rejects []byte
	opened  time.Time
	// next is where the next segment starts (-1: at the first record we see).
	next int64
	// staleFrom is set after a rewind (see flushLocked): records at or after it come
	// from the fetch position before the rewind and are dropped until the refetch
	// delivers a record before it (-1: no rewind pending).
	staleFrom int64
}

// Stats are the sink's running totals.
type Stats struct {
	Records, Payloads, Points, Rejected uint64
	Segments, SegmentsExisting          uint64
	Bytes                               int64
}

// Sink consumes payloads into segments. Create it with New and call Run.
type Sink struct {
	opt     Options
	cl      *kgo.Client
	metrics *metrics
	dec     payload.Decoder
	decoded []columnar.Payload

	mu    sync.Mutex
	parts map[tp]*partState
	epoch uint64
	stats Stats
	ends  map[tp]int64
}

// New validates opt and connects the Kafka client.
func New(opt Options) (*Sink, error) {
	if err := opt.defaults(); err != nil {
		return nil, err
	}
	s := &Sink{opt: opt, parts: map[tp]*partState{}, metrics: newMetrics(opt.Registerer)}
	kopts := []kgo.Opt{
		kgo.SeedBrokers(opt.Brokers...),
		kgo.ConsumerGroup(opt.Group),
		kgo.ConsumeTopics(opt.Topics...),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		// Between a poll and AllowRebalance no partition can be revoked, so the poll
		// loop owns its partitions while it adds records and uploads.
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(opt.SessionTimeout),
		kgo.RebalanceTimeout(opt.RebalanceTimeout),
		kgo.HeartbeatInterval(opt.SessionTimeout / 6),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
	}
	if opt.TopicRegex {
		kopts = append(kopts, kgo.ConsumeRegex())
	}
	if opt.InstanceID != "" {
		kopts = append(kopts, kgo.InstanceID(opt.InstanceID))
	}
	kopts = append(kopts, opt.KafkaOpts...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("sink: kafka client: %w", err)
	}
	s.cl = cl
	return s, nil
}

// Stats returns the running totals.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

func (s *Sink) assigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, ps := range m {
		for _, p := range ps {
			s.epoch++
			s.parts[tp{topic, p}] = &partState{epoch: s.epoch, next: -1, staleFrom: -1}
			s.opt.Logger.Info("partition assigned", "topic", topic, "partition", p, "epoch", s.epoch)
		}
	}
}

// revoked runs while we still own the partitions: store what is open, so the next owner
// does not consume it again. If that fails, abandon it: the next owner re-consumes from
// the last committed offset and nothing is lost.
func (s *Sink) revoked(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, ps := range m {
		for _, p := range ps {
			k := tp{topic, p}
			if st := s.parts[k]; st != nil && st.w != nil {
				if err := s.flushLocked(ctx, k, st, "revoke"); err != nil {
					s.opt.Logger.Warn("abandoning open segment on revoke", "topic", topic, "partition", p, "err", err)
				}
			}
			delete(s.parts, k)
		}
	}
}

// lost runs when partitions were taken away without a clean revoke: we may no longer
// commit for them, so drop their state without storing.
func (s *Sink) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, ps := range m {
		for _, p := range ps {
			delete(s.parts, tp{topic, p})
			s.opt.Logger.Warn("partition lost", "topic", topic, "partition", p)
		}
	}
}

// Run consumes until ctx is cancelled (or, with StopAtEnd, until drained), then stores
// the open segments, commits, and leaves the group.
func (s *Sink) Run(ctx context.Context) (err error) {
	defer s.cl.Close() // leaves the group; runs revoke for what we still own
	if s.opt.StopAtEnd {
		ends, err := listEndOffsets(ctx, s.cl, s.opt.Topics)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.ends = ends
		s.mu.Unlock()
	}
	for {
		pollCtx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := s.cl.PollRecords(pollCtx, 10_000)
		cancel()
		if ctx.Err() != nil {
			s.cl.AllowRebalance()
			return s.flushAll(context.WithoutCancel(ctx), "shutdown")
		}
		var fetchErr error
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			s.opt.Logger.Warn("fetch error", "topic", topic, "partition", p, "err", err)
			if errors.Is(err, kgo.ErrClientClosed) {
				fetchErr = err
			}
		})
		if fetchErr != nil {
			return fmt.Errorf("sink: %w", fetchErr)
		}
		s.mu.Lock()
		err := s.process(ctx, fetches)
		if err == nil {
			err = s.flushDue(ctx)
		}
		done := s.opt.StopAtEnd && s.drainedLocked()
		s.mu.Unlock()
		s.cl.AllowRebalance()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

func (s *Sink) process(ctx context.Context, fetches kgo.Fetches) error {
	var perr error
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		k := tp{fp.Topic, fp.Partition}
		st := s.parts[k]
		if st == nil || perr != nil {
			return // not ours any more; the new owner consumes it
		}
		s.metrics.lag.WithLabelValues(fp.Topic, fmt.Sprint(fp.Partition)).Set(float64(fp.HighWatermark - 1 - lastOffset(fp)))
		for _, r := range fp.Records {
			if err := s.add(ctx, k, st, r); err != nil {
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

func (s *Sink) add(ctx context.Context, k tp, st *partState, r *kgo.Record) error {
	if st.staleFrom >= 0 {
		if r.Offset >= st.staleFrom {
			return nil // fetched before the rewind: it comes again after the refetch
		}
		st.staleFrom = -1
	}
	if st.next >= 0 && r.Offset < st.next {
		return nil // already stored in an existing segment (see flushLocked)
	}
	if st.w == nil {
		start := st.next
		if start < 0 {
			start = r.Offset
		}
		st.w = columnar.NewSegmentWriter(columnar.Header{
			Topic: k.topic, Partition: k.partition, StartOffset: start, StartTimestamp: r.Timestamp.UnixMilli(),
		}, s.opt.ShardMap, s.opt.FrameRows)
		st.opened = time.Now()
		st.rejects = st.rejects[:0]
	}
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
		st.rejects = appendReject(st.rejects, src, r.Value, err)
		if err := st.w.Skip(r.Offset, true); err != nil {
			return fmt.Errorf("sink: %w", err)
		}
	} else {
		if err := st.w.Add(src, s.decoded); err != nil {
			return fmt.Errorf("sink: %w", err)
		}
		s.stats.Payloads += uint64(len(s.decoded))
		for i := range s.decoded {
			s.stats.Points += uint64(len(s.decoded[i].Timestamps))
		}
		s.metrics.payloads.Add(float64(len(s.decoded)))
	}
	switch {
	case st.w.Records() >= uint64(s.opt.FlushPayloads):
		return s.flushLocked(ctx, k, st, "payloads")
	case st.w.Bytes() >= s.opt.FlushBytes:
		return s.flushLocked(ctx, k, st, "bytes")
	case s.ends != nil && st.w.EndOffset() >= s.ends[k]:
		return s.flushLocked(ctx, k, st, "drain")
	}
	return nil
}

// flushDue stores the segments that reached their age. An idle partition flushes too.
func (s *Sink) flushDue(ctx context.Context) error {
	for k, st := range s.parts {
		if st.w != nil && time.Since(st.opened) >= s.opt.FlushAge {
			if err := s.flushLocked(ctx, k, st, "age"); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Sink) flushAll(ctx context.Context, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for k, st := range s.parts {
		if st.w != nil {
			errs = append(errs, s.flushLocked(ctx, k, st, reason))
		}
	}
	return errors.Join(errs...)
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

// flushLocked stores the open segment of k and commits its end offset.
func (s *Sink) flushLocked(ctx context.Context, k tp, st *partState, reason string) error {
	w := st.w
	st.w = nil
	end := w.EndOffset()
	hdr := w.Header()
	started := time.Now()
	if len(st.rejects) > 0 {
		key := RejectsKey(hdr.Topic, hdr.Partition, hdr.StartOffset, hdr.StartTimestamp)
		if err := s.opt.Store.Put(ctx, key, bytes.NewReader(st.rejects)); err != nil {
			return fmt.Errorf("sink: store rejects %s: %w", key, err)
		}
	}
	var onPause func(error, time.Duration)
	if reason != "revoke" && reason != "shutdown" {
		// In the poll loop the sink pauses (polls nothing) and stores the segment again
		// when the store gave up: never skip. On revoke and shutdown it abandons the
		// segment instead; its offsets stay uncommitted and the next owner re-consumes.
		onPause = func(err error, wait time.Duration) {
			s.metrics.uploadErrors.Inc()
			s.opt.Logger.Warn("store failed; sink paused, will store the segment again",
				"key", w.Key(), "wait", wait, "err", err)
		}
	}
	size, existing, err := storeSegment(ctx, s.opt.Store, w, onPause)
	switch {
	case existing != nil:
		// Someone stored this start offset first. Continue the chain from its end.
		s.stats.SegmentsExisting++
		s.metrics.existing.Inc()
		if existing.Footer.EndOffset < end {
			// We hold records past the existing segment's end: consume them again from
			// there so they land in the next segment of the chain. Records of the old
			// fetch position still in flight (offset >= end) are dropped until then.
			s.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{k.topic: {k.partition: {Epoch: -1, Offset: existing.Footer.EndOffset}}})
			st.staleFrom = end
		}
		end = existing.Footer.EndOffset
		s.opt.Logger.Info("segment already stored", "key", w.Key(), "end", end)
	case err != nil:
		s.metrics.uploadErrors.Inc()
		return fmt.Errorf("sink: %w", err)
	default:
		s.stats.Segments++
		s.stats.Bytes += size
		s.metrics.flushes.WithLabelValues(reason).Inc()
		s.metrics.flushBytes.Observe(float64(size))
		s.metrics.uploadSeconds.Observe(time.Since(started).Seconds())
	}
	st.next = end
	if s.parts[k] != st {
		// Ownership moved while we uploaded (the state of a new epoch replaced ours):
		// never commit for the new owner.
		return nil
	}
	var cerr error
	s.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{k.topic: {k.partition: {Epoch: -1, Offset: end}}},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			cerr = err
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil && cerr == nil {
						cerr = perr
					}
				}
			}
		})
	if cerr != nil {
		// The segment is stored; a later commit covers it, and if none comes the next
		// owner finds the segment by its key and skips it.
		s.metrics.commitErrors.Inc()
		s.opt.Logger.Warn("commit failed", "topic", k.topic, "partition", k.partition, "offset", end, "err", cerr)
	}
	return nil
}
