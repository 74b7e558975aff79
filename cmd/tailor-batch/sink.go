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
		verbose             bool
	)
	cmd := &cobra.Command{
		Use:   "sink --brokers B --topics T --store URL",
		Short: "Consume metric payloads from Kafka into segments (the state side)",
		Long: `Runs a member of a Kafka consumer group that decodes payloads and writes them as
segments to the store, committing offsets only after each segment is stored. Start as many
as you need with the same --group: partitions rebalance by themselves.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			f, err := payload.ParseFormat(format)
			if err != nil {
				return fmt.Errorf("--format: %w", err)
			}
			opt.Format = f
			st, err := openStore(ctx, storeURL)
			if err != nil {
				return err
			}
			defer st.Close()
			opt.Store = st
			if opt.ShardMap, err = loadShardMap(shardMap); err != nil {
				return err
			}
			opt.Logger = newLogger(os.Stderr, verbose)
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			opt.Registerer = reg
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
			err = s.Run(ctx)
			if errors.Is(err, ctx.Err()) {
				err = nil
			}
			stats := s.Stats()
			fmt.Fprintf(cmd.OutOrStdout(), "sink: %d records, %d payloads, %d points, %d rejected → %d segments (%d already stored), %d bytes in %s\n",
				stats.Records, stats.Payloads, stats.Points, stats.Rejected, stats.Segments, stats.SegmentsExisting, stats.Bytes, time.Since(start).Round(time.Millisecond))
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
	fl.DurationVar(&opt.SessionTimeout, "session-timeout", 6*time.Second, "group session timeout")
	fl.DurationVar(&opt.RebalanceTimeout, "rebalance-timeout", 10*time.Second, "group rebalance timeout")
	fl.BoolVar(&opt.StopAtEnd, "stop-at-end", false, "exit once everything up to the end offsets seen at start is stored")
	fl.StringVar(&shardMap, "shard-map", "", "shard map YAML (default: org_id mod 64)")
	fl.StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus /metrics on this address, e.g. :9090")
	fl.BoolVarP(&verbose, "verbose", "v", false, "log partition assignments and flushes")
	storeFlag(cmd, &storeURL)
	_ = cmd.MarkFlagRequired("brokers")
	_ = cmd.MarkFlagRequired("topics")
	return cmd
}
