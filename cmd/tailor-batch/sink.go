package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/ingest"
	"github.com/tailor-metrics/tailor/ingest/payload"
)

func newSinkCmd() *cobra.Command {
	var (
		opt                 ingest.Options
		storeURL, shardMap  string
		format, metricsAddr string
		progress            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "sink --brokers B --topics T --store URL",
		Short: "Consume metric payloads from Kafka into segments (the state side)",
		Long: `Runs a member of a Kafka consumer group that decodes payloads and writes them as
segments to the store, committing offsets only after each segment is stored. Start as many
as you need with the same --group: partitions rebalance by themselves.

On SIGTERM or Ctrl-C it stores the open segments (waiting up to --stop-timeout for uploads),
commits what is stored, and stops; what it could not store is consumed again by the next
owner. Give each worker a stable --instance-id (e.g. the pod name) so that a restarted worker
gets its partitions back at once. -v logs partition assignments and flushes. See
docs/sink.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			f, err := payload.ParseFormat(format)
			if err != nil {
				return fmt.Errorf("--format: %w", err)
			}
			opt.Format = f
			// The flags are required, but may be given empty.
			if len(opt.Brokers) == 0 {
				return usageErrorf("--brokers: no broker given; want host:port[,host:port]")
			}
			if len(opt.Topics) == 0 {
				return usageErrorf("--topics: no topic given; want name[,name]")
			}
			if opt.ConnectTimeout <= 0 {
				return usageErrorf("--connect-timeout %s: want a positive duration, e.g. 1m", opt.ConnectTimeout)
			}
			opt.Logger = loggerFrom(ctx)
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			opt.Registerer = reg
			// The store's retries by reason and multipart results go to /metrics too.
			st, err := createStore(withStoreObservers(ctx, reg, opt.Logger), storeURL, "--store")
			if err != nil {
				return err
			}
			defer st.Close()
			opt.Store = st
			if opt.ShardMap, err = loadShardMap(shardMap); err != nil {
				return err
			}
			if metricsAddr != "" {
				ln, err := net.Listen("tcp", metricsAddr)
				if err != nil {
					return fmt.Errorf("--metrics-addr: %w", err)
				}
				srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
				go srv.Serve(ln)
				defer srv.Close()
				fmt.Fprintf(os.Stderr, "metrics on http://%s/metrics\n", ln.Addr())
			}
			s, err := ingest.New(opt)
			if err != nil {
				return err
			}
			start := time.Now()
			if progress > 0 {
				stop := make(chan struct{})
				defer close(stop)
				go func() {
					t := time.NewTicker(progress)
					defer t.Stop()
					for {
						select {
						case <-stop:
							return
						case <-t.C:
							st := s.Stats()
							fmt.Fprintf(os.Stderr, "sink: %s: %d records, %d points, %d segments stored, %d upload retries, %d rejected\n",
								time.Since(start).Round(time.Second), st.Records, st.Points, st.Segments, st.Retries, st.Rejected)
						}
					}
				}()
			}
			err = s.Run(ctx)
			if errors.Is(err, ctx.Err()) {
				err = nil
			}
			if errors.Is(err, ingest.ErrNoBroker) {
				err = fmt.Errorf("%w (--brokers; --connect-timeout sets how long to wait)", err)
			}
			stats := s.Stats()
			fmt.Fprintf(cmd.OutOrStdout(), "sink: %d records, %d payloads, %d points, %d rejected → %d segments (%d already stored), %d bytes in %s; %d upload retries, %d uploads abandoned uncommitted, %d failed commits\n",
				stats.Records, stats.Payloads, stats.Points, stats.Rejected, stats.Segments, stats.SegmentsExisting, stats.Bytes, time.Since(start).Round(time.Millisecond),
				stats.Retries, stats.Abandoned, stats.CommitErrors)
			if rs := storeRetries(st); rs != nil {
				printRetries(cmd.OutOrStdout(), "sink: store retries: ", *rs)
			}
			if stats.Abandoned > 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "sink: abandoned uploads were not committed; the next owner of their partitions consumes them again, nothing is lost")
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&opt.Brokers, "brokers", nil, "Kafka seed brokers, host:port (required)")
	fl.StringSliceVar(&opt.Topics, "topics", nil, "topics to consume (required)")
	fl.BoolVar(&opt.TopicRegex, "topic-regex", false, "treat --topics as regular expressions")
	fl.StringVar(&opt.Group, "group", "tailor-sink", "consumer group")
	fl.StringVar(&opt.InstanceID, "instance-id", "", "static group membership id, stable per worker (e.g. the pod name)")
	fl.StringVar(&format, "format", "auto", "payload format: auto, proto, json or remote-write")
	fl.IntVar(&opt.FlushPayloads, "flush-payloads", 100_000, "flush a partition's segment after this many payloads")
	fl.Int64Var(&opt.FlushBytes, "flush-bytes", 64<<20, "flush a partition's segment after this many bytes")
	fl.DurationVar(&opt.FlushAge, "flush-age", 10*time.Minute, "flush a partition's segment after this age")
	fl.Int64Var(&opt.BufferBytes, "buffer-bytes", 1<<30, "memory for open and uploading segments of all partitions together; when full, fetching pauses")
	fl.IntVar(&opt.Uploads, "uploads", 8, "segments uploaded at once (at most one per partition)")
	fl.DurationVar(&opt.RetryMax, "retry-max", 30*time.Second, "longest pause between attempts of a failed segment upload (it is retried until it succeeds)")
	fl.DurationVar(&opt.StopTimeout, "stop-timeout", 20*time.Second, "on SIGTERM, how long to wait for uploads before abandoning them uncommitted")
	fl.BoolVar(&opt.LeaveOnStop, "leave-on-stop", false, "with --instance-id: leave the group on stop, so partitions move at once (scale-down)")
	fl.DurationVar(&progress, "progress", 30*time.Second, "print progress this often (0: never)")
	fl.DurationVar(&opt.ConnectTimeout, "connect-timeout", time.Minute, "exit with an error when no broker could be reached for this long after start (a sink that was connected keeps retrying)")
	fl.DurationVar(&opt.SessionTimeout, "session-timeout", 6*time.Second, "group session timeout")
	fl.DurationVar(&opt.RebalanceTimeout, "rebalance-timeout", 10*time.Second, "group rebalance timeout")
	fl.BoolVar(&opt.StopAtEnd, "stop-at-end", false, "exit once everything up to the end offsets seen at start is stored")
	fl.StringVar(&shardMap, "shard-map", "", "shard map YAML (default: org_id mod 64)")
	fl.StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus /metrics on this address, e.g. :9090")
	storeFlag(cmd, &storeURL, true)
	_ = cmd.MarkFlagRequired("brokers")
	_ = cmd.MarkFlagRequired("topics")
	return cmd
}
