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
// Uploads run in the background, at most one segment per partition at a time (so a
// partition's chain is always extended in order), while the poll loop keeps filling the
// next segment. Every commit is issued by the poll loop between a poll and
// AllowRebalance, or by the revoke callback, the two places where franz-go guarantees
// that this member still owns the partition.
//
// See docs/sink.md.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
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
	// LeaveOnStop makes a static member (InstanceID set) leave the group when Run
	// returns, so its partitions move at once (scale-down). Without it a static member
	// keeps its partitions for the session timeout, waiting for its restart.
	LeaveOnStop bool
	// Format of the payloads (default payload.Auto).
	Format payload.Format
	// Flush triggers, per partition: payloads (default 100,000), bytes (default 64 MiB),
	// age of the open segment (default 10 min).
	FlushPayloads int
	FlushBytes    int64
	FlushAge      time.Duration
	// FrameRows caps the rows of one frame (default columnar.DefaultFrameRows, at most
	// columnar.MaxFrameRows).
	FrameRows int
	// BufferBytes bounds the memory of every open and uploading segment together
	// (default 1 GiB). When it is reached, the sink flushes the largest open segments
	// and pauses fetching until uploads give memory back.
	BufferBytes int64
	// Uploads is the number of segments uploaded at once (default 8). A partition has at
	// most one segment uploading; within a segment the store uploads parts in parallel.
	Uploads int
	// RetryBase and RetryMax bound the sink's backoff between attempts of a segment
	// upload that failed with a retryable error after the store's own retries
	// (storage.IsRetryable: its budget of 503s, throttling, 5xx was spent; defaults 1 s
	// and 30 s). The partition pauses and the sink retries until the upload succeeds or
	// the partition is given up: it never drops a segment and never commits past it.
	// Any other store error (auth, a corrupt existing segment) stops Run with that
	// error, committing nothing past what is stored.
	RetryBase, RetryMax time.Duration
	// StopTimeout bounds how long a stop waits for uploads in flight before it
	// abandons them uncommitted (default 20 s).
	StopTimeout time.Duration
	// ConnectTimeout is how long Run waits for its first connection to a broker before
	// it fails with an error wrapping ErrNoBroker (default 1 min). Until then every
	// broker that cannot be reached is logged at warn level, within seconds. A sink that
	// connected once and lost its brokers later keeps retrying without limit.
	ConnectTimeout time.Duration
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
	if o.StopAtEnd && o.TopicRegex {
		return errors.New("sink: stop-at-end needs topic names, not regular expressions: list the topics")
	}
	if !o.TopicRegex {
		// Segment keys embed the topic; a name Kafka would refuse cannot be stored.
		for _, t := range o.Topics {
			if err := columnar.CheckTopic(t); err != nil {
				return fmt.Errorf("sink: %w", err)
			}
		}
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
	if o.BufferBytes <= 0 {
		o.BufferBytes = 1 << 30
	}
	if o.BufferBytes < 1<<20 {
		return fmt.Errorf("sink: buffer %d bytes is smaller than min allowed %d", o.BufferBytes, 1<<20)
	}
	if o.FrameRows > columnar.MaxFrameRows {
		return fmt.Errorf("sink: frame rows %d is larger than max allowed %d", o.FrameRows, columnar.MaxFrameRows)
	}
	if o.Uploads <= 0 {
		o.Uploads = 8
	}
	if o.RetryBase <= 0 {
		o.RetryBase = storePauseMin
	}
	if o.RetryMax <= 0 {
		o.RetryMax = storePauseMax
	}
	o.RetryMax = max(o.RetryMax, o.RetryBase)
	if o.StopTimeout <= 0 {
		o.StopTimeout = 20 * time.Second
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = time.Minute
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

func (k tp) partLabel() string { return strconv.Itoa(int(k.partition)) }

// partState is one owned partition. All fields are guarded by Sink.mu.
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
	// next is where the next segment starts (-1: at the first record we see).
	next int64
	// pos is one past the last offset the poll loop has seen (-1: none yet).
	pos int64
	// staleFrom is set after a rewind (see reapLocked): records at or after it come
	// from the fetch position before the rewind and are dropped until the refetch
	// delivers a record before it (-1: no rewind pending).
	staleFrom int64
	paused    bool
	// commitAt is the stored end offset still to commit (-1: none). It stays set until
	// a commit of it succeeds, so a failed commit is retried on the next poll.
	commitAt int64
}

// Stats are the sink's running totals.
type Stats struct {
	Records, Payloads, Points, Rejected uint64
	Segments, SegmentsExisting          uint64
	Bytes                               int64
	// Retries counts failed upload attempts that were tried again; Abandoned the
	// uploads given up uncommitted (revoked, lost or stopped partitions).
	Retries, Abandoned uint64
	// Commits counts offset commits; CommitErrors the failed ones (the next commit of
	// the partition, or the next owner's existing-segment check, covers them).
	Commits, CommitErrors uint64
	// MemoryPauses counts the times the buffer pool filled up and fetching paused.
	MemoryPauses uint64
}

// Sink consumes payloads into segments. Create it with New and call Run.
type Sink struct {
	opt     Options
	cl      *kgo.Client
	conn    *connWatch
	metrics *metrics
	dec     payload.Decoder
	decoded []columnar.Payload

	// upCtx is the parent of every upload; cancelled when Run returns.
	upCtx    context.Context
	upCancel context.CancelFunc
	sem      chan struct{}
	wake     chan struct{}
	// upMem is the memory held by uploads (abandoned ones too, until their goroutine
	// returns); upWG waits for those goroutines.
	upMem atomic.Int64
	upWG  sync.WaitGroup

	mu       sync.Mutex
	parts    map[tp]*partState
	epoch    uint64
	stats    Stats
	ends     map[tp]int64
	memFull  bool
	stopping bool
	// fatal is the first permanent upload error; Run stops with it.
	fatal error
	// settling is set while settleLocked gives partitions up (revoke, stop): their
	// chains end here, so an existing segment never rewinds them.
	settling bool
}

// New validates opt and connects the Kafka client.
func New(opt Options) (*Sink, error) {
	if err := opt.defaults(); err != nil {
		return nil, err
	}
	s := &Sink{
		opt: opt, parts: map[tp]*partState{}, metrics: newMetrics(opt.Registerer),
		sem: make(chan struct{}, opt.Uploads), wake: make(chan struct{}, 1),
		conn: newConnWatch(opt.Logger, opt.Brokers, opt.ConnectTimeout),
	}
	s.upCtx, s.upCancel = context.WithCancel(context.Background())
	s.metrics.bufferLimit.Set(float64(opt.BufferBytes))
	kopts := []kgo.Opt{
		kgo.SeedBrokers(opt.Brokers...),
		kgo.ConsumerGroup(opt.Group),
		kgo.ConsumeTopics(opt.Topics...),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		// Between a poll and AllowRebalance no partition can be revoked, so the poll
		// loop owns its partitions while it adds records and commits.
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(opt.SessionTimeout),
		kgo.RebalanceTimeout(opt.RebalanceTimeout),
		kgo.HeartbeatInterval(opt.SessionTimeout / 6),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
		kgo.WithHooks(s.conn),
	}
	if opt.TopicRegex {
		// New topics matching the regex are found on metadata refreshes: every 30 s
		// rather than franz-go's default 5 min.
		kopts = append(kopts, kgo.ConsumeRegex(), kgo.MetadataMaxAge(30*time.Second))
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
			s.parts[tp{topic, p}] = &partState{epoch: s.epoch, next: -1, pos: -1, staleFrom: -1, commitAt: -1}
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
	defer s.mu.Unlock()
	var ks []tp
	for topic, ps := range m {
		for _, p := range ps {
			if s.parts[tp{topic, p}] != nil {
				ks = append(ks, tp{topic, p})
			}
		}
	}
	if !s.stopping {
		ctx, cancel := context.WithTimeout(ctx, s.opt.RebalanceTimeout/2)
		defer cancel()
		s.settleLocked(ctx, ks, "revoke")
	}
	s.dropLocked(ks, "revoked")
}

// lost runs when partitions were taken away without a clean revoke: we may no longer
// commit for them, so abandon their uploads and drop their state.
func (s *Sink) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ks []tp
	for topic, ps := range m {
		for _, p := range ps {
			ks = append(ks, tp{topic, p})
		}
	}
	s.dropLocked(ks, "lost")
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

// settleLocked stores the open segments of ks and waits, until ctx ends, for their
// uploads; it commits what completes. We must own ks (poll window or revoke callback).
func (s *Sink) settleLocked(ctx context.Context, ks []tp, reason string) {
	s.settling = true
	defer func() { s.settling = false }()
	for {
		var wait []<-chan struct{}
		for _, k := range ks {
			st := s.parts[k]
			if st == nil {
				continue
			}
			if st.up == nil && st.w != nil && s.fatal == nil {
				s.startUploadLocked(k, st, reason)
			}
			if st.up != nil {
				wait = append(wait, st.up.done)
			}
		}
		if len(wait) == 0 {
			s.commitLocked(ks) // a commit that failed before may still be due
			return
		}
		s.mu.Unlock()
		select {
		case <-wait[0]:
		case <-ctx.Done():
		}
		s.mu.Lock()
		s.reapLocked(ks)
		s.commitLocked(ks)
		if ctx.Err() != nil {
			return
		}
	}
}

// Run consumes until ctx is cancelled (or, with StopAtEnd, until drained), then stores
// the open segments (waiting up to StopTimeout), commits, and leaves the group.
func (s *Sink) Run(ctx context.Context) (err error) {
	defer s.close()
	s.conn.start(time.Now())
	if s.opt.StopAtEnd {
		ends, err := s.listEnds(ctx)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.ends = ends
		s.mu.Unlock()
	}
	for {
		fetches := s.poll(ctx)
		if ctx.Err() != nil {
			s.stop(ctx)
			return nil
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
			s.cl.AllowRebalance()
			return fmt.Errorf("sink: %w", fetchErr)
		}
		if err := s.conn.check(time.Now()); err != nil {
			s.cl.AllowRebalance()
			return err
		}
		s.mu.Lock()
		s.reapLocked(nil)
		s.commitLocked(nil)
		if s.fatal != nil {
			err := s.fatal
			s.abandonAllLocked("store error")
			s.mu.Unlock()
			s.cl.AllowRebalance()
			return fmt.Errorf("sink: %w; nothing past the stored segments is committed: fix the cause and start the sink again, it resumes from there", err)
		}
		err := s.process(fetches)
		if err == nil {
			s.flushDueLocked()
			s.balanceMemoryLocked()
		}
		if err != nil {
			// The open segments may hold what made Add fail: store nothing more.
			s.abandonAllLocked("error")
			s.mu.Unlock()
			s.cl.AllowRebalance()
			return err
		}
		done := s.opt.StopAtEnd && s.drainedLocked()
		s.mu.Unlock()
		s.cl.AllowRebalance()
		if done {
			return nil
		}
	}
}

// poll waits for records, at most a second, and returns early when an upload completes
// so that its commit is not delayed.
func (s *Sink) poll(ctx context.Context) kgo.Fetches {
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	go func() {
		select {
		case <-s.wake:
			cancel()
		case <-pctx.Done():
		}
	}()
	return s.cl.PollRecords(pctx, 10_000)
}

func (s *Sink) wakeup() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// stop runs in the poll window (we own every partition): store the open segments,
// wait for the uploads up to StopTimeout, commit what completed, abandon the rest.
func (s *Sink) stop(ctx context.Context) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opt.StopTimeout)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	ks := make([]tp, 0, len(s.parts))
	for k := range s.parts {
		ks = append(ks, k)
	}
	s.settleLocked(sctx, ks, "shutdown")
	s.abandonAllLocked("stop")
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

// close releases the client: allow the last rebalance, leave the group (a static
// member only with LeaveOnStop) and wait for abandoned uploads to return.
func (s *Sink) close() {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.cl.AllowRebalance()
	s.cl.Close()
	if s.opt.LeaveOnStop && s.opt.InstanceID != "" {
		if err := leaveStatic(s.opt); err != nil {
			s.opt.Logger.Warn("leave group", "instance", s.opt.InstanceID, "err", err)
		}
	}
	s.upCancel()
	s.upWG.Wait()
}

// leaveStatic sends the LeaveGroup that franz-go does not send for static members.
func leaveStatic(opt Options) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(opt.Brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = opt.Group
	m := kmsg.NewLeaveGroupRequestMember()
	m.InstanceID = &opt.InstanceID
	req.Members = append(req.Members, m)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return err
	}
	for _, m := range resp.Members {
		if err := kerr.ErrorForCode(m.ErrorCode); err != nil {
			return err
		}
	}
	return nil
}

func (s *Sink) process(fetches kgo.Fetches) error {
	var perr error
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		k := tp{fp.Topic, fp.Partition}
		st := s.parts[k]
		if st == nil || perr != nil {
			return // not ours any more; the new owner consumes it
		}
		s.metrics.lag.WithLabelValues(fp.Topic, k.partLabel()).Set(float64(fp.HighWatermark - 1 - lastOffset(fp)))
		for _, r := range fp.Records {
			if err := s.add(k, st, r); err != nil {
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

func (s *Sink) add(k tp, st *partState, r *kgo.Record) error {
	if st.staleFrom >= 0 {
		if r.Offset >= st.staleFrom {
			return nil // fetched before the rewind: it comes again after the refetch
		}
		st.staleFrom = -1
	}
	st.pos = r.Offset + 1
	if st.next >= 0 && r.Offset < st.next {
		return nil // already stored in an existing segment (see reapLocked)
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
		st.rej.reset()
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
		st.rej.add(src, r.Value, err)
		if err := st.w.Skip(r.Offset, true); err != nil {
			return fmt.Errorf("sink: %w", err)
		}
	} else {
		if err := st.w.Add(src, s.decoded); err != nil {
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
	switch {
	case st.w.Records() >= uint64(s.opt.FlushPayloads):
		s.flushLocked(k, st, "payloads")
	case st.w.Bytes()+int64(len(st.rej.buf)) >= s.opt.FlushBytes:
		s.flushLocked(k, st, "bytes")
	case s.ends != nil && st.w.EndOffset() >= s.ends[k]:
		s.flushLocked(k, st, "drain")
	}
	return nil
}

// flushLocked hands the open segment to an uploader, or, while the partition's previous
// segment is still uploading, marks it full and pauses the partition.
func (s *Sink) flushLocked(k tp, st *partState, reason string) {
	if st.up == nil {
		s.startUploadLocked(k, st, reason)
		return
	}
	if !st.full {
		st.full = true
		s.setPausedLocked(k, st, true)
	}
}

// flushDueLocked flushes the segments that reached their age. An idle partition flushes
// too: its age is checked on every poll, and polls return at least once a second.
func (s *Sink) flushDueLocked() {
	for k, st := range s.parts {
		if st.w != nil && time.Since(st.opened) >= s.opt.FlushAge {
			s.flushLocked(k, st, "age")
		}
	}
}

// memoryLocked is the memory held by open and uploading segments.
func (s *Sink) memoryLocked() (open, total int64) {
	for _, st := range s.parts {
		if st.w != nil {
			open += st.w.Bytes() + int64(len(st.rej.buf))
		}
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
			open -= st.w.Bytes() + int64(len(st.rej.buf))
			s.startUploadLocked(k, st, "memory")
		}
	case s.memFull && total < limit/4*3:
		s.memFull = false
		s.opt.Logger.Info("buffer pool has room: resuming fetches", "bytes", total, "limit", limit)
	}
	paused := 0
	for k, st := range s.parts {
		s.setPausedLocked(k, st, s.memFull || st.full)
		if st.paused {
			paused++
		}
	}
	s.metrics.paused.Set(float64(paused))
}

func (s *Sink) setPausedLocked(k tp, st *partState, pause bool) {
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

// startUploadLocked hands the open segment of k to an uploader. The next segment starts
// where this one ends.
func (s *Sink) startUploadLocked(k tp, st *partState, reason string) {
	if st.up != nil {
		panic("BUG: sink: second upload of one partition")
	}
	j := &job{
		k: k, epoch: st.epoch, w: st.w, rej: st.rej, reason: reason,
		mem: st.w.Bytes() + int64(len(st.rej.buf)), done: make(chan struct{}), started: time.Now(),
	}
	j.ctx, j.cancel = context.WithCancel(s.upCtx)
	st.up = j
	st.w = nil
	st.rej = rejects{}
	st.next = j.w.EndOffset()
	if st.full {
		st.full = false
		s.setPausedLocked(k, st, s.memFull)
	}
	s.upMem.Add(j.mem)
	s.metrics.inflight.Inc()
	s.upWG.Add(1)
	go s.upload(j)
}

// reapLocked collects the completed uploads of ks (nil: every partition) and marks
// their ends to commit. A result counts only for the epoch that started it.
func (s *Sink) reapLocked(ks []tp) {
	reap := func(k tp, st *partState) {
		j := st.up
		if j == nil || !j.finished() || j.epoch != st.epoch {
			return
		}
		st.up = nil
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
				s.continueFromLocked(k, st, j.end)
			}
			s.opt.Logger.Info("segment already stored", "key", j.w.Key(), "end", j.end)
		} else {
			s.stats.Segments++
			s.stats.Bytes += j.size
			s.metrics.flushes.WithLabelValues(j.reason).Inc()
			s.metrics.flushBytes.Observe(float64(j.size))
			s.opt.Logger.Debug("segment stored", "key", j.w.Key(), "end", j.end, "bytes", j.size, "reason", j.reason)
		}
		st.commitAt = j.end
		if st.full {
			s.startUploadLocked(k, st, "payloads")
		}
	}
	s.eachLocked(ks, reap)
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

// continueFromLocked moves the chain of k to end, the end of a segment someone else
// stored with the start of ours. The open segment started at our end, so it is wrong
// either way: drop it. If we fetched past end, consume again from there; records of
// the old fetch position still in flight are dropped until the refetch arrives.
func (s *Sink) continueFromLocked(k tp, st *partState, end int64) {
	if st.w != nil {
		st.w = nil
		st.rej.reset()
	}
	if st.full {
		st.full = false
		s.setPausedLocked(k, st, s.memFull)
	}
	st.next = end
	if st.pos > end && !s.settling {
		s.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{k.topic: {k.partition: {Epoch: -1, Offset: end}}})
		st.staleFrom = st.pos
		st.pos = end
	}
}

// commitLocked commits the stored ends of ks (nil: every owned partition) that are not
// committed yet. Callers own ks: the poll window or the revoke callback. A failed commit
// is counted, logged and retried on the next call; meanwhile the segment is stored, and
// if this member dies first, the next owner finds it by its key and skips it.
func (s *Sink) commitLocked(ks []tp) {
	offsets := map[string]map[int32]kgo.EpochOffset{}
	s.eachLocked(ks, func(k tp, st *partState) {
		if st.commitAt < 0 {
			return
		}
		if offsets[k.topic] == nil {
			offsets[k.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[k.topic][k.partition] = kgo.EpochOffset{Epoch: -1, Offset: st.commitAt}
	})
	if len(offsets) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opt.SessionTimeout)
	defer cancel()
	var errs []error
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
				st := s.parts[tp{t.Topic, p.Partition}]
				if st != nil && st.commitAt == offsets[t.Topic][p.Partition].Offset {
					st.commitAt = -1
				}
			}
		}
	})
	s.stats.Commits++
	if err := errors.Join(errs...); err != nil {
		s.stats.CommitErrors++
		s.metrics.commitErrors.Inc()
		s.opt.Logger.Warn("commit failed; retrying on the next poll", "err", err)
	}
}
