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
// The code, by concept: sink.go (options, the poll loop, stop), partition.go (one
// partition's state and its transitions), group.go (group callbacks and settling
// partitions given up), flow.go (records into segments, flush triggers, the buffer pool
// and pauses), commit.go (reaping uploads, committing), upload.go (uploads, retries,
// rejects files) and store.go (the streaming create). See docs/sink.md.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
		return errors.New("sink: no brokers")
	}
	if len(o.Topics) == 0 {
		return errors.New("sink: no topics")
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
	// Partitions is the number of partitions this member owns now.
	Partitions int
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

	// mu guards the fields below. Partition state changes only in the poll window or a
	// group callback, which franz-go never runs at once; the mutex is for the upload
	// goroutines and Stats, which run beside them. It is never held across a request to
	// the broker or the store, nor while waiting for an upload.
	mu       sync.Mutex
	parts    map[tp]*partState
	epoch    uint64
	stats    Stats
	ends     map[tp]int64
	memFull  bool
	stopping bool
	// fatal is the first permanent upload error; Run stops with it.
	fatal error
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

// Stats returns the running totals and the partitions owned now. It is safe to call
// while Run runs.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Partitions = len(s.parts)
	return st
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
		done, err := s.step(fetches)
		s.cl.AllowRebalance()
		if err != nil || done {
			return err
		}
	}
}

// step handles one poll's fetches in the poll window: reap the completed uploads and
// commit their ends, then add the records and flush what is due. It reports whether a
// drain (StopAtEnd) is done. On an error, every partition is abandoned uncommitted.
func (s *Sink) step(fetches kgo.Fetches) (done bool, err error) {
	s.mu.Lock()
	s.reapLocked(nil, true)
	s.mu.Unlock()
	s.commit(nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fatal != nil {
		err := s.fatal
		s.abandonAllLocked("store error")
		return false, fmt.Errorf("sink: %w; nothing past the stored segments is committed: fix the cause and start the sink again, it resumes from there", err)
	}
	if err := s.processLocked(fetches); err != nil {
		// The open segments may hold what made Add fail: store nothing more.
		s.abandonAllLocked("error")
		return false, err
	}
	s.flushDueLocked(time.Now())
	s.balanceMemoryLocked()
	return s.opt.StopAtEnd && s.drainedLocked(), nil
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
	ks := make([]tp, 0, len(s.parts))
	for k := range s.parts {
		ks = append(ks, k)
	}
	s.mu.Unlock()
	s.settle(sctx, ks, "shutdown")
	s.mu.Lock()
	s.abandonAllLocked("stop")
	s.mu.Unlock()
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
