package ingest

import "github.com/prometheus/client_golang/prometheus"

// metrics are the sink's Prometheus metrics; docs/sink.md lists them. Process memory
// and Go runtime metrics come from the standard collectors the command registers.
type metrics struct {
	records, payloads, points, rejects, existing prometheus.Counter
	abandoned, commitErrors, memoryPauses        prometheus.Counter
	retries, flushes                             *prometheus.CounterVec
	flushBytes, uploadSeconds                    prometheus.Histogram
	lag                                          *prometheus.GaugeVec
	bufferBytes, bufferLimit                     prometheus.Gauge
	inflight, paused, partitions                 prometheus.Gauge
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		records:       prometheus.NewCounter(prometheus.CounterOpts{Name: "tailor_sink_records_total", Help: "Kafka records consumed."}),
		payloads:      prometheus.NewCounter(prometheus.CounterOpts{Name: "tailor_sink_payloads_total", Help: "Payloads decoded."}),
		points:        prometheus.NewCounter(prometheus.CounterOpts{Name: "tailor_sink_points_total", Help: "Points decoded."}),
		rejects:       prometheus.NewCounter(prometheus.CounterOpts{Name: "tailor_sink_rejects_total", Help: "Records that could not be decoded, stored under rejects/."}),
		existing:      prometheus.NewCounter(prometheus.CounterOpts{Name: "tailor_sink_segments_existing_total", Help: "Segments whose key already existed (another owner stored them first)."}),
		abandoned:     prometheus.NewCounter(prometheus.CounterOpts{Name: "tailor_sink_uploads_abandoned_total", Help: "Uploads given up uncommitted because the partition was revoked, lost or the sink stopped."}),
		commitErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "tailor_sink_commit_errors_total", Help: "Offset commits that failed after a stored segment."}),
		memoryPauses:  prometheus.NewCounter(prometheus.CounterOpts{Name: "tailor_sink_memory_pauses_total", Help: "Times the buffer pool filled up and fetching paused."}),
		retries:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tailor_sink_upload_retries_total", Help: "Segment upload attempts that failed and were retried, by reason (slowdown and throttled are throttling)."}, []string{"reason"}),
		flushes:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tailor_sink_flushes_total", Help: "Segments stored, by flush reason."}, []string{"reason"}),
		flushBytes:    prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tailor_sink_flush_bytes", Help: "Size of stored segments.", Buckets: prometheus.ExponentialBuckets(1<<10, 4, 12)}),
		uploadSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tailor_sink_upload_seconds", Help: "Time from flush to stored segment, retries included.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 20)}),
		lag:           prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tailor_sink_lag_records", Help: "Records behind the high watermark, per partition."}, []string{"topic", "partition"}),
		bufferBytes:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "tailor_sink_buffer_bytes", Help: "Memory held by open and uploading segments."}),
		bufferLimit:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "tailor_sink_buffer_limit_bytes", Help: "Size of the buffer pool that bounds open and uploading segments."}),
		inflight:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "tailor_sink_uploads_in_flight", Help: "Segments being uploaded."}),
		paused:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "tailor_sink_paused_partitions", Help: "Partitions whose fetching is paused (buffer pool full or upload backlog)."}),
		partitions:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "tailor_sink_partitions", Help: "Partitions owned by this worker."}),
	}
	if r != nil {
		r.MustRegister(m.records, m.payloads, m.points, m.rejects, m.existing, m.abandoned, m.commitErrors, m.memoryPauses,
			m.retries, m.flushes, m.flushBytes, m.uploadSeconds, m.lag, m.bufferBytes, m.bufferLimit, m.inflight, m.paused, m.partitions)
	}
	return m
}
