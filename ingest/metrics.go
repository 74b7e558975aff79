package ingest

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	records, payloads, rejects, existing prometheus.Counter
	uploadErrors, commitErrors           prometheus.Counter
	flushes                              *prometheus.CounterVec
	flushBytes, uploadSeconds            prometheus.Histogram
	lag                                  *prometheus.GaugeVec
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		records:       prometheus.NewCounter(prometheus.CounterOpts{Name: "tailor_sink_records_total", Help: "Kafka records consumed."}),
		payloads:      prometheus.NewCounter(prometheus.CounterOpts{Name: "tailor_sink_payloads_total", Help: "Payloads decoded."}),
		rejects:       prometheus.NewCounter(prometheus.CounterOpts{Name: "tailor_sink_rejects_total", Help: "Records that could not be decoded, stored under rejects/."}),
		existing:      prometheus.NewCounter(prometheus.CounterOpts{Name: "tailor_sink_segments_existing_total", Help: "Segments whose key already existed (another owner stored them first)."}),
		uploadErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "tailor_sink_upload_errors_total", Help: "Segment uploads that failed."}),
		commitErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "tailor_sink_commit_errors_total", Help: "Offset commits that failed after a stored segment."}),
		flushes:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tailor_sink_flushes_total", Help: "Segments stored, by flush reason."}, []string{"reason"}),
		flushBytes:    prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tailor_sink_flush_bytes", Help: "Size of stored segments.", Buckets: prometheus.ExponentialBuckets(1<<10, 4, 12)}),
		uploadSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tailor_sink_upload_seconds", Help: "Time to encode and store a segment.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		lag:           prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tailor_sink_lag_records", Help: "Records behind the high watermark, per partition."}, []string{"topic", "partition"}),
	}
	if r != nil {
		r.MustRegister(m.records, m.payloads, m.rejects, m.existing, m.uploadErrors, m.commitErrors, m.flushes, m.flushBytes, m.uploadSeconds, m.lag)
	}
	return m
}
