package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/gateway"
	"github.com/tailor-metrics/tailor/ingest/payload"
)

func newGatewayCmd() *cobra.Command {
	var (
		opt                      gateway.Options
		listen, tenantsFile      string
		overloadStatus           int
		shutdownTimeout, readHdr time.Duration
	)
	cmd := &cobra.Command{
		Use:   "gateway --listen ADDR --brokers B --topic T",
		Short: "Receive Prometheus remote-write and produce it to Kafka for the sink",
		Long: `Serves Prometheus remote-write 1.0 (snappy protobuf WriteRequest) on /api/v1/write
(and /api/v1/push, Mimir's path) and produces each request to --topic as remote-write
records, which a sink with --format remote-write stores. Each series' org comes from its
--tenant-label, else the X-Scope-OrgID header (--tenant-header), else --default-tenant;
tenant names map to orgs through --tenants (decimal tenants are their own org).

Answers 204 only after Kafka acknowledged every record of the request, 400 (413, 415)
with the reason for a request that can never succeed, and 503 (or 429 with
--overload-status 429) with Retry-After when over --max-inflight-bytes or when Kafka did
not acknowledge within --produce-timeout. Prometheus metrics on /metrics. See
docs/gateway.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if tenantsFile != "" {
				t, err := payload.LoadTenants(tenantsFile)
				if err != nil {
					return fmt.Errorf("--tenants: %w", err)
				}
				opt.Tenancy.Tenants = t
			}
			opt.OverloadStatus = overloadStatus
			if os.Getenv("GOGC") == "" {
				// Decoding a request with prompb allocates every label string; the
				// objects die with the request. A larger GC target halves the GC's
				// share of CPU (bench-gateway: 570k → 710k samples/s per core); the
				// heap stays bounded by --max-inflight-bytes.
				debug.SetGCPercent(400)
			}
			opt.Logger = loggerFrom(ctx)
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			opt.Registerer = reg
			g, err := gateway.New(opt)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				g.Close()
				return fmt.Errorf("--listen: %w", err)
			}
			mux := http.NewServeMux()
			mux.Handle("/api/v1/write", g)
			mux.Handle("/api/v1/push", g)
			mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
			mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
			srv := &http.Server{Handler: mux, ReadHeaderTimeout: readHdr}
			fmt.Fprintf(cmd.ErrOrStderr(), "gateway: remote-write on http://%s/api/v1/write → topic %s\n", ln.Addr(), opt.Topic)
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			select {
			case err = <-served:
			case <-ctx.Done():
				// Stop taking requests, let those in flight get their acks, then
				// flush and close the producer.
				sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
				err = srv.Shutdown(sctx)
				cancel()
			}
			g.Close()
			st := g.Stats()
			fmt.Fprintf(cmd.OutOrStdout(), "gateway: %d requests, %d samples of %d series in %d records (%d bytes); %d rejected, %d overloaded, %d failed\n",
				st.Requests, st.Samples, st.Series, st.Records, st.RecordBytes, st.Rejected, st.Overloaded, st.Failed)
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&listen, "listen", ":9201", "address to serve remote-write on")
	fl.StringSliceVar(&opt.Brokers, "brokers", nil, "Kafka seed brokers, host:port (required)")
	fl.StringVar(&opt.Topic, "topic", "", "topic to produce to; its sink needs --format remote-write (required)")
	fl.StringVar(&opt.Tenancy.Label, "tenant-label", "", "series label naming the series' tenant (removed from the series); wins over the header")
	fl.StringVar(&opt.TenantHeader, "tenant-header", gateway.DefaultTenantHeader, "request header naming the tenant")
	fl.StringVar(&opt.DefaultTenant, "default-tenant", "", "tenant of requests without the header (default: the sink's rule, an org_id label or org 0)")
	fl.BoolVar(&opt.RequireTenant, "require-tenant", false, "answer 400 to series without a tenant")
	fl.StringVar(&tenantsFile, "tenants", "", "YAML tenant map (tenants: {name: org}); decimal tenants are their own org")
	fl.IntVar(&opt.MaxBodyBytes, "max-body-bytes", gateway.DefaultMaxBodyBytes, "largest compressed request body (413 beyond)")
	fl.IntVar(&opt.MaxRecordBytes, "max-record-bytes", gateway.DefaultMaxRecordBytes, "largest Kafka record; larger requests are cut (keep below the topic's max.message.bytes)")
	fl.Int64Var(&opt.MaxInflightBytes, "max-inflight-bytes", gateway.DefaultMaxInflightBytes, "memory for requests in progress and records awaiting Kafka; beyond it requests are refused with --overload-status")
	fl.IntVar(&overloadStatus, "overload-status", 503, "status when overloaded: 503 (every sender retries) or 429 (Prometheus retries it only with retry_on_http_429)")
	fl.DurationVar(&opt.RetryAfter, "retry-after", gateway.DefaultRetryAfter, "Retry-After of 429 and 503 answers")
	fl.DurationVar(&opt.ProduceTimeout, "produce-timeout", gateway.DefaultProduceTimeout, "longest wait for Kafka's acknowledgement before answering 503")
	fl.DurationVar(&shutdownTimeout, "shutdown-timeout", 20*time.Second, "on SIGTERM, how long requests in flight may take to finish")
	fl.DurationVar(&readHdr, "read-header-timeout", 10*time.Second, "longest time to read a request's headers")
	_ = cmd.MarkFlagRequired("brokers")
	_ = cmd.MarkFlagRequired("topic")
	return cmd
}
